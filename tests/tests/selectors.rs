//! Selectors, actions and hook kinds, end to end against the real daemon.

mod common;

use std::{os::unix::process::ExitStatusExt, path::Path, process::ExitStatus};

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
    // A policy that does post: its event comes after the kill through the
    // same ring buffer and writer, so once it is in the file anything the
    // kill had posted would be too.
    h.write_policy(
        "marker.yaml",
        &kill_policy("marker", SYS_TIMES, POST_ACTION, ""),
    );
    h.wait_policy("quiet", "enabled", enabled);
    h.wait_policy("marker", "enabled", enabled);
    let mut quiet = std::process::Command::new(testbin())
        .args(["syscall", &SYS_SYSINFO.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn testbin");
    let quiet_pid = quiet.id();
    assert!(killed_by_sigkill(
        wait_child(&mut quiet, WAIT).expect("testbin ends")
    ));
    let p = h.wait_policy("quiet", "counted", |p| p["nenforce"] == 1);
    assert_eq!(p["npost"], 0, "{p}");
    assert!(run_testbin(SYS_TIMES).success());
    h.wait_event("of the marker policy", |e| {
        e["process_tracepoint"]["policy_name"] == "marker"
    });
    let events = h.events();
    let hooks = h.hook_events();
    assert_eq!(hooks.len(), 1, "only the marker's: {hooks:#?}");
    let of_quiet: Vec<_> = events
        .iter()
        .filter(|e| {
            let bodies = e.as_object().into_iter().flat_map(|o| o.values());
            bodies.into_iter().any(|b| b["process"]["pid"] == quiet_pid)
        })
        .collect();
    assert!(
        of_quiet.is_empty(),
        "NoPost writes no event, not even the process's exec: {of_quiet:#?}"
    );
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

/// A `syscalls/sys_enter_EVENT` policy named `name` that kills when the
/// syscall's first argument is `key` (a value only the tests pass, see
/// SYS_GETITIMER) and `filters` (selector lines: more matchArgs items, then
/// other selectors) hold. Format index 5 is the first argument, 6 the second.
fn keyed_policy(name: &str, event: &str, key: i64, filters: &str) -> String {
    format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  tracepoints:
  - subsystem: syscalls
    event: {event}
    args:
    - index: 5
      type: int
    - index: 6
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["{key}"]
{filters}      matchActions:
      - action: Sigkill
"#
    )
}

/// `["a", "b"]` for a policy's `values`.
fn yaml_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// One input of an operator table: a program making syscall `nr` with
/// `args`, and whether the case's policy must kill it.
struct Probe<'a> {
    case: String,
    program: &'a std::path::Path,
    nr: u32,
    args: Vec<i64>,
    killed: bool,
}

/// Runs every probe; panics listing each whose outcome was not the one
/// expected, so a wrong operator shows all its wrong answers at once.
fn assert_outcomes(probes: &[Probe]) {
    let wrong: Vec<String> = probes
        .iter()
        .filter_map(|p| {
            let status = run_syscall_args(p.program, p.nr, &p.args);
            let right = if p.killed {
                killed_by_sigkill(status)
            } else {
                status.success()
            };
            let want = if p.killed { "killed" } else { "survived" };
            (!right).then(|| {
                format!(
                    "{}: {} args {:?}: {status:?}, want {want}",
                    p.case,
                    p.program.display(),
                    p.args
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The policies of the probes (one per case), in order.
fn cases<'a>(probes: &'a [Probe]) -> Vec<&'a str> {
    let mut names: Vec<&str> = probes.iter().map(|p| p.case.as_str()).collect();
    names.dedup();
    names
}

/// Waits until every case's policy is loaded.
fn wait_cases_enabled(h: &Harness, probes: &[Probe]) {
    for name in cases(probes) {
        h.wait_policy(name, "enabled", enabled);
    }
}

/// The kernel's counters agree: each policy enforced once per expected kill.
fn assert_enforced(h: &Harness, probes: &[Probe]) {
    for name in cases(probes) {
        let kills = probes.iter().filter(|p| p.case == name && p.killed).count();
        h.wait_policy(name, "enforced once per kill", |p| p["nenforce"] == kills);
    }
}

#[test]
fn match_binaries_operators_tell_the_test_binary_from_its_copy() {
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let copy = testbin_copy(&h.root.join("copy"));
    let path = bin.display().to_string();
    let dir = format!("{}/", bin.parent().expect("parent").display());
    let name = format!("/{}", bin.file_name().expect("name").to_string_lossy());
    // (operator, value, the one of the two it kills). A Not operator
    // matches every other binary on the host: the key confines it to us.
    let cases = [
        ("In", &path, &bin),
        ("NotIn", &path, &copy),
        ("Prefix", &dir, &bin),
        ("NotPrefix", &dir, &copy),
        ("Postfix", &name, &bin),
        ("NotPostfix", &name, &copy),
    ];
    let mut probes = vec![];
    for (i, (op, value, victim)) in cases.iter().enumerate() {
        let policy = format!("bin-{}", op.to_lowercase());
        let key = 1000 + i as i64;
        let filters = format!(
            "      matchBinaries:\n      - operator: {op}\n        values: {}\n",
            yaml_list(&[value.as_str()])
        );
        h.write_policy(
            &format!("{policy}.yaml"),
            &keyed_policy(&policy, "sys_enter_getitimer", key, &filters),
        );
        for program in [&bin, &copy] {
            probes.push(Probe {
                case: policy.clone(),
                program,
                nr: SYS_GETITIMER,
                args: vec![key],
                killed: program == *victim,
            });
        }
    }
    wait_cases_enabled(&h, &probes);
    assert_outcomes(&probes);
    assert_enforced(&h, &probes);
}

/// A process missing from the kernel's executable map (it exec'd before
/// the daemon started, or a fork flood evicted it from the LRU) is still
/// matched by matchBinaries In: the kernel then reads the task's own
/// executable. Without that, a miss would let the listed binary through.
#[test]
fn match_binaries_in_holds_for_a_process_missing_from_the_exe_map() {
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let copy = testbin_copy(&h.root.join("copy"));
    let key = 1100;
    let filters = format!(
        "      matchBinaries:\n      - operator: In\n        values: {}\n",
        yaml_list(&[bin.display().to_string().as_str()])
    );
    h.write_policy(
        "bin-missing.yaml",
        &keyed_policy("bin-missing", "sys_enter_getitimer", key, &filters),
    );
    h.wait_policy("bin-missing", "enabled", enabled);
    let task_exe = daemon_map_id(&h, "TASK_EXE");
    let args = ["args", &SYS_GETITIMER.to_string(), &key.to_string()].map(String::from);
    for (program, killed) in [(&bin, true), (&copy, false)] {
        let (status, _) = run_forgotten(task_exe, program, &args);
        assert_eq!(
            killed_by_sigkill(status),
            killed,
            "{} ({status:?}) after its TASK_EXE entry was removed",
            program.display()
        );
    }
}

/// The same for matchParentBinaries: the parent, forgotten, forks the
/// child that makes the call.
#[test]
fn match_parent_binaries_in_holds_for_a_parent_missing_from_the_exe_map() {
    let mut h = Harness::new();
    h.start_daemon();
    let bin = testbin();
    let copy = testbin_copy(&h.root.join("copy"));
    let key = 1101;
    let filters = format!(
        "      matchParentBinaries:\n      - operator: In\n        values: {}\n",
        yaml_list(&[bin.display().to_string().as_str()])
    );
    h.write_policy(
        "parent-missing.yaml",
        &keyed_policy("parent-missing", "sys_enter_getitimer", key, &filters),
    );
    h.wait_policy("parent-missing", "enabled", enabled);
    let task_exe = daemon_map_id(&h, "TASK_EXE");
    let args = ["fork", "args", &SYS_GETITIMER.to_string(), &key.to_string()].map(String::from);
    for (program, child) in [(&bin, "child-killed 9"), (&copy, "child-exited 0")] {
        let (status, out) = run_forgotten(task_exe, program, &args);
        assert!(status.success(), "{} {status:?}", program.display());
        // The child's own line, if it lived, comes first.
        assert_eq!(
            out.lines().last(),
            Some(child),
            "the child of {} after the parent's TASK_EXE entry was removed",
            program.display()
        );
    }
}

/// Starts `program wait-stdin ARGS..`, removes its process from
/// `TASK_EXE` once it is ready, lets it go on, and returns how it ended
/// with the rest of its output.
fn run_forgotten(task_exe: u32, program: &Path, args: &[String]) -> (ExitStatus, String) {
    let mut child = std::process::Command::new(program)
        .arg("wait-stdin")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the test binary");
    // Kept open to the end: the binary prints after the syscall.
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut out, &mut ready).expect("read ready");
    assert_eq!(ready.trim(), "ready");
    forget_exe(task_exe, child.id());
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, b"go\n").expect("write go");
    drop(stdin);
    let status =
        wait_child(&mut child, std::time::Duration::from_secs(10)).expect("the test binary ended");
    let mut rest = String::new();
    // A killed binary prints nothing: an empty rest is an answer too.
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    (status, rest)
}

/// Removes `pid` from the map `TASK_EXE` and checks it is gone.
fn forget_exe(map_id: u32, pid: u32) {
    let key: Vec<String> = pid.to_le_bytes().iter().map(u8::to_string).collect();
    let bpftool = |op: &str| {
        std::process::Command::new("bpftool")
            .args(["map", op, "id", &map_id.to_string(), "key"])
            .args(&key)
            .output()
            .expect("run bpftool")
    };
    let lookup = bpftool("lookup");
    assert!(
        lookup.status.success(),
        "pid {pid} not in TASK_EXE before the test: {lookup:?}"
    );
    let delete = bpftool("delete");
    assert!(delete.status.success(), "{delete:?}");
    assert!(
        !bpftool("lookup").status.success(),
        "pid {pid} still in TASK_EXE"
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
    let events = h.wait_hook_events(1);
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
    // Validate is load: a file that parses but does not compile on this
    // kernel (no such tracepoint) fails validate as it fails AddPolicy.
    let absent = h.root.join("absent.yaml");
    let text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {name: absent}\nspec:\n  tracepoints:\n  - {subsystem: syscalls, event: sys_enter_no_such_call}\n";
    std::fs::write(&absent, text).expect("write");
    let absent = absent.to_string_lossy().into_owned();
    let out = h.tetra(&["tp", "validate", &absent]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "validate passed a policy that cannot load"
    );
    // At the hook's line and column, as the parser's errors are.
    assert!(
        err.starts_with(&format!("{absent}:6:5: ")) && err.contains("sys_enter_no_such_call"),
        "{err}"
    );
    let out = h.tetra(&["tp", "add", &absent]);
    assert!(!out.status.success(), "AddPolicy runs the same compile");

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
    // The folder is watched asynchronously: a file written after the refusal
    // is listed only once the watcher has read everything before it.
    h.write_policy(
        "later.yaml",
        &kill_policy("later", SYS_GETSID, POST_ACTION, ""),
    );
    h.wait_policy("later", "enabled", enabled);
    let names: Vec<_> = h.list().iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, ["later"], "the refused add changed nothing");
    let files: Vec<_> = std::fs::read_dir(&h.policy_dir)
        .expect("policy dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files, ["later.yaml"], "no file written for it");
}

/// (operator, values, second arguments that must match and be killed,
/// second arguments that must not and survive).
type IntegerCase = (
    &'static str,
    &'static [&'static str],
    &'static [i64],
    &'static [i64],
);

/// Integer matchArgs operators, each with inputs on both sides.
const INTEGER_CASES: [IntegerCase; 9] = [
    ("Equal", &["5", "7"], &[5, 7], &[6, -5]),
    ("NotEqual", &["5", "7"], &[6, -5], &[5, 7]),
    ("GreaterThan", &["-1"], &[0, 100], &[-1, -2]),
    ("LessThan", &["1"], &[0, -1], &[1, 2]),
    ("Mask", &["0x5"], &[1, 4, 7], &[0, 2, 8]),
    ("InRange", &["-5:-1", "30:40"], &[-5, -1, 35], &[-6, 0, 41]),
    (
        "NotInRange",
        &["-5:-1", "30:40"],
        &[-6, 0, 41],
        &[-5, -1, 35],
    ),
    ("InMap", &["5", "7"], &[5, 7], &[6]),
    ("NotInMap", &["5", "7"], &[6, -5], &[5, 7]),
];

#[test]
fn integer_operators_compare_in_the_kernel() {
    let mut h = Harness::new();
    h.start_daemon();
    // Each case is its own policy on ioprio_get(which, who): `which` is the
    // case's key, the operator applies to `who` (signed: GreaterThan -1
    // holds for 0, not for -2).
    let bin = testbin();
    let mut probes = vec![];
    for (i, (op, values, hits, misses)) in INTEGER_CASES.iter().enumerate() {
        let policy = format!("int-{}", op.to_lowercase());
        let key = 2000 + i as i64;
        let filters = format!(
            "      - index: 1\n        operator: {op}\n        values: {}\n",
            yaml_list(values)
        );
        h.write_policy(
            &format!("{policy}.yaml"),
            &keyed_policy(&policy, "sys_enter_ioprio_get", key, &filters),
        );
        for (inputs, killed) in [(hits, true), (misses, false)] {
            probes.extend(inputs.iter().map(|who| Probe {
                case: policy.clone(),
                program: &bin,
                nr: SYS_IOPRIO_GET,
                args: vec![key, *who],
                killed,
            }));
        }
    }
    wait_cases_enabled(&h, &probes);
    assert_outcomes(&probes);
    assert_enforced(&h, &probes);
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
    let events = h.wait_hook_events(1);
    let ev = &events.last().expect("an event")["process_kprobe"];
    assert_eq!(ev["function_name"], "sys_getpgid");
    assert_eq!(ev["args"][0]["int_arg"], 0);
    assert_eq!(ev["action"], "KPROBE_ACTION_SIGKILL");
}

/// `call: list:NAME` hooks each syscall of the list as a syscall kprobe:
/// both listed calls are killed, an unlisted one is not, and each event
/// names the syscall that was made, not the list.
#[test]
fn a_kprobe_on_a_list_of_syscalls_enforces_on_each_and_names_it() {
    let mut h = Harness::new();
    h.start_daemon();
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: kprobe-list
spec:
  lists:
  - name: pair
    type: syscalls
    values: [sys_sysinfo, times]
  kprobes:
  - call: list:pair
    selectors:
    - matchBinaries:
      - operator: In
        values: ["{}"]
      matchActions:
      - action: Sigkill
"#,
        testbin().display()
    );
    h.write_policy("list.yaml", &policy);
    let p = h.wait_policy("kprobe-list", "enabled", enabled);
    assert_eq!(p["sensors"][0], "generic_kprobe");
    assert!(killed_by_sigkill(run_testbin(SYS_SYSINFO)));
    assert!(killed_by_sigkill(run_testbin(SYS_TIMES)));
    assert!(
        run_testbin(SYS_GETPGRP).success(),
        "getpgrp is not in the list"
    );
    h.wait_policy("kprobe-list", "counted", |p| p["nenforce"] == 2);
    let events = h.wait_hook_events(2);
    let names: Vec<&str> = events
        .iter()
        .map(|e| {
            assert_eq!(e["process_kprobe"]["action"], "KPROBE_ACTION_SIGKILL");
            e["process_kprobe"]["function_name"].as_str().unwrap_or("")
        })
        .collect();
    assert_eq!(names, ["sys_sysinfo", "times"], "{events:#?}");
}

/// A `generated_syscalls` list hooks every syscall (780 hooks, one per
/// name): the test binary dies at its first syscall, and the event names
/// that syscall.
#[test]
fn a_kprobe_on_generated_syscalls_hooks_every_syscall() {
    let mut h = Harness::new();
    h.start_daemon();
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: kprobe-all
spec:
  lists:
  - name: all
    type: generated_syscalls
  kprobes:
  - call: list:all
    selectors:
    - matchBinaries:
      - operator: In
        values: ["{}"]
      matchActions:
      - action: Sigkill
"#,
        testbin().display()
    );
    h.write_policy("all.yaml", &policy);
    h.wait_policy("kprobe-all", "enabled", enabled);
    assert!(killed_by_sigkill(run_testbin(SYS_GETPGRP)));
    let events = h.wait_hook_events(1);
    let ev = &events[0]["process_kprobe"];
    let name = ev["function_name"].as_str().unwrap_or("");
    assert!(name.starts_with("sys_"), "{ev}");
    assert_eq!(ev["policy_name"], "kprobe-all");
}

/// `tetra tp generate` prints policies that validate, against the daemon
/// and offline, and that the daemon loads (780 syscall hooks each).
#[test]
fn generated_policies_validate_and_load() {
    let mut h = Harness::new();
    h.start_daemon();
    for what in ["all-syscalls", "all-syscalls-list", "empty"] {
        let out = h.tetra(&["tp", "generate", "-m", "/nonexistent/bin", what]);
        assert!(out.status.success(), "{what}: {out:?}");
        let file = h.root.join(format!("{what}.yaml"));
        std::fs::write(&file, &out.stdout).expect("write");
        let path = file.to_string_lossy().into_owned();
        for validate in [
            &["tp", "validate", &path][..],
            &["tp", "validate", "--kernel", "all", &path],
        ] {
            let out = h.tetra(validate);
            assert!(
                out.status.success(),
                "{what} {validate:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let list = h.tetra(&[
        "tp",
        "generate",
        "-m",
        "/nonexistent/bin",
        "all-syscalls-list",
    ]);
    h.write_policy("generated.yaml", &String::from_utf8_lossy(&list.stdout));
    h.wait_policy("syscalls", "enabled", enabled);
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
    let events = h.wait_hook_events(1);
    let ev = &events.last().expect("an event")["process_uprobe"];
    assert_eq!(ev["symbol"], "tetragond_testbin_probe", "{ev}");
    assert_eq!(ev["action"], "KPROBE_ACTION_SIGKILL");

    // Deleting the policy detaches the uprobe.
    std::fs::remove_file(h.policy_dir.join("uprobe.yaml")).expect("delete");
    h.wait_policy_gone("uprobe-probe");
    assert!(run("42").success(), "no uprobe after the policy is gone");
}
