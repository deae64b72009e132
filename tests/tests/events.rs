//! Events people can use: Tetragon-shaped JSON lines with process context,
//! checked against docs/events.schema.json; rotation; rate limits and ring
//! buffer losses counted and reported; the live stream of `tetra getevents`.
//! Real daemon, real kernel programs.

mod common;

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::*;
use serde_json::{json, Value};

/// Calls that keep the test binary alive long enough for /proc to be read.
const CALLS: &str = "20000";

const HOOK_KINDS: [&str; 4] = [
    "process_kprobe",
    "process_tracepoint",
    "process_lsm",
    "process_uprobe",
];

fn schema() -> schema::Schema {
    schema::Schema::load(&repo_dir().join("docs/events.schema.json"))
}

fn assert_valid(schema: &schema::Schema, events: &[Value]) {
    assert!(!events.is_empty(), "no events to check");
    for ev in events {
        let errors = schema.validate(ev);
        assert!(
            errors.is_empty(),
            "{ev}\ndoes not match the schema: {errors:#?}"
        );
        let errors = tetragon::shape_errors(ev);
        assert!(
            errors.is_empty(),
            "{ev}\nis not shaped as Tetragon's: {errors:#?}"
        );
    }
}

/// (kind, body) of an event line.
fn body(ev: &Value) -> Option<(&str, &Value)> {
    ev.as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("process_") || *k == "rate_limit_info")
        .map(|(k, v)| (k.as_str(), v))
}

fn is_hook_event(ev: &Value) -> bool {
    body(ev).is_some_and(|(k, _)| HOOK_KINDS.contains(&k))
}

fn policy_of(ev: &Value) -> Option<&str> {
    body(ev).and_then(|(_, b)| b["policy_name"].as_str())
}

/// Polls `f` until it returns Some, up to the harness's WAIT.
fn wait_for<T>(h: &Harness, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            let text = fs::read_to_string(&h.events_file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(10)..].join("\n");
            panic!(
                "{what}: not within {WAIT:?}\nlast of {} event lines:\n{tail}\nlog:\n{}",
                lines.len(),
                h.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the test binary with `args` from `dir` as `program`; returns its pid
/// and how it ended.
fn run_in(dir: &Path, program: &str, args: &[&str]) -> (u32, ExitStatus) {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let pid = child.id();
    (pid, wait_child(&mut child, WAIT).expect("test binary ends"))
}

fn run_bin(args: &[&str]) -> (u32, ExitStatus) {
    let bin = testbin();
    run_in(Path::new("/"), &bin.to_string_lossy(), args)
}

fn post_tracepoint_policy(name: &str) -> String {
    getsid_policy(name, "")
}

/// The getsid tracepoint of the test binary, its selector's
/// `matchActions` block (indented as a selector's field) given.
fn getsid_policy(name: &str, actions: &str) -> String {
    format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_getsid
    args:
    - index: 5
      type: int
      label: pid
    message: "getsid called"
    tags: ["test", "tracepoint"]
    selectors:
    - matchBinaries:
      - operator: In
        values: ["{}"]
{actions}"#,
        testbin().display()
    )
}

fn post_kprobe_policy(name: &str) -> String {
    format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  kprobes:
  - call: sys_getpgid
    syscall: true
    args:
    - index: 0
      type: int
      label: pid
    selectors:
    - matchBinaries:
      - operator: In
        values: ["{}"]
"#,
        testbin().display()
    )
}

fn hook_event_of(h: &Harness, policy: &str, pid: u32) -> Value {
    wait_for(h, &format!("event of {policy} for pid {pid}"), || {
        h.events().into_iter().find(|e| {
            is_hook_event(e)
                && policy_of(e) == Some(policy)
                && body(e).is_some_and(|(_, b)| b["process"]["pid"] == pid)
        })
    })
}

fn process_event(h: &Harness, kind: &str, exec_id: &str) -> Value {
    wait_for(h, &format!("{kind} of {exec_id}"), || {
        h.events()
            .into_iter()
            .find(|e| e[kind]["process"]["exec_id"] == exec_id)
    })
}

fn line_index(h: &Harness, pred: impl Fn(&Value) -> bool) -> usize {
    h.events()
        .iter()
        .position(pred)
        .expect("the event is in the file")
}

#[test]
fn schema_checker_rejects_what_the_schema_forbids() {
    let s = schema();
    let good = json!({
        "process_tracepoint": {
            "process": {"exec_id": "bm9kZToxOjI=", "pid": 2, "uid": 0, "auid": 4294967295u32,
                        "tid": 2, "flags": "execve", "start_time": "2026-01-01T00:00:00.000000001Z",
                        "binary": "/bin/x", "in_init_tree": false},
            "subsys": "raw_syscalls", "event": "sys_enter",
            "args": [{"uint_arg": 39, "label": "id"}],
            "action": "KPROBE_ACTION_POST", "policy_name": "p", "mode": "enforce", "enforced": false
        },
        "node_name": "n", "time": "2026-01-01T00:00:00.000000001Z"
    });
    assert_eq!(s.validate(&good), Vec::<String>::new());
    let mut bad = vec![];
    let mut v = good.clone();
    v["time"] = json!("2026-01-01T00:00:00Z");
    bad.push(("time without nanoseconds", v));
    let mut v = good.clone();
    v["process_tracepoint"]["process"]["pid"] = json!("2");
    bad.push(("pid as a string", v));
    let mut v = good.clone();
    v["process_tracepoint"]["args"][0]["uint_arg"] = json!("39");
    bad.push(("uint32 as a string", v));
    let mut v = good.clone();
    v["process_tracepoint"]["processName"] = json!("x");
    bad.push(("unknown key", v));
    let mut v = good.clone();
    v["process_tracepoint"]
        .as_object_mut()
        .expect("object")
        .remove("enforced");
    bad.push(("no enforced", v));
    let mut v = good.clone();
    v["process_kprobe"] = v["process_tracepoint"].clone();
    bad.push(("two event keys", v));
    let mut v = good.clone();
    v["process_tracepoint"]["ancestors"] = json!([]);
    bad.push(("an empty ancestors list (left out instead)", v));
    let mut v = good.clone();
    v["process_tracepoint"]["ancestors"] = json!([{"pid": 1}]);
    bad.push(("an ancestor that is not a whole process", v));
    let mut v = good.clone();
    v["process_tracepoint"]["ancestors"] = json!([v["process_tracepoint"]["process"].clone()]);
    assert_eq!(
        s.validate(&v),
        Vec::<String>::new(),
        "a process as ancestor"
    );
    let mut v = good;
    v["process_tracepoint"]["action"] = json!("KILL");
    bad.push(("unknown action", v));
    for (what, v) in bad {
        assert!(!s.validate(&v).is_empty(), "{what} must be rejected");
    }
}

#[test]
fn tetragon_shape_check_rejects_what_tetragon_would_not_write() {
    let good = serde_json::json!({
        "process_kprobe": {
            "process": {"pid": 1, "exec_id": "eA==", "start_time": "2026-12-03T00:00:00Z"},
            "args": [{"uint_arg": 7}, {"size_arg": "18446744073709551615"}, {"long_arg": "-1"}],
            "action": "KPROBE_ACTION_POST", "policy_name": "p", "mode": "enforce", "enforced": true
        },
        "node_name": "h", "time": "2026-12-03T00:00:00Z"
    });
    assert_eq!(tetragon::shape_errors(&good), Vec::<String>::new());
    for (pointer, bad) in [
        ("/process_kprobe/args/0/uint_arg", serde_json::json!("7")),
        ("/process_kprobe/args/1/size_arg", serde_json::json!(1)),
        ("/process_kprobe/process/pid", serde_json::json!("1")),
        ("/process_kprobe/process/pid", serde_json::json!(-1)),
        ("/process_kprobe/args/2/long_arg", serde_json::json!("x")),
    ] {
        let mut v = good.clone();
        *v.pointer_mut(pointer).expect("a field of the sample") = bad;
        assert!(
            !tetragon::shape_errors(&v).is_empty(),
            "{pointer} must be refused"
        );
    }
    let mut extra = good.clone();
    extra["process_kprobe"]["process"]["comm"] = serde_json::json!("x");
    assert!(
        !tetragon::shape_errors(&extra).is_empty(),
        "a field Tetragon lacks"
    );
}

#[test]
fn hook_events_name_process_and_parent_and_match_the_schema() {
    let mut h = Harness::new();
    // The test binary makes its syscall CALLS times so that it lives a few
    // milliseconds: arguments and cwd come from /proc, read when the exec
    // record arrives (up to ~2 ms later on an idle VM), and a process gone by
    // then is known only by what the kernel record carries. The rate limit
    // keeps the file small; the drops are reported like any other.
    h.write_config("[export]\npolicy_rate_limit_per_minute = 10\n");
    h.start_daemon();
    h.write_policy(
        "raw.yaml",
        &kill_policy("raw-post", SYS_SYSINFO, POST_ACTION, ""),
    );
    h.write_policy("tp.yaml", &post_tracepoint_policy("tp-post"));
    h.write_policy("kp.yaml", &post_kprobe_policy("kp-post"));
    for name in ["raw-post", "tp-post", "kp-post"] {
        h.wait_policy(name, "enabled", enabled);
    }
    let me = std::process::id();
    let my_exe = fs::canonicalize("/proc/self/exe").expect("our exe");
    let bin = testbin().display().to_string();
    for (nr, policy, kind) in [
        (SYS_SYSINFO, "raw-post", "process_tracepoint"),
        (SYS_GETSID, "tp-post", "process_tracepoint"),
        (SYS_GETPGID, "kp-post", "process_kprobe"),
    ] {
        let (pid, status) = run_bin(&["syscall", &nr.to_string(), CALLS]);
        assert!(status.success(), "{policy}: a Post policy lets it live");
        let ev = hook_event_of(&h, policy, pid);
        let b = &ev[kind];
        assert!(b.is_object(), "{policy}: a {kind} event: {ev}");
        let p = &b["process"];
        assert_eq!(p["binary"], bin, "{policy}: {ev}");
        assert_eq!(
            p["arguments"],
            format!("syscall {nr} {CALLS}"),
            "{policy}: {ev}"
        );
        assert_eq!(p["flags"], "execve rootcwd", "{policy}: {ev}");
        assert_eq!(p["cwd"], "/", "{policy}: {ev}");
        assert_eq!(p["tid"], pid);
        assert_eq!(
            b["parent"]["pid"], me,
            "{policy}: the test is the parent: {ev}"
        );
        assert_eq!(b["parent"]["binary"], my_exe.display().to_string());
        assert_eq!(p["parent_exec_id"], b["parent"]["exec_id"]);
        assert_eq!(b["policy_name"], policy);
        assert_eq!(b["action"], "KPROBE_ACTION_POST");
        assert_eq!(b["mode"], "monitor_only");
        assert_eq!(b["enforced"], false);
        let exec_id = p["exec_id"].as_str().expect("exec_id").to_string();
        // Its exec comes first in the file, its exit after.
        let exec = process_event(&h, "process_exec", &exec_id);
        assert_eq!(exec["process_exec"]["process"]["binary"], bin);
        assert_eq!(exec["process_exec"]["parent"]["pid"], me);
        let exit = process_event(&h, "process_exit", &exec_id);
        assert!(exit["process_exit"].get("signal").is_none(), "{exit}");
        let exec_at = line_index(&h, |e| e["process_exec"]["process"]["exec_id"] == exec_id);
        let event_at = line_index(&h, |e| e[kind]["process"]["exec_id"] == exec_id);
        let exit_at = line_index(&h, |e| e["process_exit"]["process"]["exec_id"] == exec_id);
        assert!(exec_at < event_at && event_at < exit_at);
    }
    let events = h.hook_events();
    let tp = events
        .iter()
        .find(|e| policy_of(e) == Some("tp-post"))
        .expect("tp event");
    assert_eq!(tp["process_tracepoint"]["subsys"], "syscalls");
    assert_eq!(tp["process_tracepoint"]["event"], "sys_enter_getsid");
    assert_eq!(tp["process_tracepoint"]["message"], "getsid called");
    assert_eq!(
        tp["process_tracepoint"]["tags"],
        json!(["test", "tracepoint"])
    );
    let kp = events
        .iter()
        .find(|e| policy_of(e) == Some("kp-post"))
        .expect("kp event");
    assert_eq!(kp["process_kprobe"]["function_name"], "sys_getpgid");
    assert_eq!(
        kp["process_kprobe"]["args"][0],
        json!({"int_arg": 0, "label": "pid"})
    );
    assert_valid(&schema(), &h.events());
}

/// `enable_process_cred` and `enable_process_ns`, as Tetragon's flags: the
/// process objects carry `cap`, `ns` and (for a process seen executing)
/// `process_credentials`; without them, none of the three.
#[test]
fn process_identity_is_written_when_the_configuration_asks() {
    let identity = ["cap", "ns", "process_credentials"];
    let mut h = Harness::new();
    h.write_config("[export]\nenable_process_cred = true\nenable_process_ns = true\n");
    h.start_daemon();
    // A copy any uid can run: the build folder may be private.
    let dir = std::env::temp_dir().join(format!("tetragond-identity-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("mkdir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = dir.join("tool").display().to_string();
    fs::copy(testbin(), &bin).expect("copy the test binary");
    let policy =
        post_tracepoint_policy("tp-identity").replace(&testbin().display().to_string(), &bin);
    h.write_policy("tp.yaml", &policy);
    h.wait_policy("tp-identity", "enabled", enabled);
    // Credentials are the exec's: changed first, then the program runs.
    let nr = SYS_GETSID.to_string();
    let (pid, status) = run_in(
        Path::new("/"),
        &bin,
        // A new user namespace resets securebits: they are set inside.
        &[
            "setuid",
            "4242",
            "userns",
            "securebits",
            "0x4",
            "exec",
            &bin,
            "syscall",
            &nr,
            CALLS,
        ],
    );
    assert!(status.success());
    let ev = hook_event_of(&h, "tp-identity", pid);
    let p = &ev["process_tracepoint"]["process"];
    let c = &p["process_credentials"];
    assert_eq!(
        (c["uid"].clone(), c["euid"].clone()),
        (json!(4242), json!(4242)),
        "{ev}"
    );
    assert_eq!(c["securebits"], json!(["SecBitNoSetUidFixup"]), "{ev}");
    assert_eq!(c["user_ns"]["level"], 1, "the new user namespace: {ev}");
    assert!(c["user_ns"]["ns"].get("is_host").is_none(), "{ev}");
    assert_eq!(p["ns"]["user"]["inum"], c["user_ns"]["ns"]["inum"], "{ev}");
    assert!(p["ns"]["user"].get("is_host").is_none(), "{ev}");
    assert_eq!(p["ns"]["mnt"]["is_host"], true, "{ev}");
    assert!(p["cap"].is_object(), "{ev}");
    // The test itself started before the daemon: found in /proc.
    let parent = &ev["process_tracepoint"]["parent"];
    assert!(
        parent["ns"]["pid"]["is_host"] == true && parent["cap"]["effective"].is_array(),
        "{ev}"
    );
    assert!(parent.get("process_credentials").is_none(), "{ev}");
    assert_valid(&schema(), &h.events());
    h.stop_daemon();
    let _ = fs::remove_dir_all(&dir);

    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy("tp.yaml", &post_tracepoint_policy("tp-plain"));
    h.wait_policy("tp-plain", "enabled", enabled);
    let (pid, _) = run_bin(&["syscall", &SYS_GETSID.to_string(), CALLS]);
    let ev = hook_event_of(&h, "tp-plain", pid);
    for key in identity {
        assert!(
            ev["process_tracepoint"]["process"].get(key).is_none(),
            "{key}: {ev}"
        );
    }
}

/// The parent pid in /proc/PID/stat (after the command's closing paren).
fn ppid_in_proc(pid: u64) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// This process and its ancestors by /proc, up to pid 1 or 2 (or the
/// last one whose parent /proc does not show): all were running when the
/// daemon started, so its cache has them all from /proc.
fn our_lineage() -> Vec<u64> {
    let mut chain = vec![u64::from(std::process::id())];
    while let Some(&pid) = chain.last().filter(|&&pid| pid > 2) {
        match ppid_in_proc(pid).filter(|&ppid| ppid_in_proc(ppid).is_some()) {
            Some(ppid) => chain.push(ppid),
            None => break,
        }
    }
    chain
}

/// Runs the test binary's getsid calls under two shells (outer, inner):
/// returns the outer one's pid. The trailing `true`s keep each shell from
/// replacing itself with its last command.
fn run_under_two_shells() -> u32 {
    let inner = format!("{} syscall {SYS_GETSID} {CALLS}; true", testbin().display());
    let (outer, status) = run_in(
        Path::new("/"),
        "/bin/sh",
        &["-c", &format!("/bin/sh -c '{inner}'; true")],
    );
    assert!(status.success());
    outer
}

fn first_hook_event(h: &Harness, policy: &str) -> Value {
    wait_for(h, &format!("an event of {policy}"), || {
        h.events()
            .into_iter()
            .find(|e| is_hook_event(e) && policy_of(e) == Some(policy))
    })
}

/// `enable_ancestors`, as Tetragon's `--enable-ancestors`: the events of
/// the types named (`base`: process_exec and process_exit) carry the
/// process's ancestors beyond its parent, nearest first, each linked to the
/// one before by `parent_exec_id`, up to pid 1 or 2; without it, none.
#[test]
fn ancestors_are_written_when_the_configuration_asks() {
    let mut h = Harness::new();
    // A few events only: the lines are long, and the exec's line must not
    // be rotated away.
    h.write_config(
        "[export]\nenable_ancestors = [\"base\", \"tracepoint\"]\npolicy_rate_limit_per_minute = 10\n",
    );
    h.start_daemon();
    h.write_policy("tp.yaml", &post_tracepoint_policy("tp-ancestors"));
    h.wait_policy("tp-ancestors", "enabled", enabled);
    let outer = run_under_two_shells();
    let ev = first_hook_event(&h, "tp-ancestors");
    let tp = &ev["process_tracepoint"];
    let exec_id = tp["process"]["exec_id"].as_str().expect("exec_id");
    let exec = process_event(&h, "process_exec", exec_id);
    let exit = process_event(&h, "process_exit", exec_id);
    let parent = &tp["parent"];
    assert_eq!(parent["binary"], "/bin/sh", "the inner shell: {ev}");
    let lineage = our_lineage();
    for (what, line) in [("hook", &ev), ("exec", &exec), ("exit", &exit)] {
        let (_, b) = body(line).expect("an event");
        let chain = b["ancestors"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: {line}"));
        assert_eq!(
            chain[0]["exec_id"], parent["parent_exec_id"],
            "{what}: {line}"
        );
        assert_eq!(chain[0]["pid"], outer, "the outer shell: {line}");
        assert_eq!(chain[0]["tid"], outer, "{line}");
        for pair in chain.windows(2) {
            assert_eq!(pair[1]["exec_id"], pair[0]["parent_exec_id"], "{line}");
        }
        // Then this test and its own ancestors, found in /proc at start.
        let pids: Vec<u64> = chain[1..]
            .iter()
            .filter_map(|a| a["pid"].as_u64())
            .collect();
        assert_eq!(pids, lineage, "{what}: {line}");
    }
    assert_eq!(exec["process_exec"]["ancestors"], tp["ancestors"]);
    assert_valid(&schema(), &h.events());
    h.stop_daemon();

    let mut h = Harness::new();
    h.write_config("[export]\npolicy_rate_limit_per_minute = 10\n");
    h.start_daemon();
    h.write_policy("tp.yaml", &post_tracepoint_policy("tp-no-ancestors"));
    h.wait_policy("tp-no-ancestors", "enabled", enabled);
    run_under_two_shells();
    let ev = first_hook_event(&h, "tp-no-ancestors");
    let exec_id = ev["process_tracepoint"]["process"]["exec_id"]
        .as_str()
        .expect("exec_id");
    let exec = process_event(&h, "process_exec", exec_id);
    assert!(ev["process_tracepoint"]["parent"].is_object(), "{ev}");
    for line in [&ev, &exec] {
        let (_, b) = body(line).expect("an event");
        assert!(b.get("ancestors").is_none(), "{line}");
    }
}

/// GetUrl and DnsLookup, as in Tetragon: when an event of their selector
/// arrives, the daemon makes an HTTP GET of the URL and sends an A query
/// for the name (to `dns_lookup_server`), and the event's action names
/// the last of them. Here both servers are the test's own.
#[test]
fn get_url_and_dns_lookup_are_requested_when_their_event_arrives() {
    let http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind http");
    http.set_nonblocking(true).expect("nonblocking");
    let dns = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind dns");
    dns.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut h = Harness::new();
    h.write_config(&format!(
        "dns_lookup_server = \"{}\"\n[export]\npolicy_rate_limit_per_minute = 10\n",
        dns.local_addr().expect("dns address")
    ));
    h.start_daemon();
    let url = format!(
        "http://{}/canary?hit=getsid",
        http.local_addr().expect("address")
    );
    let actions = format!(
        "      matchActions:
      - action: Post
        rateLimit: 1m
      - action: GetUrl
        argUrl: \"{url}\"
      - action: DnsLookup
        argFqdn: getsid.canary.test
"
    );
    let policy = getsid_policy("canary", &actions);
    h.write_policy("canary.yaml", &policy);
    h.wait_policy("canary", "enabled", enabled);
    run_bin(&["syscall", &SYS_GETSID.to_string(), "3"]);

    let mut conn = wait_for(&h, "the GET", || http.accept().ok().map(|(c, _)| c));
    conn.set_nonblocking(false).expect("blocking");
    conn.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut head = [0u8; 512];
    let n = conn.read(&mut head).expect("request head");
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(
        head.starts_with("GET /canary?hit=getsid HTTP/1.1\r\n"),
        "{head}"
    );
    conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
        .expect("answer");

    let mut query = [0u8; 512];
    let (n, _) = dns.recv_from(&mut query).expect("a DNS query");
    let question = &query[12..n];
    assert_eq!(
        question,
        b"\x06getsid\x06canary\x04test\x00\x00\x01\x00\x01"
    );

    let ev = first_hook_event(&h, "canary");
    assert_eq!(
        ev["process_tracepoint"]["action"], "KPROBE_ACTION_DNSLOOKUP",
        "{ev}"
    );
    assert_valid(&schema(), &[ev]);
}

/// Tetragon's `in_init_tree`: true for a new pid namespace's pid 1 (a
/// container's init, here `unshare --pid --fork`'s shell) and what it
/// starts, false for the host's processes.
#[test]
fn in_init_tree_marks_a_pid_namespaces_init_and_its_children() {
    let mut h = Harness::new();
    h.write_config("[export]\npolicy_rate_limit_per_minute = 10\n");
    h.start_daemon();
    h.write_policy("tp.yaml", &post_tracepoint_policy("tp-init-tree"));
    h.wait_policy("tp-init-tree", "enabled", enabled);
    let process_of = |ev: &Value| ev["process_tracepoint"]["process"].clone();
    let events = |h: &Harness| -> Vec<Value> {
        h.events()
            .into_iter()
            .filter(|e| policy_of(e) == Some("tp-init-tree"))
            .collect()
    };
    // A few calls first: the policy's rate limit leaves room for the rest.
    let (host, _) = run_bin(&["syscall", &SYS_GETSID.to_string(), "3"]);
    let from_host = wait_for(&h, "the event from the host", || {
        events(&h)
            .into_iter()
            .find(|e| process_of(e)["pid"] == host)
    });
    let inner = format!("{} syscall {SYS_GETSID} {CALLS}; true", testbin().display());
    let (_, status) = run_in(
        Path::new("/"),
        "unshare",
        &["--pid", "--fork", "/bin/sh", "-c", &inner],
    );
    assert!(status.success());
    let contained = wait_for(&h, "the event from inside the pid namespace", || {
        events(&h)
            .into_iter()
            .find(|e| e["process_tracepoint"]["parent"]["binary"] == "/bin/sh")
    });
    assert_eq!(process_of(&contained)["in_init_tree"], true, "{contained}");
    assert_eq!(
        contained["process_tracepoint"]["parent"]["in_init_tree"], true,
        "the namespace's pid 1: {contained}"
    );
    assert_eq!(process_of(&from_host)["in_init_tree"], false, "{from_host}");
    assert_eq!(
        from_host["process_tracepoint"]["parent"]["in_init_tree"], false,
        "{from_host}"
    );
    assert_valid(&schema(), &[contained, from_host]);
}

#[test]
fn relative_exec_gets_an_absolute_binary() {
    let mut h = Harness::new();
    // Long-lived enough for /proc (see hook_events_name_process_...).
    h.write_config("[export]\npolicy_rate_limit_per_minute = 10\n");
    h.start_daemon();
    // matchBinaries sees the path as given to execve (a known limit) and
    // takes absolute paths only: this policy matches a rarely made syscall
    // from anyone, and the test looks for its own child's event.
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: relative
spec:
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args:
    - index: 4
      type: syscall64
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["{SYS_SCHED_GET_PRIORITY_MAX}"]
"#
    );
    h.write_policy("relative.yaml", &policy);
    h.wait_policy("relative", "enabled", enabled);
    let bin = testbin();
    let dir = bin.parent().expect("bin dir");
    let nr = SYS_SCHED_GET_PRIORITY_MAX.to_string();
    let (pid, status) = run_in(dir, "./tetragond-testbin", &["syscall", &nr, CALLS]);
    assert!(status.success());
    let ev = hook_event_of(&h, "relative", pid);
    let p = &ev["process_tracepoint"]["process"];
    assert_eq!(p["binary"], bin.display().to_string(), "{ev}");
    assert_eq!(p["cwd"], dir.display().to_string(), "{ev}");
    assert_valid(&schema(), &h.events());
}

#[test]
fn monitor_mode_kill_is_not_enforced_enforce_mode_is() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "kill.yaml",
        &kill_policy("kill-times", SYS_TIMES, SIGKILL_ACTION, ""),
    );
    h.wait_policy("kill-times", "enabled", enabled);

    let (pid, status) = run_bin(&["syscall", &SYS_TIMES.to_string()]);
    assert!(killed_by_sigkill(status), "{status:?}");
    let ev = hook_event_of(&h, "kill-times", pid);
    let b = &ev["process_tracepoint"];
    assert_eq!(b["action"], "KPROBE_ACTION_SIGKILL");
    assert_eq!(b["mode"], "enforce");
    assert_eq!(b["enforced"], true);
    assert_eq!(b["process"]["binary"], testbin().display().to_string());
    let exec_id = b["process"]["exec_id"]
        .as_str()
        .expect("exec_id")
        .to_string();
    let exit = process_event(&h, "process_exit", &exec_id);
    // The exit status is read from /proc before the parent reaps: best effort.
    eprintln!("exit of the killed process: {exit}");
    if let Some(signal) = exit["process_exit"].get("signal") {
        assert_eq!(signal, "SIGKILL");
    }

    let out = h.set_mode("kill-times", "monitor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.wait_policy("kill-times", "monitor mode", |p| p["mode"] == "monitor");
    let (pid, status) = run_bin(&["syscall", &SYS_TIMES.to_string()]);
    assert!(status.success(), "monitor mode lets it live: {status:?}");
    let ev = hook_event_of(&h, "kill-times", pid);
    let b = &ev["process_tracepoint"];
    assert_eq!(
        b["action"], "KPROBE_ACTION_SIGKILL",
        "what would have been done"
    );
    assert_eq!(b["mode"], "monitor");
    assert_eq!(b["enforced"], false);
    assert_valid(&schema(), &h.events());
}

/// Lines of the events file and its backups, oldest first; each file must
/// end with a newline and hold no more than `max` bytes. `None` when a file
/// was renamed away while it was read (the daemon was rotating), or, while
/// the daemon `running`, when the live file ends mid-line (a reader can
/// see a write in progress): look again.
fn lines_across_rotations(
    h: &Harness,
    backups: u32,
    max: u64,
    running: bool,
) -> Option<(Vec<Value>, usize)> {
    let mut lines = vec![];
    let mut files = 0;
    let base = h.events_file.display().to_string();
    let mut names: Vec<String> = (1..=backups)
        .rev()
        .flat_map(|n| [format!("{base}.{n}"), format!("{base}.{n}.gz")])
        .collect();
    names.push(base);
    for name in names {
        let path = PathBuf::from(&name);
        if !path.exists() {
            continue;
        }
        files += 1;
        let bytes = if name.ends_with(".gz") {
            let out = Command::new("gzip")
                .args(["-dc", &name])
                .output()
                .expect("gzip (apt-get install gzip)");
            if !out.status.success() && !path.exists() {
                return None;
            }
            assert!(out.status.success(), "{name} is valid gzip");
            out.stdout
        } else {
            let bytes = match fs::read(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                read => read.expect("read"),
            };
            assert!(bytes.len() as u64 <= max, "{name}: {} bytes", bytes.len());
            bytes
        };
        let whole = bytes.is_empty() || bytes.ends_with(b"\n");
        if !whole && running && path == h.events_file {
            return None;
        }
        assert!(whole, "{name}: torn last line");
        for line in String::from_utf8(bytes).expect("UTF-8").lines() {
            lines.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{name}: torn line ({e}): {line}")),
            );
        }
    }
    Some((lines, files))
}

fn rotation_run(compress: bool) {
    const MAX: u64 = 20_000;
    const BACKUPS: u32 = 30;
    const CALLS: u64 = 300;
    let mut h = Harness::new();
    h.write_config(&format!(
        "[export]\nmax_size_bytes = {MAX}\nbackups = {BACKUPS}\ncompress = {compress}\n"
    ));
    h.start_daemon();
    h.write_policy(
        "many.yaml",
        &kill_policy("many", SYS_GETPRIORITY, POST_ACTION, ""),
    );
    h.wait_policy("many", "enabled", enabled);
    let (pid, status) = run_bin(&["syscall", &SYS_GETPRIORITY.to_string(), &CALLS.to_string()]);
    assert!(status.success());
    h.wait_policy("many", "all posted", |p| p["npost"] == CALLS);
    // Its exit is the last line it causes.
    wait_for(&h, "the exit", || {
        let (lines, _) = lines_across_rotations(&h, BACKUPS, MAX, true)?;
        lines
            .iter()
            .any(|e| e["process_exit"]["process"]["pid"] == pid)
            .then_some(())
    });
    assert!(h.stop_daemon().success());
    let (lines, files) = lines_across_rotations(&h, BACKUPS, MAX, false)
        .expect("no rotation once the daemon stopped");
    let posted = lines
        .iter()
        .filter(|e| policy_of(e) == Some("many"))
        .count() as u64;
    eprintln!(
        "compress={compress}: {} lines in {files} files",
        lines.len()
    );
    assert!(files >= 4, "rotated several times: {files} files");
    assert_eq!(posted, CALLS, "every event, once, across the files");
    assert!(lines
        .iter()
        .all(|e| body(e).is_some_and(|(k, _)| k != "rate_limit_info")));
    assert_valid(&schema(), &lines);
}

#[test]
fn rotation_keeps_every_line() {
    rotation_run(false);
}

#[test]
fn rotation_with_gzip_keeps_every_line() {
    rotation_run(true);
}

/// Sum of the `rate_limit_info` counts for `reason`.
fn reported(events: &[Value], reason: &str) -> u64 {
    events
        .iter()
        .filter(|e| e["rate_limit_info"]["reason"] == reason)
        .map(|e| {
            e["rate_limit_info"]["number_of_dropped_process_events"]
                .as_str()
                .and_then(|n| n.parse::<u64>().ok())
                .expect("count as a string")
        })
        .sum()
}

/// Lines of each of `policies`, and the drops reported by reason, without
/// parsing every line: a burst writes hundreds of megabytes.
fn count_lines(file: &Path, policies: &[&str]) -> (Vec<u64>, Vec<Value>) {
    let needles: Vec<String> = policies
        .iter()
        .map(|p| format!("\"policy_name\":\"{p}\""))
        .collect();
    let (mut written, mut reports) = (vec![0; policies.len()], vec![]);
    let Ok(f) = fs::File::open(file) else {
        return (written, reports);
    };
    for line in BufReader::new(f).lines().map_while(Result::ok) {
        if line.starts_with("{\"rate_limit_info\"") {
            reports.push(serde_json::from_str::<Value>(&line).expect("JSON"));
        } else if let Some(i) = needles.iter().position(|n| line.contains(n.as_str())) {
            written[i] += 1;
        }
    }
    (written, reports)
}

/// (lines of `policy`, losses reported): lost in the kernel's ring buffer,
/// or dropped by the reader while the daemon was behind.
fn count_burst(file: &Path, policy: &str) -> (u64, u64) {
    let (written, reports) = count_lines(file, &[policy]);
    (
        written[0],
        reported(&reports, "ring_buffer") + reported(&reports, "backlog"),
    )
}

fn metrics(h: &Harness) -> String {
    let log = h.log();
    let address = log
        .split("metrics at http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
        .to_string();
    let mut conn = std::net::TcpStream::connect(&address).expect("connect to metrics");
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.0 200 OK"), "{reply}");
    reply
}

fn status_text(h: &Harness) -> String {
    let out = h.tetra(&["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `[export] ring_buffer_size` sizes the kernel's ring buffer: the
/// daemon's one ring buffer map has that many bytes.
#[test]
fn the_configured_ring_buffer_size_is_the_kernels() {
    const RINGBUF: &str = "27";
    let mut h = Harness::new();
    h.write_config("[export]\nring_buffer_size = 262144\n");
    h.start_daemon();
    let fdinfo = format!("/proc/{}/fdinfo", h.daemon_pid());
    let field = |info: &str, name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let rings: Vec<String> = fs::read_dir(&fdinfo)
        .expect("daemon fdinfo")
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter(|info| field(info, "map_type:").as_deref() == Some(RINGBUF))
        .filter_map(|info| field(&info, "max_entries:"))
        .collect();
    assert_eq!(rings, ["262144"]);
}

#[test]
fn burst_beyond_the_ring_buffer_is_counted() {
    let calls: u64 = std::env::var("BURST_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // From several processes at once: they take both cores of a small
    // machine, so the burst outruns the daemon.
    const BURSTERS: u64 = 4;
    let mut h = Harness::new();
    // Every line stays in one file, to be counted.
    h.write_config("[export]\nmax_size_bytes = 0\n");
    h.daemon_args
        .extend(["--metrics-address".to_string(), "127.0.0.1:0".to_string()]);
    h.start_daemon();
    h.write_policy(
        "burst.yaml",
        &kill_policy("burst", SYS_GETPGRP, POST_ACTION, ""),
    );
    h.wait_policy("burst", "enabled", enabled);
    let started = Instant::now();
    let each = (calls / BURSTERS).to_string();
    let bursters: Vec<_> = (0..BURSTERS)
        .map(|_| {
            Command::new(testbin())
                .args(["syscall", &SYS_GETPGRP.to_string(), &each])
                .stdout(Stdio::null())
                .spawn()
                .expect("start a burster")
        })
        .collect();
    for mut b in bursters {
        assert!(wait_child(&mut b, WAIT).is_some_and(|s| s.success()));
    }
    let calls = calls / BURSTERS * BURSTERS;
    let burst = started.elapsed();
    let produced = h.wait_policy("burst", "all posted", |p| p["npost"] == calls)["npost"]
        .as_u64()
        .expect("npost");
    // Reports come once a second: wait until the file accounts for every
    // event and nothing changes any more.
    let mut last = (0, 0);
    let (written, lost) = wait_for(&h, "written + reported to account for every event", || {
        let now = count_burst(&h.events_file, "burst");
        let stable = now == last && now.0 + now.1 >= produced;
        last = now;
        std::thread::sleep(Duration::from_millis(1200));
        stable.then_some(now)
    });
    eprintln!("burst of {calls} events in {burst:?}: {written} written, {lost} reported lost (ring buffer, backlog)");
    assert_eq!(produced, calls);
    assert!(
        lost > 0,
        "the burst must outrun the reader (raise BURST_CALLS)"
    );
    // The kernel counts lost records by kind, the reader by policy: the
    // policy's own losses are exactly what was produced and not written.
    assert_eq!(
        written + lost,
        produced,
        "every event written or reported lost"
    );
    let status = status_text(&h);
    eprintln!("{status}");
    // `events: N exported, M dropped (backlog=.., ring_buffer=..)`
    let in_status = |reason: &str| -> u64 {
        status
            .split(['(', ')', ',', '\n'])
            .filter_map(|item| item.trim().split_once('='))
            .find(|(r, _)| *r == reason)
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        in_status("ring_buffer") + in_status("backlog"),
        lost,
        "{status}"
    );
    let text = metrics(&h);
    let in_metrics = |reason: &str| -> u64 {
        text.split(&format!(
            "tetragond_events_dropped_total{{reason=\"{reason}\"}} "
        ))
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
    };
    assert_eq!(
        in_metrics("ring_buffer") + in_metrics("backlog"),
        lost,
        "{text}"
    );
    assert!(text.contains(&format!(
        "tetragond_policy_events_posted_total{{policy=\"burst\",namespace=\"\"}} {produced}\n"
    )));
    assert!(text.contains("tetragond_reloads_total{outcome=\"ok\"}"));
    // Every line, the loss reports (ring_buffer, process_ring_buffer) too.
    assert_valid(&schema(), &h.events());
}

/// A daemon with `config` and two Post policies, `flood` (getpgrp) and
/// `trickle` (getsid), for the test binary: one process calls getpgrp
/// without pause until the flood policy's `counter` passes 100,000, and
/// meanwhile another calls getsid `trickle` times, 150 ms apart; then the
/// flood stops.
fn flood_and_trickle(config: &str, counter: &str, trickle: u64) -> Harness {
    let mut h = Harness::new();
    h.write_config(config);
    h.start_daemon();
    for (name, nr) in [("flood", SYS_GETPGRP), ("trickle", SYS_GETSID)] {
        h.write_policy(
            &format!("{name}.yaml"),
            &kill_policy(name, nr, POST_ACTION, ""),
        );
        h.wait_policy(name, "enabled", enabled);
    }
    let mut flood = Command::new(testbin())
        .args(["syscall", &SYS_GETPGRP.to_string(), "10000000000"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start the flood");
    h.wait_policy("flood", "flooding", |p| {
        p[counter].as_u64().is_some_and(|n| n > 100_000)
    });
    let (_, status) = run_bin(&[
        "paced",
        &SYS_GETSID.to_string(),
        &trickle.to_string(),
        "150",
    ]);
    let _ = flood.kill();
    let _ = flood.wait();
    assert!(status.success());
    h
}

/// Issue #13: a flood from one process does not cost another process its
/// events. The flood (getpgrp as fast as this machine goes, one process)
/// outruns the daemon; meanwhile a trickle (getsid a few times a second,
/// another process under another policy) must get every event exported,
/// and every flood event is either written or reported dropped. The
/// trickle only has to overlap the flood. What is tested is the reader's
/// fairness: the kernel's ring buffer drops whatever does not fit, so it
/// is made large enough (32 MiB) that a reader slowed by a busy machine
/// does not let it fill.
#[test]
fn a_flood_does_not_cost_a_trickle_its_events() {
    const TRICKLE: u64 = 8;
    // Every line stays in one file, to be counted.
    let h = flood_and_trickle(
        "[export]\nmax_size_bytes = 0\nring_buffer_size = 33554432\n",
        "npost",
        TRICKLE,
    );
    let posted = |name: &str| {
        h.policy(name)
            .and_then(|p| p["npost"].as_u64())
            .unwrap_or(0)
    };
    // Reports come once a second: wait until the file accounts for every
    // posted event and nothing changes any more.
    let mut last = None;
    let (written, reports, produced) = wait_for(&h, "every event written or reported", || {
        let produced = posted("flood") + posted("trickle");
        let (written, reports) = count_lines(&h.events_file, &["flood", "trickle"]);
        let lost = reported(&reports, "ring_buffer") + reported(&reports, "backlog");
        let now = (written.clone(), lost, produced);
        let stable = last.as_ref() == Some(&now) && written.iter().sum::<u64>() + lost >= produced;
        last = Some(now);
        std::thread::sleep(Duration::from_millis(1200));
        stable.then_some((written, reports, produced))
    });
    let (ring, backlog) = (
        reported(&reports, "ring_buffer"),
        reported(&reports, "backlog"),
    );
    eprintln!(
        "flood: {} written; trickle: {} of {TRICKLE} written; dropped: {ring} in the ring buffer, {backlog} backlog",
        written[0], written[1]
    );
    assert_eq!(posted("trickle"), TRICKLE);
    assert_eq!(written[1], TRICKLE, "every trickle event is exported");
    assert_eq!(
        written[0] + written[1] + ring + backlog,
        produced,
        "every flood event written or reported dropped"
    );
    // Dropped by the reader, the flood's excess is reported as the flood's.
    assert!(reports
        .iter()
        .filter(|r| r["rate_limit_info"]["reason"] == "backlog")
        .all(|r| r["rate_limit_info"]["policy_name"] == "flood"));
}

/// The same flood and trickle with the daemon's aggregation window (100 ms,
/// shorter than the trickle's pace): the flood's identical calls are folded
/// in the kernel, so nothing is dropped anywhere; every flood event posted
/// is written, and together they say how many calls they stand for.
#[test]
fn an_aggregated_flood_is_folded_and_leaves_a_trickle_alone() {
    const TRICKLE: u64 = 8;
    let h = flood_and_trickle(
        "[export]\nmax_size_bytes = 0\naggregate_window_ms = 100\n",
        "nratelimited",
        TRICKLE,
    );
    // The listed counters catch up within a second or so.
    let (events, posted, folded) = wait_for(&h, "every posted event written", || {
        let flood = h.policy("flood")?;
        let (posted, folded) = (flood["npost"].as_u64()?, flood["nratelimited"].as_u64()?);
        let events = h.events();
        // Hook events only: a rate_limit_info line names its policy too.
        let of = |name: &str| {
            events
                .iter()
                .filter(|e| e.get("rate_limit_info").is_none() && policy_of(e) == Some(name))
                .count() as u64
        };
        (of("flood") == posted && of("trickle") == TRICKLE).then_some((events, posted, folded))
    });
    assert!(
        posted * 1000 < folded,
        "a few events stand for the flood: {posted} posted, {folded} folded"
    );
    let repeats: u64 = events
        .iter()
        .filter(|e| policy_of(e) == Some("flood"))
        .filter_map(|e| body(e).and_then(|(_, b)| b["repeats"].as_u64()))
        .sum();
    // The last window's count waits in the kernel for an event that never
    // comes; the stream's post_rate_limit reports count it.
    assert!(
        repeats > 0 && repeats <= folded,
        "{repeats} repeats carried of {folded}"
    );
    assert_eq!(
        reported(&events, "ring_buffer") + reported(&events, "backlog"),
        0
    );
    assert!(events
        .iter()
        .filter(|e| policy_of(e) == Some("trickle"))
        .all(|e| body(e).is_some_and(|(_, b)| b.get("repeats").is_none())));
    assert_valid(&schema(), &events);
}

#[test]
fn policy_rate_limit_drops_are_reported() {
    let mut h = Harness::new();
    h.write_config("[export]\npolicy_rate_limit_per_minute = 5\n");
    h.start_daemon();
    h.write_policy(
        "limited.yaml",
        &kill_policy("limited", SYS_GETPRIORITY, POST_ACTION, ""),
    );
    h.wait_policy("limited", "enabled", enabled);
    let (_, status) = run_bin(&["syscall", &SYS_GETPRIORITY.to_string(), "50"]);
    assert!(status.success());
    let info = wait_for(&h, "a policy_rate_limit report", || {
        h.events()
            .into_iter()
            .find(|e| e["rate_limit_info"]["reason"] == "policy_rate_limit")
    });
    assert_eq!(info["rate_limit_info"]["policy_name"], "limited");
    assert_eq!(
        info["rate_limit_info"]["number_of_dropped_process_events"],
        "45"
    );
    assert_eq!(h.hook_events().len(), 5);
    let status = status_text(&h);
    assert!(status.contains("policy_rate_limit=45"), "{status}");
    assert_valid(&schema(), &h.events());
}

/// `tetra getevents` as a child, its lines sent with the instant they came.
fn getevents(
    h: &Harness,
    args: &[&str],
) -> (std::process::Child, mpsc::Receiver<(Instant, String)>) {
    let mut child = Command::new(release_bin("tetra"))
        .arg("getevents")
        .arg("--events-socket")
        .arg(&h.events_socket)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tetra getevents");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

#[test]
fn getevents_compact_shows_a_live_kill() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "live.yaml",
        &kill_policy("kill-live", SYS_SCHED_GETSCHEDULER, SIGKILL_ACTION, ""),
    );
    h.wait_policy("kill-live", "enabled", enabled);
    let (mut compact, compact_rx) = getevents(&h, &["-o", "compact", "--policy", "kill-live"]);
    let (mut json_out, json_rx) = getevents(&h, &["-o", "json", "--process", "tetragond-testbin$"]);
    wait_for(&h, "both clients connected", || {
        status_text(&h).contains(", 2 clients,").then_some(())
    });
    let started = Instant::now();
    let (_, status) = run_bin(&["syscall", &SYS_SCHED_GETSCHEDULER.to_string()]);
    assert!(killed_by_sigkill(status));
    let deadline = Instant::now() + WAIT;
    let (seen_at, line) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, line) = compact_rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no kill line from tetra getevents\nlog:\n{}", h.log()));
        if line.starts_with("💥 kill") {
            break (at, line);
        }
    };
    eprintln!(
        "tetra getevents showed the kill {:?} after the test binary was started: {line}",
        seen_at - started
    );
    assert!(line.contains(&testbin().display().to_string()), "{line}");
    assert!(line.contains("policy=kill-live"), "{line}");
    let (_, json_line) = json_rx.recv_timeout(WAIT).expect("a JSON line");
    let ev: Value = serde_json::from_str(&json_line).expect("JSON");
    assert_valid(&schema(), &[ev]);
    let _ = compact.kill();
    let _ = json_out.kill();
    let _ = compact.wait();
    let _ = json_out.wait();
}

/// Calls each process makes in the Post `rateLimit` tests.
const RATE_CALLS: u64 = 50;

/// The Post `rateLimit` tests: a policy on `nr` from the test binary
/// whose Post has `rate_lines` (none: no rateLimit). Two processes make
/// `RATE_CALLS` identical calls each; returns the events the policy posted
/// after each, and its `nratelimited` at the end. Every line is checked
/// against the schema.
fn rate_limit_run(name: &str, nr: u32, rate_lines: &str) -> (usize, usize, u64) {
    let mut h = Harness::new();
    h.start_daemon();
    let actions = format!("{POST_ACTION}{rate_lines}");
    h.write_policy(
        &format!("{name}.yaml"),
        &kill_policy(name, nr, &actions, ""),
    );
    h.wait_policy(name, "enabled", enabled);
    let posted = |h: &Harness| {
        h.hook_events()
            .iter()
            .filter(|e| policy_of(e) == Some(name))
            .count()
    };
    let mut after = vec![];
    for round in 1..=2u64 {
        let (_, status) = run_bin(&["syscall", &nr.to_string(), &RATE_CALLS.to_string()]);
        assert!(status.success());
        // Every call is either posted or limited, in the kernel's counters.
        let p = h.wait_policy(name, "every call counted", |p| {
            p["npost"].as_u64().unwrap_or(0) + p["nratelimited"].as_u64().unwrap_or(0)
                == round * RATE_CALLS
        });
        // The writer is asynchronous: wait for what the kernel posted (a
        // process without events has no exit line to wait for).
        let npost = p["npost"].as_u64().unwrap_or(0) as usize;
        wait_for(&h, "the posted events", || {
            (posted(&h) >= npost).then_some(())
        });
        after.push(posted(&h));
    }
    let p = h.policy(name).expect("listed");
    assert_eq!(p["npost"].as_u64(), Some(after[1] as u64), "{p}");
    let limited = p["nratelimited"].as_u64().unwrap_or(u64::MAX);
    if limited > 0 {
        // The stream says how many it did not carry, once a second.
        wait_for(&h, "the rate-limited events reported in the stream", || {
            (post_rate_limit_reported(&h, name) == limited).then_some(())
        });
    }
    assert_valid(&schema(), &h.events());
    (after[0], after[1], limited)
}

/// The sum of `post_rate_limit` reports for `policy` in the events file.
fn post_rate_limit_reported(h: &Harness, policy: &str) -> u64 {
    h.events()
        .iter()
        .filter_map(|e| e.get("rate_limit_info"))
        .filter(|i| i["reason"] == "post_rate_limit" && i["policy_name"] == policy)
        .filter_map(|i| {
            i["number_of_dropped_process_events"]
                .as_str()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[test]
fn post_rate_limit_thread_scope_posts_once_per_thread() {
    // Tetragon's default scope is the thread.
    let (first, both, limited) =
        rate_limit_run("rl-thread", SYS_GETPRIORITY, "        rateLimit: 1m\n");
    assert_eq!(
        (first, both),
        (1, 2),
        "one event per process (one thread each)"
    );
    assert_eq!(limited, 2 * RATE_CALLS - 2);
}

#[test]
fn post_rate_limit_process_scope_posts_once_per_process() {
    let (first, both, limited) = rate_limit_run(
        "rl-process",
        SYS_GETPGRP,
        "        rateLimit: 1m\n        rateLimitScope: process\n",
    );
    assert_eq!((first, both), (1, 2), "one event per process");
    assert_eq!(limited, 2 * RATE_CALLS - 2);
}

#[test]
fn post_rate_limit_global_scope_posts_once() {
    let (first, both, limited) = rate_limit_run(
        "rl-global",
        SYS_SCHED_GETSCHEDULER,
        "        rateLimit: 1m\n        rateLimitScope: global\n",
    );
    assert_eq!((first, both), (1, 1), "the second process posts nothing");
    assert_eq!(limited, 2 * RATE_CALLS - 1);
}

/// A burst of `BURST` identical calls, a pause longer than the window,
/// then one more, from one process, on a policy whose Post `actions` are
/// limited (by `rateLimit` or the daemon's window, per `config`): the first
/// call is posted, the burst's other calls stay in the kernel, and the last
/// call's event says how many.
fn burst_run(name: &str, nr: u32, actions: &str, config: &str) -> Vec<Value> {
    const BURST: u64 = 20;
    let mut h = Harness::new();
    h.write_config(config);
    h.start_daemon();
    h.write_policy(&format!("{name}.yaml"), &kill_policy(name, nr, actions, ""));
    h.wait_policy(name, "enabled", enabled);
    let (_, status) = run_bin(&["burst", &nr.to_string(), &BURST.to_string(), "1500"]);
    assert!(status.success());
    let p = h.wait_policy(name, "every call counted", |p| {
        p["npost"].as_u64().unwrap_or(0) + p["nratelimited"].as_u64().unwrap_or(0) == BURST + 1
    });
    assert_eq!(p["npost"].as_u64(), Some(2), "{p}");
    let events = wait_for(&h, "both events", || {
        let mine: Vec<Value> = h
            .hook_events()
            .into_iter()
            .filter(|e| policy_of(e) == Some(name))
            .collect();
        (mine.len() == 2).then_some(mine)
    });
    assert_valid(&schema(), &h.events());
    let repeats: Vec<Option<u64>> = events
        .iter()
        .map(|e| body(e).and_then(|(_, b)| b["repeats"].as_u64()))
        .collect();
    assert_eq!(
        repeats,
        vec![None, Some(BURST - 1)],
        "the first event stands alone, the next carries the burst's others"
    );
    events
}

#[test]
fn post_rate_limit_folds_the_repeats_into_the_next_event() {
    burst_run(
        "rl-repeats",
        SYS_GETSID,
        "      - action: Post\n        rateLimit: 1s\n        rateLimitScope: process\n",
        "",
    );
}

#[test]
fn the_aggregation_window_folds_identical_events_of_a_plain_post() {
    burst_run(
        "aggregated",
        SYS_SCHED_GET_PRIORITY_MAX,
        POST_ACTION,
        "[export]\naggregate_window_ms = 1000\n",
    );
}

#[test]
fn post_without_rate_limit_posts_every_call() {
    let (first, both, limited) = rate_limit_run("rl-none", SYS_TIMES, "");
    assert_eq!((first as u64, both as u64), (RATE_CALLS, 2 * RATE_CALLS));
    assert_eq!(limited, 0);
}

#[test]
fn binary_properties_name_set_id_and_memfd_executions() {
    let mut h = Harness::new();
    h.write_config("[export]\nprocess_events = \"all\"\n");
    h.start_daemon();
    // A set-user-ID root copy of the test binary, run by uid 65534.
    let suid = testbin_copy(&h.root.join("suid"));
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).expect("chmod u+s");
    let suid_path = suid.display().to_string();
    let (_, status) = run_bin(&["setuid", "65534", "exec", &suid_path, "probe", "1"]);
    assert!(status.success());
    let exec_of = |h: &Harness, what: &str, pred: &dyn Fn(&Value) -> bool| {
        wait_for(h, what, || {
            h.events()
                .into_iter()
                .find(|e| e["process_exec"].is_object() && pred(&e["process_exec"]["process"]))
        })
    };
    let raised = exec_of(&h, "the set-user-ID exec", &|p| p["binary"] == suid_path);
    assert_eq!(
        raised["process_exec"]["process"]["binary_properties"],
        json!({"setuid": 0, "privileges_changed": ["PRIVILEGES_RAISED_EXEC_FILE_SETUID"]}),
        "{raised}"
    );
    // The same binary run by root raises nothing: no binary_properties.
    let (plain, status) = run_bin(&["exec", &suid_path, "probe", "2"]);
    assert!(status.success());
    let by_root = exec_of(&h, "root's exec", &|p| {
        p["binary"] == suid_path && p["pid"] == plain
    });
    assert!(
        by_root["process_exec"]["process"]
            .get("binary_properties")
            .is_none(),
        "{by_root}"
    );
    // From a memfd: an executable without a name on disk.
    let (fileless, status) = run_bin(&["memfd-exec", "probe", "3"]);
    assert!(status.success());
    let memfd = exec_of(&h, "the memfd exec", &|p| {
        p["pid"] == fileless && p["arguments"] == "probe 3"
    });
    let file = &memfd["process_exec"]["process"]["binary_properties"]["file"];
    assert_eq!(file["inode"]["links"], 0, "{memfd}");
    assert!(
        file["inode"]["number"]
            .as_str()
            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n != 0)),
        "{memfd}"
    );
    assert_valid(&schema(), &[raised, by_root, memfd]);
}

#[test]
fn loader_events_name_each_mapped_file_once_with_its_build_id() {
    let mut h = Harness::new();
    h.start_daemon();
    let policy = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: loader\nspec:\n  loader: true\n";
    h.write_policy("loader.yaml", policy);
    h.wait_policy("loader", "enabled", enabled);
    let copy = testbin_copy(&h.root.join("mapped"));
    let copy_path = copy.display().to_string();
    // Mapped twice by one process: one event.
    let (pid, status) = run_bin(&["map-exec", &copy_path, &copy_path]);
    assert!(status.success());
    let of_copy = |h: &Harness| -> Vec<Value> {
        h.events()
            .into_iter()
            .filter(|e| e["process_loader"]["path"] == copy_path.as_str())
            .collect()
    };
    let ev = wait_for(&h, "the loader event", || of_copy(&h).into_iter().next());
    let body = &ev["process_loader"];
    assert_eq!(body["process"]["pid"], pid, "{ev}");
    assert_eq!(body["policy_name"], "loader", "{ev}");
    // rustc's GNU build ID is 20 bytes: 28 characters of base64.
    let id = body["buildid"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 28, "{ev}");
    // Another process mapping it is another event; then the first
    // process's second mapping has surely been read: still one for it.
    let (other, status) = run_bin(&["map-exec", &copy_path]);
    assert!(status.success());
    wait_for(&h, "the second process's event", || {
        of_copy(&h)
            .into_iter()
            .find(|e| e["process_loader"]["process"]["pid"] == other)
    });
    let firsts = of_copy(&h)
        .into_iter()
        .filter(|e| e["process_loader"]["process"]["pid"] == pid)
        .count();
    assert_eq!(firsts, 1, "each (process, file) once");
    assert_valid(&schema(), &[ev]);
}
