//! Tetragon's event shape, field by field: the messages of api/v1
//! `tetragon.proto` (as its generated reference lists them) with the JSON
//! type protojson gives each field (32-bit integers as numbers, 64-bit as
//! strings, bytes as base64, enums by name). [`shape_errors`] holds an
//! event line against it, so a field Tetragon does not have, or one of
//! Tetragon's written with another JSON type, fails a test. Our own
//! additions are listed in [`OURS`], each documented in docs/events.md.

use serde_json::Value;

#[derive(Clone, Copy)]
enum Kind {
    Str,
    /// google.protobuf.Timestamp: an RFC 3339 string.
    Time,
    /// An enum, by its name.
    Enum,
    I32,
    U32,
    /// int64: a string of digits, maybe signed.
    I64,
    /// uint64: a string of digits.
    U64,
    Bool,
    /// bytes: base64.
    Bytes,
    Msg(&'static str),
    Repeated(&'static Kind),
}

use Kind::*;

const PROCESS: Kind = Msg("Process");
const ANCESTORS: Kind = Repeated(&PROCESS);
const ARGS: Kind = Repeated(&Msg("KprobeArgument"));
const TAGS: Kind = Repeated(&Str);
const CAPS: Kind = Repeated(&Enum);
const STACK: Kind = Repeated(&Msg("StackTraceEntry"));

/// Fields per message, from tetragon.proto.
const MESSAGES: &[(&str, &[(&str, Kind)])] = &[
    (
        "GetEventsResponse",
        &[
            ("process_exec", Msg("ProcessExec")),
            ("process_exit", Msg("ProcessExit")),
            ("process_kprobe", Msg("ProcessKprobe")),
            ("process_tracepoint", Msg("ProcessTracepoint")),
            ("process_loader", Msg("ProcessLoader")),
            ("process_uprobe", Msg("ProcessUprobe")),
            ("process_lsm", Msg("ProcessLsm")),
            ("process_usdt", Msg("ProcessUsdt")),
            ("rate_limit_info", Msg("RateLimitInfo")),
            ("node_name", Str),
            ("time", Time),
            ("aggregation_info", Msg("AggregationInfo")),
        ],
    ),
    (
        "Process",
        &[
            ("exec_id", Str),
            ("pid", U32),
            ("uid", U32),
            ("cwd", Str),
            ("binary", Str),
            ("arguments", Str),
            ("flags", Str),
            ("start_time", Time),
            ("auid", U32),
            ("pod", Msg("Pod")),
            ("docker", Str),
            ("parent_exec_id", Str),
            ("refcnt", U32),
            ("cap", Msg("Capabilities")),
            ("ns", Msg("Namespaces")),
            ("tid", U32),
            ("process_credentials", Msg("ProcessCredentials")),
            ("binary_properties", Msg("BinaryProperties")),
            ("user", Msg("UserRecord")),
            ("in_init_tree", Bool),
        ],
    ),
    (
        "BinaryProperties",
        &[
            ("setuid", U32),
            ("setgid", U32),
            ("privileges_changed", Repeated(&Enum)),
            ("file", Msg("FileProperties")),
        ],
    ),
    (
        "FileProperties",
        &[("inode", Msg("InodeProperties")), ("path", Str)],
    ),
    ("InodeProperties", &[("number", U64), ("links", U32)]),
    (
        "Capabilities",
        &[
            ("permitted", CAPS),
            ("effective", CAPS),
            ("inheritable", CAPS),
        ],
    ),
    (
        "Namespaces",
        &[
            ("uts", Msg("Namespace")),
            ("ipc", Msg("Namespace")),
            ("mnt", Msg("Namespace")),
            ("pid", Msg("Namespace")),
            ("pid_for_children", Msg("Namespace")),
            ("net", Msg("Namespace")),
            ("time", Msg("Namespace")),
            ("time_for_children", Msg("Namespace")),
            ("cgroup", Msg("Namespace")),
            ("user", Msg("Namespace")),
        ],
    ),
    ("Namespace", &[("inum", U32), ("is_host", Bool)]),
    (
        "ProcessCredentials",
        &[
            ("uid", U32),
            ("gid", U32),
            ("euid", U32),
            ("egid", U32),
            ("suid", U32),
            ("sgid", U32),
            ("fsuid", U32),
            ("fsgid", U32),
            ("securebits", CAPS),
            ("caps", Msg("Capabilities")),
            ("user_ns", Msg("UserNamespace")),
        ],
    ),
    (
        "UserNamespace",
        &[
            ("level", I32),
            ("uid", U32),
            ("gid", U32),
            ("ns", Msg("Namespace")),
        ],
    ),
    ("UserRecord", &[("name", Str)]),
    (
        "ProcessExec",
        &[
            ("process", PROCESS),
            ("parent", PROCESS),
            ("ancestors", ANCESTORS),
        ],
    ),
    (
        "ProcessExit",
        &[
            ("process", PROCESS),
            ("parent", PROCESS),
            ("signal", Str),
            ("status", U32),
            ("time", Time),
            ("ancestors", ANCESTORS),
        ],
    ),
    (
        "ProcessKprobe",
        &[
            ("process", PROCESS),
            ("parent", PROCESS),
            ("function_name", Str),
            ("args", ARGS),
            ("return", Msg("KprobeArgument")),
            ("action", Enum),
            ("kernel_stack_trace", STACK),
            ("policy_name", Str),
            ("return_action", Enum),
            ("message", Str),
            ("tags", TAGS),
            ("user_stack_trace", STACK),
            ("ancestors", ANCESTORS),
            ("data", ARGS),
        ],
    ),
    (
        "ProcessTracepoint",
        &[
            ("process", PROCESS),
            ("parent", PROCESS),
            ("subsys", Str),
            ("event", Str),
            ("args", ARGS),
            ("policy_name", Str),
            ("action", Enum),
            ("message", Str),
            ("tags", TAGS),
            ("ancestors", ANCESTORS),
        ],
    ),
    (
        "ProcessLsm",
        &[
            ("process", PROCESS),
            ("parent", PROCESS),
            ("function_name", Str),
            ("policy_name", Str),
            ("message", Str),
            ("args", ARGS),
            ("action", Enum),
            ("tags", TAGS),
            ("ancestors", ANCESTORS),
            ("ima_hash", Str),
        ],
    ),
    (
        "ProcessUprobe",
        &[
            ("process", PROCESS),
            ("parent", PROCESS),
            ("path", Str),
            ("symbol", Str),
            ("policy_name", Str),
            ("message", Str),
            ("args", ARGS),
            ("tags", TAGS),
            ("ancestors", ANCESTORS),
            ("data", ARGS),
            ("offset", U64),
            ("ref_ctr_offset", U64),
        ],
    ),
    (
        "ProcessLoader",
        &[("process", PROCESS), ("path", Str), ("buildid", Bytes)],
    ),
    (
        "ProcessUsdt",
        &[
            ("process", PROCESS),
            ("parent", PROCESS),
            ("path", Str),
            ("provider", Str),
            ("name", Str),
            ("policy_name", Str),
            ("action", Enum),
            ("args", ARGS),
            ("tags", TAGS),
            ("message", Str),
            ("ancestors", ANCESTORS),
        ],
    ),
    (
        "StackTraceEntry",
        &[
            ("address", U64),
            ("offset", U64),
            ("symbol", Str),
            ("module", Str),
        ],
    ),
    (
        "KprobeArgument",
        &[
            ("string_arg", Str),
            ("int_arg", I32),
            ("skb_arg", Msg("KprobeSkb")),
            ("size_arg", U64),
            ("bytes_arg", Bytes),
            ("path_arg", Msg("KprobePath")),
            ("file_arg", Msg("KprobeFile")),
            ("truncated_bytes_arg", Msg("KprobeTruncatedBytes")),
            ("sock_arg", Msg("KprobeSock")),
            ("cred_arg", Msg("KprobeCred")),
            ("long_arg", I64),
            ("bpf_attr_arg", Msg("KprobeBpfAttr")),
            ("perf_event_arg", Msg("KprobePerfEvent")),
            ("bpf_map_arg", Msg("KprobeBpfMap")),
            ("uint_arg", U32),
            ("capability_arg", Msg("KprobeCapability")),
            ("process_credentials_arg", Msg("ProcessCredentials")),
            ("user_ns_arg", Msg("UserNamespace")),
            ("module_arg", Msg("KernelModule")),
            ("kernel_cap_t_arg", Str),
            ("cap_inheritable_arg", Str),
            ("cap_permitted_arg", Str),
            ("cap_effective_arg", Str),
            ("linux_binprm_arg", Msg("KprobeLinuxBinprm")),
            ("net_dev_arg", Msg("KprobeNetDev")),
            ("bpf_cmd_arg", Enum),
            ("syscall_id", Msg("SyscallId")),
            ("sockaddr_arg", Msg("KprobeSockaddr")),
            ("sockaddrun_arg", Msg("KprobeSockaddrUn")),
            ("label", Str),
        ],
    ),
    (
        "KprobePath",
        &[
            ("mount", Str),
            ("path", Str),
            ("flags", Str),
            ("permission", Str),
        ],
    ),
    (
        "KprobeFile",
        &[
            ("mount", Str),
            ("path", Str),
            ("flags", Str),
            ("permission", Str),
        ],
    ),
    (
        "KprobeLinuxBinprm",
        &[("path", Str), ("flags", Str), ("permission", Str)],
    ),
    (
        "KprobeSock",
        &[
            ("family", Str),
            ("type", Str),
            ("protocol", Str),
            ("mark", U32),
            ("priority", U32),
            ("saddr", Str),
            ("daddr", Str),
            ("sport", U32),
            ("dport", U32),
            ("cookie", U64),
            ("state", Str),
        ],
    ),
    (
        "KprobeSockaddr",
        &[("family", Str), ("addr", Str), ("port", U32)],
    ),
    ("KprobeSockaddrUn", &[("family", Str), ("path", Str)]),
    (
        "KprobeSkb",
        &[
            ("hash", U32),
            ("len", U32),
            ("priority", U32),
            ("mark", U32),
            ("saddr", Str),
            ("daddr", Str),
            ("sport", U32),
            ("dport", U32),
            ("proto", U32),
            ("sec_path_len", U32),
            ("sec_path_olen", U32),
            ("protocol", Str),
            ("family", Str),
        ],
    ),
    (
        "KprobeCred",
        &[
            ("permitted", CAPS),
            ("effective", CAPS),
            ("inheritable", CAPS),
        ],
    ),
    (
        "KprobeTruncatedBytes",
        &[("bytes_arg", Bytes), ("orig_size", U64)],
    ),
    ("SyscallId", &[("id", U32), ("abi", Str)]),
    ("KprobeCapability", &[("value", I32), ("name", Str)]),
    (
        "KernelModule",
        &[("name", Str), ("signature_ok", Bool), ("tainted", CAPS)],
    ),
    ("KprobeNetDev", &[("name", Str)]),
    (
        "KprobeBpfAttr",
        &[("ProgType", Str), ("InsnCnt", U32), ("ProgName", Str)],
    ),
    (
        "KprobeBpfMap",
        &[
            ("MapType", Str),
            ("KeySize", U32),
            ("ValueSize", U32),
            ("MaxEntries", U32),
            ("MapName", Str),
        ],
    ),
    (
        "KprobePerfEvent",
        &[
            ("KprobeFunc", Str),
            ("Type", Str),
            ("Config", U64),
            ("ProbeOffset", U64),
        ],
    ),
    (
        "RateLimitInfo",
        &[("number_of_dropped_process_events", U64)],
    ),
];

/// Fields tetragond adds to Tetragon's messages (docs/events.md says why).
const OURS: &[(&str, &str, Kind)] = &[
    ("ProcessKprobe", "mode", Str),
    ("ProcessKprobe", "enforced", Bool),
    ("ProcessKprobe", "policy_namespace", Str),
    ("ProcessKprobe", "repeats", U32),
    ("ProcessTracepoint", "mode", Str),
    ("ProcessTracepoint", "enforced", Bool),
    ("ProcessTracepoint", "policy_namespace", Str),
    ("ProcessTracepoint", "repeats", U32),
    ("ProcessLsm", "mode", Str),
    ("ProcessLsm", "enforced", Bool),
    ("ProcessLsm", "policy_namespace", Str),
    ("ProcessLsm", "repeats", U32),
    ("ProcessUsdt", "mode", Str),
    ("ProcessUsdt", "enforced", Bool),
    ("ProcessUsdt", "policy_namespace", Str),
    ("ProcessUsdt", "repeats", U32),
    ("ProcessUprobe", "mode", Str),
    ("ProcessUprobe", "enforced", Bool),
    ("ProcessUprobe", "policy_namespace", Str),
    ("ProcessUprobe", "repeats", U32),
    // Tetragon's uprobes only post; ours also enforce and return.
    ("ProcessUprobe", "action", Enum),
    ("ProcessUprobe", "return", Msg("KprobeArgument")),
    ("ProcessUprobe", "return_action", Enum),
    // Which policy's `loader: true` asked for it.
    ("ProcessLoader", "policy_name", Str),
    ("RateLimitInfo", "reason", Str),
    ("RateLimitInfo", "policy_name", Str),
];

fn field(message: &str, name: &str) -> Option<Kind> {
    let fields = MESSAGES
        .iter()
        .find(|(m, _)| *m == message)
        .unwrap_or_else(|| panic!("message {message} is not in the table"))
        .1;
    fields
        .iter()
        .find(|(f, _)| *f == name)
        .map(|(_, k)| *k)
        .or_else(|| {
            OURS.iter()
                .find(|(m, f, _)| *m == message && *f == name)
                .map(|(_, _, k)| *k)
        })
}

/// Where an event line leaves Tetragon's shape; empty when it does not.
pub fn shape_errors(event: &Value) -> Vec<String> {
    let mut errors = vec![];
    check(Msg("GetEventsResponse"), event, "$", &mut errors);
    errors
}

fn check(kind: Kind, v: &Value, at: &str, errors: &mut Vec<String>) {
    let digits = |s: &str, signed: bool| {
        let s = if signed {
            s.strip_prefix('-').unwrap_or(s)
        } else {
            s
        };
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    };
    let ok = match (kind, v) {
        (Str | Time | Enum, Value::String(_)) => true,
        (Bytes, Value::String(s)) => s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
        (I32, Value::Number(n)) => n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        (U32, Value::Number(n)) => n.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
        (I64, Value::String(s)) => digits(s, true) && s.parse::<i64>().is_ok(),
        (U64, Value::String(s)) => digits(s, false) && s.parse::<u64>().is_ok(),
        (Bool, Value::Bool(_)) => true,
        (Repeated(item), Value::Array(items)) => {
            for (i, x) in items.iter().enumerate() {
                check(*item, x, &format!("{at}[{i}]"), errors);
            }
            true
        }
        (Msg(message), Value::Object(fields)) => {
            for (name, x) in fields {
                match field(message, name) {
                    Some(k) => check(k, x, &format!("{at}.{name}"), errors),
                    None => errors.push(format!(
                        "{at}.{name}: Tetragon's {message} has no such field"
                    )),
                }
            }
            true
        }
        _ => false,
    };
    if !ok {
        errors.push(format!(
            "{at}: {v} is not written as Tetragon writes a {}",
            name(kind)
        ));
    }
}

fn name(kind: Kind) -> &'static str {
    match kind {
        Str => "string",
        Time => "Timestamp (a string)",
        Enum => "enum (its name)",
        I32 => "int32 (a number)",
        U32 => "uint32 (a number)",
        I64 => "int64 (a string of digits)",
        U64 => "uint64 (a string of digits)",
        Bool => "bool",
        Bytes => "bytes (base64)",
        Msg(m) => m,
        Repeated(_) => "repeated field (an array)",
    }
}
