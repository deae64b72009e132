//! Fail closed: what `tetra tp list` shows as enabled in enforce mode is
//! enforced, whatever goes wrong with the folder, its files or an edit, and
//! nothing an unprivileged user owns changes that.

mod common;

use std::{
    fs,
    os::unix::fs::{symlink, PermissionsExt},
    path::Path,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

const SYS_GETRESUID: u32 = 118;
const SYS_GETRESGID: u32 = 120;
const SYS_SCHED_GET_PRIORITY_MIN: u32 = 147;
const NOBODY: u32 = 65534;

fn spec_options(mode: &str) -> String {
    format!("  options:\n  - name: policy-mode\n    value: {mode}\n")
}

/// A uprobe the kernel cannot attach: the symbol is not in the binary.
fn unattachable_uprobe() -> String {
    format!(
        "  uprobes:\n  - path: \"{}\"\n    symbols: [tetragond_no_such_symbol]\n    selectors:\n    - matchActions:\n      - action: Post\n",
        testbin().display()
    )
}

fn assert_killed(nr: u32, why: &str) {
    let status = run_testbin(nr);
    assert!(
        killed_by_sigkill(status),
        "{why}: syscall {nr} ended {status:?}"
    );
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("chown");
}

fn status_text(h: &Harness) -> String {
    let out = h.tetra(&["status"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_status(h: &Harness, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = status_text(h);
        if pred(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "status never {what}: {text}\nlog:\n{}",
            h.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failed_edit_keeps_the_last_good_version_and_its_mode() {
    let mut h = Harness::new();
    h.start_daemon();
    let nr = SYS_SCHED_GET_PRIORITY_MIN;
    h.write_policy("keep.yaml", &kill_policy("keep", nr, SIGKILL_ACTION, ""));
    h.wait_policy("keep", "enabled", enabled);
    assert_killed(nr, "the first version kills");
    // The edit asks for monitor and adds a hook that cannot be installed.
    let broken = kill_policy(
        "keep",
        nr,
        SIGKILL_ACTION,
        &(spec_options("monitor") + &unattachable_uprobe()),
    );
    h.write_policy("keep.yaml", &broken);
    let p = h.wait_policy("keep", "load_error", |p| p["state"] == "load_error");
    assert!(
        p["error"]
            .as_str()
            .unwrap_or("")
            .contains("tetragond_no_such_symbol"),
        "{p}"
    );
    assert_eq!(
        p["mode"], "enforce",
        "listed with the mode the kernel runs: {p}"
    );
    assert_killed(nr, "the last good version still kills, in enforce mode");
    let p = h.wait_policy("keep", "counted", |p| p["nenforce"] == 2);
    assert_eq!(p["nmonitor"], 0, "{p}");
}

/// An edit whose switch cannot write every hook list (the map is full, so
/// the list of the syscall it adds cannot be) changes none: the list it
/// rewrote first is put back, the old version keeps killing, the new one
/// never fires, and the list says load_error in the mode the kernel runs.
#[test]
fn a_switch_that_cannot_write_every_list_changes_none() {
    let mut h = Harness::new();
    h.start_daemon();
    let (old_nr, new_nr) = (SYS_SCHED_GETSCHEDULER, SYS_SCHED_GET_PRIORITY_MAX);
    h.write_policy(
        "lists.yaml",
        &kill_policy("lists", old_nr, SIGKILL_ACTION, ""),
    );
    h.wait_policy("lists", "enabled", enabled);
    assert_killed(old_nr, "the first version kills");
    let map = daemon_map_id(&h, "HOOK_LISTS");
    let filler = fill_map(map);
    // The edit keeps old_nr (its list is rewritten) and adds new_nr (a
    // list the full map has no room for).
    let both = |options: &str| {
        kill_policy("lists", old_nr, SIGKILL_ACTION, options).replace(
            &format!("values: [\"{old_nr}\"]"),
            &format!("values: [\"{old_nr}\", \"{new_nr}\"]"),
        )
    };
    h.write_policy("lists.yaml", &both(""));
    let p = h.wait_policy("lists", "load_error", |p| p["state"] == "load_error");
    assert_eq!(
        p["mode"], "enforce",
        "listed in the mode the kernel runs: {p}"
    );
    assert!(
        p["error"].as_str().unwrap_or("").contains("HOOK_LISTS"),
        "{p}"
    );
    assert_killed(old_nr, "the old version's list was put back");
    assert!(
        !killed_by_sigkill(run_testbin(new_nr)),
        "the new version's list was never written"
    );
    let deletes: String = filler
        .iter()
        .map(|key| format!("map delete id {map} key {key}\n"))
        .collect();
    bpftool_batch(&deletes);
    h.write_policy("lists.yaml", &both("  # room again\n"));
    h.wait_policy("lists", "enabled", enabled);
    assert_killed(new_nr, "with room again the edit loads");
}

/// Fills the hash map `map` to its last entry with keys no program looks
/// up (site 0xffff0000); returns the keys, as bpftool writes them.
fn fill_map(map: u32) -> Vec<String> {
    let json = |args: &[&str]| -> Value {
        let out = std::process::Command::new("bpftool")
            .args(["-j", "map"])
            .args(args)
            .arg("id")
            .arg(map.to_string())
            .output()
            .expect("run bpftool");
        serde_json::from_slice(&out.stdout).expect("bpftool JSON")
    };
    let show = json(&["show"]);
    let max = show["max_entries"].as_u64().expect("max_entries");
    let value_len = show["bytes_value"].as_u64().expect("bytes_value") as usize;
    let used = json(&["dump"]).as_array().map_or(0, Vec::len) as u64;
    let value = vec!["0"; value_len].join(" ");
    let keys: Vec<String> = (0..max - used)
        .map(|i| {
            let bytes = [0xffff_0000u32.to_le_bytes(), (i as u32).to_le_bytes()].concat();
            bytes
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let updates: String = keys
        .iter()
        .map(|key| format!("map update id {map} key {key} value {value} noexist\n"))
        .collect();
    bpftool_batch(&updates);
    keys
}

fn bpftool_batch(commands: &str) {
    let file = std::env::temp_dir().join(format!("tetragond-batch-{}", std::process::id()));
    fs::write(&file, commands).expect("write the batch");
    let out = std::process::Command::new("bpftool")
        .args(["batch", "file"])
        .arg(&file)
        .output()
        .expect("run bpftool batch");
    let _ = fs::remove_file(&file);
    assert!(
        out.status.success(),
        "bpftool batch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn untrusted_files_and_sidecars_are_load_errors_with_the_reason() {
    let mut h = Harness::new();
    h.start_daemon();
    let dir = h.policy_dir.clone();
    let nr = SYS_GETRESGID;
    // A policy owned by nobody, and one anybody may write.
    let owned = dir.join("owned.yaml");
    fs::write(
        &owned,
        kill_policy("owned", SYS_GETRESUID, SIGKILL_ACTION, ""),
    )
    .unwrap();
    chown(&owned, NOBODY);
    let open = dir.join("open.yaml");
    fs::write(
        &open,
        kill_policy("open", SYS_GETRESUID, SIGKILL_ACTION, ""),
    )
    .unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o666)).unwrap();
    h.write_policy("guard.yaml", &kill_policy("guard", nr, SIGKILL_ACTION, ""));
    h.wait_policy("guard", "enabled", enabled);
    // Unparsed files are listed by their file name.
    let refused =
        |name: &str| -> Value { h.wait_policy(name, "load_error", |p| p["state"] == "load_error") };
    let p = refused("owned");
    assert!(
        p["error"].as_str().unwrap().contains("owned by uid 65534"),
        "{p}"
    );
    let p = refused("open");
    assert!(p["error"].as_str().unwrap().contains("0666"), "{p}");
    assert!(
        run_testbin(SYS_GETRESUID).success(),
        "neither untrusted file is enforced"
    );
    // nobody's sidecar switching the guard off changes nothing in the kernel.
    let sidecar = dir.join("guard.toml");
    fs::write(&sidecar, "enabled = false\n").unwrap();
    chown(&sidecar, NOBODY);
    let p = h.wait_policy("guard", "load_error", |p| p["state"] == "load_error");
    assert!(p["error"].as_str().unwrap().contains("guard.toml"), "{p}");
    assert_eq!(p["mode"], "enforce", "{p}");
    assert_killed(nr, "the guard still kills");
    // A symlinked sidecar to a device and a FIFO never block the daemon.
    symlink("/dev/zero", dir.join("guard.toml.new")).unwrap();
    fs::rename(dir.join("guard.toml.new"), &sidecar).unwrap();
    let p = h.wait_policy("guard", "device refused", |p| {
        p["error"]
            .as_str()
            .unwrap_or("")
            .contains("character device")
    });
    assert_eq!(p["mode"], "enforce", "{p}");
    fs::remove_file(&sidecar).unwrap();
    mkfifo(&sidecar);
    let p = h.wait_policy("guard", "FIFO refused", |p| {
        p["error"].as_str().unwrap_or("").contains("FIFO")
    });
    assert_eq!(p["mode"], "enforce", "{p}");
    assert_list_answers_quickly(&h);
    assert_killed(nr, "the guard still kills");
}

/// `tetra tp list` answers within a second: nothing stalls the daemon.
fn assert_list_answers_quickly(h: &Harness) {
    let started = Instant::now();
    h.list();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "list took {:?}",
        started.elapsed()
    );
}

fn mkfifo(path: &Path) {
    let path = path.to_str().expect("a UTF-8 test path");
    let c = std::ffi::CString::new(path).expect("no NUL in a test path");
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[test]
fn a_fifo_or_an_oversized_file_at_start_does_not_stop_ready() {
    let mut h = Harness::new();
    let dir = h.policy_dir.clone();
    mkfifo(&dir.join("fifo.yaml"));
    fs::write(dir.join("big.yaml"), "#".repeat(2 << 20)).unwrap();
    h.write_policy(
        "ok.yaml",
        &kill_policy("ok", SYS_GETRESUID, SIGKILL_ACTION, ""),
    );
    // start_daemon waits for READY=1.
    h.start_daemon();
    h.wait_policy("ok", "enabled", enabled);
    let errors: Vec<String> = h
        .list()
        .into_iter()
        .filter(|p| p["state"] == "load_error")
        .map(|p| p["error"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(errors.iter().any(|e| e.contains("FIFO")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("max_policy_file_size")),
        "{errors:?}"
    );
    assert_killed(SYS_GETRESUID, "the good policy loaded beside them");
}

#[test]
fn an_unreadable_or_replaced_folder_changes_nothing_until_readable() {
    let mut h = Harness::new();
    h.start_daemon();
    let dir = h.policy_dir.clone();
    let nr = SYS_GETRESUID;
    h.write_policy("stay.yaml", &kill_policy("stay", nr, SIGKILL_ACTION, ""));
    h.wait_policy("stay", "enabled", enabled);
    // A folder anybody may write to is not read at all.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    fs::remove_file(dir.join("stay.yaml")).unwrap();
    let status = wait_status(&h, "reporting the folder", |s| s.contains("0777"));
    assert!(status.contains("nothing changed"), "{status}");
    assert!(enabled(&h.policy("stay").expect("still listed")));
    assert_killed(nr, "still enforced while the folder cannot be trusted");
    // A missing folder is not an empty one.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    h.wait_policy_gone("stay");
    h.write_policy("stay.yaml", &kill_policy("stay", nr, SIGKILL_ACTION, ""));
    h.wait_policy("stay", "enabled", enabled);
    let old = h.root.join("policies.old");
    fs::rename(&dir, &old).unwrap();
    wait_status(&h, "reporting the missing folder", |s| {
        s.contains("No such file")
    });
    assert_killed(nr, "still enforced while the folder is missing");
    // Replaced wholesale (`mv new dir`): followed.
    let new = h.root.join("policies.new");
    fs::create_dir(&new).unwrap();
    fs::set_permissions(&new, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        new.join("next.yaml"),
        kill_policy("next", SYS_GETRESGID, SIGKILL_ACTION, ""),
    )
    .unwrap();
    fs::rename(&new, &dir).unwrap();
    h.wait_policy("next", "enabled", enabled);
    h.wait_policy_gone("stay");
    wait_status(&h, "clear", |s| !s.contains("policy folder:"));
    assert_killed(SYS_GETRESGID, "the new folder's policy");
    assert!(run_testbin(nr).success(), "the old folder's policy is gone");
}

#[test]
fn add_policy_never_overwrites_nor_writes_through_a_link() {
    let mut h = Harness::new();
    h.start_daemon();
    let dir = h.policy_dir.clone();
    // `a.b.yaml` holds policy "other"; adding global "a.b" would replace it.
    h.write_policy(
        "a.b.yaml",
        &kill_policy("other", SYS_GETRESUID, SIGKILL_ACTION, ""),
    );
    h.wait_policy("other", "enabled", enabled);
    let new = h.root.join("a.b.yaml");
    fs::write(&new, kill_policy("a.b", SYS_GETRESGID, SIGKILL_ACTION, "")).unwrap();
    let out = h.tetra(&["tp", "add", new.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "AddPolicy onto another policy's file must fail"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert!(
        fs::read_to_string(dir.join("a.b.yaml"))
            .unwrap()
            .contains("name: other"),
        "the other policy's file is untouched"
    );
    // The old temporary name, planted as a link to a file outside.
    let victim = h.root.join("victim");
    fs::write(&victim, "keep").unwrap();
    symlink(&victim, dir.join(".c.yaml.tmp")).unwrap();
    let c = h.root.join("c.yaml");
    fs::write(&c, kill_policy("c", SYS_GETRESGID, SIGKILL_ACTION, "")).unwrap();
    let out = h.tetra(&["tp", "add", c.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.wait_policy("c", "enabled", enabled);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    assert_killed(SYS_GETRESGID, "the added policy");
}

#[test]
fn the_run_time_mode_survives_saves_renames_and_recreation() {
    let mut h = Harness::new();
    h.start_daemon();
    let dir = h.policy_dir.clone();
    let v1 = kill_policy("rt", SYS_SCHED_GET_PRIORITY_MIN, SIGKILL_ACTION, "");
    let v2 = kill_policy("rt", SYS_GETRESUID, SIGKILL_ACTION, "");
    h.write_policy("rt.yaml", &v1);
    h.wait_policy("rt", "enabled", enabled);
    assert!(h.set_mode("rt", "monitor").status.success());
    // Each step is confirmed by behaviour: the version's own syscall is
    // counted as monitored and the process lives. Counters are read from
    // the kernel, so they are current once the process has ended.
    let nmonitor = || {
        h.policy("rt")
            .map_or(0, |p| p["nmonitor"].as_u64().unwrap_or(0))
    };
    let counted_as_monitored = |nr: u32| {
        let before = nmonitor();
        let status = run_testbin(nr);
        assert!(
            status.success(),
            "syscall {nr} killed: the run-time mode was lost"
        );
        nmonitor() > before
    };
    let runs_in_runtime_monitor = |what: &str| {
        let p = h.policy("rt").expect("listed");
        assert_eq!(p["mode"], "monitor", "{what}: {p}");
        assert_eq!(p["mode_source"], "runtime", "{what}: {p}");
    };
    assert!(counted_as_monitored(SYS_SCHED_GET_PRIORITY_MIN));
    // vim: the file is renamed to a backup, written anew, the backup removed.
    fs::rename(dir.join("rt.yaml"), dir.join("rt.yaml~")).unwrap();
    fs::write(dir.join("rt.yaml"), &v2).unwrap();
    fs::remove_file(dir.join("rt.yaml~")).unwrap();
    let deadline = Instant::now() + WAIT;
    while !counted_as_monitored(SYS_GETRESUID) {
        assert!(
            Instant::now() < deadline,
            "the saved version never loaded: {:?}",
            h.policy("rt")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    runs_in_runtime_monitor("after a vim-style save");
    // mv to another name: handed over, same policy.
    let id = h.policy("rt").unwrap()["id"].clone();
    fs::rename(dir.join("rt.yaml"), dir.join("renamed.yaml")).unwrap();
    let deadline = Instant::now() + WAIT;
    while !h.log().contains("renamed.yaml") {
        assert!(Instant::now() < deadline, "rename not seen:\n{}", h.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let p = h.policy("rt").expect("still listed");
    assert_eq!(p["id"], id, "a rename hands the policy over: {p}");
    assert!(counted_as_monitored(SYS_GETRESUID));
    runs_in_runtime_monitor("after mv");
    // Delete, then create again.
    fs::remove_file(dir.join("renamed.yaml")).unwrap();
    h.wait_policy_gone("rt");
    h.write_policy("rt.yaml", &v1);
    h.wait_policy("rt", "back", enabled);
    assert!(counted_as_monitored(SYS_SCHED_GET_PRIORITY_MIN));
    runs_in_runtime_monitor("after delete and create");
}

#[test]
fn set_mode_that_cannot_be_stored_changes_nothing() {
    let mut h = Harness::new();
    h.start_daemon();
    let nr = SYS_GETRESGID;
    h.write_policy("m.yaml", &kill_policy("m", nr, SIGKILL_ACTION, ""));
    h.wait_policy("m", "enabled", enabled);
    // The state folder replaced by a file: runtime.json cannot be written.
    let state = h.state_dir.clone();
    let aside = h.root.join("state.aside");
    if state.exists() {
        fs::rename(&state, &aside).unwrap();
    }
    fs::write(&state, "not a folder").unwrap();
    let out = h.set_mode("m", "monitor");
    assert!(
        !out.status.success(),
        "SetMode must fail when it cannot be stored"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not stored"), "{err}");
    let p = h.policy("m").unwrap();
    assert_eq!(p["mode"], "enforce", "{p}");
    assert_killed(nr, "still enforced");
    fs::remove_file(&state).unwrap();
    if aside.exists() {
        fs::rename(&aside, &state).unwrap();
    }
    assert!(h.set_mode("m", "monitor").status.success());
    assert!(run_testbin(nr).success(), "monitor once stored");
}

#[test]
fn a_file_broken_at_start_runs_its_last_good_version() {
    let mut h = Harness::new();
    h.start_daemon();
    let nr = SYS_SCHED_GET_PRIORITY_MIN;
    h.write_policy("lg.yaml", &kill_policy("lg", nr, SIGKILL_ACTION, ""));
    h.wait_policy("lg", "enabled", enabled);
    h.stop_daemon();
    // Broken while the daemon is down: a half-finished edit.
    h.write_policy("lg.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {name: lg}\nspec:\n  tracepoints: [");
    h.start_daemon();
    let p = h.wait_policy("lg", "load_error", |p| p["state"] == "load_error");
    let error = p["error"].as_str().unwrap_or("");
    assert!(error.contains("lg.yaml:"), "the error names the file: {p}");
    assert!(
        error.contains("running the last good version, of 20"),
        "{p}"
    );
    assert_eq!(p["mode"], "enforce", "{p}");
    assert_killed(nr, "the last good version enforces");
    // Fixed: the fixed version runs and the error goes.
    h.write_policy(
        "lg.yaml",
        &kill_policy("lg", SYS_GETRESUID, SIGKILL_ACTION, ""),
    );
    h.wait_policy("lg", "enabled", enabled);
    assert_killed(SYS_GETRESUID, "the fixed version");
    assert!(
        run_testbin(nr).success(),
        "the last good version is replaced"
    );
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    let mut h = Harness::new();
    h.start_daemon();
    let limits = fs::read_to_string(format!("/proc/{}/limits", h.daemon_pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "soft = hard: {line}");
}

#[test]
fn a_flood_of_unprivileged_reads_does_not_hold_up_root() {
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    };
    let mut h = Harness::new();
    h.start_daemon();
    let nr = SYS_GETRESGID;
    h.write_policy("flood.yaml", &kill_policy("flood", nr, SIGKILL_ACTION, ""));
    h.wait_policy("flood", "enabled", enabled);
    let stop = Arc::new(AtomicBool::new(false));
    let limited = Arc::new(AtomicUsize::new(0));
    let address = format!("--address={}", h.bus_address);
    let flooders: Vec<_> = (0..6)
        .map(|_| {
            let (stop, limited, address) = (stop.clone(), limited.clone(), address.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let out = as_nobody(
                        Path::new("/usr/bin/busctl"),
                        &[
                            &address,
                            "call",
                            "org.tetragond.Tetragond1",
                            "/org/tetragond/Tetragond1",
                            "org.tetragond.Tetragond1.Manager",
                            "ListPolicies",
                        ],
                    );
                    if String::from_utf8_lossy(&out.stderr)
                        .contains("too many calls from uid 65534")
                    {
                        limited.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // The flood is on once the limit answers.
    let deadline = Instant::now() + WAIT;
    while limited.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the flood was never limited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut slowest = Duration::ZERO;
    for mode in ["monitor", "enforce"].repeat(5) {
        let started = Instant::now();
        let out = h.set_mode("flood", mode);
        slowest = slowest.max(started.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    eprintln!(
        "root's slowest SetMode under the flood: {slowest:?}; {} calls refused",
        limited.load(Ordering::Relaxed)
    );
    assert!(slowest < Duration::from_secs(1), "root waited {slowest:?}");
    assert_killed(nr, "the last SetMode (enforce) took effect");
}

/// A connection the daemon closed at once reads end-of-file; one it serves
/// stays open (the read times out).
fn closed_at_once(conn: &mut impl std::io::Read) -> bool {
    let mut byte = [0u8; 1];
    matches!(conn.read(&mut byte), Ok(0))
}

#[test]
fn connections_beyond_the_caps_are_closed_at_once() {
    use std::os::unix::net::UnixStream;
    let mut h = Harness::new();
    h.daemon_args = vec!["--metrics-address".into(), "127.0.0.1:0".into()];
    h.start_daemon();
    let timeout = Some(Duration::from_millis(500));
    // Event stream: 16 clients are served.
    let mut clients: Vec<UnixStream> = (0..16)
        .map(|_| UnixStream::connect(&h.events_socket).expect("connect to the stream"))
        .collect();
    let mut extra = UnixStream::connect(&h.events_socket).expect("connect");
    extra.set_read_timeout(timeout).unwrap();
    assert!(
        closed_at_once(&mut extra),
        "the 17th stream client is closed"
    );
    clients[0].set_read_timeout(timeout).unwrap();
    assert!(!closed_at_once(&mut clients[0]), "the first 16 stay served");
    drop(clients);
    // Metrics: 32 connections are served.
    let log = h.log();
    let address = log
        .split("metrics at http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
        .to_string();
    let mut held: Vec<std::net::TcpStream> = (0..32)
        .map(|_| std::net::TcpStream::connect(&address).expect("connect to metrics"))
        .collect();
    // Accepted in order: once the 32nd is served (open), the next is over the cap.
    held[31].set_read_timeout(timeout).unwrap();
    assert!(!closed_at_once(&mut held[31]), "the 32nd scraper is served");
    let mut extra = std::net::TcpStream::connect(&address).expect("connect");
    extra.set_read_timeout(timeout).unwrap();
    assert!(closed_at_once(&mut extra), "the 33rd scraper is closed");
}

/// A FIFO at a uprobe's path (put there by whoever can write that folder)
/// neither stalls the daemon nor gets read: aya and the kernel are handed
/// the file the daemon checked, and a file that is not a regular one is a
/// load_error; the other policies stay enforced.
#[test]
fn a_fifo_at_a_uprobe_path_is_refused_without_stalling() {
    let mut h = Harness::new();
    h.start_daemon();
    let nr = SYS_GETRESUID;
    h.write_policy("stay.yaml", &kill_policy("stay", nr, SIGKILL_ACTION, ""));
    h.wait_policy("stay", "enabled", enabled);
    let fifo = h.root.join("probe-target");
    mkfifo(&fifo);
    let policy = format!(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: fifo-uprobe\nspec:\n  uprobes:\n  - path: \"{}\"\n    symbols: [main]\n    selectors:\n    - matchActions:\n      - action: Post\n",
        fifo.display()
    );
    h.write_policy("fifo.yaml", &policy);
    let p = h.wait_policy("fifo-uprobe", "load_error", |p| p["state"] == "load_error");
    assert!(
        p["error"]
            .as_str()
            .unwrap_or("")
            .contains("is not a regular file"),
        "{p}"
    );
    assert_list_answers_quickly(&h);
    assert_killed(nr, "the other policy still kills");
}
