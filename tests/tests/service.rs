//! The daemon as a system service: access control with the shipped bus
//! policy, run-time settings that survive restarts, the rest of the API.

mod common;

use std::{
    path::Path,
    process::{Command, Output},
};

use common::*;

/// `busctl call` on the Manager, as root or as nobody.
fn manager_call_as(
    h: &Harness,
    nobody: bool,
    method: &str,
    signature: &str,
    args: &[&str],
) -> Output {
    let address = format!("--address={}", h.bus_address);
    let mut all = vec![
        address.as_str(),
        "call",
        "org.tetragond.Tetragond1",
        "/org/tetragond/Tetragond1",
        "org.tetragond.Tetragond1.Manager",
        method,
    ];
    if !signature.is_empty() {
        all.push(signature);
    }
    all.extend_from_slice(args);
    let busctl = Path::new("/usr/bin/busctl");
    if nobody {
        as_nobody(busctl, &all)
    } else {
        Command::new(busctl).args(&all).output().expect("busctl")
    }
}

fn manager_call(h: &Harness, method: &str, signature: &str, args: &[&str]) -> Output {
    manager_call_as(h, false, method, signature, args)
}

fn busctl_as_nobody(h: &Harness, method: &str, signature: &str, args: &[&str]) -> Output {
    manager_call_as(h, true, method, signature, args)
}

#[test]
fn shipped_bus_policy_lets_root_change_and_others_only_read() {
    let mut h = Harness::with_bus(BusKind::SystemLike);
    h.start_daemon();
    h.write_policy(
        "ac.yaml",
        &kill_policy("ac", SYS_GETPGRP, SIGKILL_ACTION, ""),
    );
    h.wait_policy("ac", "enabled", enabled);

    let tetra = release_bin("tetra");
    let out = as_nobody(
        &tetra,
        &["--bus", &h.bus_address, "tp", "list", "-o", "json"],
    );
    assert!(
        out.status.success(),
        "nobody may list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ac\""));
    let out = busctl_as_nobody(&h, "GetPolicy", "ss", &["", "ac"]);
    assert!(
        out.status.success(),
        "nobody may read one policy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (method, sig, args) in [
        ("SetMode", "sss", vec!["", "ac", "monitor"]),
        ("ResetMode", "ss", vec!["", "ac"]),
        ("DisablePolicy", "ss", vec!["", "ac"]),
        ("DeletePolicy", "ss", vec!["", "ac"]),
        ("AddPolicy", "ss", vec!["kind: TracingPolicy", "enforce"]),
        ("EnablePolicy", "ss", vec!["", "ac"]),
        ("Reload", "", vec![]),
    ] {
        let out = busctl_as_nobody(&h, method, sig, &args);
        assert!(!out.status.success(), "nobody must not call {method}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("denied") || err.contains("Access"),
            "{method}: {err}"
        );
    }
    let p = h.policy("ac").expect("still listed");
    assert_eq!(
        (p["mode"].as_str(), p["state"].as_str()),
        (Some("enforce"), Some("enabled")),
        "nothing changed"
    );
    assert!(killed_by_sigkill(run_testbin(SYS_GETPGRP)));

    assert!(
        manager_call(&h, "SetMode", "sss", &["", "ac", "monitor"])
            .status
            .success(),
        "root may"
    );
    assert!(manager_call(&h, "Reload", "", &[]).status.success());
}

#[test]
fn daemon_refuses_mutations_from_non_root_even_on_an_open_bus() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "open.yaml",
        &kill_policy("open", SYS_GETPGRP, SIGKILL_ACTION, ""),
    );
    h.wait_policy("open", "enabled", enabled);
    let out = busctl_as_nobody(&h, "SetMode", "sss", &["", "open", "monitor"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only root may"), "{err}");
    let out = as_nobody(
        &release_bin("tetra"),
        &["--bus", &h.bus_address, "tp", "disable", "open"],
    );
    assert!(!out.status.success());
    assert_eq!(h.policy("open").expect("listed")["mode"], "enforce");
}

#[test]
fn run_time_settings_survive_a_restart() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "keep.yaml",
        &kill_policy("keep", SYS_TIMES, SIGKILL_ACTION, ""),
    );
    h.wait_policy("keep", "enabled", enabled);
    assert!(h.set_mode("keep", "monitor").status.success());
    h.stop_daemon();
    h.start_daemon();
    let p = h.wait_policy("keep", "enabled", enabled);
    assert_eq!(
        (p["mode"].as_str(), p["mode_source"].as_str()),
        (Some("monitor"), Some("runtime"))
    );
    assert!(
        run_testbin(SYS_TIMES).success(),
        "still monitor after restart"
    );

    // ResetMode: the policy's own mode (enforce) applies again, and is stored so.
    let out = h.tetra(&["tp", "reset-mode", "keep"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = h.policy("keep").expect("listed");
    assert_eq!(
        (p["mode"].as_str(), p["mode_source"].as_str()),
        (Some("enforce"), Some("policy"))
    );
    assert!(killed_by_sigkill(run_testbin(SYS_TIMES)));

    // Disable is stored too.
    assert!(h.tetra(&["tp", "disable", "keep"]).status.success());
    h.wait_policy("keep", "disabled", |p| p["state"] == "disabled");
    assert!(
        run_testbin(SYS_TIMES).success(),
        "disabled policies do not enforce"
    );
    h.stop_daemon();
    h.start_daemon();
    h.wait_policy("keep", "disabled after restart", |p| {
        p["state"] == "disabled"
    });
    assert!(h.tetra(&["tp", "enable", "keep"]).status.success());
    h.wait_policy("keep", "enabled", enabled);
    assert!(killed_by_sigkill(run_testbin(SYS_TIMES)));

    // Deleting the policy drops what was stored for it, after a grace that
    // lets an editor's save or delete-then-create keep it (failclosed.rs).
    assert!(h.set_mode("keep", "monitor").status.success());
    std::fs::remove_file(h.policy_dir.join("keep.yaml")).expect("delete");
    h.wait_policy_gone("keep");
    let stored = || std::fs::read_to_string(h.state_dir.join("runtime.json")).expect("state file");
    assert!(
        stored().contains("keep"),
        "kept during the grace: {}",
        stored()
    );
    let deadline = std::time::Instant::now() + WAIT;
    while stored().contains("keep") {
        assert!(std::time::Instant::now() < deadline, "{}", stored());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn manager_properties_and_get_policy() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "props.yaml",
        &kill_policy("props", SYS_GETPGRP, POST_ACTION, ""),
    );
    h.wait_policy("props", "enabled", enabled);
    let prop = |name: &str| {
        let out = h.busctl(&[
            "get-property",
            "org.tetragond.Tetragond1",
            "/org/tetragond/Tetragond1",
            "org.tetragond.Tetragond1.Manager",
            name,
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(prop("Version").starts_with("s \""));
    assert!(prop("PolicyDirectory").contains("policies.d"));
    assert!(prop("KernelFeatures").contains("tracepoints=yes"));
    assert_eq!(prop("PoliciesEnabled"), "u 1");
    let out = manager_call(&h, "GetPolicy", "ss", &["", "props"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"props\""));
    let out = h.tetra(&["status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 enabled"));
    let introspection = h.busctl(&[
        "introspect",
        "org.tetragond.Tetragond1",
        "/org/tetragond/Tetragond1",
    ]);
    let text = String::from_utf8_lossy(&introspection.stdout);
    for member in [
        ".SetMode",
        ".ResetMode",
        ".EnablePolicy",
        ".DisablePolicy",
        ".GetPolicy",
        ".KernelFeatures",
    ] {
        assert!(
            text.contains(member),
            "introspection lacks {member}:\n{text}"
        );
    }
}

#[test]
fn policy_objects_appear_change_and_vanish() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "obj.yaml",
        &kill_policy("obj", SYS_GETPGRP, SIGKILL_ACTION, ""),
    );
    let id = h.wait_policy("obj", "enabled", enabled)["id"]
        .as_u64()
        .expect("id");
    let path = format!("/org/tetragond/Tetragond1/policy/{id}");
    let get = |prop: &str| {
        let out = h.busctl(&[
            "get-property",
            "org.tetragond.Tetragond1",
            &path,
            "org.tetragond.Tetragond1.Policy",
            prop,
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let deadline = std::time::Instant::now() + WAIT;
    while get("Name") != "s \"obj\"" {
        assert!(
            std::time::Instant::now() < deadline,
            "policy object never published at {path}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(get("State"), "s \"enabled\"");
    assert_eq!(get("Mode"), "s \"enforce\"");

    let mut monitor = std::process::Command::new("gdbus")
        .args([
            "monitor",
            "--address",
            &h.bus_address,
            "--dest",
            "org.tetragond.Tetragond1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gdbus (libglib2.0-bin)");
    // Its lines, as they come: it subscribes before it says who owns the
    // name, and the signal may take a while on a loaded machine.
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = monitor.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut signals = String::new();
    let mut wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + WAIT;
        while !signals.contains(what) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    signals.push_str(&line);
                    signals.push('\n');
                }
                Err(_) => return false,
            }
        }
        true
    };
    assert!(wait_for("is owned by"), "gdbus monitor never started");
    assert!(h.set_mode("obj", "monitor").status.success());
    let changed = wait_for("'Mode': <'monitor'>");
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert!(
        changed && signals.contains("PropertiesChanged"),
        "PropertiesChanged for Mode:\n{signals}"
    );
    assert_eq!(get("ModeSource"), "s \"runtime\"");

    std::fs::remove_file(h.policy_dir.join("obj.yaml")).expect("delete");
    let deadline = std::time::Instant::now() + WAIT;
    while !get("Name").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "policy object still at {path}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A property read waits on the main loop while zbus holds its object tree
/// for reading; the main loop must never wait for that tree (it did, to
/// publish the policy objects of a rescan: `tetra status` during a rescan
/// then hung the bus side of the daemon for good).
#[test]
fn status_answers_while_a_rescan_publishes_policy_objects() {
    let mut h = Harness::new();
    h.start_daemon();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let askers: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            let bus = h.bus_address.clone();
            std::thread::spawn(move || {
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // A property read, as `tetra status` makes them.
                    let mut child = Command::new("busctl")
                        .arg(format!("--address={bus}"))
                        .args(["--timeout=60", "get-property", "org.tetragond.Tetragond1"])
                        .args([
                            "/org/tetragond/Tetragond1",
                            "org.tetragond.Tetragond1.Manager",
                        ])
                        .arg("Version")
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .expect("run busctl");
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                    while child.try_wait().expect("wait for tetra").is_none() {
                        if std::time::Instant::now() > deadline {
                            let _ = child.kill();
                            return Err(answered);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    answered += 1;
                }
                Ok(answered)
            })
        })
        .collect();
    // One rescan that installs many policies: status calls made meanwhile
    // wait on the main loop, which then publishes their objects.
    for i in 0..100 {
        h.write_policy(
            &format!("many-{i}.yaml"),
            &kill_policy(&format!("many-{i}"), SYS_GETPGRP, SIGKILL_ACTION, ""),
        );
    }
    // Long enough for the rescan; the list is asked for only after (a
    // hung daemon would hang it too).
    std::thread::sleep(std::time::Duration::from_secs(10));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for asker in askers {
        match asker.join().expect("asker") {
            Ok(answered) => assert!(answered > 0, "no status call was made"),
            Err(answered) => panic!("a property read hung after {answered} answers"),
        }
    }
    h.wait_policy("many-99", "enabled", enabled);
}
