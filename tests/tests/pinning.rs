//! Enforcement that outlives the process: the daemon pins its BPF links in
//! bpffs (a generation folder per run), so after kill -9 the kernel keeps
//! enforcing, the next start takes over without a gap, and a stop (SIGTERM
//! outside systemd, or `tetragond --unload`) removes everything.
//!
//! Each test pins under its own folder (`--pin-dir`), so tests running at
//! the same time never touch each other's generations, and removes it when
//! it ends, whatever happens (a panic included).

mod common;

use std::{
    fs,
    path::PathBuf,
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use common::*;

// One syscall per test (they run at the same time), none made by another
// test file or by the test binary's runtime; with the test binary's zero
// arguments each only fails (EINVAL or EFAULT) and changes nothing.
/// sched_rr_get_interval(0, NULL)
const SYS_SCHED_RR_GET_INTERVAL: u32 = 148;
/// sched_getparam(0, NULL)
const SYS_SCHED_GETPARAM: u32 = 143;
/// sched_setparam(0, NULL)
const SYS_SCHED_SETPARAM: u32 = 142;

/// A pin folder of this test's own; removed on drop (unpinning whatever a
/// killed daemon left, so a failed test does not go on enforcing).
struct PinDir(PathBuf);

impl PinDir {
    fn new(name: &str) -> Self {
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/tetragond-test-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        PinDir(dir)
    }

    fn arg(&self) -> Vec<String> {
        vec!["--pin-dir".into(), self.0.display().to_string()]
    }

    /// Generation folders, sorted.
    fn generations(&self) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(&self.0)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Pin files of generation `g`.
    fn pins(&self, g: &str) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(self.0.join(g))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Whether the kernel still has program `id` (bpftool prog show id).
fn prog_loaded(id: u32) -> bool {
    Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .output()
        .expect("bpftool (apt-get install bpftool)")
        .status
        .success()
}

/// Waits until none of `ids` is loaded; returns the ones still loaded.
fn wait_unloaded(ids: &std::collections::BTreeSet<u32>) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = ids.iter().copied().filter(|id| prog_loaded(*id)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A victim making the forbidden call in a loop, in a thread: counts how
/// each attempt ended until stopped.
struct Victim {
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicUsize>,
    survived: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Victim {
    fn start(nr: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicUsize::new(0));
        let survived = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, killed, survived) = (stop.clone(), killed.clone(), survived.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if killed_by_sigkill(run_testbin(nr)) {
                        killed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        survived.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        Victim {
            stop,
            killed,
            survived,
            thread: Some(thread),
        }
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.killed.load(Ordering::SeqCst),
            self.survived.load(Ordering::SeqCst),
        )
    }

    /// Waits for at least `more` further attempts; returns the counts.
    fn wait_attempts(&self, more: usize) -> (usize, usize) {
        let (k, s) = self.counts();
        let deadline = Instant::now() + WAIT;
        while self.counts().0 + self.counts().1 < k + s + more && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        self.counts()
    }

    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("victim thread");
        }
        self.counts()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Starts the daemon with `args` and a policy killing the test binary at
/// syscall `nr`; checks that it does.
fn start_with_policy(h: &mut Harness, nr: u32, args: Vec<String>) {
    h.daemon_args = args;
    h.write_policy(
        "pinned.yaml",
        &kill_policy("pinned", nr, SIGKILL_ACTION, ""),
    );
    assert!(run_testbin(nr).success(), "survives before the policy");
    h.start_daemon();
    h.wait_policy("pinned", "enabled", enabled);
    assert!(
        killed_by_sigkill(run_testbin(nr)),
        "the policy kills while the daemon runs"
    );
}

/// kill -9: the programs stay attached through their pins and go on
/// killing; a new daemon on the same folder loads its own generation while
/// the old one still enforces, then removes it. A victim looping on the
/// forbidden call through all of it is killed at every attempt.
#[test]
fn kill9_keeps_enforcing_and_the_next_start_takes_over_without_a_gap() {
    let pins = PinDir::new("kill9");
    let mut h = Harness::new();
    let mut args = pins.arg();
    args.push("--keep-on-restart".into());
    start_with_policy(&mut h, SYS_SCHED_RR_GET_INTERVAL, args);
    assert_eq!(pins.generations(), ["1"], "one generation, committed");
    let pinned = pins.pins("1");
    eprintln!("generation 1: {pinned:?}");
    for name in [
        "tp-raw_syscalls-sys_enter",
        "task-sched-sched_process_exec",
        "task-sched-sched_process_fork",
        "task-sched-sched_process_exit",
        "task-sched-sched_process_free",
    ] {
        assert!(
            pinned.iter().any(|p| p == name),
            "{name} pinned: {pinned:?}"
        );
    }
    let first_ids = h.daemon_prog_ids();
    assert!(!first_ids.is_empty());

    let victim = Victim::start(SYS_SCHED_RR_GET_INTERVAL);
    victim.wait_attempts(5);

    h.signal(libc::SIGKILL);
    let status = h.stop_daemon();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    // No daemon at all: the kernel enforces on its own.
    let (k, s) = victim.wait_attempts(20);
    eprintln!("with no daemon: {k} killed, {s} survived");
    assert_eq!(s, 0, "an attempt passed with the daemon dead");
    let left = first_ids.iter().filter(|id| prog_loaded(**id)).count();
    assert_eq!(
        left,
        first_ids.len(),
        "the pinned programs are still loaded"
    );

    // The next start: generation 2 loads while 1 enforces, then 1 goes.
    let started = Instant::now();
    h.start_daemon();
    eprintln!("restarted in {:?}", started.elapsed());
    h.wait_policy("pinned", "enabled", enabled);
    assert_eq!(
        pins.generations(),
        ["2"],
        "the earlier generation is removed"
    );
    let left = wait_unloaded(&first_ids);
    assert!(
        left.is_empty(),
        "programs of the killed daemon left: {left:?}"
    );
    victim.wait_attempts(20);
    let (killed, survived) = victim.finish();
    eprintln!("across kill -9 and restart: {killed} attempts killed, {survived} survived");
    assert_eq!(survived, 0, "every attempt must be killed");
    assert!(
        killed >= 45,
        "the victim ran throughout ({killed} attempts)"
    );

    // A stop outside systemd unloads everything, --keep-on-restart or not:
    // there is no restart job to keep the pins for.
    let ids = h.daemon_prog_ids();
    h.stop_daemon();
    assert!(
        pins.generations().is_empty(),
        "nothing pinned after the stop: {:?}",
        pins.generations()
    );
    let left = wait_unloaded(&ids);
    assert!(left.is_empty(), "programs left after the stop: {left:?}");
    assert!(run_testbin(SYS_SCHED_RR_GET_INTERVAL).success());
}

/// `tetragond --unload` removes what a killed daemon left, and a start
/// after a crash loop keeps only the newest complete generation.
#[test]
fn unload_removes_what_a_killed_daemon_left() {
    let pins = PinDir::new("unload");
    // Leftovers of a crash loop: a complete generation and a newer one
    // whose run never got ready. Only the newest complete one is kept
    // while loading, and it goes too once the new one is ready.
    fs::create_dir_all(pins.0.join("2")).expect("mkdir in bpffs");
    fs::create_dir_all(pins.0.join("5-loading")).expect("mkdir in bpffs");
    let mut h = Harness::new();
    start_with_policy(&mut h, SYS_SCHED_GETPARAM, pins.arg());
    assert_eq!(pins.generations(), ["6"]);
    let ids = h.daemon_prog_ids();

    h.signal(libc::SIGKILL);
    h.stop_daemon();
    assert!(
        killed_by_sigkill(run_testbin(SYS_SCHED_GETPARAM)),
        "still enforced after kill -9"
    );

    let out = Command::new(release_bin("tetragond"))
        .arg("--unload")
        .args(pins.arg())
        .output()
        .expect("tetragond --unload");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("tetragond --unload: {stdout}");
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("removed 1 pinned generation"), "{stdout}");
    assert!(!pins.0.exists(), "the pin folder is removed");
    let left = wait_unloaded(&ids);
    assert!(left.is_empty(), "programs left after --unload: {left:?}");
    assert!(run_testbin(SYS_SCHED_GETPARAM).success());

    // Nothing left to remove: still a success.
    let out = Command::new(release_bin("tetragond"))
        .arg("--unload")
        .args(pins.arg())
        .output()
        .expect("tetragond --unload");
    assert!(out.status.success(), "{out:?}");
}

/// `--no-pin`: nothing is pinned, and kill -9 ends enforcement (the
/// behaviour before pinning, for whoever wants it).
#[test]
fn without_pinning_kill9_ends_enforcement() {
    let mut h = Harness::new();
    start_with_policy(&mut h, SYS_SCHED_SETPARAM, vec!["--no-pin".into()]);
    let ids = h.daemon_prog_ids();
    h.signal(libc::SIGKILL);
    h.stop_daemon();
    let left = wait_unloaded(&ids);
    assert!(left.is_empty(), "programs left: {left:?}");
    assert!(run_testbin(SYS_SCHED_SETPARAM).success());
    assert!(h.log().contains("pinning off"), "{}", h.log());
}
