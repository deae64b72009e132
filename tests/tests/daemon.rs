//! End-to-end: the real daemon, the real kernel programs, a real bus.
//! Each test uses its own syscall so a policy of one cannot touch another.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::*;

#[test]
fn sigkill_policy_kills_counts_and_posts() {
    let mut h = Harness::new();
    h.start_daemon();
    let started = Instant::now();
    h.write_policy(
        "kill.yaml",
        &kill_policy("kill-sysinfo", SYS_SYSINFO, SIGKILL_ACTION, ""),
    );
    h.wait_policy("kill-sysinfo", "enabled", enabled);
    eprintln!(
        "policy listed as enabled {:?} after the file appeared",
        started.elapsed()
    );

    let status = run_testbin(SYS_SYSINFO);
    assert!(
        killed_by_sigkill(status),
        "test binary must die by SIGKILL, ended {status:?}"
    );
    assert!(
        run_testbin(SYS_GETPGRP).success(),
        "other syscalls are untouched"
    );

    let p = h.wait_policy("kill-sysinfo", "counted", |p| {
        p["nenforce"].as_u64() >= Some(1)
    });
    assert!(p["npost"].as_u64() >= Some(1), "{p}");
    assert_eq!(p["nmonitor"], 0);
    assert_eq!(p["mode"], "enforce");
    assert_eq!(p["sensors"][0], "generic_tracepoint");
    // The policy's own slot and entries, not a share of the programs.
    let own = p["kernel_memory"].as_u64().unwrap_or(0);
    assert!(own > 0 && own < 100_000, "{p}");
    let status = String::from_utf8_lossy(&h.tetra(&["status"]).stdout).to_string();
    let shared = status
        .lines()
        .find_map(|l| l.strip_prefix("kernel memory:"))
        .unwrap_or_else(|| panic!("no kernel memory line in:\n{status}"));
    assert!(shared.contains(" MB (programs and maps"), "{status}");

    let events = wait_for_events(&h, |e| {
        e["process_tracepoint"]["policy_name"] == "kill-sysinfo"
    });
    let ev = &events[0]["process_tracepoint"];
    assert_eq!(ev["action"], "KPROBE_ACTION_SIGKILL");
    assert_eq!(ev["enforced"], true);
    assert_eq!(ev["subsys"], "raw_syscalls");
    assert_eq!(ev["process"]["binary"], testbin().display().to_string());
    // Killed at its first syscall, the process was gone before /proc could
    // be read: its arguments come from the kernel's exec record.
    assert_eq!(ev["process"]["arguments"], "syscall 99", "{ev}");
    assert_eq!(
        ev["args"][0]["syscall_id"],
        serde_json::json!({"id": SYS_SYSINFO, "abi": "x64"})
    );
    assert!(events[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')));
}

fn wait_for_events(
    h: &Harness,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let events: Vec<_> = h.events().into_iter().filter(|e| pred(e)).collect();
        if !events.is_empty() {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no matching event in {}",
            h.events_file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn set_mode_switches_in_kernel_without_reload() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "kill.yaml",
        &kill_policy("kill-times", SYS_TIMES, SIGKILL_ACTION, ""),
    );
    h.wait_policy("kill-times", "enabled", enabled);
    assert!(killed_by_sigkill(run_testbin(SYS_TIMES)));
    let progs_before = h.daemon_prog_ids();
    assert!(!progs_before.is_empty());

    let out = h.set_mode("kill-times", "monitor");
    assert!(
        out.status.success(),
        "SetMode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = run_testbin(SYS_TIMES);
    assert!(
        status.success(),
        "monitor mode must not kill, ended {status:?}"
    );
    let p = h.wait_policy("kill-times", "monitored", |p| {
        p["nmonitor"].as_u64() >= Some(1)
    });
    assert_eq!(p["mode"], "monitor");
    assert_eq!(p["mode_source"], "runtime");
    assert_eq!(p["nenforce"], 1);
    let events = wait_for_events(&h, |e| e["process_tracepoint"]["enforced"] == false);
    assert_eq!(events[0]["process_tracepoint"]["mode"], "monitor");

    assert!(h.set_mode("kill-times", "enforce").status.success());
    assert!(killed_by_sigkill(run_testbin(SYS_TIMES)));
    assert_eq!(h.daemon_prog_ids(), progs_before, "no program was reloaded");
}

#[test]
fn sidecar_overrides_policy_and_runtime_overrides_sidecar() {
    let mut h = Harness::new();
    h.start_daemon();
    std::fs::write(h.policy_dir.join("modes.toml"), "mode = \"monitor\"\n").expect("sidecar");
    let options = "  options:\n  - name: policy-mode\n    value: enforce\n";
    h.write_policy(
        "modes.yaml",
        &kill_policy("modes", SYS_GETPGID, SIGKILL_ACTION, options),
    );
    let p = h.wait_policy("modes", "enabled", enabled);
    assert_eq!(
        (p["mode"].as_str(), p["mode_source"].as_str()),
        (Some("monitor"), Some("sidecar"))
    );
    assert!(
        run_testbin(SYS_GETPGID).success(),
        "sidecar monitor wins over the policy's enforce"
    );

    assert!(h.set_mode("modes", "enforce").status.success());
    let p = h.policy("modes").expect("listed");
    assert_eq!(
        (p["mode"].as_str(), p["mode_source"].as_str()),
        (Some("enforce"), Some("runtime"))
    );
    assert!(killed_by_sigkill(run_testbin(SYS_GETPGID)));

    // The run-time mode survives an edit of the policy.
    h.write_policy(
        "modes.yaml",
        &kill_policy("modes", SYS_GETPGID, SIGKILL_ACTION, "").replace("Equal", "InMap"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let p = h.policy("modes").expect("listed");
    assert_eq!(p["mode_source"], "runtime", "{p}");
    assert!(killed_by_sigkill(run_testbin(SYS_GETPGID)));
}

#[test]
fn post_only_policy_is_monitor_only() {
    let mut h = Harness::new();
    h.start_daemon();
    std::fs::write(h.policy_dir.join("watch.toml"), "mode = \"enforce\"\n").expect("sidecar");
    h.write_policy(
        "watch.yaml",
        &kill_policy("watch-getsid", SYS_GETSID, POST_ACTION, ""),
    );
    let p = h.wait_policy("watch-getsid", "enabled", enabled);
    assert_eq!(p["mode"], "monitor_only");
    assert!(
        h.log().contains(
            "Enforcement actions are not configured for this policy, forcing monitor_only mode"
        ),
        "warning logged:\n{}",
        h.log()
    );
    let out = h.set_mode("watch-getsid", "monitor");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot set policy mode on a policy that is monitor only"),
        "{err}"
    );
    let out = h.tetra(&["tp", "set-mode", "watch-getsid", "enforce"]);
    assert!(!out.status.success());
    assert!(run_testbin(SYS_GETSID).success());
    h.wait_policy("watch-getsid", "posted", |p| p["npost"].as_u64() >= Some(1));
}

#[test]
fn api_errors_carry_their_dbus_names() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "watch.yaml",
        &kill_policy("watch-only", SYS_GETSID, POST_ACTION, ""),
    );
    h.wait_policy("watch-only", "enabled", enabled);
    let call = |name: &str, mode: &str| {
        let out = std::process::Command::new("dbus-send")
            .arg(format!("--bus={}", h.bus_address))
            .args([
                "--print-reply",
                "--dest=org.tetragond.Tetragond1",
                "/org/tetragond/Tetragond1",
            ])
            .arg("org.tetragond.Tetragond1.Manager.SetMode")
            .args([
                "string:",
                &format!("string:{name}"),
                &format!("string:{mode}"),
            ])
            .output()
            .expect("dbus-send (apt-get install dbus-bin)");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(call("watch-only", "enforce").contains("org.tetragond.Tetragond1.Error.MonitorOnly"));
    assert!(call("no-such-policy", "enforce").contains("org.tetragond.Tetragond1.Error.NotFound"));
    assert!(call("watch-only", "bogus").contains("org.tetragond.Tetragond1.Error.InvalidMode"));
}

#[test]
fn broken_files_are_reported_and_change_nothing_else() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "good.yaml",
        &kill_policy("good", SYS_GETPRIORITY, SIGKILL_ACTION, ""),
    );
    h.wait_policy("good", "enabled", enabled);

    let broken = kill_policy("broken", SYS_GETPGRP, SIGKILL_ACTION, "")
        .replace("    event: sys_enter", "    event: sys_enter\n    bogus: 1");
    h.write_policy("broken.yaml", &broken);
    let p = h.wait_policy("broken", "load_error", |p| p["state"] == "load_error");
    let err = p["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("broken.yaml:9:5"),
        "error names file:line:column: {err}"
    );
    assert!(err.contains("bogus"), "{err}");
    assert!(
        killed_by_sigkill(run_testbin(SYS_GETPRIORITY)),
        "the good policy still enforces"
    );

    // Breaking the good file keeps its last good version enforced.
    h.write_policy(
        "good.yaml",
        &kill_policy("good", SYS_GETPRIORITY, SIGKILL_ACTION, "")
            .replace("kind: TracingPolicy", "kind: Nope"),
    );
    let p = h.wait_policy("good", "load_error", |p| p["state"] == "load_error");
    assert!(
        p["error"].as_str().unwrap_or_default().contains("Nope"),
        "{p}"
    );
    assert!(
        killed_by_sigkill(run_testbin(SYS_GETPRIORITY)),
        "previous version still enforced"
    );
}

#[test]
fn duplicate_policy_names_the_file_holding_it() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "a.yaml",
        &kill_policy("twice", SYS_GETPRIORITY, POST_ACTION, ""),
    );
    h.wait_policy("twice", "enabled", enabled);
    h.write_policy(
        "b.yaml",
        &kill_policy("twice", SYS_GETPRIORITY, POST_ACTION, ""),
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = h.list();
        if let Some(row) = rows.iter().find(|p| p["state"] == "load_error") {
            let err = row["error"].as_str().unwrap_or_default();
            assert!(err.contains("a.yaml"), "{err}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "duplicate not reported: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rename_over_edits_leave_no_gap_and_delete_unloads() {
    let mut h = Harness::new();
    h.start_daemon();
    let idle_attachments = h.daemon_attachments();
    let policy = kill_policy("no-gap", SYS_SCHED_GETSCHEDULER, SIGKILL_ACTION, "");
    h.write_policy("gap.yaml", &policy);
    h.wait_policy("no-gap", "enabled", enabled);
    assert!(
        h.daemon_attachments() > idle_attachments,
        "the tracepoint is attached"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (runs, survivors) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let hammer = {
        let (stop, runs, survivors) = (stop.clone(), runs.clone(), survivors.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                runs.fetch_add(1, Ordering::SeqCst);
                if !killed_by_sigkill(run_testbin(SYS_SCHED_GETSCHEDULER)) {
                    survivors.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    for i in 0..20 {
        // Each edit changes the policy (an annotation), so each is a real
        // reload.
        let edited = policy.replace(
            "metadata:\n",
            &format!("metadata:\n  annotations: {{edit: \"{i}\"}}\n"),
        );
        h.write_policy("gap.yaml", &edited);
        std::thread::sleep(Duration::from_millis(120));
    }
    stop.store(true, Ordering::SeqCst);
    hammer.join().expect("hammer thread");
    let p = h.policy("no-gap").expect("listed");
    assert_eq!(p["state"], "enabled", "edits load: {p}");
    assert!(
        runs.load(Ordering::SeqCst) > 20,
        "the loop ran during the edits"
    );
    assert_eq!(
        survivors.load(Ordering::SeqCst),
        0,
        "every attempt during 20 edits was killed"
    );

    std::fs::remove_file(h.policy_dir.join("gap.yaml")).expect("delete");
    h.wait_policy_gone("no-gap");
    let status = run_testbin(SYS_SCHED_GETSCHEDULER);
    assert!(
        status.success(),
        "unloaded policy no longer kills: {status:?}\n{}",
        h.log()
    );
    assert_eq!(
        h.daemon_attachments(),
        idle_attachments,
        "its tracepoint attachment is gone"
    );
}

#[test]
fn sighup_reload_and_sd_notify_protocol() {
    let mut h = Harness::new();
    h.start_daemon();
    let ready = h
        .notifications
        .iter()
        .find(|m| m.contains("READY=1"))
        .cloned()
        .unwrap_or_default();
    assert!(ready.contains("STATUS="), "READY carries a status: {ready}");

    h.write_policy(
        "hup.yaml",
        &kill_policy("hup", SYS_GETPRIORITY, POST_ACTION, ""),
    );
    h.wait_policy("hup", "enabled", enabled);
    h.signal(libc::SIGHUP);
    let reloading = h.wait_notify("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let ready = h.wait_notify("READY=1");
    assert!(ready.contains("1 policies enabled"), "{ready}");

    let progs = h.daemon_prog_ids();
    let maps = fdinfo_values(h.daemon_pid(), "map_id:");
    assert!(!maps.is_empty());
    let status = h.stop_daemon();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    h.wait_notify("STOPPING=1");
    for id in progs {
        assert!(!prog_exists(id), "program {id} still loaded after stop");
    }
    // Maps are freed once the last reference goes, which the kernel does lazily.
    let deadline = Instant::now() + WAIT;
    while maps.iter().any(|id| map_exists(*id)) {
        assert!(Instant::now() < deadline, "maps still loaded after stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn prog_exists(id: u32) -> bool {
    aya::programs::loaded_programs()
        .flatten()
        .any(|p| p.id() == id)
}

fn map_exists(id: u32) -> bool {
    aya::maps::loaded_maps().flatten().any(|m| m.id() == id)
}

#[test]
fn tetra_list_prints_tetragons_columns() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "cols.yaml",
        &kill_policy("columns", SYS_GETPRIORITY, SIGKILL_ACTION, ""),
    );
    h.wait_policy("columns", "enabled", enabled);
    let out = h.tetra(&["tracingpolicy", "list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID",
            "NAME",
            "DOMAIN",
            "STATE",
            "FILTERID",
            "NAMESPACE",
            "SENSORS",
            "KERNELMEMORY",
            "MODE",
            "NPOST",
            "NENFORCE",
            "NMONITOR"
        ]
    );
    let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
    assert_eq!(
        &row[1..7],
        [
            "columns",
            "static",
            "enabled",
            "0",
            "(global)",
            "generic_tracepoint"
        ],
        "{text}"
    );
    assert!(row[8].ends_with("B"), "memory unit: {text}");
    assert_eq!(row[9], "enforce", "{text}");
    let alias = h.tetra(&["tp", "list"]);
    assert_eq!(alias.stdout, out.stdout);
}

/// Entries of BPF map `id` (`bpftool map dump`).
fn map_entries(id: u32) -> usize {
    let out = std::process::Command::new("bpftool")
        .args(["-j", "map", "dump", "id", &id.to_string()])
        .output()
        .expect("bpftool");
    let dump: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool's JSON");
    dump.as_array().map_or(0, Vec::len)
}

/// This kernel has the BPF memory allocator (Linux 6.1 on): the hook slots
/// are a hash map holding only the slots in use. A removed policy's slot is
/// given back at the next swap of the dispatch lists, not at once.
#[test]
fn hook_slots_take_kernel_memory_only_while_in_use() {
    let mut h = Harness::new();
    h.start_daemon();
    let hooks = daemon_map_id(&h, "HOOKS");
    let show = std::process::Command::new("bpftool")
        .args(["map", "show", "id", &hooks.to_string()])
        .output()
        .expect("bpftool");
    let show = String::from_utf8_lossy(&show.stdout).to_string();
    assert!(show.contains(": hash "), "HOOKS is a hash map here: {show}");
    assert_eq!(map_entries(hooks), 0, "no policy, no slot");
    for (i, name) in ["slots-a", "slots-b", "slots-c"].iter().enumerate() {
        let policy = kill_policy(name, 230 + i as u32, POST_ACTION, "");
        h.write_policy(&format!("{name}.yaml"), &policy);
        h.wait_policy(name, "enabled", enabled);
    }
    assert_eq!(map_entries(hooks), 3);
    for name in ["slots-a", "slots-b"] {
        std::fs::remove_file(h.policy_dir.join(format!("{name}.yaml"))).expect("rm");
        h.wait_policy_gone(name);
    }
    // The next change swaps the lists: the two freed slots go then.
    h.write_policy(
        "slots-d.yaml",
        &kill_policy("slots-d", 233, POST_ACTION, ""),
    );
    h.wait_policy("slots-d", "enabled", enabled);
    assert_eq!(map_entries(hooks), 2, "slots-c and slots-d");
}
