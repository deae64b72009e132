//! Typed hook arguments read in the kernel and matched there: strings from
//! user memory and file descriptors resolved to paths (a dentry walk over
//! mounts at offsets from the running kernel's BTF), with the string
//! operators. Runs on this kernel through the syscall tracepoints; LSM,
//! kprobe and fentry programs are checked in the QEMU guests
//! (scripts/vm-hook-test).

mod common;

use std::{
    fs,
    path::Path,
    process::{Command, ExitStatus, Stdio},
};

use common::*;

fn cat(path: &Path) -> ExitStatus {
    let mut child = Command::new("cat")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cat");
    wait_child(&mut child, WAIT).expect("cat ends")
}

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, "x\n").expect("write");
}

#[test]
fn string_and_fd_arguments_are_matched_in_the_kernel() {
    let mut h = Harness::new();
    h.start_daemon();
    let dir = h.root.join("files");
    let (denied, secret, plain) = (dir.join("deny/f"), dir.join("ok/x.secret"), dir.join("ok/plain"));
    let (by_fd, other_fd) = (dir.join("fd/exact"), dir.join("fd/other"));
    for p in [&denied, &secret, &plain, &by_fd, &other_fd] {
        touch(p);
    }
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: path-args
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
      label: filename
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values: ["{deny}/"]
      matchActions:
      - action: Sigkill
    - matchArgs:
      - index: 1
        operator: Postfix
        values: [".secret"]
      matchActions:
      - action: Sigkill
  - call: sys_read
    syscall: true
    args:
    - index: 0
      type: fd
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["{exact}"]
      matchActions:
      - action: Sigkill
"#,
        deny = dir.join("deny").display(),
        exact = by_fd.display(),
    );
    h.write_policy("paths.yaml", &policy);
    h.wait_policy("path-args", "enabled", enabled);
    assert!(killed_by_sigkill(cat(&denied)), "Prefix on the openat filename");
    assert!(killed_by_sigkill(cat(&secret)), "Postfix on the openat filename");
    assert!(
        killed_by_sigkill(cat(&by_fd)),
        "Equal on the path behind read's fd; events: {:#?}",
        h.hook_events()
    );
    assert!(cat(&plain).success(), "no selector matches {}", plain.display());
    assert!(cat(&other_fd).success(), "Equal is not a prefix: {}", other_fd.display());
    let p = h.wait_policy("path-args", "enforced 3", |p| p["npost"] == 3);
    assert_eq!(p["nenforce"], 3, "{p}");
    let events = h.hook_events();
    let args: Vec<String> = events
        .iter()
        .filter_map(|e| e["process_kprobe"]["args"].get(0))
        .map(|a| a.to_string())
        .collect();
    let has = |needle: &str| args.iter().any(|a| a.contains(needle));
    assert!(has(&format!(r#"{{"label":"filename","string_arg":"{}"}}"#, denied.display())), "{args:#?}");
    assert!(has(&format!(r#"{{"file_arg":{{"path":"{}"}}}}"#, by_fd.display())), "{args:#?}");
}

#[test]
fn string_operators_on_pointer_types_of_user_memory_are_refused() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "bad.yaml",
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bad-file-arg\nspec:\n  kprobes:\n  - call: sys_openat\n    syscall: true\n    args:\n    - index: 1\n      type: file\n",
    );
    let p = h.wait_policy("bad-file-arg", "load_error", |p| p["state"] == "load_error");
    let err = p["error"].as_str().unwrap_or_default();
    assert!(err.contains("kernel structure"), "{err}");
}
