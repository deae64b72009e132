//! TracingPolicyNamespaced: the daemon's configuration maps a namespace to
//! cgroup v2 directories, and the policy applies only inside them.

mod common;

use std::{
    fs,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
};

use common::*;

/// A cgroup of our own on this machine's cgroup2 file system.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new() -> Self {
        let mounts = fs::read_to_string("/proc/self/mounts").expect("mounts");
        let root = mounts
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace().skip(1);
                let (target, fstype) = (f.next()?, f.next()?);
                (fstype == "cgroup2").then(|| PathBuf::from(target))
            })
            .expect("a cgroup2 file system must be mounted for namespaced policies");
        let dir = root.join(format!("tetragond-test-{}", std::process::id()));
        let _ = fs::remove_dir(&dir);
        fs::create_dir(&dir).expect("create a test cgroup");
        TestCgroup(dir)
    }

    /// Runs the test binary making syscall `nr`, inside this cgroup.
    fn run_testbin(&self, nr: u32) -> ExitStatus {
        let procs = self.0.join("cgroup.procs");
        let mut command = Command::new(testbin());
        command
            .args(["syscall", &nr.to_string()])
            .stdout(Stdio::null());
        // SAFETY: only a write(2) of "0" (this process) between fork and exec.
        unsafe {
            command.pre_exec(move || fs::write(&procs, "0"));
        }
        let mut child = command.spawn().expect("spawn testbin in the cgroup");
        wait_child(&mut child, WAIT).expect("testbin ends")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

fn namespaced_policy(name: &str, namespace: &str) -> String {
    kill_policy(name, SYS_GETPRIORITY, SIGKILL_ACTION, "").replace(
        "kind: TracingPolicy\nmetadata:\n",
        &format!("kind: TracingPolicyNamespaced\nmetadata:\n  namespace: {namespace}\n"),
    )
}

#[test]
fn namespaced_policy_applies_only_inside_its_cgroups() {
    let cgroup = TestCgroup::new();
    let mut h = Harness::new();
    h.write_config(&format!(
        "[namespaces]\nweb = [\"{}\"]\n",
        cgroup.0.display()
    ));
    h.start_daemon();
    h.write_policy("web.yaml", &namespaced_policy("web-kill", "web"));
    let p = h.wait_policy("web-kill", "enabled", |p| p["state"] == "enabled");
    assert_eq!(p["namespace"], "web");
    assert_eq!(p["filter_id"], 1, "a namespaced policy has a filter: {p}");

    let inside = cgroup.run_testbin(SYS_GETPRIORITY);
    assert!(
        killed_by_sigkill(inside),
        "inside the namespace's cgroup: {inside:?}"
    );
    assert!(
        run_testbin(SYS_GETPRIORITY).success(),
        "outside it the policy does not apply"
    );

    let table = h.tetra(&["tp", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    let row = text.lines().find(|l| l.contains("web-kill")).expect("row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (cells[4], cells[5]),
        ("1", "web"),
        "FILTERID and NAMESPACE: {row}"
    );
}

#[test]
fn namespace_without_cgroups_is_a_load_error_saying_so() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy("shop.yaml", &namespaced_policy("shop-kill", "shop"));
    let p = h.wait_policy("shop-kill", "load_error", |p| p["state"] == "load_error");
    let err = p["error"].as_str().unwrap_or_default();
    assert!(err.contains("namespace \"shop\" is not mapped"), "{err}");
}
