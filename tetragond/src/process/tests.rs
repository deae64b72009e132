use super::*;
use tetragond_ebpf::{record, ARGS_LEN, PATH_LEN, STR_LEN};

fn exec_record(tgid: u32, ktime_ns: u64, filename: &str) -> ExecRecord {
    let mut name = [0u8; PATH_LEN];
    name[..filename.len()].copy_from_slice(filename.as_bytes());
    ExecRecord {
        kind: record::EXEC,
        tgid,
        ktime_ns,
        tid: tgid,
        uid: 0,
        gid: 0,
        args_len: 0,
        ppid: 0,
        cwd_len: 0,
        filename: name,
        args: [0; ARGS_LEN],
        cwd: [0; STR_LEN],
        cred: CredInfo::default(),
        ns: [0; NS_CHANGE_KINDS],
        ns_pid: 0,
        binary: Default::default(),
    }
}

#[test]
fn the_kernel_cwd_and_parent_win_over_proc() {
    let mut c = cache(16);
    let mut rec = exec_record(4242, 5, "./tool");
    rec.cwd[..9].copy_from_slice(b"/srv/work");
    rec.cwd_len = 9;
    let p = c.on_exec(&rec, None);
    assert_eq!(p.cwd, "/srv/work");
    assert_eq!(p.binary, "/srv/work/tool");
}

#[test]
fn arguments_come_from_the_exec_record_when_the_kernel_gave_them() {
    let mut rec = exec_record(1, 1, "/bin/echo");
    let argv = b"/bin/echo\0hello\0two words\0";
    rec.args[..argv.len()].copy_from_slice(argv);
    rec.args_len = argv.len() as u32;
    let info = procfs::ProcInfo::gone();
    assert_eq!(arguments(&rec, &info), r#"hello "two words""#);
}

fn cache(max: usize) -> ProcessCache {
    ProcessCache::new("node", Clock::now(), max)
}

#[test]
fn arguments_are_quoted_only_when_needed() {
    let argv: Vec<String> = ["-c", "echo hi", "", "a\"b", "x\\y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(join_arguments(&argv), r#"-c "echo hi" "" "a\"b" "x\\y""#);
}

#[test]
fn exec_of_ourselves_reads_proc() {
    let mut c = cache(100);
    let me = std::process::id();
    let p = c.on_exec(&exec_record(me, 1_000, "relative-name"), procfs::read(me));
    // A relative filename is made absolute through /proc/PID/exe.
    assert!(p.binary.starts_with('/'), "{p:?}");
    assert_eq!(p.exec_id, exec_id::exec_id("node", 1_000, me));
    assert!(p.flags.starts_with("execve"));
    assert!(!p.parent_exec_id.is_empty(), "our parent is in /proc");
    // Later events resolve to the same execution.
    assert_eq!(c.get(me, 5_000, b"", 0).exec_id, p.exec_id);
}

#[test]
fn absolute_filename_is_kept_as_given() {
    let mut c = cache(100);
    let me = std::process::id();
    let p = c.on_exec(&exec_record(me, 1, "/usr/bin/env"), procfs::read(me));
    assert_eq!(p.binary, "/usr/bin/env");
}

#[test]
fn gone_process_gets_a_stable_id_from_its_first_event() {
    let mut c = cache(100);
    // Pid beyond pid_max: never in /proc.
    let pid = 0x7fff_fff0;
    let a = c.get(pid, 77, b"/bin/gone", 1000);
    assert_eq!(a.binary, "/bin/gone");
    assert_eq!(a.uid, 1000);
    assert_eq!(a.auid, u32::MAX);
    assert_eq!(c.get(pid, 99, b"/bin/gone", 1000).exec_id, a.exec_id);
}

#[test]
fn exec_is_marked_exported_once_per_execution() {
    let mut c = cache(100);
    let pid = 0x7fff_fff1;
    c.on_exec(&exec_record(pid, 1, "/bin/a"), None);
    assert!(c.mark_exported(pid));
    assert!(!c.mark_exported(pid));
    c.on_exec(&exec_record(pid, 2, "/bin/b"), None);
    assert!(c.mark_exported(pid), "a new execution is new");
}

#[test]
fn exited_kept_for_grace_then_pruned() {
    let mut c = cache(100);
    let pid = 0x7fff_fff2;
    c.on_exec(&exec_record(pid, 1, "/bin/a"), None);
    let exit = ExitRecord {
        kind: record::EXIT,
        tgid: pid,
        ktime_ns: 2,
        exit_code: 0,
        has_exit_code: 1,
    };
    assert!(c.on_exit(&exit).is_some());
    c.prune(Instant::now());
    assert_eq!(c.get(pid, 3, b"", 0).binary, "/bin/a", "still resolvable");
    c.prune(Instant::now() + EXITED_GRACE);
    assert!(!c.entries.contains_key(&pid));
}

#[test]
fn bounded_lru_evicts_exited_then_least_used() {
    let mut c = cache(20);
    let base = 0x7000_0000;
    for i in 0..20 {
        c.on_exec(&exec_record(base + i, 1, "/bin/x"), None);
    }
    // Touch the first, exit the second.
    c.get(base, 2, b"", 0);
    c.on_exit(&ExitRecord {
        kind: record::EXIT,
        tgid: base + 1,
        ktime_ns: 3,
        exit_code: 0,
        has_exit_code: 0,
    });
    c.on_exec(&exec_record(base + 20, 1, "/bin/x"), None);
    assert!(c.len() <= 20);
    assert!(c.entries.contains_key(&base), "recently used is kept");
    assert!(!c.entries.contains_key(&(base + 1)), "exited goes first");
    assert!(
        !c.entries.contains_key(&(base + 2)),
        "least recently used goes"
    );
    assert!(c.entries.contains_key(&(base + 20)));
}

#[test]
fn parent_resolves_only_the_same_execution() {
    let mut c = cache(100);
    let me = std::process::id();
    let ppid = procfs::read(me).expect("us").ppid;
    c.seed_from_proc();
    let p = c.get(me, 1, b"", 0);
    let parent = c.parent(&p).expect("our parent is cached");
    assert_eq!(parent.pid, ppid);
    assert_eq!(parent.exec_id, p.parent_exec_id);
    assert!(parent.flags.starts_with("procFS"));
}

#[test]
fn identity_is_kept_only_as_the_configuration_asks() {
    let mut rec = exec_record(4243, 5, "/bin/tool");
    rec.cred.euid = 1000;
    rec.cred.cap_permitted = 1 << 21;
    rec.ns[usize::from(tetragond_ebpf::ns_kind::MNT)] = 4026531841;
    let p = cache(16).on_exec(&rec, None);
    assert_eq!(
        (p.caps, p.cred, p.ns),
        (None, None, None),
        "Tetragon's defaults"
    );
    let mut c = cache(16).with_identity(Identity {
        cred: true,
        ns: true,
    });
    let p = c.on_exec(&rec, None);
    assert_eq!(p.cred.map(|c| c.euid), Some(1000));
    assert_eq!(p.caps.map(|c| c.permitted), Some(1 << 21));
    assert_eq!(
        p.ns.map(|ns| ns[usize::from(tetragond_ebpf::ns_kind::MNT)]),
        Some(4026531841)
    );
    // Found in /proc: capabilities and namespaces, no credentials.
    let me = c.get(std::process::id(), 0, b"\0", 0);
    assert!(
        me.caps.is_some() && me.ns.is_some() && me.cred.is_none(),
        "{me:?}"
    );
}

/// A cached process `pid` whose parent is `ppid`'s execution `parent`.
fn put(c: &mut ProcessCache, pid: u32, exec_id: &str, ppid: u32, parent: &str) -> Arc<Process> {
    c.insert(
        Process {
            exec_id: exec_id.into(),
            pid,
            ppid,
            parent_exec_id: parent.into(),
            ..Process::default()
        },
        false,
    )
}

fn pids(chain: &[Arc<Process>]) -> Vec<u32> {
    chain.iter().map(|p| p.pid).collect()
}

#[test]
fn ancestors_run_from_the_grandparent_to_init() {
    let mut c = cache(100);
    put(&mut c, 1, "init", 0, "");
    put(&mut c, 100, "a", 1, "init");
    put(&mut c, 200, "b", 100, "a");
    put(&mut c, 300, "c", 200, "b");
    let p = put(&mut c, 400, "d", 300, "c");
    let chain = c.ancestors(&p);
    assert_eq!(pids(&chain), [200, 100, 1], "the parent (300) is not one");
    assert_eq!(chain[0].exec_id, "b");
    let child_of_init = c.entries[&100].process.clone();
    let grandchild_of_init = c.entries[&200].process.clone();
    assert!(c.ancestors(&child_of_init).is_empty(), "parent is init");
    assert_eq!(pids(&c.ancestors(&grandchild_of_init)), [1]);
    // kthreadd ends a chain as init does.
    put(&mut c, 2, "kthreadd", 0, "");
    put(&mut c, 20, "kworker", 2, "kthreadd");
    let p = put(&mut c, 21, "k", 20, "kworker");
    assert_eq!(pids(&c.ancestors(&p)), [2]);
    let orphan = put(&mut c, 500, "e", 9999, "unknown");
    assert!(c.ancestors(&orphan).is_empty());
}

#[test]
fn ancestors_stop_where_the_cache_lacks_that_execution() {
    let mut c = cache(100);
    put(&mut c, 1, "init", 0, "");
    put(&mut c, 100, "a", 1, "init");
    put(&mut c, 200, "b", 100, "a");
    put(&mut c, 300, "c", 200, "b");
    let p = put(&mut c, 400, "d", 300, "c");
    // pid 100 executed again: its new execution is not the chain's.
    put(&mut c, 100, "a2", 1, "init");
    assert_eq!(pids(&c.ancestors(&p)), [200]);
}

#[test]
fn ancestors_of_a_cycle_are_bounded() {
    let mut c = cache(100);
    // Pid reuse could in principle link two entries to each other.
    put(&mut c, 10, "x", 11, "y");
    let p = put(&mut c, 11, "y", 10, "x");
    let q = put(&mut c, 12, "z", 11, "y");
    assert_eq!(c.ancestors(&p).len(), MAX_ANCESTORS);
    assert_eq!(c.ancestors(&q).len(), MAX_ANCESTORS);
}

/// Tetragon's `in_init_tree`: a pid namespace's pid 1 (not the initial
/// namespace's) and what it forks, through their execs; nothing else.
#[test]
fn the_init_tree_starts_at_a_containers_pid_1() {
    let mut c = cache(100);
    let with_parent = |tgid: u32, ppid: u32, ns_pid: u32| {
        let mut rec = exec_record(tgid, u64::from(tgid), "/bin/sh");
        rec.ppid = ppid;
        rec.ns_pid = ns_pid;
        rec
    };
    let host_init = c.on_exec(&with_parent(1, 0, 0), None);
    let container_init = c.on_exec(&with_parent(500, 1, 1), None);
    let child = c.on_exec(&with_parent(501, 500, 2), None);
    // The same process executing again keeps its place.
    let again = c.on_exec(&with_parent(501, 1, 2), None);
    let host = c.on_exec(&with_parent(600, 1, 0), None);
    assert!(!host_init.in_init_tree && !host.in_init_tree);
    assert!(container_init.in_init_tree && child.in_init_tree && again.in_init_tree);
    // An exited process hands nothing to one that reuses its pid, nor to
    // its children.
    c.on_exit(&ExitRecord {
        kind: record::EXIT,
        tgid: 500,
        ktime_ns: 0,
        exit_code: 0,
        has_exit_code: 0,
    });
    assert!(!c.on_exec(&with_parent(700, 500, 0), None).in_init_tree);
}

#[test]
fn the_init_tree_of_processes_found_in_proc() {
    // pid -> (ppid, ns_pid)
    let tree: HashMap<u32, (u32, u32)> = [
        (1, (0, 0)),
        (10, (1, 0)),
        (20, (10, 1)),
        (21, (20, 5)),
        (22, (21, 9)),
        // A loop left by pids reused while /proc was read.
        (30, (31, 0)),
        (31, (30, 0)),
    ]
    .into();
    for (pid, expected) in [(1, false), (10, false), (20, true), (22, true), (30, false)] {
        assert_eq!(in_init_tree_among(&tree, pid), expected, "{pid}");
    }
}
