//! The rendering of event lines before the hand-written JSON writer:
//! serde structs and `serde_json::Value` arguments. Kept, in tests only, as
//! the oracle the writer's lines must match byte for byte.

use std::{
    net::{IpAddr, Ipv6Addr},
    sync::Arc,
};

use serde::Serialize;
use serde_json::{json, Map, Value};
use tetragond_ebpf::{CredInfo, Event, SockInfo, MODE_MONITOR, PATH_CUT, STR_LEN};

use super::{action_name, hook_kind, kind, signal_name};
use crate::{
    capabilities::CapSets,
    clock::Clock,
    compile::{HookKind, HookMeta},
    event_args::slot,
    process::Process,
};

fn text(slot: Option<&[u8]>, len: u64) -> String {
    let Some(bytes) = slot else {
        return String::new();
    };
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(bytes.len())
        .min(len as usize);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A path the kernel walked: its first `STR_LEN - 1` bytes, flagged
/// `truncated` when that is not all of it (longer, or cut before the root:
/// `PATH_CUT`).
fn path_object(slot: Option<&[u8]>, raw: u64) -> Value {
    let path = text(slot, raw & (PATH_CUT - 1));
    if raw & PATH_CUT != 0 || raw & (PATH_CUT - 1) >= STR_LEN as u64 {
        json!({ "path": path, "flags": "truncated" })
    } else {
        json!({ "path": path })
    }
}

/// `T` is one of the plain-data records the kernel writes into a slot.
fn pod<T: Copy + Default>(slot: Option<&[u8]>) -> T {
    match slot {
        Some(b) if b.len() >= std::mem::size_of::<T>() => {
            // SAFETY: T is repr(C) plain data and the length was checked.
            unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) }
        }
        _ => T::default(),
    }
}

fn family_name(family: u16) -> String {
    match family {
        0 => "AF_UNSPEC".into(),
        1 => "AF_UNIX".into(),
        2 => "AF_INET".into(),
        10 => "AF_INET6".into(),
        n => n.to_string(),
    }
}

fn protocol_name(protocol: u16) -> String {
    match protocol {
        0 => String::new(),
        1 => "IPPROTO_ICMP".into(),
        6 => "IPPROTO_TCP".into(),
        17 => "IPPROTO_UDP".into(),
        58 => "IPPROTO_ICMPV6".into(),
        n => n.to_string(),
    }
}

/// IPv4-mapped addresses print as IPv4.
fn addr(bytes: [u8; 16]) -> String {
    let v6 = Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4).to_string(),
        None => IpAddr::V6(v6).to_string(),
    }
}

fn put_port(v: &mut Map<String, Value>, key: &str, port: u16) {
    if port != 0 {
        v.insert(key.into(), json!(port));
    }
}

/// A capability set as Tetragon exports it: the names of its bits, in bit
/// order (`CAP_41` for a bit this table does not know).
fn cap_names(set: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| set & (1u64 << bit) != 0)
        .map(|bit| {
            crate::capabilities::NAMES
                .get(bit as usize)
                .map_or_else(|| format!("CAP_{bit}"), |n| n.to_string())
        })
        .collect()
}

/// Tetragon's ProcessCredentials: `securebits` left out when empty,
/// `is_host` when false.
fn cred_json(c: &CredInfo) -> Value {
    let mut v = json!({
        "uid": c.uid, "gid": c.gid, "euid": c.euid, "egid": c.egid,
        "suid": c.suid, "sgid": c.sgid, "fsuid": c.fsuid, "fsgid": c.fsgid,
        "caps": caps(&CapSets::of_cred(c)),
    });
    let bits: Vec<&str> = crate::event_args::SECURE_BITS
        .iter()
        .enumerate()
        .filter(|(bit, _)| c.securebits & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect();
    if !bits.is_empty() {
        v["securebits"] = json!(bits);
    }
    let u = &c.user_ns;
    let mut ns = json!({"inum": u.inum});
    let host = crate::event_args::host_user_ns();
    if u.inum != 0 && u.inum == host {
        ns["is_host"] = json!(true);
    }
    v["user_ns"] = json!({"level": u.level, "uid": u.uid, "gid": u.gid, "ns": ns});
    v
}

/// `{effective, permitted, inheritable}`, an empty set left out.
fn caps(c: &CapSets) -> Value {
    let mut v = Map::new();
    for (key, set) in [
        ("effective", c.effective),
        ("permitted", c.permitted),
        ("inheritable", c.inheritable),
    ] {
        if set != 0 {
            v.insert(key.into(), json!(cap_names(set)));
        }
    }
    Value::Object(v)
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The argument's key and value in Tetragon's export.
fn typed_arg(ty: &str, raw: u64, slot: Option<&[u8]>) -> (&'static str, Value) {
    match ty {
        "int" | "int32" | "int16" | "int8" => ("int_arg", json!(raw as i64 as i32)),
        // uint_arg is a uint32 in tetragon.proto: protojson writes a number.
        "uint32" | "uint16" | "uint8" => ("uint_arg", json!(raw as u32)),
        "size_t" | "uint64" | "ulong" => ("size_arg", json!(raw.to_string())),
        // Tetragon's SyscallId: the number in its ABI (bit 31 marks i386).
        "syscall64" => {
            let (abi, id) = crate::compile::split_id(raw);
            ("syscall_id", json!({ "id": id, "abi": abi }))
        }
        "string" | "filename" | "data_loc" => ("string_arg", json!(text(slot, raw))),
        "sockaddr_un" => (
            "sockaddrun_arg",
            json!({ "family": "AF_UNIX", "path": text(slot, raw) }),
        ),
        // Tetragon's bytes_arg: protojson writes bytes as base64.
        "char_buf" => {
            let bytes = slot.map_or(&[][..], |b| &b[..(raw as usize).min(b.len())]);
            ("bytes_arg", json!(base64(bytes)))
        }
        "file" => ("file_arg", path_object(slot, raw)),
        // A descriptor is exported as the file it names.
        "fd" => ("file_arg", path_object(slot, raw)),
        "path" | "dentry" => ("path_arg", path_object(slot, raw)),
        "linux_binprm" => ("linux_binprm_arg", path_object(slot, raw)),
        "sockaddr" => {
            let s: SockInfo = pod(slot);
            let mut v = Map::new();
            v.insert("family".into(), json!(family_name(s.family)));
            v.insert("addr".into(), json!(addr(s.daddr)));
            put_port(&mut v, "port", s.dport);
            ("sockaddr_arg", Value::Object(v))
        }
        // Empty and zero fields left out, as protojson does inside Tetragon's
        // KprobeSock.
        "sock" | "socket" => {
            let s: SockInfo = pod(slot);
            let mut v = Map::new();
            v.insert("family".into(), json!(family_name(s.family)));
            let protocol = protocol_name(s.protocol);
            if !protocol.is_empty() {
                v.insert("protocol".into(), json!(protocol));
            }
            v.insert("saddr".into(), json!(addr(s.saddr)));
            v.insert("daddr".into(), json!(addr(s.daddr)));
            put_port(&mut v, "sport", s.sport);
            put_port(&mut v, "dport", s.dport);
            ("sock_arg", Value::Object(v))
        }
        "cred" => {
            let c: CredInfo = pod(slot);
            ("process_credentials_arg", cred_json(&c))
        }
        // int64, long and anything integer-like: Tetragon writes 64-bit as strings.
        _ => ("long_arg", json!((raw as i64).to_string())),
    }
}

/// A process as Tetragon exports it. `pid`, `uid`, `tid`, `auid` and
/// `in_init_tree` are wrapper messages in Tetragon's protobuf, so they
/// appear even when zero or false; every other empty field is left out.
#[derive(Serialize)]
struct ProcessJson<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    exec_id: &'a str,
    pid: u32,
    uid: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    cwd: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    binary: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    arguments: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    flags: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    start_time: &'a str,
    auid: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    parent_exec_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cap: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ns: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_credentials: Option<Value>,
    tid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary_properties: Option<Value>,
    in_init_tree: bool,
}

impl<'a> ProcessJson<'a> {
    /// The process of a `process_exec`: with its `binary_properties`.
    fn exec(p: &'a Process) -> Self {
        ProcessJson {
            binary_properties: p.binary_properties.as_ref().map(binary_properties_json),
            ..ProcessJson::new(p, p.pid)
        }
    }

    fn new(p: &'a Process, tid: u32) -> Self {
        ProcessJson {
            exec_id: &p.exec_id,
            pid: p.pid,
            uid: p.uid,
            cwd: &p.cwd,
            binary: &p.binary,
            arguments: &p.arguments,
            flags: &p.flags,
            start_time: &p.start_time,
            auid: p.auid,
            parent_exec_id: &p.parent_exec_id,
            cap: p.caps.as_ref().map(caps),
            ns: p.ns.map(|ns| namespaces_json(&ns)),
            process_credentials: p.cred.map(|c| cred_json(&c)),
            tid,
            binary_properties: None,
            in_init_tree: p.in_init_tree,
        }
    }
}

/// Tetragon's BinaryProperties: wrapped ids as numbers, the inode number
/// (64-bit) as a string.
fn binary_properties_json(b: &crate::process::binary::BinaryProperties) -> Value {
    let mut v = Map::new();
    if let Some(id) = b.setuid {
        v.insert("setuid".into(), json!(id));
    }
    if let Some(id) = b.setgid {
        v.insert("setgid".into(), json!(id));
    }
    if !b.privileges_changed.is_empty() {
        v.insert("privileges_changed".into(), json!(b.privileges_changed));
    }
    if let Some((number, links)) = b.unlinked {
        v.insert(
            "file".into(),
            json!({"inode": {"number": number.to_string(), "links": links}}),
        );
    }
    Value::Object(v)
}

/// Tetragon's Namespaces: an unknown kind (0) left out, `is_host` when true.
fn namespaces_json(ns: &[u32; tetragond_ebpf::NS_CHANGE_KINDS]) -> Value {
    use tetragond_ebpf::ns_kind::*;
    let host = crate::event_args::host_namespaces();
    let mut v = Map::new();
    for (key, kind) in [
        ("uts", UTS),
        ("ipc", IPC),
        ("mnt", MNT),
        ("pid", PID),
        ("pid_for_children", PID_FOR_CHILDREN),
        ("net", NET),
        ("time", TIME),
        ("time_for_children", TIME_FOR_CHILDREN),
        ("cgroup", CGROUP),
        ("user", USER),
    ] {
        let inum = ns[usize::from(kind)];
        if inum == 0 {
            continue;
        }
        let mut one = json!({"inum": inum});
        if inum == host[usize::from(kind)] {
            one["is_host"] = json!(true);
        }
        v.insert(key.into(), one);
    }
    Value::Object(v)
}

/// `process_kprobe`, `process_tracepoint`, `process_lsm`, `process_uprobe`.
#[derive(Serialize)]
struct HookEvent<'a> {
    process: ProcessJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<ProcessJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subsys: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    symbol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<Value>,
    #[serde(rename = "return", skip_serializing_if = "Option::is_none")]
    ret: Option<Value>,
    action: &'static str,
    policy_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    policy_namespace: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ancestors: Vec<ProcessJson<'a>>,
    /// A kprobe's data values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    data: Vec<Value>,
    /// Beyond Tetragon: the mode at the time of the event, and whether the
    /// action was carried out. `enforced` is written even when false: that
    /// is the point of it.
    mode: &'static str,
    enforced: bool,
    /// Beyond Tetragon: identical events folded into this one.
    #[serde(skip_serializing_if = "is_zero")]
    repeats: u32,
}

#[derive(Serialize)]
struct ExecEvent<'a> {
    process: ProcessJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<ProcessJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ancestors: Vec<ProcessJson<'a>>,
}

#[derive(Serialize)]
struct ExitEvent<'a> {
    process: ProcessJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<ProcessJson<'a>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    signal: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    status: u32,
    time: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ancestors: Vec<ProcessJson<'a>>,
}

#[derive(Serialize)]
struct RateLimitInfo<'a> {
    /// uint64: a string, as protojson writes it.
    number_of_dropped_process_events: String,
    /// Beyond Tetragon: why (`ring_buffer`, `rate_limit`, ...).
    reason: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    policy_name: &'a str,
}

/// Each ancestor as `parent` is written: its pid as `tid`.
fn ancestors_json(ancestors: &[Arc<Process>]) -> Vec<ProcessJson<'_>> {
    ancestors
        .iter()
        .map(|a| ProcessJson::new(a, a.pid))
        .collect()
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Body<'a> {
    ProcessKprobe(HookEvent<'a>),
    ProcessTracepoint(HookEvent<'a>),
    ProcessLsm(HookEvent<'a>),
    ProcessUprobe(HookEvent<'a>),
    ProcessUsdt(HookEvent<'a>),
    ProcessExec(ExecEvent<'a>),
    ProcessExit(ExitEvent<'a>),
    RateLimitInfo(RateLimitInfo<'a>),
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    body: Body<'a>,
    node_name: &'a str,
    time: &'a str,
}

fn render(line: &Line<'_>) -> String {
    // Cannot fail: plain structs with string keys.
    serde_json::to_string(line).unwrap_or_default()
}

/// The old shape of a rendered line.
pub(super) struct Exported {
    pub kind: &'static str,
    pub line: String,
}

/// One posted policy event as a JSON line.
#[allow(
    clippy::too_many_arguments,
    reason = "the same inputs as the writer's, for comparison"
)]
pub(super) fn policy_event(
    ev: &Event,
    data: &[u8],
    meta: &HookMeta,
    process: &Process,
    parent: Option<&Process>,
    ancestors: &[Arc<Process>],
    clock: &Clock,
    node_name: &str,
) -> Exported {
    // Per arg, the values it puts in a list: one, but for an array of
    // longs (const_buf), one size_arg per element.
    let mut args: Vec<Vec<Value>> = meta
        .args
        .iter()
        .zip(ev.args.iter())
        .enumerate()
        .map(|(i, ((ty, label), raw))| {
            let one = |ty: &str, raw: u64, slot: Option<&[u8]>| {
                let (key, value) = typed_arg(ty, raw, slot);
                let mut obj = Map::new();
                obj.insert(key.into(), value);
                if let Some(label) = label {
                    obj.insert("label".into(), json!(label));
                }
                Value::Object(obj)
            };
            if ty != "const_buf" {
                return vec![one(ty, *raw, slot(data, i))];
            }
            let bytes = slot(data, i).unwrap_or_default();
            bytes[..(*raw as usize).min(bytes.len())]
                .as_chunks::<8>()
                .0
                .iter()
                .map(|e| one("uint64", u64::from_le_bytes(*e), None))
                .collect()
        })
        .collect();
    let data = meta
        .data_from
        .filter(|&from| from < args.len())
        .map_or_else(Vec::new, |from| args.split_off(from));
    let ret = meta
        .return_position
        .filter(|&i| i < args.len())
        .and_then(|i| args.remove(i).pop());
    let args: Vec<Value> = args.into_iter().flatten().collect();
    let data: Vec<Value> = data.into_iter().flatten().collect();
    let mode = match (meta.monitor_only, ev.mode as u32) {
        (true, _) => "monitor_only",
        (false, MODE_MONITOR) => "monitor",
        (false, _) => "enforce",
    };
    let kind = hook_kind(meta);
    let (mut function_name, mut subsys, mut event, mut path, mut symbol) =
        (None, None, None, None, None);
    let (mut provider, mut name) = (None, None);
    match &meta.kind {
        HookKind::Tracepoint {
            subsystem,
            event: e,
        } => (subsys, event) = (Some(&**subsystem), Some(&**e)),
        HookKind::Uprobe { path: p, symbol: s } => (path, symbol) = (Some(&**p), Some(&**s)),
        HookKind::Usdt {
            path: p,
            provider: v,
            name: n,
        } => (path, provider, name) = (Some(&**p), Some(&**v), Some(&**n)),
        HookKind::Kprobe { function } | HookKind::Lsm { function } => {
            function_name = Some(&**function)
        }
        // Written by `loader_event`, not as a hook event.
        HookKind::Loader => {}
    }
    let body = HookEvent {
        process: ProcessJson::new(process, ev.tid),
        parent: parent.map(|p| ProcessJson::new(p, p.pid)),
        function_name,
        subsys,
        event,
        path,
        symbol,
        provider,
        name,
        args,
        ret,
        action: action_name(ev, meta),
        policy_name: &meta.policy_name,
        policy_namespace: &meta.namespace,
        message: meta.message.as_deref(),
        tags: &meta.tags,
        ancestors: ancestors_json(ancestors),
        data,
        mode,
        enforced: ev.enforced != 0,
        repeats: ev.repeats,
    };
    let body = match kind {
        kind::TRACEPOINT => Body::ProcessTracepoint(body),
        kind::LSM => Body::ProcessLsm(body),
        kind::UPROBE => Body::ProcessUprobe(body),
        kind::USDT => Body::ProcessUsdt(body),
        _ => Body::ProcessKprobe(body),
    };
    let time = clock.rfc3339(ev.ktime_ns);
    Exported {
        kind,
        line: render(&Line {
            body,
            node_name,
            time: &time,
        }),
    }
}

/// A `process_exec`, dated at the exec.
pub(super) fn exec_event(
    process: &Process,
    parent: Option<&Process>,
    ancestors: &[Arc<Process>],
    node_name: &str,
) -> Exported {
    let body = Body::ProcessExec(ExecEvent {
        process: ProcessJson::exec(process),
        parent: parent.map(|p| ProcessJson::new(p, p.pid)),
        ancestors: ancestors_json(ancestors),
    });
    Exported {
        kind: kind::EXEC,
        line: render(&Line {
            body,
            node_name,
            time: &process.start_time,
        }),
    }
}

/// A `process_exit`. `wait_status` is the exit status as wait(2) gives it,
/// when it could be read.
pub(super) fn exit_event(
    process: &Process,
    parent: Option<&Process>,
    ancestors: &[Arc<Process>],
    wait_status: Option<i32>,
    time: &str,
    node_name: &str,
) -> Exported {
    let (signal, status) = match wait_status {
        Some(w) if w & 0x7f != 0 => (signal_name(w & 0x7f), 0),
        Some(w) => (String::new(), ((w >> 8) & 0xff) as u32),
        None => (String::new(), 0),
    };
    let body = Body::ProcessExit(ExitEvent {
        process: ProcessJson::new(process, process.pid),
        parent: parent.map(|p| ProcessJson::new(p, p.pid)),
        signal: &signal,
        status,
        time,
        ancestors: ancestors_json(ancestors),
    });
    Exported {
        kind: kind::EXIT,
        line: render(&Line {
            body,
            node_name,
            time,
        }),
    }
}

/// Events that were dropped, and why; `policy_name` for a policy's limit.
pub(super) fn rate_limit_info(
    dropped: u64,
    reason: &str,
    policy_name: &str,
    time: &str,
    node_name: &str,
) -> Exported {
    let body = Body::RateLimitInfo(RateLimitInfo {
        number_of_dropped_process_events: dropped.to_string(),
        reason,
        policy_name,
    });
    Exported {
        kind: kind::RATE_LIMIT_INFO,
        line: render(&Line {
            body,
            node_name,
            time,
        }),
    }
}
