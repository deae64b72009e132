//! Kernel memory of our programs and maps, from the kernel's own accounting
//! (`memlock:` in /proc/self/fdinfo of each BPF fd), and the share of it
//! one policy occupies.

use std::{fs, mem::size_of};

use tetragond_ebpf::{
    AddrTrieData, ArgSetKey, BinarySetKey, ExePath, GateKey, HookConf, HookSet, RegOverride,
    RegsKey, SubstrKey, SubstrValue,
};

use super::install::{HookGate, Installed};
use crate::compile::MapEntry;

/// The kernel's bookkeeping per hash map element (`struct htab_elem`, key
/// and value each rounded up to 8) or LPM trie node (`struct
/// lpm_trie_node`), rounded: the estimate below is of what a policy
/// occupies (from Linux 6.1 the policy maps allocate as entries are
/// written, so the kernel's charge grows by about as much; before, they
/// are preallocated and the charge does not move).
const ELEMENT_OVERHEAD: u64 = 48;

/// Total bytes the kernel charges for every BPF program and map this process holds.
pub fn bpf_memlock_total() -> u64 {
    let Ok(dir) = fs::read_dir("/proc/self/fdinfo") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter(|info| info.contains("prog_id:") || info.contains("map_id:"))
        .filter_map(|info| memlock(&info))
        .sum()
}

/// Bytes of the shared maps one installed policy version occupies: its
/// hooks' `HOOKS` slots, their selector entries and the gate entries that
/// dispatch them (the programs and the maps' unused capacity are shared
/// by all policies and shown once, by [`bpf_memlock_total`]).
pub fn policy_bytes(installed: &Installed) -> u64 {
    installed
        .hooks
        .iter()
        .map(|hook| {
            size_of::<HookConf>() as u64
                + hook.entries.iter().map(entry_bytes).sum::<u64>()
                + hook.keys.len() as u64 * gate_bytes(&hook.gate)
        })
        .sum()
}

/// Bytes of one key's gate entries for a hook (a gate's set may be shared
/// with other hooks of the key: each is charged in full).
fn gate_bytes(gate: &HookGate) -> u64 {
    let set = size_of::<HookSet>();
    match gate {
        HookGate::None => 0,
        HookGate::Binaries(paths) => paths.len() as u64 * element(size_of::<GateKey>(), set),
        HookGate::Prefixes(gate) => gate
            .prefixes
            .iter()
            .map(|p| element(8 + p.len(), set))
            .sum(),
    }
}

fn element(key: usize, value: usize) -> u64 {
    (key.next_multiple_of(8) + value.next_multiple_of(8)) as u64 + ELEMENT_OVERHEAD
}

fn entry_bytes(entry: &MapEntry) -> u64 {
    match entry {
        MapEntry::ArgValue { .. } => element(size_of::<ArgSetKey>(), 1),
        // The set entry and the path's id (shared by the hooks naming it).
        MapEntry::Binary { .. } => {
            element(size_of::<BinarySetKey>(), 1) + element(size_of::<ExePath>(), 4)
        }
        // A trie node holds the bytes it matches, not the whole key.
        MapEntry::Str { bytes, .. } => element(8 + bytes.len(), 1),
        MapEntry::Addr { .. } => element(size_of::<AddrTrieData>(), 1),
        MapEntry::Substr { .. } => element(size_of::<SubstrKey>(), size_of::<SubstrValue>()),
        MapEntry::Regs { .. } => element(size_of::<RegsKey>(), size_of::<RegOverride>()),
    }
}

fn memlock(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::{policy_bytes, ELEMENT_OVERHEAD};
    use crate::{
        compile::{tests::Fixed, MapEntry},
        policy,
        sensors::install::{HookGate, Installed, InstalledHook},
    };

    #[test]
    fn a_policy_is_charged_its_hook_slots_and_entries() {
        let yaml = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: m\nspec:\n  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    args:\n    - index: 4\n      type: syscall64\n    selectors:\n    - matchBinaries:\n      - operator: In\n        values: [/bin/a]\n";
        let tp = policy::parse_policy(std::path::Path::new("m.yaml"), yaml).expect("parses");
        let compiled = crate::compile::compile(&tp, &Fixed).expect("compiles");
        let hook = &compiled.hooks[0];
        let installed = Installed {
            hooks: vec![InstalledHook {
                slot: 0,
                attached: None,
                keys: vec![],
                gate: Default::default(),
                entries: hook.entries.clone(),
                meta: hook.meta.clone(),
                stacks: 0,
            }],
        };
        assert!(matches!(hook.entries[..], [MapEntry::Binary { .. }]));
        let conf = std::mem::size_of::<tetragond_ebpf::HookConf>() as u64;
        let bytes = policy_bytes(&installed);
        // The slot, a set entry and the 256-byte path's id entry.
        assert!(bytes > conf + 256 + 2 * ELEMENT_OVERHEAD, "{bytes}");
        assert!(
            bytes < conf + 512,
            "{bytes}: a one-hook policy is charged a few hundred bytes past its slot"
        );
        assert_eq!(policy_bytes(&Installed::default()), 0);
        // Listed under a key and gated on its binary: the gate's entry too.
        let mut gated = installed.clone();
        gated.hooks[0].keys = vec![tetragond_ebpf::HookKey { site: 1, sub_id: 2 }];
        gated.hooks[0].gate = HookGate::Binaries(vec!["/bin/a".into()]);
        let set = std::mem::size_of::<tetragond_ebpf::HookSet>() as u64;
        assert_eq!(
            policy_bytes(&gated) - bytes,
            16 + set + ELEMENT_OVERHEAD,
            "the (key, binary) gate's set"
        );
    }

    #[test]
    fn reads_memlock_line() {
        let info = "pos:\t0\nflags:\t02000002\nmap_type:\t1\nmemlock:\t8512\nmap_id:\t12\n";
        assert_eq!(super::memlock(info), Some(8512));
        assert_eq!(super::memlock("pos:\t0\n"), None);
    }
}
