//! What /proc says about a process: read at exec time (the kernel's exec
//! record carries only the filename) and when seeding the cache at start.
//!
//! Every read is best effort: a process can exit between two reads, and a
//! zombie has no memory map (so no arguments) and no exe link.

use std::{fs, path::Path};

/// The facts read from `/proc/PID`; fields that could not be read are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcInfo {
    pub ppid: u32,
    pub uid: u32,
    /// `/proc/PID/loginuid`; u32::MAX when unset (as Tetragon reports it).
    pub auid: u32,
    pub cwd: String,
    /// `/proc/PID/exe`, absolute.
    pub exe: String,
    /// argv, NUL separated in /proc, split here.
    pub argv: Vec<String>,
    /// Nanoseconds since boot (`/proc/PID/stat` field 22).
    pub start_ns: u64,
    /// `/proc/PID/stat` field 3 (`R`, `S`, `Z`, ...).
    pub state: char,
    /// `/proc/PID/stat` field 52: the wait status of an exited task.
    pub exit_code: Option<i32>,
    /// Its id in its own pid namespace (the last of `NSpid:`), 0 in the
    /// initial one.
    pub ns_pid: u32,
}

impl ProcInfo {
    /// What is known of a process that left before /proc could be read.
    pub fn gone() -> Self {
        ProcInfo {
            auid: u32::MAX,
            ..ProcInfo::default()
        }
    }
}

/// Reads everything about `pid`; None when the process is gone.
pub fn read(pid: u32) -> Option<ProcInfo> {
    read_with(pid, true)
}

/// Like `read`, without `cmdline` when the caller has argv already (an exec
/// record the kernel filled): that read can block on the process's memory.
pub fn read_with(pid: u32, argv: bool) -> Option<ProcInfo> {
    let dir = Path::new("/proc").join(pid.to_string());
    let stat = read_stat(&dir)?;
    let (ppid, uid, ns_pid) = read_status(&dir);
    Some(ProcInfo {
        ppid,
        uid,
        ns_pid,
        auid: fs::read_to_string(dir.join("loginuid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u32::MAX),
        cwd: link(&dir.join("cwd")),
        exe: link(&dir.join("exe")),
        argv: if argv {
            fs::read(dir.join("cmdline"))
                .map(|b| split_argv(&b))
                .unwrap_or_default()
        } else {
            Vec::new()
        },
        ..stat
    })
}

/// Only `/proc/PID/stat`: the cheap read, e.g. for an exit status.
pub fn read_stat_only(pid: u32) -> Option<ProcInfo> {
    read_stat(&Path::new("/proc").join(pid.to_string()))
}

fn link(path: &Path) -> String {
    fs::read_link(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// PPid, Uid (the real one) and the process's id in its own pid
/// namespace (see `ns_pid_of`).
fn read_status(dir: &Path) -> (u32, u32, u32) {
    fs::read_to_string(dir.join("status")).map_or((0, 0, 0), |text| parse_status(&text))
}

/// PPid, Uid and the innermost NSpid of a `status` text (0 for what is
/// missing or unreadable).
pub fn parse_status(text: &str) -> (u32, u32, u32) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("PPid:"), field("Uid:"), ns_pid_of(text))
}

/// The last id of `NSpid:` (the innermost namespace's) when there are
/// several, 0 when the process is in the initial pid namespace only: as
/// the kernel side's `container_tgid`.
pub fn ns_pid_of(status: &str) -> u32 {
    let Some(ids) = status.lines().find_map(|l| l.strip_prefix("NSpid:")) else {
        return 0;
    };
    let ids: Vec<&str> = ids.split_whitespace().collect();
    match ids.as_slice() {
        [_, .., innermost] => innermost.parse().unwrap_or(0),
        _ => 0,
    }
}

fn read_stat(dir: &Path) -> Option<ProcInfo> {
    let text = fs::read_to_string(dir.join("stat")).ok()?;
    parse_stat(&text)
}

/// `pid (comm) state ppid ...`: comm can hold spaces and parentheses, so
/// the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcInfo> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 of proc(5).
    let at = |n: usize| fields.get(n - 3).copied();
    let ticks: u64 = at(22)?.parse().ok()?;
    Some(ProcInfo {
        ppid: at(4)?.parse().ok()?,
        state: at(3)?.chars().next()?,
        start_ns: ticks.saturating_mul(1_000_000_000 / clock_ticks()),
        exit_code: at(52).and_then(|v| v.parse().ok()),
        auid: u32::MAX,
        ..ProcInfo::default()
    })
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

pub fn split_argv(bytes: &[u8]) -> Vec<String> {
    bytes
        .strip_suffix(b"\0")
        .unwrap_or(bytes)
        .split(|&b| b == 0)
        .filter(|_| !bytes.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// A running process's capabilities and namespaces, as the kernel's
/// `EXEC_CREDS` keeps them (for processes that started before us). None
/// when the process is gone or its status unreadable.
pub fn exec_creds(pid: u32) -> Option<tetragond_ebpf::ExecCreds> {
    use std::os::unix::fs::MetadataExt;
    let dir = Path::new("/proc").join(pid.to_string());
    let status = fs::read_to_string(dir.join("status")).ok()?;
    let mut creds = tetragond_ebpf::ExecCreds {
        caps: parse_caps(&status)?,
        ..Default::default()
    };
    for (kind, name) in NS_FILES.iter().enumerate() {
        creds.ns[kind] = fs::metadata(dir.join("ns").join(name)).map_or(0, |m| m.ino() as u32);
    }
    Some(creds)
}

/// /proc/PID/ns entries by `ns_kind::*`.
const NS_FILES: [&str; tetragond_ebpf::NS_CHANGE_KINDS] = [
    "uts",
    "ipc",
    "mnt",
    "pid_for_children",
    "net",
    "time",
    "time_for_children",
    "cgroup",
    "user",
    "pid",
];

/// `CapEff`, `CapInh` and `CapPrm` of /proc/PID/status, by `cap_set::*`.
pub fn parse_caps(status: &str) -> Option<[u64; 3]> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    Some([field("CapEff:")?, field("CapInh:")?, field("CapPrm:")?])
}

/// Process ids under /proc.
pub fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let mut text = String::from("42 (a (b) c) Z 7");
        // Fields 5..=51, then exit_code (52) = 9 (killed by SIGKILL).
        for n in 5..=51 {
            text.push_str(&format!(" {}", if n == 22 { 300 } else { 0 }));
        }
        text.push_str(" 9\n");
        let info = parse_stat(&text).expect("parses");
        assert_eq!(info.ppid, 7);
        assert_eq!(info.state, 'Z');
        assert_eq!(info.start_ns, 300 * (1_000_000_000 / clock_ticks()));
        assert_eq!(info.exit_code, Some(9));
    }

    #[test]
    fn ns_pid_is_the_innermost_of_several() {
        assert_eq!(ns_pid_of("Name:\tsh\nNSpid:\t4242\n"), 0);
        assert_eq!(ns_pid_of("NSpid:\t4242\t17\t1\nNSsid:\t1\n"), 1);
        assert_eq!(ns_pid_of("NSpid:\t4242\t17\n"), 17);
        assert_eq!(ns_pid_of("Name:\tsh\n"), 0);
    }

    #[test]
    fn argv_split() {
        assert_eq!(
            split_argv(b"cat\0/etc/shadow\0"),
            vec!["cat", "/etc/shadow"]
        );
        assert_eq!(split_argv(b""), Vec::<String>::new());
        assert_eq!(split_argv(b"a\0\0b\0"), vec!["a", "", "b"]);
    }

    #[test]
    fn reads_own_process() {
        let me = read(std::process::id()).expect("we exist");
        assert!(me.exe.starts_with('/'), "{me:?}");
        assert!(!me.argv.is_empty());
        assert!(me.start_ns > 0);
        assert!(me.ppid > 0);
    }

    #[test]
    fn capabilities_by_set() {
        let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000200000\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(parse_caps(status), Some([1 << 21, 0, 0x1ff_ffff_ffff]));
        assert_eq!(parse_caps("CapEff:\tzz\n"), None);
    }

    /// Our own namespaces, as the kernel's inode numbers of them.
    #[test]
    fn reads_own_exec_creds() {
        use std::os::unix::fs::MetadataExt;
        let creds = exec_creds(std::process::id()).expect("we exist");
        let user = fs::metadata("/proc/self/ns/user").expect("ns").ino() as u32;
        assert_eq!(creds.ns[usize::from(tetragond_ebpf::ns_kind::USER)], user);
        let pid = fs::metadata("/proc/self/ns/pid").expect("ns").ino() as u32;
        assert_eq!(creds.ns[usize::from(tetragond_ebpf::ns_kind::PID)], pid);
    }
}
