//! Policy sets at real size: a thousand policies on one syscall, each for
//! its own executable, are all enabled and each fires for its executable
//! only (the kernel dispatches them by the executable, see `HookSet`).

mod common;

use std::{fs, path::Path, time::Instant};

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

    let started = Instant::now();
    for i in 0..POLICIES {
        h.write_policy(&format!("{}.yaml", name(i)), &binary_policy(i, &dir));
    }
    h.wait_policy(&name(POLICIES - 1), "enabled", enabled);
    let deadline = Instant::now() + WAIT;
    let list = loop {
        let list = h.list();
        let ready = list.iter().filter(|p| enabled(p)).count();
        if ready == POLICIES {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "{ready} of {POLICIES} policies enabled; log:\n{}",
            h.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    eprintln!(
        "{POLICIES} policies on one syscall enabled in {:?}",
        started.elapsed()
    );
    assert!(list.iter().all(|p| p["mode"] == "enforce"), "all enforce");

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
    let counted: Vec<(String, u64)> = h
        .list()
        .iter()
        .filter(|p| p["nenforce"].as_u64() != Some(0))
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("?").to_string(),
                p["nenforce"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        counted,
        vec![(name(LISTED), 1)],
        "only policy {LISTED} counts"
    );
}
