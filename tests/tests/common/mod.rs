//! Test harness: a private D-Bus daemon, the real tetragond started on it
//! with its own policy folder and a NOTIFY_SOCKET we bind, and helpers to
//! drive it with the real `tetra` and `busctl`.
//!
//! These tests load BPF programs: they need root, a kernel with BTF and
//! tracepoints, dbus-daemon and busctl. A missing prerequisite panics with
//! what to install; nothing is skipped.
#![allow(
    dead_code,
    reason = "each test file uses only part of the shared harness"
)]

use std::{
    collections::BTreeSet,
    fs,
    io::Read,
    os::unix::{
        net::UnixDatagram,
        process::{CommandExt, ExitStatusExt},
    },
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

#[path = "schema.rs"]
pub mod schema;
#[path = "tetragon.rs"]
pub mod tetragon;

/// A guard against hangs, not a speed goal: CI machines can be busy.
pub const WAIT: Duration = Duration::from_secs(60);
static COUNTER: AtomicU32 = AtomicU32::new(0);

// Syscalls the test binary makes for the tests; none is made by its
// runtime at start-up, so a policy on one touches nothing else.
pub const SYS_SYSINFO: u32 = 99;
pub const SYS_TIMES: u32 = 100;
pub const SYS_GETPGRP: u32 = 111;
pub const SYS_GETPGID: u32 = 121;
pub const SYS_GETSID: u32 = 124;
pub const SYS_GETPRIORITY: u32 = 140;
pub const SYS_SCHED_GETSCHEDULER: u32 = 145;
pub const SYS_SCHED_GET_PRIORITY_MAX: u32 = 146;
// Syscalls the operator tables call with a key argument no other process
// passes (an invalid `which`: the call only fails with EINVAL), so even a
// policy whose other filters match every process touches the tests alone.
pub const SYS_GETITIMER: u32 = 36;
pub const SYS_IOPRIO_GET: u32 = 252;

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A release binary of the workspace, built by the test command before the
/// tests. It sits next to the test binary cargo built for these tests:
/// target/x86_64-unknown-linux-gnu/release/ with the build target that
/// .cargo/config.toml names (for static binaries).
pub fn release_bin(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_tetragond-testbin"))
        .parent()
        .expect("the test binary is in a folder");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --release` (scripts/test does)",
        path.display()
    );
    path
}

pub fn testbin() -> PathBuf {
    fs::canonicalize(env!("CARGO_BIN_EXE_tetragond-testbin")).expect("testbin exists")
}

fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is required by the integration tests: apt-get install {package}"
    );
}

pub fn require_root() {
    // SAFETY: plain libc call.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the integration tests load BPF programs and must run as root"
    );
}

pub struct Harness {
    pub root: PathBuf,
    pub policy_dir: PathBuf,
    pub state_dir: PathBuf,
    pub events_file: PathBuf,
    /// The live event stream (`tetra getevents --events-socket`).
    pub events_socket: PathBuf,
    /// More arguments for tetragond, set before `start_daemon`.
    pub daemon_args: Vec<String>,
    pub log_file: PathBuf,
    pub bus_address: String,
    bus: Child,
    daemon: Option<Child>,
    notify: UnixDatagram,
    /// Every notify message received so far.
    pub notifications: Vec<String>,
}

/// The bus a harness starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// Anyone may do anything: the daemon's own uid check is all there is.
    Permissive,
    /// Like Debian's system bus (method calls denied unless a policy file
    /// allows them), with the shipped packaging/dbus policy included.
    SystemLike,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_bus(BusKind::Permissive)
    }

    pub fn with_bus(kind: BusKind) -> Self {
        require_root();
        require("dbus-daemon", "dbus-daemon");
        require("busctl", "systemd");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("tetragond-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("temp dir");
        let policy_dir = root.join("policies.d");
        fs::create_dir_all(&policy_dir).expect("policy dir");
        let (bus, bus_address) = start_bus(&root, kind);
        let notify_path = root.join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Harness {
            state_dir: root.join("state"),
            events_file: root.join("events.log"),
            events_socket: root.join("events.sock"),
            daemon_args: vec![],
            log_file: root.join("tetragond.log"),
            policy_dir,
            root,
            bus_address,
            bus,
            daemon: None,
            notify,
            notifications: vec![],
        }
    }

    /// Starts tetragond and waits for READY=1.
    pub fn start_daemon(&mut self) {
        let log = fs::File::create(&self.log_file).expect("log file");
        let mut command = Command::new(release_bin("tetragond"));
        // A test that needs a daemon configuration writes it here first.
        let config = self.root.join("tetragond.toml");
        if config.exists() {
            command.arg("--config").arg(&config);
        }
        command
            .arg("--policy-dir")
            .arg(&self.policy_dir)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--events-file")
            .arg(&self.events_file)
            .arg("--events-socket")
            .arg(&self.events_socket)
            .args(&self.daemon_args)
            // A test's daemon pins nothing unless the test asks: one killed
            // with its test must not leave its policies enforcing.
            .args(
                (!self
                    .daemon_args
                    .iter()
                    .any(|a| a == "--pin-dir" || a == "--no-pin"))
                .then_some("--no-pin"),
            )
            .arg("--bus")
            .arg(&self.bus_address)
            .env("NOTIFY_SOCKET", self.root.join("notify.sock"))
            .env("TETRAGOND_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        // If this test process dies (killed, timed out), the daemon goes with
        // it instead of enforcing its policies on later runs.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            })
        };
        let child = command.spawn().expect("start tetragond");
        self.daemon = Some(child);
        self.wait_notify("READY=1");
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon running").id()
    }

    /// Reads notify datagrams until one contains `needle`; returns it.
    pub fn wait_notify(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.notifications.push(msg.clone());
                if msg.lines().any(|l| l == needle || l.starts_with(needle)) {
                    return msg;
                }
            }
            self.assert_daemon_alive();
        }
        panic!(
            "no sd_notify {needle} within {WAIT:?}; got {:?}\nlog:\n{}",
            self.notifications,
            self.log()
        );
    }

    fn assert_daemon_alive(&mut self) {
        if let Some(child) = self.daemon.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("tetragond exited ({status}); log:\n{}", self.log());
            }
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.daemon_pid() as i32, sig) };
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop_daemon(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.daemon.take().expect("daemon running");
        wait_child(&mut child, WAIT).expect("tetragond stops within the wait")
    }

    pub fn tetra(&self, args: &[&str]) -> Output {
        Command::new(release_bin("tetra"))
            .arg("--bus")
            .arg(&self.bus_address)
            .args(args)
            .output()
            .expect("run tetra")
    }

    pub fn busctl(&self, args: &[&str]) -> Output {
        Command::new("busctl")
            .arg(format!("--address={}", self.bus_address))
            .args(args)
            .output()
            .expect("run busctl")
    }

    pub fn set_mode(&self, name: &str, mode: &str) -> Output {
        self.busctl(&[
            "call",
            "org.tetragond.Tetragond1",
            "/org/tetragond/Tetragond1",
            "org.tetragond.Tetragond1.Manager",
            "SetMode",
            "sss",
            "",
            name,
            mode,
        ])
    }

    pub fn list(&self) -> Vec<Value> {
        let out = self.tetra(&["tracingpolicy", "list", "-o", "json"]);
        assert!(
            out.status.success(),
            "tetra tp list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("tetra prints a JSON array")
    }

    pub fn policy(&self, name: &str) -> Option<Value> {
        self.list().into_iter().find(|p| p["name"] == name)
    }

    /// Polls `tetra tp list` until `pred` holds for the named policy.
    pub fn wait_policy(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(p) = self.policy(name) {
                if pred(&p) {
                    return p;
                }
                if Instant::now() > deadline {
                    panic!(
                        "policy {name}: {what} not reached; last: {p}\nlog:\n{}",
                        self.log()
                    );
                }
            } else if Instant::now() > deadline {
                panic!("policy {name} never listed ({what})\nlog:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `tetra tp list` until the named policy is no longer listed.
    pub fn wait_policy_gone(&self, name: &str) {
        let deadline = Instant::now() + WAIT;
        while self.policy(name).is_some() {
            assert!(
                Instant::now() < deadline,
                "policy {name} still listed\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon configuration: `start_daemon` passes it as `--config`.
    pub fn write_config(&self, toml: &str) {
        fs::write(self.root.join("tetragond.toml"), toml).expect("write the daemon config");
    }

    /// Writes a file the way editors save: a temporary name renamed over it.
    pub fn write_policy(&self, file: &str, text: &str) {
        write_rename(&self.policy_dir.join(file), text);
    }

    /// The events file's whole lines: a line still being written (a reader
    /// can see part of a write) is left for the next look.
    pub fn events(&self) -> Vec<Value> {
        self.event_lines()
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("event line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// The whole lines of the events file, as the daemon wrote them.
    pub fn event_lines(&self) -> Vec<String> {
        let Ok(text) = fs::read_to_string(&self.events_file) else {
            return vec![];
        };
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole.lines().map(str::to_string).collect()
    }

    /// Polls the events file until an event satisfies `pred`; returns it.
    /// The writer is asynchronous: an absence check waits first for a later
    /// event it must have written.
    pub fn wait_event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(ev) = self.events().into_iter().find(&pred) {
                return ev;
            }
            assert!(
                Instant::now() < deadline,
                "no event {what} within {WAIT:?}; events: {:#?}\nlog:\n{}",
                self.events(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The hook events once at least `n` are in the file: the writer is
    /// asynchronous, so a counter or a killed process can come before its line.
    pub fn wait_hook_events(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let events = self.hook_events();
            if events.len() >= n {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{} hook events within {WAIT:?}, want {n}: {events:#?}\nlog:\n{}",
                events.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Only the events posted by policy hooks (no process_exec/exit, no
    /// rate_limit_info).
    pub fn hook_events(&self) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| {
                [
                    "process_kprobe",
                    "process_tracepoint",
                    "process_lsm",
                    "process_uprobe",
                ]
                .iter()
                .any(|k| e.get(*k).is_some())
            })
            .collect()
    }

    /// Kernel ids of the BPF programs the daemon holds, from its fdinfo.
    pub fn daemon_prog_ids(&self) -> BTreeSet<u32> {
        fdinfo_values(self.daemon_pid(), "prog_id:")
    }

    /// Tracepoint attachments (BPF links or perf events) the daemon holds.
    pub fn daemon_attachments(&self) -> usize {
        let dir = format!("/proc/{}/fd", self.daemon_pid());
        fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        fs::read_link(e.path()).is_ok_and(|t| {
                            let t = t.to_string_lossy();
                            t.contains("perf_event") || t.contains("bpf_link")
                        })
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            // SAFETY: plain kill(2) on our child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            if wait_child(&mut child, WAIT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
        if !std::thread::panicking() {
            self.assert_lines_are_tetragon_shaped();
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

impl Harness {
    /// Every line the daemon wrote matches docs/events.schema.json and
    /// Tetragon's field types: checked for every test, once the daemon is
    /// gone and the file complete.
    fn assert_lines_are_tetragon_shaped(&self) {
        let Ok(text) = fs::read_to_string(&self.events_file) else {
            return;
        };
        let schema = schema::Schema::load(&repo_dir().join("docs/events.schema.json"));
        // Whole lines only: a test may have killed the daemon mid-line.
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let ev: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("event line is not JSON ({e}): {line}"));
            let ev = &ev;
            let mut errors = schema.validate(ev);
            errors.extend(tetragon::shape_errors(ev));
            assert!(
                errors.is_empty(),
                "{ev}\nis not a valid event line: {errors:#?}"
            );
        }
    }
}

/// The id of the daemon's map named `name` (its own, among its fds).
pub fn daemon_map_id(h: &Harness, name: &str) -> u32 {
    fdinfo_values(h.daemon_pid(), "map_id:")
        .into_iter()
        .find(|id| {
            std::process::Command::new("bpftool")
                .args(["map", "show", "id", &id.to_string()])
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout).contains(&format!(" name {name} "))
                })
        })
        .unwrap_or_else(|| panic!("the daemon holds no map named {name}"))
}

pub fn fdinfo_values(pid: u32, key: &str) -> BTreeSet<u32> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut out = BTreeSet::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(text) = fs::read_to_string(e.path()) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix(key) {
                    if let Ok(id) = v.trim().parse() {
                        out.insert(id);
                    }
                }
            }
        }
    }
    out
}

pub fn write_rename(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().expect("file name").to_string_lossy()
    ));
    fs::write(&tmp, text).expect("write temp");
    fs::rename(&tmp, path).expect("rename over");
}

pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

const PERMISSIVE_POLICY: &str = r#"  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>"#;

/// The default part of Debian's /usr/share/dbus-1/system.conf.
const SYSTEM_POLICY: &str = r#"  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>"#;

pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn start_bus(root: &Path, kind: BusKind) -> (Child, String) {
    let socket = root.join("bus.sock");
    let config = root.join("bus.conf");
    let (bus_type, policy, include) = match kind {
        BusKind::Permissive => ("session", PERMISSIVE_POLICY, String::new()),
        BusKind::SystemLike => (
            "system",
            SYSTEM_POLICY,
            format!(
                "  <includedir>{}</includedir>\n",
                repo_dir().join("packaging/dbus").display()
            ),
        ),
    };
    fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>{bus_type}</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
{policy}
{include}</busconfig>
"#,
            socket.display()
        ),
    )
    .expect("bus config");
    let mut bus = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start dbus-daemon");
    let mut line = String::new();
    let mut stdout = bus.stdout.take().expect("bus stdout");
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    assert!(!line.is_empty(), "dbus-daemon printed no address");
    (bus, line.trim().to_string())
}

/// Runs the test binary making syscall `nr` once; returns how it ended.
pub fn run_testbin(nr: u32) -> ExitStatus {
    let mut child = Command::new(testbin())
        .args(["syscall", &nr.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn testbin");
    wait_child(&mut child, WAIT).expect("testbin ends")
}

/// Runs `program` (the test binary or a copy) making syscall `nr` once with
/// the integer arguments `args`; returns how it ended.
pub fn run_syscall_args(program: &Path, nr: u32, args: &[i64]) -> ExitStatus {
    let mut child = Command::new(program)
        .args(["args", &nr.to_string()])
        .args(args.iter().map(i64::to_string))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn testbin");
    wait_child(&mut child, WAIT).expect("testbin ends")
}

/// A copy of the test binary at `dir/testbin-copy`: another executable path
/// (for matchBinaries), the same program.
pub fn testbin_copy(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).expect("mkdir");
    let copy = dir.join("testbin-copy");
    fs::copy(testbin(), &copy).expect("copy the test binary");
    copy
}

/// `wait_policy` predicate: the policy is loaded.
pub fn enabled(p: &Value) -> bool {
    p["state"] == "enabled"
}

pub fn killed_by_sigkill(status: ExitStatus) -> bool {
    status.signal() == Some(libc::SIGKILL)
}

/// A raw_syscalls/sys_enter policy matching syscall `nr` from the test
/// binary, with `action` (e.g. `Sigkill`) and extra spec lines.
pub fn kill_policy(name: &str, nr: u32, actions: &str, options: &str) -> String {
    let binaries = format!(
        "      matchBinaries:\n      - operator: In\n        values: [\"{}\"]\n",
        testbin().display()
    );
    syscall_policy(name, nr, &binaries, actions, options)
}

/// A raw_syscalls/sys_enter policy on syscall `nr` whose selector adds
/// `filters` (selector lines, indented for the selector) and `actions`
/// (matchActions items), with extra spec lines `options`.
pub fn syscall_policy(name: &str, nr: u32, filters: &str, actions: &str, options: &str) -> String {
    format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
{options}  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args:
    - index: 4
      type: syscall64
      label: id
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["{nr}"]
{filters}      matchActions:
{actions}"#
    )
}

/// A TracingPolicy named `name` with the spec lines `spec` (indented two
/// spaces, as under `spec:`).
pub fn policy_with_spec(name: &str, spec: &str) -> String {
    format!("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

pub const SIGKILL_ACTION: &str = "      - action: Sigkill\n";
pub const POST_ACTION: &str = "      - action: Post\n";

/// Runs `program args` as the unprivileged user nobody (uid 65534).
pub fn as_nobody(program: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("setpriv (util-linux)")
}
