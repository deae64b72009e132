//! Kernel objects read as records (`kernel_info::records`), written as
//! Tetragon writes them: `bpf_attr_arg`, `bpf_map_arg`, `perf_event_arg`
//! and `module_arg`. Zero numbers and empty strings are left out, as
//! protojson leaves them out of these messages; enum-like numbers are
//! named as Tetragon names them (the UAPI constant, else the number).

use tetragond_ebpf::{BpfMapInfo, BpfProgInfo, ModuleInfo, PerfEventInfo};

use super::{pod, text};
use crate::json::Json;

/// `enum bpf_prog_type` (include/uapi/linux/bpf.h), by value.
const PROG_TYPES: [&str; 33] = [
    "UNSPEC",
    "SOCKET_FILTER",
    "KPROBE",
    "SCHED_CLS",
    "SCHED_ACT",
    "TRACEPOINT",
    "XDP",
    "PERF_EVENT",
    "CGROUP_SKB",
    "CGROUP_SOCK",
    "LWT_IN",
    "LWT_OUT",
    "LWT_XMIT",
    "SOCK_OPS",
    "SK_SKB",
    "CGROUP_DEVICE",
    "SK_MSG",
    "RAW_TRACEPOINT",
    "CGROUP_SOCK_ADDR",
    "LWT_SEG6LOCAL",
    "LIRC_MODE2",
    "SK_REUSEPORT",
    "FLOW_DISSECTOR",
    "CGROUP_SYSCTL",
    "RAW_TRACEPOINT_WRITABLE",
    "CGROUP_SOCKOPT",
    "TRACING",
    "STRUCT_OPS",
    "EXT",
    "LSM",
    "SK_LOOKUP",
    "SYSCALL",
    "NETFILTER",
];

/// `enum bpf_cmd`, by value: Tetragon's BpfCmd.
const BPF_CMDS: [&str; 37] = [
    "MAP_CREATE",
    "MAP_LOOKUP_ELEM",
    "MAP_UPDATE_ELEM",
    "MAP_DELETE_ELEM",
    "MAP_GET_NEXT_KEY",
    "PROG_LOAD",
    "OBJ_PIN",
    "OBJ_GET",
    "PROG_ATTACH",
    "PROG_DETACH",
    "PROG_TEST_RUN",
    "PROG_GET_NEXT_ID",
    "MAP_GET_NEXT_ID",
    "PROG_GET_FD_BY_ID",
    "MAP_GET_FD_BY_ID",
    "OBJ_GET_INFO_BY_FD",
    "PROG_QUERY",
    "RAW_TRACEPOINT_OPEN",
    "BTF_LOAD",
    "BTF_GET_FD_BY_ID",
    "TASK_FD_QUERY",
    "MAP_LOOKUP_AND_DELETE_ELEM",
    "MAP_FREEZE",
    "BTF_GET_NEXT_ID",
    "MAP_LOOKUP_BATCH",
    "MAP_LOOKUP_AND_DELETE_BATCH",
    "MAP_UPDATE_BATCH",
    "MAP_DELETE_BATCH",
    "LINK_CREATE",
    "LINK_UPDATE",
    "LINK_GET_FD_BY_ID",
    "LINK_GET_NEXT_ID",
    "ENABLE_STATS",
    "ITER_CREATE",
    "LINK_DETACH",
    "PROG_BIND_MAP",
    "TOKEN_CREATE",
];

/// A `bpf_cmd` argument: Tetragon's BpfCmd enum, by name (protojson
/// writes a value the enum does not know as its number).
pub fn bpf_cmd(j: &mut Json, cmd: u32) {
    match BPF_CMDS.get(cmd as usize) {
        Some(name) => j.str(&format!("BPF_{name}")),
        None => j.u64(u64::from(cmd)),
    }
}

/// `enum bpf_map_type`, by value.
const MAP_TYPES: [&str; 34] = [
    "UNSPEC",
    "HASH",
    "ARRAY",
    "PROG_ARRAY",
    "PERF_EVENT_ARRAY",
    "PERCPU_HASH",
    "PERCPU_ARRAY",
    "STACK_TRACE",
    "CGROUP_ARRAY",
    "LRU_HASH",
    "LRU_PERCPU_HASH",
    "LPM_TRIE",
    "ARRAY_OF_MAPS",
    "HASH_OF_MAPS",
    "DEVMAP",
    "SOCKMAP",
    "CPUMAP",
    "XSKMAP",
    "SOCKHASH",
    "CGROUP_STORAGE",
    "REUSEPORT_SOCKARRAY",
    "PERCPU_CGROUP_STORAGE",
    "QUEUE",
    "STACK",
    "SK_STORAGE",
    "DEVMAP_HASH",
    "STRUCT_OPS",
    "RINGBUF",
    "INODE_STORAGE",
    "TASK_STORAGE",
    "BLOOM_FILTER",
    "USER_RINGBUF",
    "CGRP_STORAGE",
    "ARENA",
];

/// `enum perf_type_id`, by value.
const PERF_TYPES: [&str; 7] = [
    "HARDWARE",
    "SOFTWARE",
    "TRACEPOINT",
    "HW_CACHE",
    "RAW",
    "BREAKPOINT",
    "MAX",
];

/// Tetragon's TaintedBitsType: the module taint flags it names, with the
/// bit of `module.taints` each is (TAINT_FORCED_UNLOAD_MODULE is bit 2 in
/// Tetragon's enum; the kernel's TAINT_FORCED_RMMOD is bit 3).
const TAINTS: [(&str, u32); 8] = [
    ("TAINT_PROPRIETARY_MODULE", 0),
    ("TAINT_FORCED_MODULE", 1),
    ("TAINT_FORCED_UNLOAD_MODULE", 2),
    ("TAINT_STAGED_MODULE", 10),
    ("TAINT_OUT_OF_TREE_MODULE", 12),
    ("TAINT_UNSIGNED_MODULE", 13),
    ("TAINT_KERNEL_LIVE_PATCH_MODULE", 15),
    ("TAINT_TEST_MODULE", 18),
];

/// `PREFIX_NAME` for a known value, else the value in decimal.
fn named(j: &mut Json, prefix: &str, names: &[&str], value: u32) {
    match names.get(value as usize) {
        Some(name) => j.str(&format!("{prefix}{name}")),
        None => j.str(&value.to_string()),
    }
}

/// `key: n`, left out when `n` is 0 (as protojson leaves out a zero).
pub(super) fn nonzero(j: &mut Json, key: &str, n: u32) {
    if n != 0 {
        j.key(key);
        j.u64(u64::from(n));
    }
}

fn nonempty(j: &mut Json, key: &str, bytes: &[u8]) {
    let s = text(Some(bytes), bytes.len() as u64);
    if !s.is_empty() {
        j.key(key);
        j.str(&s);
    }
}

/// The key a record type is written under, if `ty` is one.
pub fn key(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "bpf_attr" | "bpf_prog" => "bpf_attr_arg",
        "bpf_map" => "bpf_map_arg",
        "perf_event" => "perf_event_arg",
        "module" | "load_info" => "module_arg",
        _ => return None,
    })
}

/// Writes record type `ty`'s value from its data slot; false when `ty`
/// is not a record type.
pub fn write(j: &mut Json, ty: &str, slot: Option<&[u8]>) -> bool {
    match ty {
        "bpf_attr" | "bpf_prog" => bpf_prog(j, &pod(slot)),
        "bpf_map" => bpf_map(j, &pod(slot)),
        "perf_event" => perf_event(j, &pod(slot)),
        // Tetragon writes signature_ok for a module being loaded only.
        "module" => module(j, &pod(slot), false),
        "load_info" => module(j, &pod(slot), true),
        _ => return false,
    }
    true
}

/// Tetragon's KprobeBpfAttr.
fn bpf_prog(j: &mut Json, p: &BpfProgInfo) {
    j.open(b'{');
    nonzero(j, "InsnCnt", p.insn_cnt);
    nonempty(j, "ProgName", &p.name);
    j.key("ProgType");
    named(j, "BPF_PROG_TYPE_", &PROG_TYPES, p.prog_type);
    j.close(b'}');
}

/// Tetragon's KprobeBpfMap.
fn bpf_map(j: &mut Json, m: &BpfMapInfo) {
    j.open(b'{');
    nonzero(j, "KeySize", m.key_size);
    nonempty(j, "MapName", &m.name);
    j.key("MapType");
    named(j, "BPF_MAP_TYPE_", &MAP_TYPES, m.map_type);
    nonzero(j, "MaxEntries", m.max_entries);
    nonzero(j, "ValueSize", m.value_size);
    j.close(b'}');
}

/// Tetragon's KprobePerfEvent.
fn perf_event(j: &mut Json, p: &PerfEventInfo) {
    j.open(b'{');
    if p.config != 0 {
        j.key("Config");
        j.u64_string(p.config);
    }
    nonempty(j, "KprobeFunc", &p.kprobe_func);
    if p.probe_offset != 0 {
        j.key("ProbeOffset");
        j.u64_string(p.probe_offset);
    }
    j.key("Type");
    named(j, "PERF_TYPE_", &PERF_TYPES, p.event_type);
    j.close(b'}');
}

/// Tetragon's KernelModule.
fn module(j: &mut Json, m: &ModuleInfo, signature: bool) {
    j.open(b'{');
    nonempty(j, "name", &m.name);
    if signature {
        // A BoolValue: written when false too.
        j.key("signature_ok");
        j.bool(m.sig_ok != 0);
    }
    let tainted = TAINTS
        .iter()
        .filter(|(_, bit)| m.taints & (1u64 << bit) != 0);
    if tainted.clone().next().is_some() {
        j.key("tainted");
        j.open(b'[');
        for (name, _) in tainted {
            j.element();
            j.str(name);
        }
        j.close(b']');
    }
    j.close(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn render<T>(ty: &str, record: &T) -> Value {
        // SAFETY: the records are repr(C) plain data.
        let bytes = unsafe {
            std::slice::from_raw_parts((record as *const T).cast::<u8>(), size_of::<T>())
        };
        let mut out = vec![];
        assert!(write(&mut Json::new(&mut out), ty, Some(bytes)));
        let text = String::from_utf8(out).expect("utf-8");
        let value: Value = serde_json::from_str(&text).expect(&text);
        // Keys in the order serde_json writes them (sorted).
        assert_eq!(value.to_string(), text);
        value
    }

    fn name<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0; N];
        out[..s.len()].copy_from_slice(s.as_bytes());
        out
    }

    #[test]
    fn bpf_programs_and_maps_are_written_as_tetragon_writes_them() {
        let prog = BpfProgInfo {
            prog_type: 1,
            insn_cnt: 2,
            name: name("corpus"),
        };
        assert_eq!(
            render("bpf_attr", &prog),
            json!({"InsnCnt": 2, "ProgName": "corpus", "ProgType": "BPF_PROG_TYPE_SOCKET_FILTER"})
        );
        let unknown = BpfProgInfo {
            prog_type: 4000,
            ..Default::default()
        };
        assert_eq!(render("bpf_prog", &unknown), json!({"ProgType": "4000"}));
        let map = BpfMapInfo {
            map_type: 2,
            key_size: 4,
            value_size: 8,
            max_entries: 3,
            name: name("corpusmap"),
        };
        assert_eq!(
            render("bpf_map", &map),
            json!({"KeySize": 4, "MapName": "corpusmap", "MapType": "BPF_MAP_TYPE_ARRAY",
                   "MaxEntries": 3, "ValueSize": 8})
        );
    }

    #[test]
    fn perf_events_and_modules_are_written_as_tetragon_writes_them() {
        let perf = PerfEventInfo {
            event_type: 1,
            config: 9,
            kprobe_func: name("do_sys_open"),
            ..Default::default()
        };
        assert_eq!(
            render("perf_event", &perf),
            json!({"Config": "9", "KprobeFunc": "do_sys_open", "Type": "PERF_TYPE_SOFTWARE"})
        );
        let module = ModuleInfo {
            taints: (1 << 12) | (1 << 13) | (1 << 3),
            sig_ok: 0,
            name: name("corpus_mod"),
            ..Default::default()
        };
        let tainted = json!(["TAINT_OUT_OF_TREE_MODULE", "TAINT_UNSIGNED_MODULE"]);
        assert_eq!(
            render("module", &module),
            json!({"name": "corpus_mod", "tainted": tainted})
        );
        assert_eq!(
            render("load_info", &module),
            json!({"name": "corpus_mod", "signature_ok": false, "tainted": tainted})
        );
        assert!(!write(&mut Json::new(&mut vec![]), "int", None));
        let cmd = |n| {
            let mut out = vec![];
            bpf_cmd(&mut Json::new(&mut out), n);
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(cmd(5), r#""BPF_PROG_LOAD""#);
        assert_eq!(cmd(36), r#""BPF_TOKEN_CREATE""#);
        assert_eq!(cmd(99), "99");
    }
}
