//! Selectors, actions and hook kinds, end to end against the real daemon.

mod common;

use std::os::unix::process::ExitStatusExt;

use common::*;

#[test]
fn signal_action_sends_its_signal() {
    let mut h = Harness::new();
    h.start_daemon();
    let actions = "      - action: Signal\n        argSig: 10\n";
    h.write_policy("usr1.yaml", &kill_policy("usr1", SYS_SYSINFO, actions, ""));
    h.wait_policy("usr1", "enabled", enabled);
    let status = run_testbin(SYS_SYSINFO);
    assert_eq!(status.signal(), Some(libc::SIGUSR1), "{status:?}");
    h.wait_policy("usr1", "counted", |p| p["nenforce"] == 1);
}

#[test]
fn no_post_enforces_without_an_event() {
    let mut h = Harness::new();
    h.start_daemon();
    let actions = "      - action: Sigkill\n      - action: NoPost\n";
    h.write_policy(
        "quiet.yaml",
        &kill_policy("quiet", SYS_SYSINFO, actions, ""),
    );
    h.wait_policy("quiet", "enabled", enabled);
    assert!(killed_by_sigkill(run_testbin(SYS_SYSINFO)));
    let p = h.wait_policy("quiet", "counted", |p| p["nenforce"] == 1);
    assert_eq!(p["npost"], 0, "{p}");
    assert!(h.events().is_empty(), "NoPost writes no event");
}

#[test]
fn match_pids_in_and_not_in() {
    let mut h = Harness::new();
    h.start_daemon();
    // PID 1 never runs the test binary: In [1] never matches, NotIn [1] always does.
    let pids = |op: &str| {
        kill_policy("pids", SYS_GETPGID, SIGKILL_ACTION, "").replace(
            "      matchBinaries:",
            &format!("      matchPIDs:\n      - operator: {op}\n        values: [1]\n      matchBinaries:"),
        )
    };
    h.write_policy("pids.yaml", &pids("In"));
    h.wait_policy("pids", "enabled", enabled);
    assert!(
        run_testbin(SYS_GETPGID).success(),
        "In [1] does not match the test binary"
    );
    h.write_policy("pids.yaml", &pids("NotIn"));
    wait_until_killed(SYS_GETPGID);
}

/// Edits apply asynchronously: poll until the new version enforces.
fn wait_until_killed(nr: u32) {
    let deadline = std::time::Instant::now() + WAIT;
    while !killed_by_sigkill(run_testbin(nr)) {
        assert!(
            std::time::Instant::now() < deadline,
            "syscall {nr} never killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn match_binaries_not_in_spares_the_listed_binary() {
    let mut h = Harness::new();
    h.start_daemon();
    let policy = kill_policy("not-me", SYS_GETSID, SIGKILL_ACTION, "")
        .replace("operator: In", "operator: NotIn");
    h.write_policy("notin.yaml", &policy);
    h.wait_policy("not-me", "enabled", enabled);
    assert!(
        run_testbin(SYS_GETSID).success(),
        "the listed binary is spared"
    );
}

#[test]
fn per_syscall_tracepoint_reads_its_arguments() {
    let mut h = Harness::new();
    h.start_daemon();
    // getpgid(pid): format index 5 is `pid`; the test binary passes 0.
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: getpgid-zero
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_getpgid
    args:
    - index: 5
      type: int
      label: pid
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["0"]
      matchBinaries:
      - operator: In
        values: ["{}"]
      matchActions:
      - action: Sigkill
"#,
        testbin().display()
    );
    h.write_policy("getpgid.yaml", &policy);
    let p = h.wait_policy("getpgid-zero", "enabled", enabled);
    assert_eq!(p["mode"], "enforce");
    assert!(killed_by_sigkill(run_testbin(SYS_GETPGID)));
    assert!(run_testbin(SYS_GETSID).success(), "other syscalls pass");
    let events = h.hook_events();
    let ev = &events.last().expect("an event")["process_tracepoint"];
    assert_eq!(ev["subsys"], "syscalls");
    assert_eq!(ev["event"], "sys_enter_getpgid");
    assert_eq!(ev["args"][0]["int_arg"], 0);
    assert_eq!(ev["args"][0]["label"], "pid");
}

#[test]
fn tetra_add_delete_and_validate() {
    let mut h = Harness::new();
    h.start_daemon();
    let file = h.root.join("incoming.yaml");
    std::fs::write(&file, kill_policy("added", SYS_GETSID, SIGKILL_ACTION, "")).expect("write");
    let path = file.to_string_lossy().into_owned();

    let out = h.tetra(&["tp", "validate", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = h.tetra(&["tp", "add", "--mode", "monitor", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = h.wait_policy("added", "enabled", enabled);
    assert_eq!(
        (p["mode"].as_str(), p["mode_source"].as_str()),
        (Some("monitor"), Some("sidecar"))
    );
    assert!(
        h.policy_dir.join("added.toml").exists(),
        "sidecar written next to the policy"
    );
    assert!(run_testbin(SYS_GETSID).success(), "added in monitor mode");

    let out = h.tetra(&["tp", "add", &path]);
    assert!(!out.status.success(), "adding the same policy twice fails");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let out = h.tetra(&["tp", "delete", "added"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(h.policy("added").is_none());
    assert!(!h.policy_dir.join("added.yaml").exists());

    std::fs::write(&file, "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: Bad_Name\nspec: {}\n")
        .expect("write");
    let out = h.tetra(&["tp", "validate", &path]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{path}:4:")), "FILE:LINE:COL: {err}");
    let out = h.tetra(&["tp", "add", &path]);
    assert!(
        !out.status.success(),
        "the daemon refuses an invalid policy"
    );
    assert!(h.list().is_empty(), "and changes nothing");
}

#[test]
fn integer_operators_compare_in_the_kernel() {
    let mut h = Harness::new();
    h.start_daemon();
    // getpgid(0): the pid argument (format index 5) is 0 and signed.
    let policy = |name: &str, filters: &str| {
        format!(
            r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_getpgid
    args:
    - index: 5
      type: int
    selectors:
    - matchArgs:
{filters}      matchBinaries:
      - operator: In
        values: ["{bin}"]
      matchActions:
      - action: Sigkill
"#,
            bin = testbin().display()
        )
    };
    let never = "      - index: 0\n        operator: Mask\n        values: [\"0xff\"]\n";
    h.write_policy("ops.yaml", &policy("ops", never));
    h.wait_policy("ops", "enabled", enabled);
    assert!(
        run_testbin(SYS_GETPGID).success(),
        "0 & 0xff is 0: Mask does not match"
    );
    let all = "      - index: 0\n        operator: GreaterThan\n        values: [\"-1\"]\n      - index: 0\n        operator: LessThan\n        values: [\"1\"]\n      - index: 0\n        operator: NotEqual\n        values: [\"5\", \"7\"]\n";
    h.write_policy("ops.yaml", &policy("ops", all));
    wait_until_killed(SYS_GETPGID);
}

#[test]
fn syscall_kprobe_enforces_through_the_tracepoint_fallback() {
    let mut h = Harness::new();
    h.start_daemon();
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: kprobe-getpgid
spec:
  kprobes:
  - call: sys_getpgid
    syscall: true
    args:
    - index: 0
      type: int
      label: pid
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["0"]
      matchBinaries:
      - operator: In
        values: ["{}"]
      matchActions:
      - action: Sigkill
"#,
        testbin().display()
    );
    h.write_policy("kprobe.yaml", &policy);
    let p = h.wait_policy("kprobe-getpgid", "enabled", enabled);
    assert_eq!(p["sensors"][0], "generic_kprobe");
    assert!(killed_by_sigkill(run_testbin(SYS_GETPGID)));
    let events = h.hook_events();
    let ev = &events.last().expect("an event")["process_kprobe"];
    assert_eq!(ev["function_name"], "sys_getpgid");
    assert_eq!(ev["args"][0]["int_arg"], 0);
    assert_eq!(ev["action"], "KPROBE_ACTION_SIGKILL");
}

#[test]
fn hooks_this_kernel_cannot_serve_are_load_errors_with_the_reason() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "lsm.yaml",
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: lsm-open\nspec:\n  lsmhooks:\n  - hook: file_open\n    args:\n    - index: 0\n      type: file\n    selectors:\n    - matchActions:\n      - action: Override\n        argError: -1\n",
    );
    h.write_policy(
        "kfunc.yaml",
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: kfunc\nspec:\n  kprobes:\n  - call: security_file_permission\n    syscall: false\n",
    );
    let p = h.wait_policy("lsm-open", "load_error", |p| p["state"] == "load_error");
    assert!(
        p["error"].as_str().unwrap_or_default().contains("lsmhooks"),
        "{p}"
    );
    let p = h.wait_policy("kfunc", "load_error", |p| p["state"] == "load_error");
    let err = p["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("security_file_permission") && err.contains("kprobes"),
        "{err}"
    );
}

#[test]
fn uprobe_on_a_symbol_enforces_on_its_argument() {
    let mut h = Harness::new();
    h.start_daemon();
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: uprobe-probe
spec:
  uprobes:
  - path: "{}"
    symbols: [tetragond_testbin_probe]
    args:
    - index: 0
      type: uint64
      label: value
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["42"]
      matchActions:
      - action: Sigkill
"#,
        testbin().display()
    );
    h.write_policy("uprobe.yaml", &policy);
    let p = h.wait_policy("uprobe-probe", "enabled", enabled);
    assert_eq!(p["sensors"][0], "generic_uprobe");
    let run = |value: &str| {
        let mut child = std::process::Command::new(testbin())
            .args(["probe", value])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        wait_child(&mut child, WAIT).expect("ends")
    };
    assert!(killed_by_sigkill(run("42")), "the matching call is killed");
    assert!(run("7").success(), "another argument passes");
    let events = h.hook_events();
    let ev = &events.last().expect("an event")["process_uprobe"];
    assert_eq!(ev["symbol"], "tetragond_testbin_probe", "{ev}");
    assert_eq!(ev["action"], "KPROBE_ACTION_SIGKILL");

    // Deleting the policy detaches the uprobe.
    std::fs::remove_file(h.policy_dir.join("uprobe.yaml")).expect("delete");
    h.wait_policy_gone("uprobe-probe");
    assert!(run("42").success(), "no uprobe after the policy is gone");
}
