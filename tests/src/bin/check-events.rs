//! Checks the events a QEMU guest of scripts/vm-hook-test wrote (extracted
//! from its serial log into target/vm-hook-<kernel>.events.jsonl): every
//! line against docs/events.schema.json, and the events of the LSM, kprobe
//! and uprobe cases of tests/vm/hooks/guest.sh for their process, parent,
//! arguments, policy, action, mode and `enforced`.
//!
//!   check-events [--schema docs/events.schema.json] [--refused POLICY].. EVENTS.jsonl
//!
//! `--refused POLICY`: the guest saw POLICY refused, as this kernel must
//! refuse it (no BPF LSM, no uprobe cookies): its check then asserts that
//! no event of it exists.
//!
//! Prints one line per check in the guest's format, which the host script
//! counts with the guest's own:
//!   GUEST-TEST events-<check> PASS (<what was seen>)
//!   GUEST-TEST events-<check> FAIL <what is wrong>
//! Exits 1 when a check failed, 2 on bad usage or an unreadable file.

#[path = "../../tests/common/schema.rs"]
mod schema;
#[path = "../../tests/common/tetragon.rs"]
mod tetragon;

use std::{path::PathBuf, process::ExitCode};

use serde_json::Value;

/// The test binary as the guest installs it (scripts/vm-hook-test).
const TESTBIN: &str = "/usr/bin/tetragond-testbin";

/// One hook event of the file: its key (`process_lsm`, ...) and body.
struct Hook<'a> {
    kind: &'a str,
    body: &'a Value,
}

fn hooks(events: &[Value]) -> Vec<Hook<'_>> {
    events
        .iter()
        .filter_map(|ev| {
            let obj = ev.as_object()?;
            let (kind, body) = obj.iter().find(|(k, _)| {
                k.starts_with("process_") && *k != "process_exec" && *k != "process_exit"
            })?;
            Some(Hook { kind, body })
        })
        .collect()
}

/// What one guest case's events must say.
struct Expect {
    check: &'static str,
    policy: &'static str,
    kind: &'static str,
    /// `function_name` (kprobe, LSM) or `symbol` (uprobe).
    function: &'static str,
    /// `action`, or for a return probe `return_action`.
    action: &'static str,
    /// `process.arguments` of the triggering testbin run.
    arguments: &'static str,
    /// The argument object the event must carry (a subset match).
    arg: Value,
    /// The modes the events come in, each at least once: `enforce` says
    /// `"enforced": true`, the others false.
    modes: &'static [&'static str],
    /// The `return` object a return probe's event must carry (a subset
    /// match); `None`: no `return` at all.
    ret: Option<Value>,
}

/// A guest case run in enforce mode and again in monitor mode.
const BOTH: &[&str] = &["enforce", "monitor"];

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `want` is a subset of `have`: each key of an object, recursively.
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv))),
        _ => have == want,
    }
}

/// Problems of one event that belongs to the case (by policy name).
fn problems(e: &Expect, h: &Hook<'_>) -> Vec<String> {
    let b = h.body;
    let mut bad = vec![];
    if h.kind != e.kind {
        bad.push(format!("kind {} (want {})", h.kind, e.kind));
    }
    let function = if e.kind == "process_uprobe" {
        &b["symbol"]
    } else {
        &b["function_name"]
    };
    if function != e.function {
        bad.push(format!("function {} (want {})", s(function), e.function));
    }
    // A return probe's enforcement is its return's (matchReturnActions).
    let action = if e.ret.is_some() {
        "return_action"
    } else {
        "action"
    };
    if b[action] != e.action {
        bad.push(format!("{action} {} (want {})", s(&b[action]), e.action));
    }
    let p = &b["process"];
    if p["binary"] != TESTBIN {
        bad.push(format!(
            "process.binary {} (want {TESTBIN})",
            s(&p["binary"])
        ));
    }
    if p["arguments"] != e.arguments {
        bad.push(format!(
            "process.arguments {} (want {:?})",
            s(&p["arguments"]),
            e.arguments
        ));
    }
    let parent = &b["parent"];
    if !parent.is_object() {
        bad.push("no parent".into());
    } else {
        if parent["exec_id"] != p["parent_exec_id"] || parent["exec_id"].is_null() {
            bad.push(format!(
                "parent.exec_id {} is not process.parent_exec_id {}",
                s(&parent["exec_id"]),
                s(&p["parent_exec_id"])
            ));
        }
        if parent["pid"].as_u64().unwrap_or(0) == 0
            || parent["binary"].as_str().unwrap_or("").is_empty()
        {
            bad.push(format!("parent without pid or binary: {parent}"));
        }
    }
    let args = b["args"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if !args.iter().any(|a| contains(a, &e.arg)) {
        bad.push(format!("args {} hold no {}", b["args"], e.arg));
    }
    match (&e.ret, b.get("return")) {
        (Some(want), Some(have)) if contains(have, want) => {}
        (None, None) => {}
        (want, have) => bad.push(format!(
            "return {} (want {})",
            have.map_or("none".into(), Value::to_string),
            want.as_ref().map_or("none".into(), Value::to_string)
        )),
    }
    let mode = b["mode"].as_str().unwrap_or("-");
    if !e.modes.contains(&mode) {
        bad.push(format!("mode {mode} (want one of {:?})", e.modes));
    }
    let want_enforced = mode == "enforce";
    if b["enforced"] != want_enforced {
        bad.push(format!(
            "mode {mode} but enforced is {} (want {want_enforced})",
            s(&b["enforced"])
        ));
    }
    bad
}

/// The case's events: one in enforce mode, one in monitor mode, each
/// right in every field checked.
/// The hook events of `policy`.
fn of_policy<'a>(hooks: &'a [Hook<'a>], policy: &str) -> Vec<&'a Hook<'a>> {
    hooks
        .iter()
        .filter(|h| h.body["policy_name"] == policy)
        .collect()
}

/// A policy the kernel could not serve (the guest checked its refusal):
/// none of its events may exist.
fn check_refused(e: &Expect, hooks: &[Hook<'_>]) -> Result<String, String> {
    match of_policy(hooks, e.policy).len() {
        0 => Ok(format!(
            "policy {} was refused on this kernel; no event of it, as expected",
            e.policy
        )),
        n => Err(format!(
            "policy {} was refused on this kernel, yet {n} events of it",
            e.policy
        )),
    }
}

fn check_case(e: &Expect, hooks: &[Hook<'_>]) -> Result<String, String> {
    let mine = of_policy(hooks, e.policy);
    if mine.is_empty() {
        return Err(format!("no event of policy {}", e.policy));
    }
    let mut errs = vec![];
    // Each event of the policy must be right: one from the run that must
    // not match would be a bug too.
    for h in &mine {
        let p = problems(e, h);
        if !p.is_empty() {
            errs.push(format!(
                "{}: {} ({})",
                s(&h.body["mode"]),
                p.join(", "),
                h.body["process"]["arguments"]
            ));
        }
    }
    let mut seen = vec![];
    for mode in e.modes {
        let n = mine.iter().filter(|h| h.body["mode"] == *mode).count();
        if n == 0 {
            errs.push(format!("no {mode}-mode event of policy {}", e.policy));
        }
        seen.push(format!("{n} {mode}"));
    }
    if errs.is_empty() {
        Ok(format!("{} {}: {}", e.kind, e.policy, seen.join(", ")))
    } else {
        Err(errs.join("; "))
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut schema_path = PathBuf::from("docs/events.schema.json");
    let mut file = None;
    // Policies the guest saw refused, as it must be on this kernel.
    let mut refused: Vec<String> = vec![];
    while let Some(a) = args.next() {
        match a.as_str() {
            "--schema" => match args.next() {
                Some(p) => schema_path = p.into(),
                None => return usage(),
            },
            "--refused" => match args.next() {
                Some(p) => refused.push(p),
                None => return usage(),
            },
            _ if file.is_none() && !a.starts_with('-') => file = Some(PathBuf::from(a)),
            _ => return usage(),
        }
    }
    let Some(file) = file else { return usage() };
    if !schema_path.is_file() {
        eprintln!("check-events: no schema at {}", schema_path.display());
        return ExitCode::from(2);
    }
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("check-events: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let schema = schema::Schema::load(&schema_path);

    let mut results: Vec<(&str, Result<String, String>)> = vec![];

    // 1. Every line is JSON and matches the schema.
    let mut events = vec![];
    let mut errs = vec![];
    let mut lines = 0;
    for (n, line) in text.lines().enumerate() {
        lines += 1;
        match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                let mut e = schema.validate(&v);
                e.extend(tetragon::shape_errors(&v));
                if !e.is_empty() {
                    errs.push(format!("line {}: {}", n + 1, e.join(" / ")));
                }
                events.push(v);
            }
            Err(e) => errs.push(format!("line {}: not JSON ({e})", n + 1)),
        }
    }
    let kinds = |k: &str| events.iter().filter(|v| v.get(k).is_some()).count();
    results.push((
        "events-schema",
        if lines == 0 {
            Err(format!("{} holds no events", file.display()))
        } else if errs.is_empty() {
            Ok(format!(
                "{lines} lines: {} lsm, {} kprobe, {} uprobe, {} tracepoint, {} exec, {} exit",
                kinds("process_lsm"),
                kinds("process_kprobe"),
                kinds("process_uprobe"),
                kinds("process_tracepoint"),
                kinds("process_exec"),
                kinds("process_exit")
            ))
        } else {
            let shown: Vec<&String> = errs.iter().take(3).collect();
            Err(format!(
                "{} of {lines} lines do not match: {shown:?}",
                errs.len()
            ))
        },
    ));

    // 2. The hook events of the guest's cases.
    let hooks = hooks(&events);
    let cases = [
        Expect {
            check: "events-lsm-file-open",
            policy: "lsm-file-open",
            kind: "process_lsm",
            function: "file_open",
            action: "KPROBE_ACTION_OVERRIDE",
            arguments: "open /tmp/secret/f",
            arg: serde_json::json!({"file_arg": {"path": "/tmp/secret/f"}}),
            modes: BOTH,
            ret: None,
        },
        Expect {
            check: "events-lsm-bprm",
            policy: "lsm-bprm",
            kind: "process_lsm",
            function: "bprm_check_security",
            action: "KPROBE_ACTION_OVERRIDE",
            arguments: "exec /tmp/denied-bin probe 1",
            arg: serde_json::json!({"linux_binprm_arg": {"path": "/tmp/denied-bin"}}),
            modes: BOTH,
            ret: None,
        },
        Expect {
            check: "events-lsm-connect",
            policy: "lsm-connect",
            kind: "process_lsm",
            function: "socket_connect",
            action: "KPROBE_ACTION_OVERRIDE",
            arguments: "connect 127.0.0.1 4242",
            arg: serde_json::json!({"sockaddr_arg": {"family": "AF_INET", "addr": "127.0.0.1", "port": 4242}}),
            modes: BOTH,
            ret: None,
        },
        Expect {
            check: "events-kprobe-sigkill",
            policy: "kprobe-sigkill",
            kind: "process_kprobe",
            function: "tcp_connect",
            action: "KPROBE_ACTION_SIGKILL",
            arguments: "connect 127.0.0.1 4244",
            arg: serde_json::json!({"sock_arg": {
                "family": "AF_INET", "protocol": "IPPROTO_TCP",
                "saddr": "127.0.0.1", "daddr": "127.0.0.1", "dport": 4244,
            }}),
            modes: BOTH,
            ret: None,
        },
        Expect {
            check: "events-lsm-truncate",
            policy: "lsm-truncate",
            kind: "process_lsm",
            function: "path_truncate",
            action: "KPROBE_ACTION_OVERRIDE",
            arguments: "truncate /tmp/trunc/f",
            arg: serde_json::json!({"path_arg": {"path": "/tmp/trunc/f"}}),
            modes: BOTH,
            ret: None,
        },
        Expect {
            check: "events-kprobe-override",
            policy: "kprobe-override",
            kind: "process_kprobe",
            function: "security_file_permission",
            action: "KPROBE_ACTION_OVERRIDE",
            arguments: "read /tmp/perm/f",
            arg: serde_json::json!({"file_arg": {"path": "/tmp/perm/f"}}),
            modes: BOTH,
            ret: None,
        },
        Expect {
            check: "events-kprobe-return",
            policy: "kprobe-return",
            kind: "process_kprobe",
            function: "security_file_open",
            action: "KPROBE_ACTION_SIGKILL",
            arguments: "open /tmp/fexit/f",
            arg: serde_json::json!({"file_arg": {"path": "/tmp/fexit/f"}}),
            modes: BOTH,
            ret: Some(serde_json::json!({"int_arg": 0})),
        },
        Expect {
            check: "events-kprobe-fentry",
            policy: "kprobe-fentry",
            kind: "process_kprobe",
            function: "tcp_connect",
            action: "KPROBE_ACTION_SIGKILL",
            arguments: "connect 127.0.0.1 4244",
            arg: serde_json::json!({"sock_arg": {
                "family": "AF_INET", "protocol": "IPPROTO_TCP",
                "saddr": "127.0.0.1", "daddr": "127.0.0.1", "dport": 4244,
            }}),
            modes: BOTH,
            ret: None,
        },
        Expect {
            check: "events-uprobe-sigkill",
            policy: "uprobe-sigkill",
            kind: "process_uprobe",
            function: "tetragond_testbin_probe",
            action: "KPROBE_ACTION_SIGKILL",
            arguments: "probe 42",
            arg: serde_json::json!({"size_arg": "42"}),
            modes: BOTH,
            ret: None,
        },
        // The shipped examples (etc/policies.d) the guest triggers once.
        Expect {
            check: "events-example-lsm",
            policy: "deny-exec-forbidden",
            kind: "process_lsm",
            function: "bprm_check_security",
            action: "KPROBE_ACTION_OVERRIDE",
            arguments: "exec /etc/tetragond/forbidden/testbin probe 1",
            arg: serde_json::json!({"linux_binprm_arg": {"path": "/etc/tetragond/forbidden/testbin"}}),
            modes: &["enforce"],
            ret: None,
        },
        Expect {
            check: "events-example-kprobe",
            policy: "watch-shadow-access",
            kind: "process_kprobe",
            function: "security_file_permission",
            action: "KPROBE_ACTION_POST",
            arguments: "read /etc/shadow",
            arg: serde_json::json!({"file_arg": {"path": "/etc/shadow"}}),
            modes: &["monitor_only"],
            ret: None,
        },
        Expect {
            check: "events-example-socket",
            policy: "watch-outbound-tcp",
            kind: "process_kprobe",
            function: "tcp_connect",
            action: "KPROBE_ACTION_POST",
            arguments: "connect 192.0.2.1 4243",
            arg: serde_json::json!({"sock_arg": {
                "family": "AF_INET", "protocol": "IPPROTO_TCP",
                "saddr": "192.0.2.1", "daddr": "192.0.2.1", "dport": 4243,
            }}),
            modes: &["monitor_only"],
            ret: None,
        },
    ];
    for e in &cases {
        let result = if refused.iter().any(|p| p == e.policy) {
            check_refused(e, &hooks)
        } else {
            check_case(e, &hooks)
        };
        results.push((e.check, result));
    }

    let mut failed = 0;
    for (check, r) in &results {
        match r {
            Ok(seen) => println!("GUEST-TEST {check} PASS ({seen})"),
            Err(why) => {
                failed += 1;
                println!("GUEST-TEST {check} FAIL {}", why.replace('\n', " "));
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: check-events [--schema docs/events.schema.json] [--refused POLICY].. EVENTS.jsonl"
    );
    ExitCode::from(2)
}
