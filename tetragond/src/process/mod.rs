//! The process cache: who a pid is, so each event names its process and
//! parent the way Tetragon does (`exec_id`, `binary`, `arguments`, ...).
//!
//! Fed by the kernel's exec and exit records (with /proc read at exec time
//! for what the record lacks) and seeded from /proc at start. Bounded: exited
//! processes are kept a short while so that late events still resolve, and
//! beyond `max_entries` the least recently used entries go first.

pub mod binary;
pub mod exec_id;
pub mod procfs;
pub mod user_symbols;

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::Arc,
    time::{Duration, Instant},
};

use tetragond_ebpf::{CredInfo, ExecRecord, ExitRecord, NS_CHANGE_KINDS};

use crate::{capabilities::CapSets, clock::Clock};

/// How long an exited process stays resolvable: events the kernel posted
/// just before the exit can be drained after it.
pub const EXITED_GRACE: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_ENTRIES: usize = 65_536;
/// Where an `ancestors` chain ends, as Tetragon's: init (1) and kthreadd
/// (2) have no ancestor worth naming (pid 0 is the kernel).
pub const OLDEST_ANCESTOR_PID: u32 = 2;
/// Most ancestors an event carries. Real chains are a few dozen deep at
/// most; the bound keeps a walk finite should pid reuse ever link the
/// cache's entries into a cycle (the nearest ones are kept).
pub const MAX_ANCESTORS: usize = 128;

/// One execution of a program: a new one at each execve, even for the same pid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Process {
    pub exec_id: String,
    pub pid: u32,
    pub uid: u32,
    /// Login uid; u32::MAX when unset.
    pub auid: u32,
    pub cwd: String,
    /// Absolute path of the executable.
    pub binary: String,
    /// argv[1..], space separated (quoted where needed), as Tetragon writes it.
    pub arguments: String,
    /// `execve` (seen executing), `procFS` (found in /proc); plus `rootcwd`.
    pub flags: String,
    /// Kernel clock nanoseconds (see `Clock`) and the same as RFC 3339.
    pub start_ns: u64,
    pub start_time: String,
    pub ppid: u32,
    pub parent_exec_id: String,
    /// Its capability sets (`cap`), with `enable_process_cred`.
    pub caps: Option<CapSets>,
    /// The credentials it executed with (`process_credentials`), with
    /// `enable_process_cred`; None for a process found in /proc, whose
    /// securebits and user namespace /proc does not tell.
    pub cred: Option<CredInfo>,
    /// Its namespaces' inode numbers by `ns_kind::*` (`ns`), with
    /// `enable_process_ns`.
    pub ns: Option<[u32; NS_CHANGE_KINDS]>,
    /// Tetragon's `in_init_tree`: it is the pid 1 of a pid namespace other
    /// than the initial one (a container's init), or descends from one.
    pub in_init_tree: bool,
    /// What its exec said of the executable (`binary_properties` of its
    /// `process_exec`); None for an ordinary one, or one found in /proc.
    pub binary_properties: Option<binary::BinaryProperties>,
    /// Its fields as exported, rendered at its first event.
    pub json: crate::json::JsonCache,
}

/// What the process objects carry beyond Tetragon's defaults, as its
/// `--enable-process-cred` and `--enable-process-ns` add them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Identity {
    /// `cap` and `process_credentials`.
    pub cred: bool,
    /// `ns`.
    pub ns: bool,
}

/// Pids hashed by one multiply and shift: a lookup per event, where
/// SipHash showed; its resistance to chosen keys buys nothing for keys the
/// kernel hands out.
#[derive(Default)]
struct PidHasher(u64);

impl Hasher for PidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b) ^ (self.0 as u32).rotate_left(8));
        }
    }

    fn write_u32(&mut self, n: u32) {
        let h = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The table indexes by the low bits: fold the high ones in.
        self.0 = h ^ (h >> 29);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type ByPid<V> = HashMap<u32, V, BuildHasherDefault<PidHasher>>;

struct Entry {
    process: Arc<Process>,
    last_used: u64,
    exited_at: Option<Instant>,
    /// Whether its `process_exec` was exported (see `ProcessCache::mark_exported`).
    exported: bool,
}

pub struct ProcessCache {
    node_name: String,
    clock: Clock,
    identity: Identity,
    max_entries: usize,
    entries: ByPid<Entry>,
    use_counter: u64,
}

impl ProcessCache {
    pub fn new(node_name: &str, clock: Clock, max_entries: usize) -> Self {
        ProcessCache {
            node_name: node_name.to_string(),
            clock,
            identity: Identity::default(),
            max_entries: max_entries.max(16),
            entries: ByPid::default(),
            use_counter: 0,
        }
    }

    /// Processes added from now on carry what `identity` asks for.
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every process running now, from /proc (flag `procFS`).
    pub fn seed_from_proc(&mut self) {
        let found: Vec<(u32, procfs::ProcInfo)> = procfs::pids()
            .into_iter()
            .filter_map(|pid| procfs::read(pid).map(|i| (pid, i)))
            .collect();
        let start: HashMap<u32, u64> = found.iter().map(|(p, i)| (*p, i.start_ns)).collect();
        let tree: HashMap<u32, (u32, u32)> = found
            .iter()
            .map(|(p, i)| (*p, (i.ppid, i.ns_pid)))
            .collect();
        for (pid, info) in found {
            let parent_exec_id = start
                .get(&info.ppid)
                .map(|s| exec_id::exec_id(&self.node_name, *s, info.ppid))
                .unwrap_or_default();
            let in_init_tree = in_init_tree_among(&tree, pid);
            let process = self.process_from_proc(pid, &info, parent_exec_id, in_init_tree);
            self.insert(process, false);
        }
        self.prune(Instant::now());
    }

    /// A process executed a program: a new exec_id, its facts from /proc
    /// (`info`, read as soon as the record came; None when it was gone).
    pub fn on_exec(&mut self, rec: &ExecRecord, info: Option<procfs::ProcInfo>) -> Arc<Process> {
        let filename = c_string(&rec.filename);
        let mut info = info.unwrap_or_else(procfs::ProcInfo::gone);
        // The kernel's view at exec time wins: /proc may already show a
        // later state, or nothing for a process that is gone.
        if rec.cwd_len > 0 {
            info.cwd = c_string(&rec.cwd[..(rec.cwd_len as usize).min(rec.cwd.len())]);
        }
        if rec.ppid != 0 {
            info.ppid = rec.ppid;
        }
        // The exec record's filename is what execve was given; only a
        // relative one needs /proc (or the cwd) to become absolute.
        let binary = if filename.starts_with('/') {
            filename
        } else if !info.exe.is_empty() {
            info.exe.clone()
        } else if !info.cwd.is_empty() {
            format!(
                "{}/{}",
                info.cwd.trim_end_matches('/'),
                filename.trim_start_matches("./")
            )
        } else {
            filename
        };
        let parent_exec_id = self.exec_id_of(info.ppid);
        let arguments = arguments(rec, &info);
        // An exec keeps the process's place in the tree, which it took
        // from its parent when it was forked.
        let in_init_tree = rec.ns_pid == 1
            || self.running_in_init_tree(rec.tgid)
            || self.running_in_init_tree(info.ppid);
        let process = Process {
            exec_id: exec_id::exec_id(&self.node_name, rec.ktime_ns, rec.tgid),
            pid: rec.tgid,
            uid: rec.uid,
            auid: info.auid,
            flags: flags("execve", &info.cwd),
            cwd: info.cwd,
            binary,
            arguments,
            start_ns: rec.ktime_ns,
            start_time: self.clock.rfc3339(rec.ktime_ns),
            ppid: info.ppid,
            parent_exec_id,
            caps: self.identity.cred.then(|| CapSets::of_cred(&rec.cred)),
            cred: self.identity.cred.then_some(rec.cred),
            ns: self.identity.ns.then_some(rec.ns),
            in_init_tree,
            binary_properties: binary::BinaryProperties::of_exec(&rec.binary, rec.uid, rec.gid),
            json: Default::default(),
        };
        self.insert(process, false)
    }

    /// Whether `pid`'s running process (not one exited, whose pid may be
    /// reused) is in a container's init tree, as far as the cache knows.
    fn running_in_init_tree(&self, pid: u32) -> bool {
        self.entries
            .get(&pid)
            .is_some_and(|e| e.exited_at.is_none() && e.process.in_init_tree)
    }

    /// The process exited; kept for `EXITED_GRACE`. Returns it and whether
    /// its exec was exported.
    pub fn on_exit(&mut self, rec: &ExitRecord) -> Option<(Arc<Process>, bool)> {
        let entry = self.entries.get_mut(&rec.tgid)?;
        entry.exited_at = Some(Instant::now());
        Some((entry.process.clone(), entry.exported))
    }

    /// The process `pid` as of an event at `ktime_ns`: from the cache, else
    /// from /proc, else what the event itself says (`exe`, NUL-terminated,
    /// and `uid`).
    pub fn get(&mut self, pid: u32, ktime_ns: u64, exe: &[u8], uid: u32) -> Arc<Process> {
        self.use_counter += 1;
        let counter = self.use_counter;
        if let Some(entry) = self.entries.get_mut(&pid) {
            entry.last_used = counter;
            return entry.process.clone();
        }
        let process = match procfs::read(pid) {
            Some(info) => {
                let parent_exec_id = self.exec_id_of(info.ppid);
                let in_init_tree = info.ns_pid == 1 || self.running_in_init_tree(info.ppid);
                let mut p = self.process_from_proc(pid, &info, parent_exec_id, in_init_tree);
                if p.binary.is_empty() {
                    p.binary = c_string(exe);
                }
                p
            }
            // Gone before we could look: the event's own facts, and an id
            // that stays the same for the rest of its events.
            None => Process {
                exec_id: exec_id::exec_id(&self.node_name, ktime_ns, pid),
                pid,
                uid,
                auid: u32::MAX,
                binary: c_string(exe),
                flags: "procFS".into(),
                start_ns: ktime_ns,
                start_time: self.clock.rfc3339(ktime_ns),
                ..Process::default()
            },
        };
        self.insert(process, false)
    }

    /// The parent of `p`, when the cache still knows that very execution.
    pub fn parent(&self, p: &Process) -> Option<Arc<Process>> {
        let entry = self.entries.get(&p.ppid)?;
        (entry.process.exec_id == p.parent_exec_id).then(|| entry.process.clone())
    }

    /// `p`'s ancestors beyond its parent, nearest first, as Tetragon's
    /// `ancestors`: the parent's parent, its parent, ... up to pid 1 or 2.
    /// Empty when the parent is pid 1 or 2 or unknown; cut short where the
    /// cache no longer holds that very execution (or at `MAX_ANCESTORS`).
    pub fn ancestors(&self, p: &Process) -> Vec<Arc<Process>> {
        let mut chain = Vec::new();
        let Some(mut current) = self.parent(p) else {
            return chain;
        };
        while current.pid > OLDEST_ANCESTOR_PID && chain.len() < MAX_ANCESTORS {
            let Some(next) = self.parent(&current) else {
                break;
            };
            chain.push(next.clone());
            current = next;
        }
        chain
    }

    /// True the first time it is called for `pid`'s current execution: the
    /// caller then exports its `process_exec`.
    pub fn mark_exported(&mut self, pid: u32) -> bool {
        match self.entries.get_mut(&pid) {
            Some(e) if !e.exported => {
                e.exported = true;
                true
            }
            _ => false,
        }
    }

    /// Drops exited processes past their grace period, then the least
    /// recently used ones beyond the size limit (down to 90% of it, so the
    /// sort is paid once per many inserts).
    pub fn prune(&mut self, now: Instant) {
        self.entries.retain(|_, e| {
            e.exited_at
                .is_none_or(|t| now.duration_since(t) < EXITED_GRACE)
        });
        if self.entries.len() <= self.max_entries {
            return;
        }
        let keep = self.max_entries * 9 / 10;
        let mut order: Vec<(bool, u64, u32)> = self
            .entries
            .iter()
            .map(|(pid, e)| (e.exited_at.is_none(), e.last_used, *pid))
            .collect();
        // Exited first, then oldest use.
        order.sort_unstable();
        let excess = order.len() - keep;
        for (_, _, pid) in order.into_iter().take(excess) {
            self.entries.remove(&pid);
        }
    }

    fn insert(&mut self, process: Process, exported: bool) -> Arc<Process> {
        self.use_counter += 1;
        let process = Arc::new(process);
        self.entries.insert(
            process.pid,
            Entry {
                process: process.clone(),
                last_used: self.use_counter,
                exited_at: None,
                exported,
            },
        );
        if self.entries.len() > self.max_entries {
            self.prune(Instant::now());
        }
        process
    }

    /// The exec_id of `pid`'s current execution: the cache's, else derived
    /// from /proc the way seeded processes get theirs.
    fn exec_id_of(&self, pid: u32) -> String {
        if pid == 0 {
            return String::new();
        }
        if let Some(e) = self.entries.get(&pid) {
            return e.process.exec_id.clone();
        }
        procfs::read_stat_only(pid)
            .map(|i| exec_id::exec_id(&self.node_name, i.start_ns, pid))
            .unwrap_or_default()
    }

    /// A process found in /proc; `in_init_tree` as the caller worked it
    /// out (from the whole /proc tree at start, from the cache later).
    fn process_from_proc(
        &self,
        pid: u32,
        info: &procfs::ProcInfo,
        parent_exec_id: String,
        in_init_tree: bool,
    ) -> Process {
        let found = (self.identity.cred || self.identity.ns)
            .then(|| procfs::exec_creds(pid))
            .flatten();
        Process {
            caps: found
                .filter(|_| self.identity.cred)
                .map(|c| CapSets::by_cap_set(&c.caps)),
            ns: found.filter(|_| self.identity.ns).map(|c| c.ns),
            cred: None,
            exec_id: exec_id::exec_id(&self.node_name, info.start_ns, pid),
            pid,
            uid: info.uid,
            auid: info.auid,
            cwd: info.cwd.clone(),
            binary: info.exe.clone(),
            arguments: join_arguments(info.argv.get(1..).unwrap_or_default()),
            flags: flags("procFS", &info.cwd),
            start_ns: info.start_ns,
            start_time: self.clock.rfc3339(info.start_ns),
            ppid: info.ppid,
            parent_exec_id,
            in_init_tree,
            binary_properties: None,
            json: Default::default(),
        }
    }
}

/// Whether `pid` is a pid namespace's pid 1 (not the initial one's) or
/// descends from one, by the (ppid, ns_pid) of every process in `tree`.
fn in_init_tree_among(tree: &HashMap<u32, (u32, u32)>, mut pid: u32) -> bool {
    // Bounded: a ppid loop (pids reused while /proc was read) ends too.
    for _ in 0..tree.len() {
        match tree.get(&pid) {
            Some((_, 1)) => return true,
            Some(&(ppid, _)) if ppid != 0 && ppid != pid => pid = ppid,
            _ => return false,
        }
    }
    false
}

fn flags(origin: &str, cwd: &str) -> String {
    if cwd == "/" {
        format!("{origin} rootcwd")
    } else {
        origin.to_string()
    }
}

/// argv joined by spaces; an argument that is empty or holds a space, a
/// quote or a backslash is double-quoted with escapes, so the string can be
/// split back unambiguously.
/// A NUL-terminated buffer of a kernel record, as text.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The arguments (argv without argv[0]): from the exec record, which the
/// kernel filled at exec time, else from /proc (a process may be gone).
fn arguments(rec: &ExecRecord, info: &procfs::ProcInfo) -> String {
    let len = (rec.args_len as usize).min(rec.args.len());
    if len == 0 {
        return join_arguments(info.argv.get(1..).unwrap_or_default());
    }
    let argv: Vec<String> = rec.args[..len]
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // argv ends with a NUL, which leaves one empty piece behind.
    let argv = match argv.split_last() {
        Some((last, rest)) if last.is_empty() => rest.to_vec(),
        _ => argv,
    };
    join_arguments(argv.get(1..).unwrap_or_default())
}

pub fn join_arguments(argv: &[String]) -> String {
    let mut out = String::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let plain = !arg.is_empty()
            && !arg
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\\');
        if plain {
            out.push_str(arg);
        } else {
            out.push('"');
            for c in arg.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    out
}

#[cfg(test)]
mod tests;
