//! Policy sets at real size: a thousand policies on one syscall, each for
//! its own executable, or each for its own string prefix of an argument,
//! are all enabled and each fires for its executable or prefix only (the
//! kernel dispatches them by the executable, or by the string, see
//! `HookSet`).

mod common;

use std::{
    fs,
    path::Path,
    process::{Command, ExitStatus, Stdio},
    time::Instant,
};

use common::*;

const POLICIES: usize = 1000;
const LISTED: usize = 737;

fn name(i: usize) -> String {
    format!("bin-{i:04}")
}

fn binary_policy(i: usize, dir: &Path) -> String {
    let binaries = format!(
        "      matchBinaries:\n      - operator: In\n        values: [\"{}\"]\n",
        dir.join(name(i)).display()
    );
    syscall_policy(&name(i), SYS_IOPRIO_GET, &binaries, SIGKILL_ACTION, "")
}

#[test]
fn a_thousand_policies_on_one_syscall_fire_for_their_own_binary_only() {
    let mut h = Harness::new();
    h.start_daemon();
    let dir = h.root.join("bins");
    fs::create_dir_all(&dir).expect("mkdir");
    let listed = dir.join(name(LISTED));
    fs::copy(testbin(), &listed).expect("copy the test binary");
    let unlisted = testbin_copy(&dir);

    for i in 0..POLICIES {
        h.write_policy(&format!("{}.yaml", name(i)), &binary_policy(i, &dir));
    }
    wait_all_enabled(&h, POLICIES);

    let args = [0i64];
    assert!(
        !killed_by_sigkill(run_syscall_args(&unlisted, SYS_IOPRIO_GET, &args)),
        "a binary no policy lists is spared"
    );
    assert!(
        !killed_by_sigkill(run_syscall_args(&testbin(), SYS_IOPRIO_GET, &args)),
        "the test binary itself is listed by no policy"
    );
    assert!(
        killed_by_sigkill(run_syscall_args(&listed, SYS_IOPRIO_GET, &args)),
        "the binary policy {LISTED} lists is killed"
    );
    assert_eq!(
        counted(&h, "nenforce"),
        vec![(name(LISTED), 1)],
        "only policy {LISTED} counts"
    );
}

/// Waits until `n` policies are enabled, all in enforce mode.
fn wait_all_enabled(h: &Harness, n: usize) {
    let started = Instant::now();
    let deadline = started + WAIT;
    let list = loop {
        let list = h.list();
        let ready = list.iter().filter(|p| enabled(p)).count();
        if ready == n {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "{ready} of {n} policies enabled; log:\n{}",
            h.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    eprintln!(
        "{n} policies on one syscall enabled in {:?}",
        started.elapsed()
    );
    let killing =
        |p: &&serde_json::Value| p["name"].as_str().is_some_and(|n| n.starts_with("bin-"));
    assert!(
        list.iter().filter(killing).all(|p| p["mode"] == "enforce"),
        "all enforce"
    );
}

/// The policies whose counter `field` is not 0, with its value.
fn counted(h: &Harness, field: &str) -> Vec<(String, u64)> {
    h.list()
        .iter()
        .filter(|p| p[field].as_u64() != Some(0))
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("?").to_string(),
                p[field].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// An openat policy on the path's string, Prefix `prefix`, with `action`.
fn prefix_policy(name: &str, prefix: &str, action: &str) -> String {
    format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values: ["{prefix}"]
      matchActions:
      - action: {action}
"#
    )
}

/// The test binary opening `path`; how it ended.
fn open(path: &Path) -> ExitStatus {
    let mut child = Command::new(testbin())
        .arg("open")
        .arg(path)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn testbin");
    wait_child(&mut child, WAIT).expect("testbin ends")
}

/// A thousand policies on openat, each killing the opener of paths under
/// its own directory, and one posting paths under a shorter prefix of
/// some of them: the kernel finds them by the path's string, so each
/// fires for its own paths only, the shorter one along with the longer.
#[test]
fn a_thousand_prefixes_on_one_syscall_fire_for_their_own_paths_only() {
    let mut h = Harness::new();
    h.start_daemon();
    let dir = h.root.join("paths");
    let prefix = |i: usize| format!("{}/p-{i:04}/", dir.display());
    for i in 0..POLICIES {
        h.write_policy(
            &format!("{}.yaml", name(i)),
            &prefix_policy(&name(i), &prefix(i), "Sigkill"),
        );
    }
    let short = format!("{}/p-07", dir.display());
    h.write_policy("short.yaml", &prefix_policy("short", &short, "Post"));
    wait_all_enabled(&h, POLICIES + 1);
    let listed = Path::new(&prefix(LISTED)).join("file");
    assert!(
        killed_by_sigkill(open(&listed)),
        "{} is policy {LISTED}'s",
        listed.display()
    );
    assert!(
        !killed_by_sigkill(open(&dir.join("p-0738x"))),
        "p-0738x is under the short prefix only"
    );
    assert!(
        !killed_by_sigkill(open(&dir.join("none/file"))),
        "no policy's path"
    );
    assert_eq!(
        counted(&h, "nenforce"),
        vec![(name(LISTED), 1)],
        "only policy {LISTED} kills"
    );
    let posted = counted(&h, "npost");
    assert!(
        posted.contains(&("short".to_string(), 2)),
        "the short prefix posts for both paths under it: {posted:?}"
    );
}
