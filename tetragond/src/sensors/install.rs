//! Installing a compiled policy into the kernel maps, and removing it.
//!
//! A new version is written to fresh hook slots ([`prepare`]) and only then
//! swapped into the dispatch lists ([`commit`]), one atomic update per list,
//! all lists or none; the old version's slots are freed after. So an edit
//! never leaves a moment without enforcement, and a failed one changes
//! nothing.

use tetragond_ebpf::{action, return_half, HookConf, HookKey, MAX_HOOKS, MAX_POLICIES};

use super::dispatch::{Listing, ListingGate};
use super::ops::KernelOps;
use crate::{
    compile::{Attach, CompiledHook, CompiledPolicy, HookMeta, MapEntry, PrefixGate},
    error::SensorError,
};

/// Kernel slots of one installed policy version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    pub hooks: Vec<InstalledHook>,
}

/// A hook in its slot, with what was done for it, so that releasing it
/// undoes exactly that (a half-written hook included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledHook {
    pub slot: u32,
    /// Where its program is attached; None until attached.
    pub attached: Option<Attach>,
    /// Dispatch keys it is listed under (none for uprobes).
    pub keys: Vec<HookKey>,
    /// What it can only match, when it is gated on it (see
    /// [`CompiledHook::binary_gate`], [`CompiledHook::prefix_gate`]).
    pub gate: HookGate,
    /// The map entries written for it, in order.
    pub entries: Vec<MapEntry>,
    pub meta: HookMeta,
    /// The stacks (`stack::*`) a Post of its selectors carries: its
    /// dispatch sets say so, and the entry point takes them for it.
    pub stacks: u8,
}

impl Installed {
    fn list_entries(&self) -> Vec<Listing> {
        let mut listings = Vec::new();
        for hook in &self.hooks {
            for key in &hook.keys {
                let listing = |gate| Listing {
                    key: *key,
                    gate,
                    slot: hook.slot,
                    stacks: hook.stacks,
                };
                match &hook.gate {
                    HookGate::None => listings.push(listing(ListingGate::None)),
                    HookGate::Binaries(paths) => listings.extend(
                        paths
                            .iter()
                            .map(|p| listing(ListingGate::Binary(p.clone()))),
                    ),
                    HookGate::Prefixes(gate) => {
                        listings.extend(gate.prefixes.iter().map(|bytes| {
                            listing(ListingGate::Prefix {
                                reader: gate.reader,
                                bytes: bytes.clone(),
                            })
                        }))
                    }
                }
            }
        }
        listings
    }
}

/// What a hook is dispatched by, besides its keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HookGate {
    /// Run for every event of its keys.
    #[default]
    None,
    /// Run only for these executables.
    Binaries(Vec<String>),
    /// Run only when an argument starts with one of these strings.
    Prefixes(PrefixGate),
}

impl HookGate {
    fn of(hook: &CompiledHook) -> Self {
        if let Some(paths) = hook.binary_gate() {
            HookGate::Binaries(paths)
        } else if let Some(gate) = hook.prefix_gate() {
            HookGate::Prefixes(gate)
        } else {
            HookGate::None
        }
    }
}

/// Hands out slots. Freed slots go to the back of the queue, so an event
/// still in flight for a removed hook is unlikely to be blamed on a new one.
#[derive(Debug)]
pub struct SlotAllocator {
    free: std::collections::VecDeque<u32>,
}

impl SlotAllocator {
    pub fn new(capacity: u32) -> Self {
        Self {
            free: (0..capacity).collect(),
        }
    }

    pub fn policies() -> Self {
        Self::new(MAX_POLICIES)
    }

    pub fn hooks() -> Self {
        Self::new(MAX_HOOKS)
    }

    pub fn take(&mut self) -> Option<u32> {
        self.free.pop_front()
    }

    pub fn give_back(&mut self, slot: u32) {
        self.free.push_back(slot);
    }
}

/// A policy version written to fresh hook slots and attached, not yet in
/// any dispatch list: no event reaches it until [`commit`].
#[derive(Debug)]
#[must_use = "a prepared version must be committed or aborted"]
pub struct Prepared {
    installed: Installed,
}

/// First half of installing `new` for `policy_slot`: everything that can
/// fail for lack of room or a missing attach point. On error nothing of
/// `new` stays behind and the running version is untouched.
pub fn prepare(
    kernel: &mut impl KernelOps,
    hook_slots: &mut SlotAllocator,
    policy_slot: u32,
    new: &CompiledPolicy,
) -> Result<Prepared, SensorError> {
    let mut installed = Installed::default();
    if let Err(e) = write_hooks(kernel, hook_slots, policy_slot, new, &mut installed) {
        release(kernel, hook_slots, &installed);
        return Err(e);
    }
    Ok(Prepared { installed })
}

/// Second half: swaps the prepared version into the dispatch lists in place
/// of `old` (if any), then frees `old`. On error the lists are as they were,
/// `old` runs on and the prepared version is released.
pub fn commit(
    kernel: &mut impl KernelOps,
    hook_slots: &mut SlotAllocator,
    prepared: Prepared,
    old: Option<&Installed>,
) -> Result<Installed, SensorError> {
    let old_entries = old.map(Installed::list_entries).unwrap_or_default();
    if let Err(e) = kernel.swap_lists(&old_entries, &prepared.installed.list_entries()) {
        abort(kernel, hook_slots, &prepared);
        return Err(e);
    }
    if let Some(old) = old {
        release(kernel, hook_slots, old);
    }
    Ok(prepared.installed)
}

/// Drops a prepared version that will not be committed.
pub fn abort(kernel: &mut impl KernelOps, hook_slots: &mut SlotAllocator, prepared: &Prepared) {
    release(kernel, hook_slots, &prepared.installed);
}

/// Takes a policy version out of the dispatch lists, then frees its slots.
pub fn remove(kernel: &mut impl KernelOps, hook_slots: &mut SlotAllocator, old: &Installed) {
    if let Err(e) = kernel.swap_lists(&old.list_entries(), &[]) {
        tracing::error!("removing dispatch entries: {e}");
    }
    release(kernel, hook_slots, old);
}

fn write_hooks(
    kernel: &mut impl KernelOps,
    hook_slots: &mut SlotAllocator,
    policy_slot: u32,
    new: &CompiledPolicy,
    installed: &mut Installed,
) -> Result<(), SensorError> {
    for hook in &new.hooks {
        let slot = hook_slots
            .take()
            .ok_or_else(|| SensorError::Full(format!("all {MAX_HOOKS} hook slots in use")))?;
        let mut entry = InstalledHook {
            slot,
            attached: None,
            keys: vec![],
            gate: HookGate::None,
            entries: vec![],
            meta: hook.meta.clone(),
            stacks: posted_stacks(&hook.conf),
        };
        // An exit half follows its entry half (see `ReturnHalf`).
        let pair_slot = match hook.conf.return_half {
            return_half::EXIT => installed.hooks.last().map_or(u32::MAX, |h| h.slot),
            _ => 0,
        };
        let step = write_hook(kernel, policy_slot, pair_slot, hook, &mut entry);
        // Record even a half-written hook, so release() undoes what was done.
        installed.hooks.push(entry);
        step?;
    }
    Ok(())
}

/// The stacks (`stack::*`) the Post actions of `conf`'s selectors carry.
fn posted_stacks(conf: &HookConf) -> u8 {
    let selectors = conf.selectors.iter().take(conf.n_selectors.into());
    selectors
        .flat_map(|s| s.actions.iter().take(s.n_actions.into()))
        .filter(|a| a.kind == action::POST)
        .fold(0, |stacks, a| stacks | a.stacks)
}

/// Writes `hook` to `entry.slot` and attaches it, recording in `entry`
/// each step as it succeeds.
fn write_hook(
    kernel: &mut impl KernelOps,
    policy_slot: u32,
    pair_slot: u32,
    hook: &CompiledHook,
    entry: &mut InstalledHook,
) -> Result<(), SensorError> {
    let mut conf = hook.conf;
    conf.policy_slot = policy_slot;
    conf.pair_slot = pair_slot;
    kernel.write_hook(entry.slot, &conf)?;
    for map_entry in &hook.entries {
        kernel.add_entry(entry.slot, map_entry)?;
        entry.entries.push(map_entry.clone());
    }
    let site = kernel.attach(&hook.attach, entry.slot)?;
    entry.attached = Some(hook.attach.clone());
    if let Some(site) = site {
        entry.keys = hook.keys(site);
        entry.gate = HookGate::of(hook);
    }
    Ok(())
}

fn release(kernel: &mut impl KernelOps, hook_slots: &mut SlotAllocator, installed: &Installed) {
    for hook in &installed.hooks {
        for map_entry in &hook.entries {
            kernel.remove_entry(hook.slot, map_entry);
        }
        if let Some(attach) = &hook.attached {
            kernel.detach(attach, hook.slot);
        }
        kernel.free_hook(hook.slot);
        hook_slots.give_back(hook.slot);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tetragond_ebpf::{HookConf, PolicyCounters, SubstrValue};

    use super::{commit, prepare, remove, Listing, SlotAllocator};
    use crate::{
        compile::{compile, tests::Fixed, Attach, CompiledPolicy, MapEntry},
        error::SensorError,
        policy,
        sensors::ops::KernelOps,
    };

    /// Keeps what is live in the maps and attachments, and refuses to
    /// remove what is not there (a binary's id is shared by count).
    #[derive(Default)]
    struct LiveKernel {
        entries: Vec<(u32, MapEntry)>,
        attached: Vec<(u32, Attach)>,
        /// How many more writes of entries (then attaches) succeed.
        entries_left: Option<usize>,
        attach_fails: bool,
    }

    impl KernelOps for LiveKernel {
        fn write_hook(&mut self, _: u32, _: &HookConf) -> Result<(), SensorError> {
            Ok(())
        }
        fn free_hook(&mut self, _: u32) {}
        fn add_entry(&mut self, hook_slot: u32, entry: &MapEntry) -> Result<(), SensorError> {
            if let Some(left) = &mut self.entries_left {
                if *left == 0 {
                    return Err(SensorError::Full("injected".into()));
                }
                *left -= 1;
            }
            self.entries.push((hook_slot, entry.clone()));
            Ok(())
        }
        fn remove_entry(&mut self, hook_slot: u32, entry: &MapEntry) {
            let at = self
                .entries
                .iter()
                .position(|(s, e)| *s == hook_slot && e == entry)
                .unwrap_or_else(|| panic!("removing {entry:?} of {hook_slot}: never written"));
            self.entries.remove(at);
        }
        fn attach(&mut self, attach: &Attach, hook_slot: u32) -> Result<Option<u32>, SensorError> {
            if self.attach_fails {
                return Err(SensorError::Full("injected".into()));
            }
            self.attached.push((hook_slot, attach.clone()));
            Ok(Some(tetragond_ebpf::site::RAW_SYS_ENTER))
        }
        fn detach(&mut self, attach: &Attach, hook_slot: u32) {
            let at = self
                .attached
                .iter()
                .position(|(s, a)| *s == hook_slot && a == attach)
                .unwrap_or_else(|| panic!("detaching {attach:?} of {hook_slot}: never attached"));
            self.attached.remove(at);
        }
        fn swap_lists(&mut self, _: &[Listing], _: &[Listing]) -> Result<(), SensorError> {
            Ok(())
        }
        fn set_mode(&mut self, _: u32, _: u32) -> Result<(), SensorError> {
            Ok(())
        }
        fn counters(&self, _: u32) -> Result<PolicyCounters, SensorError> {
            Ok(PolicyCounters::default())
        }
        fn reset_counters(&mut self, _: u32) -> Result<(), SensorError> {
            Ok(())
        }
    }

    /// Two hooks with entries of every kind: an InMap set and binaries
    /// compiled from a policy, plus an address and a substring.
    fn policy() -> CompiledPolicy {
        let yaml = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: entries
spec:
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args:
    - index: 4
      type: syscall64
    selectors:
    - matchArgs:
      - index: 0
        operator: InMap
        values: [\"101\", \"102\"]
      matchBinaries:
      - operator: In
        values: [/usr/bin/true]
      matchParentBinaries:
      - operator: NotIn
        values: [/usr/bin/true]
    - matchBinaries:
      - operator: Prefix
        values: [/usr/]
";
        let tp = policy::parse_policy(Path::new("t.yaml"), yaml).expect("parses");
        let mut compiled = compile(&tp, &Fixed).expect("compiles");
        let mut second = compiled.hooks[0].clone();
        second.entries.extend([
            MapEntry::Addr {
                selector: 0,
                filter: 1,
                prefix: 104,
                addr: [0; 16],
            },
            MapEntry::Substr {
                selector: 0,
                filter: 2,
                index: 0,
                value: SubstrValue::default(),
            },
        ]);
        compiled.hooks.push(second);
        compiled
    }

    #[test]
    fn a_policys_entries_are_written_then_removed_through_one_path() {
        let (mut kernel, mut slots) = (LiveKernel::default(), SlotAllocator::new(4));
        let new = policy();
        let written = new.hooks.iter().map(|h| h.entries.len()).sum::<usize>();
        let prepared = prepare(&mut kernel, &mut slots, 0, &new).expect("prepares");
        let installed = commit(&mut kernel, &mut slots, prepared, None).expect("commits");
        assert_eq!(kernel.entries.len(), written);
        assert!(written >= 9, "every kind of entry: {:?}", kernel.entries);
        assert_eq!(kernel.attached.len(), 2);
        assert_eq!(installed.hooks[1].entries, new.hooks[1].entries);
        remove(&mut kernel, &mut slots, &installed);
        assert!(kernel.entries.is_empty(), "{:?}", kernel.entries);
        assert!(kernel.attached.is_empty(), "{:?}", kernel.attached);
        assert_eq!(
            (0..4).map(|_| slots.take()).filter(Option::is_some).count(),
            4
        );
    }

    #[test]
    fn a_failed_entry_or_attach_leaves_nothing_behind() {
        let new = policy();
        let written = new.hooks.iter().map(|h| h.entries.len()).sum::<usize>();
        let failures = (0..written)
            .map(|n| LiveKernel {
                entries_left: Some(n),
                ..Default::default()
            })
            .chain([LiveKernel {
                attach_fails: true,
                ..Default::default()
            }]);
        for mut kernel in failures {
            let mut slots = SlotAllocator::new(4);
            prepare(&mut kernel, &mut slots, 0, &new).expect_err("injected failure");
            assert!(kernel.entries.is_empty(), "{:?}", kernel.entries);
            assert!(kernel.attached.is_empty(), "{:?}", kernel.attached);
            assert_eq!(
                (0..4).map(|_| slots.take()).filter(Option::is_some).count(),
                4
            );
        }
    }

    #[test]
    fn freed_slots_are_reused_last() {
        let mut a = SlotAllocator::new(3);
        let (x, y) = (a.take(), a.take());
        assert_eq!((x, y), (Some(0), Some(1)));
        a.give_back(0);
        assert_eq!(a.take(), Some(2));
        assert_eq!(a.take(), Some(0));
        assert_eq!(a.take(), None);
    }
}
