//! Posted events: read from the kernel's ring buffer, written as JSON lines
//! in Tetragon's export shape (plus `mode` and `enforced`, so a monitor-mode
//! event says its action was not carried out).

use serde::Serialize;
use serde_json::{json, Map, Value};
use tetragond_ebpf::{action, record, Event, ExecRecord, ExitRecord, MODE_MONITOR};

use crate::{
    clock::Clock,
    compile::{HookKind, HookMeta},
    event_args::typed_arg,
    process::Process,
};

/// A record from the kernel's ring buffer.
#[allow(
    clippy::large_enum_variant,
    reason = "policy events are the hot path: kept inline, not boxed per event"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The event and its arguments' data (`Event::data_len` bytes).
    Policy(Event, Vec<u8>),
    /// Boxed: with its argv it is several times the size of the others.
    Exec(Box<ExecRecord>),
    Exit(ExitRecord),
}

/// Decodes a ring buffer record; None when it is unknown or too short.
pub fn decode(bytes: &[u8]) -> Option<Record> {
    let kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
    match kind {
        record::POLICY_EVENT => {
            let ev: Event = read_pod(bytes)?;
            let header = std::mem::size_of::<Event>();
            let data = bytes.get(header..header + ev.data_len as usize)?.to_vec();
            Some(Record::Policy(ev, data))
        }
        record::EXEC => read_pod(bytes).map(|r| Record::Exec(Box::new(r))),
        record::EXIT => read_pod(bytes).map(Record::Exit),
        _ => None,
    }
}

/// `T` must be one of the repr(C) plain-data records of tetragond-ebpf.
fn read_pod<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: T is plain data and the length was checked; read_unaligned
    // makes no assumption about the ring buffer's alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub fn action_name(ev: &Event) -> &'static str {
    match ev.action {
        action::SIGKILL => "KPROBE_ACTION_SIGKILL",
        action::SIGNAL => "KPROBE_ACTION_SIGNAL",
        action::OVERRIDE => "KPROBE_ACTION_OVERRIDE",
        _ => "KPROBE_ACTION_POST",
    }
}

/// The exported event kinds: the top-level key of a line.
pub mod kind {
    pub const KPROBE: &str = "process_kprobe";
    pub const TRACEPOINT: &str = "process_tracepoint";
    pub const LSM: &str = "process_lsm";
    pub const UPROBE: &str = "process_uprobe";
    pub const EXEC: &str = "process_exec";
    pub const EXIT: &str = "process_exit";
    pub const RATE_LIMIT_INFO: &str = "rate_limit_info";
}

/// The event key for a hook.
pub fn hook_kind(meta: &HookMeta) -> &'static str {
    match meta.kind {
        HookKind::Tracepoint { .. } => kind::TRACEPOINT,
        HookKind::Kprobe { .. } => kind::KPROBE,
        HookKind::Lsm { .. } => kind::LSM,
        HookKind::Uprobe { .. } => kind::UPROBE,
    }
}

/// A process as Tetragon exports it. `pid`, `uid`, `tid` and `auid` are
/// wrapper messages in Tetragon's protobuf, so they appear even when zero;
/// every other empty field is left out.
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
    tid: u32,
}

impl<'a> ProcessJson<'a> {
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
            tid,
        }
    }
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
    /// Beyond Tetragon: the mode at the time of the event, and whether the
    /// action was carried out. `enforced` is written even when false: that
    /// is the point of it.
    mode: &'static str,
    enforced: bool,
}

#[derive(Serialize)]
struct ExecEvent<'a> {
    process: ProcessJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<ProcessJson<'a>>,
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

/// An exported line and what the exporter needs to know about it without
/// parsing it again (rate limits, counters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub kind: &'static str,
    /// Empty for process and rate-limit events.
    pub policy_name: String,
    pub line: String,
}

/// One posted policy event as a JSON line.
pub fn policy_event(
    ev: &Event,
    data: &[u8],
    meta: &HookMeta,
    process: &Process,
    parent: Option<&Process>,
    clock: &Clock,
    node_name: &str,
) -> Exported {
    let mut args: Vec<Value> = meta
        .args
        .iter()
        .zip(ev.args.iter())
        .enumerate()
        .map(|(i, ((ty, label), raw))| {
            let (key, value) = typed_arg(ty, *raw, crate::event_args::slot(data, i));
            let mut obj = Map::new();
            obj.insert(key.into(), value);
            if let Some(label) = label {
                obj.insert("label".into(), json!(label));
            }
            Value::Object(obj)
        })
        .collect();
    let ret = meta
        .return_position
        .filter(|&i| i < args.len())
        .map(|i| args.remove(i));
    let mode = match (meta.monitor_only, ev.mode as u32) {
        (true, _) => "monitor_only",
        (false, MODE_MONITOR) => "monitor",
        (false, _) => "enforce",
    };
    let kind = hook_kind(meta);
    let (function_name, subsys, event, path, symbol) = match &meta.kind {
        HookKind::Tracepoint { subsystem, event } => {
            (None, Some(&**subsystem), Some(&**event), None, None)
        }
        HookKind::Uprobe { path, symbol } => (None, None, None, Some(&**path), Some(&**symbol)),
        HookKind::Kprobe { function } | HookKind::Lsm { function } => {
            (Some(&**function), None, None, None, None)
        }
    };
    let body = HookEvent {
        process: ProcessJson::new(process, ev.tid),
        parent: parent.map(|p| ProcessJson::new(p, p.pid)),
        function_name,
        subsys,
        event,
        path,
        symbol,
        args,
        ret,
        action: action_name(ev),
        policy_name: &meta.policy_name,
        policy_namespace: &meta.namespace,
        message: meta.message.as_deref(),
        tags: &meta.tags,
        mode,
        enforced: ev.enforced != 0,
    };
    let body = match kind {
        kind::TRACEPOINT => Body::ProcessTracepoint(body),
        kind::LSM => Body::ProcessLsm(body),
        kind::UPROBE => Body::ProcessUprobe(body),
        _ => Body::ProcessKprobe(body),
    };
    let time = clock.rfc3339(ev.ktime_ns);
    Exported {
        kind,
        policy_name: meta.policy_name.clone(),
        line: render(&Line {
            body,
            node_name,
            time: &time,
        }),
    }
}

/// A `process_exec`, dated at the exec.
pub fn exec_event(process: &Process, parent: Option<&Process>, node_name: &str) -> Exported {
    let body = Body::ProcessExec(ExecEvent {
        process: ProcessJson::new(process, process.pid),
        parent: parent.map(|p| ProcessJson::new(p, p.pid)),
    });
    Exported {
        kind: kind::EXEC,
        policy_name: String::new(),
        line: render(&Line {
            body,
            node_name,
            time: &process.start_time,
        }),
    }
}

/// A `process_exit`. `wait_status` is the exit status as wait(2) gives it,
/// when it could be read.
pub fn exit_event(
    process: &Process,
    parent: Option<&Process>,
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
    });
    Exported {
        kind: kind::EXIT,
        policy_name: String::new(),
        line: render(&Line {
            body,
            node_name,
            time,
        }),
    }
}

/// Events that were dropped, and why; `policy_name` for a policy's limit.
pub fn rate_limit_info(
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
        policy_name: String::new(),
        line: render(&Line {
            body,
            node_name,
            time,
        }),
    }
}

/// `SIGKILL` for 9, as Tetragon names exit signals.
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|i| NAMES.get(i))
        .filter(|n| !n.is_empty())
        .map_or_else(|| format!("SIG{sig}"), |n| n.to_string())
}

pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tetragond_ebpf::{COMM_LEN, PATH_LEN};

    fn event() -> Event {
        let mut exe = [0u8; PATH_LEN];
        exe[..8].copy_from_slice(b"/bin/cat");
        let mut comm = [0u8; COMM_LEN];
        comm[..3].copy_from_slice(b"cat");
        Event {
            kind: record::POLICY_EVENT,
            data_len: 0,
            ktime_ns: 5,
            policy_slot: 1,
            hook_slot: 2,
            tgid: 42,
            tid: 43,
            uid: 0,
            gid: 0,
            action: action::SIGKILL,
            enforced: 0,
            mode: MODE_MONITOR as u8,
            selector: 0,
            signal: 9,
            args: [39, 0, 0, 0, 0],
            comm,
            exe,
        }
    }

    #[test]
    fn monitor_event_says_not_enforced() {
        let meta = HookMeta {
            policy_name: "deny".into(),
            namespace: String::new(),
            kind: HookKind::Tracepoint {
                subsystem: "raw_syscalls".into(),
                event: "sys_enter".into(),
            },
            args: vec![("syscall64".into(), Some("id".into()))],
            message: None,
            tags: vec![],
            monitor_only: false,
            return_position: None,
        };
        let process = Process {
            exec_id: "aWQ=".into(),
            pid: 42,
            binary: "/bin/cat".into(),
            auid: u32::MAX,
            ..Process::default()
        };
        let out = policy_event(
            &event(),
            &[],
            &meta,
            &process,
            None,
            &Clock::at_boot(0),
            "node",
        );
        assert_eq!(out.kind, "process_tracepoint");
        assert_eq!(out.policy_name, "deny");
        let v: Value = serde_json::from_str(&out.line).expect("JSON");
        let body = &v["process_tracepoint"];
        assert_eq!(body["action"], "KPROBE_ACTION_SIGKILL");
        assert_eq!(body["enforced"], false);
        assert_eq!(body["mode"], "monitor");
        assert_eq!(body["process"]["binary"], "/bin/cat");
        assert_eq!(
            body["args"][0]["syscall_id"],
            json!({"id": 39, "abi": "x64"})
        );
        assert_eq!(body["args"][0]["label"], "id");
        assert_eq!(v["node_name"], "node");
        // Zero values are left out, except the wrapper integers and `enforced`.
        assert_eq!(body["process"]["uid"], 0);
        assert_eq!(body["process"]["tid"], 43);
        assert_eq!(body["process"]["auid"], u32::MAX);
        assert!(body["process"].get("cwd").is_none());
        assert!(body.get("parent").is_none());
        assert!(body.get("message").is_none());
        assert!(body.get("tags").is_none());
    }

    #[test]
    fn kprobe_lsm_uprobe_keys() {
        let mut meta = HookMeta {
            policy_name: "p".into(),
            namespace: String::new(),
            kind: HookKind::Kprobe {
                function: "sys_getpgid".into(),
            },
            args: vec![],
            message: Some("m".into()),
            tags: vec!["t".into()],
            monitor_only: true,
            return_position: None,
        };
        let p = Process::default();
        let clock = Clock::at_boot(0);
        let v: Value = serde_json::from_str(
            &policy_event(&event(), &[], &meta, &p, Some(&p), &clock, "n").line,
        )
        .expect("JSON");
        let body = &v["process_kprobe"];
        assert_eq!(body["function_name"], "sys_getpgid");
        assert!(body.get("subsys").is_none());
        assert_eq!(body["mode"], "monitor_only");
        assert_eq!(body["message"], "m");
        assert_eq!(body["tags"][0], "t");
        assert!(body.get("parent").is_some());
        meta.kind = HookKind::Lsm {
            function: "file_open".into(),
        };
        assert_eq!(hook_kind(&meta), "process_lsm");
        meta.kind = HookKind::Uprobe {
            path: "/bin/bash".into(),
            symbol: "sys_getpgid".into(),
        };
        let v: Value =
            serde_json::from_str(&policy_event(&event(), &[], &meta, &p, None, &clock, "n").line)
                .expect("JSON");
        assert_eq!(v["process_uprobe"]["path"], "/bin/bash");
        assert_eq!(v["process_uprobe"]["symbol"], "sys_getpgid");
    }

    #[test]
    fn exit_signal_and_status() {
        let p = Process::default();
        let v: Value =
            serde_json::from_str(&exit_event(&p, None, Some(9), "t", "n").line).expect("JSON");
        assert_eq!(v["process_exit"]["signal"], "SIGKILL");
        assert!(v["process_exit"].get("status").is_none());
        let v: Value =
            serde_json::from_str(&exit_event(&p, None, Some(3 << 8), "t", "n").line).expect("JSON");
        assert_eq!(v["process_exit"]["status"], 3);
        assert!(v["process_exit"].get("signal").is_none());
        assert_eq!(signal_name(64), "SIG64");
    }

    #[test]
    fn rate_limit_info_counts_as_string() {
        let v: Value = serde_json::from_str(&rate_limit_info(12, "ring_buffer", "", "t", "n").line)
            .expect("JSON");
        assert_eq!(
            v["rate_limit_info"]["number_of_dropped_process_events"],
            "12"
        );
        assert_eq!(v["rate_limit_info"]["reason"], "ring_buffer");
        assert!(v["rate_limit_info"].get("policy_name").is_none());
    }

    #[test]
    fn decode_checks_length() {
        assert!(decode(&[0u8; 8]).is_none());
    }
}
