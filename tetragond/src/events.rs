//! Posted events: read from the kernel's ring buffer, written as JSON lines
//! in Tetragon's export shape (plus `mode` and `enforced`, so a monitor-mode
//! event says its action was not carried out).

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Map, Value};
use tetragond_ebpf::{action, record, Event, ExecRecord, ExitRecord, MODE_MONITOR};

/// What user space knows about the hook an event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookMeta {
    pub policy_name: String,
    pub namespace: String,
    pub subsystem: String,
    pub event: String,
    /// (type, label) per hook arg, in order.
    pub args: Vec<(String, Option<String>)>,
    pub message: Option<String>,
    pub tags: Vec<String>,
    /// The policy has no enforcement action, whatever the kernel mode says.
    pub monitor_only: bool,
    /// Set for kprobe hooks: the event is a `process_kprobe`.
    pub function_name: Option<String>,
}

/// A record from the kernel's ring buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Policy(Event),
    Exec(ExecRecord),
    Exit(ExitRecord),
}

/// Decodes a ring buffer record; None when it is unknown or too short.
pub fn decode(bytes: &[u8]) -> Option<Record> {
    let kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
    match kind {
        record::POLICY_EVENT => read_pod(bytes).map(Record::Policy),
        record::EXEC => read_pod(bytes).map(Record::Exec),
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

/// Converts kernel monotonic time to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    boot_ns: i128,
}

impl Clock {
    pub fn now() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out pointer; CLOCK_MONOTONIC is what bpf_ktime_get_ns reads.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let mono = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
        Clock {
            boot_ns: wall - mono,
        }
    }

    pub fn rfc3339(&self, ktime_ns: u64) -> String {
        rfc3339_nanos(self.boot_ns + ktime_ns as i128)
    }
}

/// `2026-11-29T04:50:31.123456789Z`
pub fn rfc3339_nanos(unix_ns: i128) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000) as i64;
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

pub fn action_name(ev: &Event) -> &'static str {
    match ev.action {
        action::SIGKILL => "KPROBE_ACTION_SIGKILL",
        action::SIGNAL => "KPROBE_ACTION_SIGNAL",
        _ => "KPROBE_ACTION_POST",
    }
}

fn typed_arg(ty: &str, raw: u64) -> (&'static str, Value) {
    match ty {
        "int" | "int32" | "int16" | "int8" => ("int_arg", json!(raw as i64 as i32)),
        "uint32" | "uint16" | "uint8" => ("uint_arg", json!(raw as u32)),
        "size_t" => ("size_arg", json!(raw.to_string())),
        "uint64" | "syscall64" => ("uint_arg", json!(raw.to_string())),
        // int64, long and anything integer-like: Tetragon writes 64-bit as strings.
        _ => ("long_arg", json!((raw as i64).to_string())),
    }
}

/// One event as a Tetragon-shaped JSON object.
pub fn to_json(ev: &Event, meta: &HookMeta, clock: &Clock, node_name: &str) -> Value {
    let process = json!({
        "pid": ev.tgid,
        "tid": ev.tid,
        "uid": ev.uid,
        "binary": c_string(&ev.exe),
        "comm": c_string(&ev.comm),
    });
    let args: Vec<Value> = meta
        .args
        .iter()
        .zip(ev.args.iter())
        .map(|((ty, label), raw)| {
            let (key, value) = typed_arg(ty, *raw);
            let mut obj = Map::new();
            obj.insert(key.into(), value);
            if let Some(label) = label {
                obj.insert("label".into(), json!(label));
            }
            Value::Object(obj)
        })
        .collect();
    let mode = match (meta.monitor_only, ev.mode as u32) {
        (true, _) => "monitor_only",
        (false, MODE_MONITOR) => "monitor",
        (false, _) => "enforce",
    };
    let mut body = json!({
        "process": process,
        "args": args,
        "action": action_name(ev),
        "policy_name": meta.policy_name,
        "mode": mode,
        "enforced": ev.enforced != 0,
    });
    if let Value::Object(obj) = &mut body {
        match &meta.function_name {
            Some(f) => {
                obj.insert("function_name".into(), json!(f));
            }
            None => {
                obj.insert("subsys".into(), json!(meta.subsystem));
                obj.insert("event".into(), json!(meta.event));
            }
        }
        if !meta.namespace.is_empty() {
            obj.insert("policy_namespace".into(), json!(meta.namespace));
        }
        if let Some(m) = &meta.message {
            obj.insert("message".into(), json!(m));
        }
        if !meta.tags.is_empty() {
            obj.insert("tags".into(), json!(meta.tags));
        }
    }
    let kind = if meta.function_name.is_some() {
        "process_kprobe"
    } else {
        "process_tracepoint"
    };
    json!({
        kind: body,
        "node_name": node_name,
        "time": clock.rfc3339(ev.ktime_ns),
    })
}

/// Appends events to a file, one JSON object per line, mode 0600.
pub struct EventFile {
    file: File,
}

impl EventFile {
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(EventFile { file })
    }

    pub fn write(&mut self, event: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        // One write per line: O_APPEND keeps concurrent readers from seeing torn lines.
        self.file.write_all(&line)
    }
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
            _pad0: 0,
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
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nanos(1_795_924_231_000_000_001),
            "2026-11-29T03:50:31.000000001Z"
        );
        assert_eq!(
            rfc3339_nanos(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn monitor_event_says_not_enforced() {
        let meta = HookMeta {
            policy_name: "deny".into(),
            namespace: String::new(),
            subsystem: "raw_syscalls".into(),
            event: "sys_enter".into(),
            args: vec![("syscall64".into(), Some("id".into()))],
            message: None,
            tags: vec![],
            monitor_only: false,
            function_name: None,
        };
        let v = to_json(&event(), &meta, &Clock { boot_ns: 0 }, "node");
        let body = &v["process_tracepoint"];
        assert_eq!(body["action"], "KPROBE_ACTION_SIGKILL");
        assert_eq!(body["enforced"], false);
        assert_eq!(body["mode"], "monitor");
        assert_eq!(body["process"]["binary"], "/bin/cat");
        assert_eq!(body["args"][0]["uint_arg"], "39");
        assert_eq!(body["args"][0]["label"], "id");
        assert_eq!(v["node_name"], "node");
    }

    #[test]
    fn decode_checks_length() {
        assert!(decode(&[0u8; 8]).is_none());
    }
}
