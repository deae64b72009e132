//! Typed hook arguments read in the kernel and matched there: strings from
//! user memory and file descriptors resolved to paths (a dentry walk over
//! mounts at offsets from the running kernel's BTF), with the string
//! operators. Runs on this kernel through the syscall tracepoints; LSM,
//! kprobe and fentry programs are checked in the QEMU guests
//! (scripts/vm-hook-test).

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
};

use common::*;

fn cat(path: &Path) -> ExitStatus {
    let mut child = Command::new("cat")
        .arg(path)
        .current_dir(path.parent().expect("parent"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cat");
    wait_child(&mut child, WAIT).expect("cat ends")
}

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, "x\n").expect("write");
}

// Every selector is limited to `cat`: a broken operator (always true)
// then kills cat alone, not every process on the host that reads.
#[test]
fn string_and_fd_arguments_are_matched_in_the_kernel() {
    let mut h = Harness::new();
    h.start_daemon();
    let dir = h.root.join("files");
    let (denied, secret, plain) = (
        dir.join("deny/f"),
        dir.join("ok/x.secret"),
        dir.join("ok/plain"),
    );
    let (by_fd, other_fd) = (dir.join("fd/exact"), dir.join("fd/other"));
    let (middle, shouting) = (dir.join("a/other-part/f"), dir.join("ok/SHOUTING"));
    for p in [
        &denied, &secret, &plain, &by_fd, &other_fd, &middle, &shouting,
    ] {
        touch(p);
    }
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: path-args
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
      label: filename
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values: ["{deny}/"]
      matchBinaries:
      - operator: Postfix
        values: ["/cat"]
      matchActions:
      - action: Sigkill
    - matchArgs:
      - index: 1
        operator: Postfix
        values: [".secret"]
      matchBinaries:
      - operator: Postfix
        values: ["/cat"]
      matchActions:
      - action: Sigkill
    - matchArgs:
      - index: 1
        operator: SubString
        values: ["/middle-part/", "/other-part/"]
      matchBinaries:
      - operator: Postfix
        values: ["/cat"]
      matchActions:
      - action: Sigkill
    - matchArgs:
      - index: 1
        operator: SubStringIgnCase
        values: ["ShOuT"]
      matchBinaries:
      - operator: Postfix
        values: ["/cat"]
      matchActions:
      - action: Sigkill
  - call: sys_read
    syscall: true
    args:
    - index: 0
      type: fd
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["{exact}"]
      matchBinaries:
      - operator: Postfix
        values: ["/cat"]
      matchActions:
      - action: Sigkill
"#,
        deny = dir.join("deny").display(),
        exact = by_fd.display(),
    );
    h.write_policy("paths.yaml", &policy);
    h.wait_policy("path-args", "enabled", enabled);
    assert!(
        killed_by_sigkill(cat(&denied)),
        "Prefix on the openat filename"
    );
    assert!(
        killed_by_sigkill(cat(&secret)),
        "Postfix on the openat filename"
    );
    assert!(
        killed_by_sigkill(cat(&by_fd)),
        "Equal on the path behind read's fd; events: {:#?}",
        h.hook_events()
    );
    assert!(killed_by_sigkill(cat(&middle)), "SubString (second value)");
    assert!(killed_by_sigkill(cat(&shouting)), "SubStringIgnCase");
    assert!(
        cat(&plain).success(),
        "no selector matches {}",
        plain.display()
    );
    assert!(
        cat(&other_fd).success(),
        "Equal is not a prefix: {}",
        other_fd.display()
    );
    let p = h.wait_policy("path-args", "enforced 5", |p| p["npost"] == 5);
    assert_eq!(p["nenforce"], 5, "{p}");
    let events = h.wait_hook_events(5);
    let args: Vec<String> = events
        .iter()
        .filter_map(|e| e["process_kprobe"]["args"].get(0))
        .map(|a| a.to_string())
        .collect();
    let has = |needle: &str| args.iter().any(|a| a.contains(needle));
    assert!(
        has(&format!(
            r#"{{"label":"filename","string_arg":"{}"}}"#,
            denied.display()
        )),
        "{args:#?}"
    );
    // Killed at its first openat of the file, cat is gone before /proc can be
    // read: its working directory comes from the kernel's exec record.
    let killed = events
        .iter()
        .find(|e| e["process_kprobe"]["args"][0]["string_arg"] == denied.display().to_string())
        .expect("the Prefix event");
    let cwd = denied.parent().expect("parent").display().to_string();
    assert_eq!(killed["process_kprobe"]["process"]["cwd"], cwd, "{killed}");
    assert!(
        has(&format!(
            r#"{{"file_arg":{{"path":"{}"}}}}"#,
            by_fd.display()
        )),
        "{args:#?}"
    );
}

/// `levels` directories named `d` under `base`, then `name`.
fn nested(base: &Path, levels: usize, name: &str) -> PathBuf {
    let mut path = base.to_path_buf();
    path.extend(std::iter::repeat_n("d", levels));
    path.join(name)
}

/// Five 100-byte directory names under `base`, then `name`.
fn long(base: &Path, name: &str) -> PathBuf {
    let mut path = base.to_path_buf();
    path.extend(["a", "b", "c", "e", "g"].map(|c| c.repeat(100)));
    path.join(name)
}

// The kernel builds a descriptor's path from its dentries: depth and length
// must not evade a rule. Paths are matched whole up to 4096 bytes and 256
// components; one the walk cannot finish counts as matching (fail closed).
#[test]
fn deep_and_long_fd_paths_do_not_evade_a_rule() {
    let mut h = Harness::new();
    h.start_daemon();
    let dir = h.root.join("files");
    let (deny, ok) = (dir.join("deny"), dir.join("ok"));
    let (deep_denied, long_denied) = (nested(&deny, 60, "f"), long(&deny, "f"));
    let (deep_ok, long_ok) = (nested(&ok, 60, "f"), long(&ok, "f"));
    let (long_secret, too_deep) = (long(&ok, "x.secret"), nested(&ok, 300, "f"));
    for p in [
        &deep_denied,
        &long_denied,
        &deep_ok,
        &long_ok,
        &long_secret,
        &too_deep,
    ] {
        touch(p);
    }
    assert!(
        long_denied.as_os_str().len() >= 500,
        "{}",
        long_denied.display()
    );
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: long-paths
spec:
  kprobes:
  - call: sys_read
    syscall: true
    args:
    - index: 0
      type: fd
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values: ["{deny}/"]
      matchBinaries:
      - operator: Postfix
        values: ["/cat"]
      matchActions:
      - action: Sigkill
    - matchArgs:
      - index: 0
        operator: Postfix
        values: [".secret"]
      matchBinaries:
      - operator: Postfix
        values: ["/cat"]
      matchActions:
      - action: Sigkill
"#,
        deny = deny.display(),
    );
    h.write_policy("long.yaml", &policy);
    h.wait_policy("long-paths", "enabled", enabled);
    assert!(
        killed_by_sigkill(cat(&deep_denied)),
        "Prefix, 60 levels deep"
    );
    assert!(
        killed_by_sigkill(cat(&long_denied)),
        "Prefix, 500 bytes long"
    );
    assert!(
        killed_by_sigkill(cat(&long_secret)),
        "Postfix, 500 bytes long"
    );
    assert!(cat(&deep_ok).success(), "{}", deep_ok.display());
    assert!(cat(&long_ok).success(), "{}", long_ok.display());
    assert!(killed_by_sigkill(cat(&too_deep)), "a cut path fails closed");
    let p = h.wait_policy("long-paths", "enforced 4", |p| p["npost"] == 4);
    assert_eq!(p["nenforce"], 4, "{p}");
    let paths: Vec<serde_json::Value> = h
        .wait_hook_events(4)
        .iter()
        .map(|e| e["process_kprobe"]["args"][0]["file_arg"].clone())
        .collect();
    let deep = deep_denied.display().to_string();
    assert!(
        paths.contains(&serde_json::json!({ "path": deep })),
        "{paths:#?}"
    );
    let head: String = long_denied
        .display()
        .to_string()
        .chars()
        .take(255)
        .collect();
    let truncated = serde_json::json!({ "path": head, "flags": "truncated" });
    assert!(paths.contains(&truncated), "{paths:#?}");
    let cut = paths
        .iter()
        .find(|p| p["path"].as_str().is_some_and(|p| p.starts_with("/d/d/")))
        .expect("the cut path's event");
    assert_eq!(cut["flags"], "truncated", "{cut}");
}

#[test]
fn string_operators_on_pointer_types_of_user_memory_are_refused() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "bad.yaml",
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bad-file-arg\nspec:\n  kprobes:\n  - call: sys_openat\n    syscall: true\n    args:\n    - index: 1\n      type: file\n",
    );
    let p = h.wait_policy("bad-file-arg", "load_error", |p| p["state"] == "load_error");
    let err = p["error"].as_str().unwrap_or_default();
    assert!(err.contains("kernel structure"), "{err}");
}

/// A raw_syscalls policy killing syscall `nr`, limited by `filters`
/// (selector lines, indented for the selector).
fn selector_policy(name: &str, nr: u32, filters: &str) -> String {
    syscall_policy(name, nr, filters, "      - action: Sigkill\n", "")
}

fn run(program: &str, args: &[&str]) -> ExitStatus {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_child(&mut child, WAIT).expect("ends")
}

/// `/bin/sh -c 'testbin syscall NR; exit $?'`: testbin runs as the
/// shell's child (the shell forks, it does not exec it).
fn via_shell(nr: u32) -> ExitStatus {
    let script = format!("{} syscall {nr}; exit $?", testbin().display());
    run("/bin/sh", &["-c", &script])
}

#[test]
fn process_selectors_follow_ancestry_capabilities_and_namespaces() {
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let bin = bin.to_str().expect("utf-8 path");
    h.write_policy(
        "caps.yaml",
        &selector_policy(
            "sel-caps",
            SYS_SYSINFO,
            &format!("      matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]\n      matchCapabilities:\n      - type: Effective\n        operator: In\n        values: [CAP_SYS_ADMIN]\n"),
        ),
    );
    h.write_policy(
        "ns.yaml",
        &selector_policy(
            "sel-ns",
            SYS_TIMES,
            &format!("      matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]\n      matchNamespaces:\n      - namespace: Mnt\n        operator: In\n        values: [host_ns]\n"),
        ),
    );
    h.write_policy(
        "children.yaml",
        &selector_policy(
            "sel-children",
            SYS_GETPGRP,
            "      matchBinaries:\n      - operator: In\n        values: [\"/bin/sh\"]\n        followChildren: true\n",
        ),
    );
    h.write_policy(
        "parent.yaml",
        &selector_policy(
            "sel-parent",
            SYS_GETSID,
            "      matchParentBinaries:\n      - operator: In\n        values: [\"/bin/sh\"]\n",
        ),
    );
    h.write_policy(
        "prefix.yaml",
        &selector_policy(
            "sel-prefix",
            SYS_SCHED_GET_PRIORITY_MAX,
            "      matchBinaries:\n      - operator: NotPrefix\n        values: [\"/usr/\"]\n      matchParentBinaries:\n      - operator: NotIn\n        values: [\"/bin/sh\"]\n",
        ),
    );
    h.write_policy(
        "nspid.yaml",
        &selector_policy(
            "sel-nspid",
            SYS_GETPGID,
            &format!("      matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]\n      matchPIDs:\n      - operator: In\n        isNamespacePID: true\n        values: [1]\n"),
        ),
    );
    for name in [
        "sel-caps",
        "sel-ns",
        "sel-children",
        "sel-parent",
        "sel-prefix",
        "sel-nspid",
    ] {
        h.wait_policy(name, "enabled", enabled);
    }
    let nr = |n: u32| n.to_string();
    // matchCapabilities: root has CAP_SYS_ADMIN; without capabilities it
    // survives (dropcaps exits 1 when it cannot drop them).
    assert!(killed_by_sigkill(run(bin, &["syscall", &nr(SYS_SYSINFO)])));
    assert!(run(bin, &["dropcaps", "syscall", &nr(SYS_SYSINFO)]).success());
    // matchNamespaces host_ns: a new mount namespace is not the host's.
    assert!(killed_by_sigkill(run(bin, &["syscall", &nr(SYS_TIMES)])));
    let unshared = run("unshare", &["-m", bin, "syscall", &nr(SYS_TIMES)]);
    assert!(unshared.success(), "unshare -m: {unshared:?}");
    // followChildren: testbin started by /bin/sh matches /bin/sh.
    assert_eq!(via_shell(SYS_GETPGRP).code(), Some(128 + 9));
    assert!(run(bin, &["syscall", &nr(SYS_GETPGRP)]).success());
    // matchBinaries NotPrefix with matchParentBinaries NotIn: both hold for
    // testbin started here, the parent's fails under /bin/sh. (Every
    // matchBinaries operator both ways: selectors.rs, the operator table.)
    assert!(killed_by_sigkill(run(
        bin,
        &["syscall", &nr(SYS_SCHED_GET_PRIORITY_MAX)]
    )));
    assert_eq!(
        via_shell(SYS_SCHED_GET_PRIORITY_MAX).code(),
        Some(0),
        "parent /bin/sh"
    );
    // isNamespacePID: pid 1 of a new pid namespace, not of the host's.
    // (`unshare -p` then testbin's forked child is the namespace's pid 1.)
    let in_new_ns = Command::new("unshare")
        .args(["-p", bin, "fork", "syscall", &nr(SYS_GETPGID)])
        .output()
        .expect("unshare");
    let said = String::from_utf8_lossy(&in_new_ns.stdout);
    assert!(said.contains("child-killed 9"), "{in_new_ns:?}");
    assert!(run(bin, &["syscall", &nr(SYS_GETPGID)]).success());
    // matchParentBinaries: the parent is /bin/sh, or it is not.
    assert_eq!(via_shell(SYS_GETSID).code(), Some(128 + 9));
    assert!(run(bin, &["syscall", &nr(SYS_GETSID)]).success());
}

/// Several matchNamespaces and matchCapabilities entries in one selector
/// must all hold (as in Tetragon), each input that must not match failing
/// one entry alone; and matchNamespaces `Pid` is the task's own pid
/// namespace: `unshare -p` without --fork changes only the one its
/// children get, so the process it runs is still in the host's.
#[test]
fn several_namespace_and_capability_entries_must_all_hold() {
    const CAP_NET_RAW: u32 = 13;
    let prm = own_caps("CapPrm");
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let bin = bin.to_str().expect("utf-8 path");
    h.write_policy(
        "all.yaml",
        &selector_policy(
            "sel-all-entries",
            SYS_TIMES,
            &format!(
                "      matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]
      matchNamespaces:
      - namespace: Pid
        operator: In
        values: [host_ns]
      - namespace: Mnt
        operator: In
        values: [host_ns]
      matchCapabilities:
      - type: Effective
        operator: In
        values: [CAP_SYS_ADMIN]
      - type: Inheritable
        operator: NotIn
        values: [CAP_NET_RAW]
"
            ),
        ),
    );
    h.wait_policy("sel-all-entries", "enabled", enabled);
    let nr = SYS_TIMES.to_string();
    let st = run(bin, &["syscall", &nr]);
    assert!(killed_by_sigkill(st), "every entry holds: {st:?}");
    let st = run("unshare", &["-m", bin, "syscall", &nr]);
    assert!(
        st.success(),
        "the second namespace entry fails (unshare -m): {st:?}"
    );
    let st = run("unshare", &["-p", bin, "syscall", &nr]);
    assert!(
        killed_by_sigkill(st),
        "unshare -p leaves the process in the host's pid namespace: {st:?}"
    );
    let hex = |v: u64| format!("0x{v:x}");
    let st = run(
        bin,
        &[
            "caps",
            &hex(prm),
            &hex(prm),
            &hex(1 << CAP_NET_RAW),
            "syscall",
            &nr,
        ],
    );
    assert!(st.success(), "the second capability entry fails: {st:?}");
    let st = run(bin, &["dropcaps", "syscall", &nr]);
    assert!(st.success(), "the first capability entry fails: {st:?}");
    h.wait_policy("sel-all-entries", "counted", |p| p["nenforce"] == 2);
}

/// matchParentBinaries Postfix and NotPostfix on the parent's executable,
/// two-sided, beside a matchBinaries Prefix of the same selector (their
/// trie entries must not meet): testbin started by /bin/sh has a parent
/// whose path ends in `sh`; started here, its parent is this test.
#[test]
fn parent_binaries_postfix_is_matched_on_the_parents_path() {
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let dir = bin.parent().expect("folder").display().to_string();
    let bin = bin.to_str().expect("utf-8 path");
    let parent = |operator: &str| {
        format!("      matchBinaries:\n      - operator: Prefix\n        values: [\"{dir}/\"]\n      matchParentBinaries:\n      - operator: {operator}\n        values: [\"sh\"]\n")
    };
    h.write_policy(
        "postfix.yaml",
        &selector_policy("sel-parent-postfix", SYS_GETSID, &parent("Postfix")),
    );
    h.write_policy(
        "notpostfix.yaml",
        &selector_policy("sel-parent-notpostfix", SYS_GETPGID, &parent("NotPostfix")),
    );
    for name in ["sel-parent-postfix", "sel-parent-notpostfix"] {
        h.wait_policy(name, "enabled", enabled);
    }
    let nr = |n: u32| n.to_string();
    assert_eq!(
        via_shell(SYS_GETSID).code(),
        Some(128 + 9),
        "parent sh, Postfix"
    );
    assert!(
        run(bin, &["syscall", &nr(SYS_GETSID)]).success(),
        "parent not sh, Postfix"
    );
    assert!(
        killed_by_sigkill(run(bin, &["syscall", &nr(SYS_GETPGID)])),
        "parent not sh, NotPostfix"
    );
    assert_eq!(
        via_shell(SYS_GETPGID).code(),
        Some(0),
        "parent sh, NotPostfix"
    );
    for name in ["sel-parent-postfix", "sel-parent-notpostfix"] {
        h.wait_policy(name, "counted", |p| p["nenforce"] == 1);
    }
}

#[test]
fn match_pids_follow_forks_covers_descendants() {
    use std::io::Write;
    let mut h = Harness::new();
    h.start_daemon();
    // The shell waits for a line before starting testbin as its child.
    let script = format!(
        "read go; {} syscall {SYS_GETPRIORITY}; exit $?",
        testbin().display()
    );
    let mut shell = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sh");
    h.write_policy(
        "pids.yaml",
        &selector_policy(
            "sel-pids",
            SYS_GETPRIORITY,
            &format!("      matchPIDs:\n      - operator: In\n        followForks: true\n        values: [{}]\n", shell.id()),
        ),
    );
    h.wait_policy("sel-pids", "enabled", enabled);
    assert!(
        run_testbin(SYS_GETPRIORITY).success(),
        "not a descendant of the listed pid"
    );
    writeln!(shell.stdin.take().expect("stdin"), "go").expect("write");
    let status = wait_child(&mut shell, WAIT).expect("shell ends");
    assert_eq!(status.code(), Some(128 + 9), "the shell's child is killed");
}

/// A return uprobe: the uprobe reads the argument at the call, the
/// uretprobe the return value (tetragond_testbin_probe(v) returns v + 1),
/// which matchReturnArgs filter and matchReturnActions kill on; one event
/// per call, written at the return.
#[test]
fn uretprobe_matches_the_return_value() {
    let mut h = Harness::new();
    h.start_daemon();
    let spec = format!(
        r#"  uprobes:
  - path: "{}"
    symbols: [tetragond_testbin_probe]
    return: true
    args:
    - index: 0
      type: uint64
    returnArg:
      index: 0
      type: uint64
      label: ret
    selectors:
    - matchReturnArgs:
      - index: 0
        operator: Equal
        values: ["43"]
      matchReturnActions:
      - action: Sigkill
"#,
        testbin().display()
    );
    let policy = policy_with_spec("uretprobe", &spec);
    h.write_policy("uret.yaml", &policy);
    h.wait_policy("uretprobe", "enabled", enabled);
    let bin = testbin();
    let bin = bin.to_str().expect("utf-8 path");
    // tetragond_testbin_probe(v) returns v + 1.
    assert!(killed_by_sigkill(run(bin, &["probe", "42"])));
    assert!(run(bin, &["probe", "1"]).success());
    let p = h.wait_policy("uretprobe", "one post", |p| p["npost"] == 1);
    assert_eq!(p["nenforce"], 1, "{p}");
    let ev = h.wait_hook_events(1);
    let ret = &ev[0]["process_uprobe"]["return"];
    assert_eq!(ret["size_arg"], "43", "{}", ev[0]);
    assert_eq!(ret["label"], "ret");
    // The call's argument, read by the uprobe at entry; the kill is the
    // return's action.
    let uprobe = &ev[0]["process_uprobe"];
    assert_eq!(uprobe["args"][0]["size_arg"], "42", "{}", ev[0]);
    assert_eq!(uprobe["action"], "KPROBE_ACTION_POST", "{}", ev[0]);
    assert_eq!(
        uprobe["return_action"], "KPROBE_ACTION_SIGKILL",
        "{}",
        ev[0]
    );
}

#[test]
fn char_buf_reads_the_size_its_size_argument_gives() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "write.yaml",
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: write-buf
spec:
  kprobes:
  - call: sys_write
    syscall: true
    args:
    - index: 1
      type: char_buf
      sizeArgIndex: 3
    - index: 2
      type: size_t
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: ["tetragond-secret"]
      matchBinaries:
      - operator: In
        values: ["/bin/sh"]
      matchActions:
      - action: Sigkill
"#,
    );
    h.wait_policy("write-buf", "enabled", enabled);
    // Equal holds for exactly the `count` bytes written, not what follows.
    let out = h.root.join("out");
    let out = out.display();
    let killed = run(
        "/bin/sh",
        &["-c", &format!("printf tetragond-secret > {out}")],
    );
    assert!(killed_by_sigkill(killed), "{killed:?}");
    let longer = run(
        "/bin/sh",
        &["-c", &format!("printf tetragond-secrets > {out}")],
    );
    assert!(longer.success(), "{longer:?}");
    let p = h.wait_policy("write-buf", "one post", |p| p["npost"] == 1);
    assert_eq!(p["nenforce"], 1, "{p}");
    let ev = h.wait_hook_events(1);
    let args = &ev[0]["process_kprobe"]["args"];
    assert_eq!(args[0]["bytes_arg"], "dGV0cmFnb25kLXNlY3JldA==", "{args}");
    assert_eq!(args[1]["size_arg"], "16", "{args}");
}

#[test]
fn a_relative_exec_does_not_evade_match_binaries() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "kill.yaml",
        &kill_policy(
            "kill-relative",
            SYS_SCHED_GETSCHEDULER,
            "      - action: Sigkill\n",
            "",
        ),
    );
    h.wait_policy("kill-relative", "enabled", enabled);
    let bin = testbin();
    let name = bin.file_name().expect("file name").to_str().expect("utf-8");
    let mut child = Command::new(format!("./{name}"))
        .args(["syscall", &SYS_SCHED_GETSCHEDULER.to_string()])
        .current_dir(bin.parent().expect("parent"))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn ./testbin");
    let status = wait_child(&mut child, WAIT).expect("ends");
    assert!(
        killed_by_sigkill(status),
        "executed as ./{name}: {status:?}"
    );
    let ev = h.wait_hook_events(1);
    assert_eq!(
        ev[0]["process_tracepoint"]["process"]["binary"],
        bin.display().to_string()
    );
}

/// This process's capability set NAME (`CapPrm`, ...) from /proc.
fn own_caps(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:\t")))
        .unwrap_or_else(|| panic!("no {name} in /proc/self/status"));
    u64::from_str_radix(line.trim(), 16).expect("hex capability set")
}

/// matchCapabilities Permitted and Inheritable, and matchNamespaces Net,
/// two-sided in the kernel: each input that must match differs from the
/// one that must not in that set (or namespace) alone. Permitted is
/// matched with an empty effective set, so a kernel side reading the
/// effective set for it fails.
#[test]
fn permitted_and_inheritable_capabilities_and_the_net_namespace_are_matched_in_the_kernel() {
    const CAP_NET_RAW: u32 = 13;
    const CAP_SYS_ADMIN: u32 = 21;
    let prm = own_caps("CapPrm");
    let bnd = own_caps("CapBnd");
    assert!(
        prm & (1 << CAP_SYS_ADMIN) != 0 && bnd & (1 << CAP_NET_RAW) != 0,
        "the test needs CAP_SYS_ADMIN permitted and CAP_NET_RAW in the bounding set: CapPrm {prm:x} CapBnd {bnd:x}"
    );
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let bin = bin.to_str().expect("utf-8 path");
    let caps = |kind: &str, cap: &str| {
        format!("      matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]\n      matchCapabilities:\n      - type: {kind}\n        operator: In\n        values: [{cap}]\n")
    };
    h.write_policy(
        "perm.yaml",
        &selector_policy(
            "sel-permitted",
            SYS_SYSINFO,
            &caps("Permitted", "CAP_SYS_ADMIN"),
        ),
    );
    h.write_policy(
        "inh.yaml",
        &selector_policy(
            "sel-inheritable",
            SYS_TIMES,
            &caps("Inheritable", "CAP_NET_RAW"),
        ),
    );
    h.write_policy(
        "net.yaml",
        &selector_policy(
            "sel-net",
            SYS_GETPRIORITY,
            &format!("      matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]\n      matchNamespaces:\n      - namespace: Net\n        operator: In\n        values: [host_ns]\n"),
        ),
    );
    for name in ["sel-permitted", "sel-inheritable", "sel-net"] {
        h.wait_policy(name, "enabled", enabled);
    }
    let nr = |n: u32| n.to_string();
    let hex = |v: u64| format!("0x{v:x}");
    // testbin `caps EFF PERM INH ...` exits 1 when capset fails, so a
    // survivor (status 0) really ran with those sets.
    let with_caps = |eff: u64, perm: u64, inh: u64, n: u32| {
        run(
            bin,
            &["caps", &hex(eff), &hex(perm), &hex(inh), "syscall", &nr(n)],
        )
    };
    let no_admin = prm & !(1 << CAP_SYS_ADMIN);
    // Permitted In CAP_SYS_ADMIN: effective empty, permitted with it: killed.
    let st = with_caps(0, prm, 0, SYS_SYSINFO);
    assert!(
        killed_by_sigkill(st),
        "permitted holds CAP_SYS_ADMIN: {st:?}"
    );
    // The same without it in permitted (effective full otherwise): survives.
    let st = with_caps(no_admin, no_admin, 0, SYS_SYSINFO);
    assert!(st.success(), "permitted lacks CAP_SYS_ADMIN: {st:?}");
    // Inheritable In CAP_NET_RAW: the same sets, inheritable with or without it.
    let st = with_caps(prm, prm, 1 << CAP_NET_RAW, SYS_TIMES);
    assert!(
        killed_by_sigkill(st),
        "inheritable holds CAP_NET_RAW: {st:?}"
    );
    let st = with_caps(prm, prm, 0, SYS_TIMES);
    assert!(st.success(), "inheritable empty: {st:?}");
    // Net In host_ns: the host's network namespace, or a new one.
    assert!(killed_by_sigkill(run(
        bin,
        &["syscall", &nr(SYS_GETPRIORITY)]
    )));
    let unshared = run("unshare", &["-n", bin, "syscall", &nr(SYS_GETPRIORITY)]);
    assert!(unshared.success(), "unshare -n: {unshared:?}");
    // Every kill was counted by its own policy.
    for name in ["sel-permitted", "sel-inheritable", "sel-net"] {
        h.wait_policy(name, "counted", |p| p["nenforce"] == 1);
    }
}

/// `raw: true`: the tracepoint's own arguments (TP_PROTO, typed by BTF),
/// read by a BTF tracepoint program. raw_syscalls/sys_enter passes
/// `(struct pt_regs *regs, long id)`: a Sigkill on `id` kills that call
/// only. sched/sched_process_exec passes `(struct task_struct *p, pid_t
/// old_pid, struct linux_binprm *bprm)`: the event reads the pid and
/// follows the binprm to the file executed.
#[test]
fn raw_tracepoints_read_their_own_arguments() {
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let bin = bin.to_str().expect("utf-8 path");
    let head = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: NAME\nspec:\n  tracepoints:\n";
    h.write_policy(
        "raw-kill.yaml",
        &format!(
            "{}  - subsystem: raw_syscalls\n    event: sys_enter\n    raw: true\n    args:\n    - index: 1\n      type: int64\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"{SYS_GETSID}\"]\n      matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]\n      matchActions:\n      - action: Sigkill\n",
            head.replace("NAME", "raw-kill")
        ),
    );
    h.write_policy(
        "raw-exec.yaml",
        &format!(
            "{}  - subsystem: sched\n    event: sched_process_exec\n    raw: true\n    args:\n    - index: 1\n      type: int\n    - index: 2\n      type: linux_binprm\n    selectors:\n    - matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]\n",
            head.replace("NAME", "raw-exec")
        ),
    );
    for name in ["raw-kill", "raw-exec"] {
        let p = h.wait_policy(name, "enabled", enabled);
        assert_eq!(p["sensors"][0], "generic_tracepoint", "{p}");
    }
    let nr = |n: u32| n.to_string();
    let st = run(bin, &["syscall", &nr(SYS_GETSID)]);
    assert!(killed_by_sigkill(st), "the id matched: {st:?}");
    let st = run(bin, &["syscall", &nr(SYS_GETPGID)]);
    assert!(st.success(), "another id: {st:?}");
    h.wait_policy("raw-kill", "counted", |p| p["nenforce"] == 1);
    let kill = h.wait_event("the raw sys_enter event", |e| {
        e["process_tracepoint"]["policy_name"] == "raw-kill"
    });
    let tp = &kill["process_tracepoint"];
    assert_eq!(
        (tp["subsys"].as_str(), tp["event"].as_str()),
        (Some("raw_syscalls"), Some("sys_enter"))
    );
    assert_eq!(tp["args"][0]["long_arg"], SYS_GETSID.to_string(), "{kill}");
    let exec = h.wait_event("the raw exec event", |e| {
        e["process_tracepoint"]["policy_name"] == "raw-exec"
    });
    let tp = &exec["process_tracepoint"];
    assert_eq!(tp["event"], "sched_process_exec", "{exec}");
    assert_eq!(
        tp["args"][0]["int_arg"], tp["process"]["pid"],
        "old_pid: {exec}"
    );
    assert_eq!(tp["args"][1]["linux_binprm_arg"]["path"], bin, "{exec}");
}

/// A tracepoint's `__data_loc` string field (`type: data_loc`, or
/// `string`): sched/sched_process_exec's `filename` is in the record, at
/// the offset the field gives. A Postfix on it posts testbin's exec and
/// not another's.
#[test]
fn data_loc_string_fields_are_read_from_the_record() {
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let name = file_name(&bin);
    let name = name.as_str();
    h.write_policy(
        "exec.yaml",
        &format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: exec-data-loc\nspec:\n  tracepoints:\n  - subsystem: sched\n    event: sched_process_exec\n    args:\n    - index: 4\n      type: data_loc\n      label: filename\n    - index: 5\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Postfix\n        values: [\"/{name}\"]\n"
        ),
    );
    h.wait_policy("exec-data-loc", "enabled", enabled);
    assert!(run("/bin/true", &[]).success());
    assert!(run(bin.to_str().expect("utf-8"), &["syscall", "39"]).success());
    let ev = h.wait_event("testbin's exec", |e| {
        e["process_tracepoint"]["policy_name"] == "exec-data-loc"
    });
    let tp = &ev["process_tracepoint"];
    assert_eq!(
        tp["args"][0]["string_arg"],
        bin.display().to_string(),
        "{ev}"
    );
    assert_eq!(tp["args"][0]["label"], "filename", "{ev}");
    assert_eq!(tp["args"][1]["int_arg"], tp["process"]["pid"], "{ev}");
    let posted: Vec<_> = h
        .hook_events()
        .into_iter()
        .filter(|e| e["process_tracepoint"]["policy_name"] == "exec-data-loc")
        .collect();
    assert_eq!(posted.len(), 1, "only testbin's exec: {posted:?}");
}

/// A syscall return probe (`syscall: true`, `return: true`) runs at
/// raw_syscalls/sys_exit on the syscall's numbers: getpgid of a pid that
/// does not exist returns -ESRCH (-3), which matchReturnArgs kill; getpgid
/// of itself (0) returns its group and survives. The event names the
/// syscall and carries the return value.
#[test]
fn syscall_return_probes_match_the_return_value() {
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let bin_str = bin.to_str().expect("utf-8 path");
    h.write_policy(
        "ret.yaml",
        &format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: getpgid-ret\nspec:\n  kprobes:\n  - call: getpgid\n    syscall: true\n    return: true\n    returnArg:\n      index: 0\n      type: int\n    selectors:\n    - matchBinaries:\n      - operator: In\n        values: [\"{bin_str}\"]\n      matchReturnArgs:\n      - index: 0\n        operator: Equal\n        values: [\"-3\"]\n      matchReturnActions:\n      - action: Sigkill\n"
        ),
    );
    h.wait_policy("getpgid-ret", "enabled", enabled);
    let st = run_syscall_args(&bin, SYS_GETPGID, &[999_999_999]);
    assert!(killed_by_sigkill(st), "-ESRCH returned: {st:?}");
    let st = run_syscall_args(&bin, SYS_GETPGID, &[0]);
    assert!(st.success(), "its own group returned: {st:?}");
    h.wait_policy("getpgid-ret", "counted", |p| p["nenforce"] == 1);
    let ev = h.wait_event("the return event", |e| {
        e["process_kprobe"]["policy_name"] == "getpgid-ret"
    });
    let kp = &ev["process_kprobe"];
    assert_eq!(kp["function_name"], "getpgid", "{ev}");
    assert_eq!(kp["return"]["int_arg"], -3, "{ev}");
    // The kill is a matchReturnActions one: the call's return_action; its
    // action is the one of the selector's matchActions at the call.
    assert_eq!(kp["action"], "KPROBE_ACTION_POST", "{ev}");
    assert_eq!(kp["return_action"], "KPROBE_ACTION_SIGKILL", "{ev}");
}

/// `resolve`: fields behind a raw tracepoint's pointer argument, walked
/// through BTF. sched_process_exec passes the task: its `comm` (an array,
/// read in place), the executable's name four pointers away, its parent's
/// tgid, and `mm.exe_file` as a file; `bprm` with `type: auto` is read as
/// the `linux_binprm` BTF declares. A Sigkill on the executable's name
/// kills the test binary's exec and lets /bin/true's run.
#[test]
fn resolved_fields_are_read_behind_raw_tracepoint_arguments() {
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let name = file_name(&bin);
    let name = name.as_str();
    h.write_policy(
        "resolve.yaml",
        &format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: resolve\nspec:\n  tracepoints:\n  - subsystem: sched\n    event: sched_process_exec\n    raw: true\n    args:\n    - index: 0\n      type: string\n      resolve: comm\n    - index: 0\n      type: string\n      resolve: mm.exe_file.f_path.dentry.d_name.name\n    - index: 0\n      type: int\n      resolve: real_parent.tgid\n    - index: 0\n      type: file\n      resolve: mm.exe_file\n    - index: 2\n      type: auto\n    selectors:\n    - matchArgs:\n      - index: 1\n        operator: Equal\n        values: [\"{name}\"]\n      matchActions:\n      - action: Sigkill\n"
        ),
    );
    h.wait_policy("resolve", "enabled", enabled);
    assert!(run("/bin/true", &[]).success(), "another executable runs");
    let st = run(bin.to_str().expect("utf-8"), &["syscall", "39"]);
    assert!(killed_by_sigkill(st), "the resolved name matched: {st:?}");
    let ev = h.wait_event("the test binary's exec", |e| {
        e["process_tracepoint"]["policy_name"] == "resolve"
    });
    let args = &ev["process_tracepoint"]["args"];
    // The kernel keeps 15 bytes of the name in `comm`.
    let comm: String = name.chars().take(15).collect();
    assert_eq!(args[0]["string_arg"], comm.as_str(), "{ev}");
    assert_eq!(args[1]["string_arg"], name, "{ev}");
    assert_eq!(args[2]["int_arg"], std::process::id(), "parent tgid: {ev}");
    assert_eq!(
        args[3]["file_arg"]["path"],
        bin.to_str().expect("utf-8"),
        "{ev}"
    );
    // `auto`: BTF declares a `struct linux_binprm *`.
    let binprm = &args[4]["linux_binprm_arg"]["path"];
    assert_eq!(binprm, bin.to_str().expect("utf-8"), "{ev}");
    let posted = h.events();
    let others = posted
        .iter()
        .filter(|e| e["process_tracepoint"]["policy_name"] == "resolve")
        .filter(|e| e["process_tracepoint"]["args"][1]["string_arg"] != name);
    assert_eq!(others.count(), 0, "only the named executable matched");
}

/// More distinct non-syscall tracepoints than the 8 numbered programs
/// there once were: where tracepoint links carry a BPF cookie (Linux 5.15,
/// this kernel), one program serves them all, each link's cookie naming
/// its site (before 5.15, a stub per tracepoint: the 5.10 guest's tp-many
/// case). Ten
/// policies on ten tracepoints a forking, exec'ing, exiting test binary
/// fires are all enabled, and each posts the test binary's events.
#[test]
fn more_tracepoints_than_numbered_programs_are_served_by_cookie() {
    let tracepoints = [
        ("sched", "sched_process_fork"),
        ("task", "task_newtask"),
        ("sched", "sched_wakeup_new"),
        ("sched", "sched_process_exec"),
        ("task", "task_rename"),
        ("sched", "sched_process_exit"),
        ("sched", "sched_process_wait"),
        ("signal", "signal_generate"),
        ("sched", "sched_switch"),
        ("sched", "sched_wakeup"),
    ];
    let bin = testbin().display().to_string();
    let bin = bin.as_str();
    let mut h = Harness::new();
    h.start_daemon();
    // Policy names take no underscores.
    let name = |event: &str| format!("tp-{}", event.replace('_', "-"));
    for (subsystem, event) in tracepoints {
        let name = name(event);
        h.write_policy(
            &format!("{event}.yaml"),
            &format!(
                "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n  tracepoints:\n  - subsystem: {subsystem}\n    event: {event}\n    selectors:\n    - matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]\n"
            ),
        );
    }
    for (_, event) in tracepoints {
        h.wait_policy(&name(event), "enabled", enabled);
    }
    for _ in 0..3 {
        // The child execs the test binary again: every event is its. All on
        // one CPU: a wakeup of a task on another CPU is queued there and
        // traced in whatever task that CPU runs, so the exiting child's
        // wakeup of its waiting parent is traced in the child only when the
        // two share a CPU.
        let st = run(bin, &["pin", "0", "fork", "exec", bin, "syscall", "39"]);
        assert!(st.success(), "{st:?}");
    }
    for (_, event) in tracepoints {
        let name = name(event);
        h.wait_event(&format!("an event of {name}"), |e| {
            e["process_tracepoint"]["policy_name"] == name.as_str()
        });
    }
}

/// A process's own exit-time events match its executable: the SIGCHLD an
/// exiting test binary sends its parent (`signal_generate`, traced in the
/// exiting child after its memory is gone) posts for a matchBinaries on
/// the test binary. The daemon's own exit tracking must not forget the
/// executable before the process's last tracepoint has run (it once did,
/// at `sched_process_exit`: no exit-time event could match a binary).
#[test]
fn exit_time_events_match_the_exiting_binary() {
    let bin = testbin().display().to_string();
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "sigchld.yaml",
        &format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: sigchld\nspec:\n  tracepoints:\n  - subsystem: signal\n    event: signal_generate\n    args:\n    - index: 4\n      type: int\n      label: sig\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"17\"]\n      matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]\n"
        ),
    );
    h.wait_policy("sigchld", "enabled", enabled);
    let st = run(&bin, &["fork", "syscall", "39"]);
    assert!(st.success(), "{st:?}");
    h.wait_event("the exiting child's SIGCHLD", |e| {
        e["process_tracepoint"]["policy_name"] == "sigchld"
            && e["process_tracepoint"]["args"][0]["int_arg"] == 17
    });
}

/// The last component of `path` (the test binary's name).
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 name")
        .to_string()
}

/// A `user_namespace` argument, here the exec'ing task's `cred.user_ns`
/// (`resolve`), is written as Tetragon writes it: its level, owner, group
/// and inode number, with `is_host` for the initial namespace.
#[test]
fn user_namespace_args_are_read_as_tetragon_writes_them() {
    use std::os::unix::fs::MetadataExt;
    let bin = testbin().display().to_string();
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "userns.yaml",
        &format!(
            "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: userns\nspec:\n  tracepoints:\n  - subsystem: sched\n    event: sched_process_exec\n    raw: true\n    args:\n    - index: 0\n      type: user_namespace\n      resolve: cred.user_ns\n    selectors:\n    - matchBinaries:\n      - operator: In\n        values: [\"{bin}\"]\n"
        ),
    );
    h.wait_policy("userns", "enabled", enabled);
    assert!(run(&bin, &["syscall", "39"]).success());
    let ev = h.wait_event("the test binary's exec", |e| {
        e["process_tracepoint"]["policy_name"] == "userns"
    });
    let ns = &ev["process_tracepoint"]["args"][0]["user_ns_arg"];
    let inum = std::fs::metadata("/proc/self/ns/user")
        .expect("own user ns")
        .ino();
    let want = serde_json::json!({
        "level": 0, "uid": 0, "gid": 0, "ns": {"inum": inum, "is_host": true}
    });
    assert_eq!(*ns, want, "{ev}");
}

/// `refCtrOffsets`: a uprobe at an offset raises the semaphore at the
/// paired file offset while it is attached, as a USDT probe's users do.
/// The test binary fires `tetragond:gated` only while that semaphore is
/// up: an event, and the binary's own report, say the kernel raised it.
#[test]
fn uprobe_ref_ctr_offsets_raise_the_semaphore() {
    let bin = testbin();
    let probes = tetragond::usdt::probes_of(&bin).expect("the test binary's notes");
    let gated = probes
        .iter()
        .find(|p| p.name == "gated")
        .expect("tetragond:gated");
    assert_ne!(gated.semaphore, 0, "a semaphore's file offset");
    let report = || {
        let out = Command::new(&bin).arg("usdt-gated").output().expect("runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(report(), "semaphore 0", "down while nothing probes");
    let mut h = Harness::new();
    h.start_daemon();
    let spec = format!(
        "  uprobes:\n  - path: \"{}\"\n    offsets: [{}]\n    refCtrOffsets: [{}]\n",
        bin.display(),
        gated.file_offset,
        gated.semaphore
    );
    let policy = policy_with_spec("ref-ctr", &spec);
    h.write_policy("ref-ctr.yaml", &policy);
    h.wait_policy("ref-ctr", "enabled", enabled);
    assert_eq!(report(), "semaphore 1", "raised by the kernel");
    let ev = h.wait_hook_events(1);
    assert!(
        ev[0]["process_uprobe"]["process"]["arguments"] == "usdt-gated",
        "{}",
        ev[0]
    );
}
