//! Syscalls by ABI: a policy that names a syscall covers it through the
//! 64-bit entry (`syscall`) and the 32-bit one (`int 0x80`), a number is
//! never compared across the two (x86_64 272 is unshare, i386 272 is
//! fadvise64_64), and events say which entry a call came through.
//!
//! The 32-bit calls are made by the test binary with `int 0x80` (this
//! kernel has IA32 emulation). Every policy is limited to the test binary.

mod common;

use std::{
    path::Path,
    process::{Command, ExitStatus, Stdio},
};

use common::*;
use serde_json::{json, Value};

const X64_UNSHARE: &str = "272";
const I386_UNSHARE: &str = "310";
/// i386 fadvise64_64: the same number as x86_64 unshare.
const I386_FADVISE64_64: &str = "272";

/// Runs the test binary with `args`; returns how it ended.
fn testbin_run(args: &[&str]) -> ExitStatus {
    let mut child = Command::new(testbin())
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn testbin");
    wait_child(&mut child, WAIT).expect("testbin ends")
}

/// unshare(0) through the 64-bit entry: a no-op when not killed.
fn unshare_64() -> ExitStatus {
    testbin_run(&["syscall", X64_UNSHARE])
}

/// unshare(0) through `int 0x80`.
fn unshare_32() -> ExitStatus {
    testbin_run(&["int80", I386_UNSHARE, "0"])
}

/// fadvise64_64(-1, ...) through `int 0x80`: fails with EBADF.
fn fadvise_32() -> ExitStatus {
    testbin_run(&["int80", I386_FADVISE64_64, "-1"])
}

fn binaries() -> String {
    format!(
        "      matchBinaries:\n      - operator: In\n        values: [\"{}\"]\n",
        testbin().display()
    )
}

/// A raw_syscalls/sys_enter policy killing the test binary's syscalls
/// whose `syscall64` id is one of `values`.
fn raw_policy(name: &str, values: &str) -> String {
    format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  tracepoints:
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
        values: [{values}]
{bins}      matchActions:
      - action: Sigkill
"#,
        bins = binaries()
    )
}

/// A `syscall: true` kprobe on `call` killing the test binary, with extra
/// hook lines `extra` (args) and selector lines `filters`.
fn kprobe_policy(name: &str, call: &str, extra: &str, filters: &str) -> String {
    format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  kprobes:
  - call: {call}
    syscall: true
{extra}    selectors:
    - {bins}{filters}      matchActions:
      - action: Sigkill
"#,
        bins = binaries().trim_start()
    )
}

fn hook_event_of(h: &Harness, policy: &str, arguments: &str) -> Value {
    h.wait_event(&format!("of {policy} for `{arguments}`"), |e| {
        e.as_object()
            .into_iter()
            .flat_map(|o| o.values())
            .any(|b| b["policy_name"] == policy && b["process"]["arguments"] == arguments)
    })
}

#[test]
fn unshare_by_name_is_denied_through_both_entries_on_raw_syscalls() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy("u.yaml", &raw_policy("deny-unshare-raw", "\"unshare\""));
    h.wait_policy("deny-unshare-raw", "enabled", enabled);
    assert!(killed_by_sigkill(unshare_64()), "x86_64 unshare (272)");
    assert!(
        killed_by_sigkill(unshare_32()),
        "i386 unshare (310) by int 0x80"
    );
    let status = fadvise_32();
    assert!(
        status.success(),
        "i386 272 is fadvise64_64, not unshare: {status:?}"
    );
    h.wait_policy("deny-unshare-raw", "two kills", |p| p["nenforce"] == 2);
    // The events name the entry: Tetragon's syscall_id {id, abi}.
    let ev = hook_event_of(&h, "deny-unshare-raw", "int80 310 0");
    let arg = &ev["process_tracepoint"]["args"][0];
    assert_eq!(arg["syscall_id"], json!({"id": 310, "abi": "i386"}), "{ev}");
    assert_eq!(arg["label"], "id");
    let ev = hook_event_of(&h, "deny-unshare-raw", "syscall 272");
    let arg = &ev["process_tracepoint"]["args"][0];
    assert_eq!(arg["syscall_id"], json!({"id": 272, "abi": "x64"}), "{ev}");
}

#[test]
fn unshare_by_name_is_denied_through_both_entries_on_a_syscall_kprobe() {
    let mut h = Harness::new();
    h.start_daemon();
    h.write_policy(
        "u.yaml",
        &kprobe_policy("deny-unshare-kprobe", "sys_unshare", "", ""),
    );
    h.wait_policy("deny-unshare-kprobe", "enabled", enabled);
    assert!(killed_by_sigkill(unshare_64()), "x86_64 unshare (272)");
    assert!(
        killed_by_sigkill(unshare_32()),
        "i386 unshare (310) by int 0x80"
    );
    let status = fadvise_32();
    assert!(
        status.success(),
        "i386 272 is fadvise64_64, not unshare: {status:?}"
    );
    h.wait_policy("deny-unshare-kprobe", "two kills", |p| p["nenforce"] == 2);
    let ev = hook_event_of(&h, "deny-unshare-kprobe", "int80 310 0");
    assert_eq!(ev["process_kprobe"]["function_name"], "sys_unshare", "{ev}");
}

#[test]
fn a_syscalls_tracepoint_is_served_for_the_32_bit_entry_too() {
    let mut h = Harness::new();
    h.start_daemon();
    let policy = format!(
        r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: deny-unshare-tp
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_unshare
    args:
    - index: 4
      type: syscall64
      label: nr
    - index: 5
      type: uint64
      label: flags
    selectors:
    - {bins}      matchActions:
      - action: Sigkill
"#,
        bins = binaries().trim_start()
    );
    h.write_policy("u.yaml", &policy);
    h.wait_policy("deny-unshare-tp", "enabled", enabled);
    assert!(killed_by_sigkill(unshare_64()), "x86_64 unshare (272)");
    assert!(
        killed_by_sigkill(unshare_32()),
        "i386 unshare (310): the kernel skips syscalls/* for it"
    );
    assert!(fadvise_32().success(), "i386 272 is fadvise64_64");
    let ev = hook_event_of(&h, "deny-unshare-tp", "int80 310 0");
    let body = &ev["process_tracepoint"];
    assert_eq!(
        (&body["subsys"], &body["event"]),
        (&json!("syscalls"), &json!("sys_enter_unshare")),
        "{ev}"
    );
    assert_eq!(
        body["args"][0]["syscall_id"],
        json!({"id": 310, "abi": "i386"})
    );
    assert_eq!(body["args"][1]["size_arg"], "0", "{ev}");
}

#[test]
fn a_policy_can_restrict_the_abi_and_a_number_is_the_64_bit_one() {
    let mut h = Harness::new();
    h.start_daemon();
    // Tetragon's spellings of one entry.
    h.write_policy("i386.yaml", &raw_policy("only-i386", "\"i386/unshare\""));
    h.write_policy(
        "x64.yaml",
        &kprobe_policy("only-x64", "__x64_sys_getsid", "", ""),
    );
    // A number as written: x86_64 100 (times), not i386 100 (fstatfs).
    h.write_policy("nr.yaml", &raw_policy("by-number", "\"100\""));
    for name in ["only-i386", "only-x64", "by-number"] {
        h.wait_policy(name, "enabled", enabled);
    }
    assert!(unshare_64().success(), "i386/unshare leaves x86_64 unshare");
    assert!(killed_by_sigkill(unshare_32()), "i386/unshare");
    assert!(
        killed_by_sigkill(testbin_run(&["syscall", "124"])),
        "__x64_sys_getsid: x86_64 getsid (124)"
    );
    assert!(
        testbin_run(&["int80", "147", "0"]).success(),
        "__x64_sys_getsid leaves i386 getsid (147)"
    );
    assert!(
        killed_by_sigkill(testbin_run(&["syscall", "100"])),
        "100: x86_64 times"
    );
    assert!(
        testbin_run(&["int80", "100", "-1"]).success(),
        "100 is not i386 100 (fstatfs)"
    );
}

#[test]
fn arguments_of_a_32_bit_call_are_its_32_bit_registers() {
    let mut h = Harness::new();
    h.start_daemon();
    let dir = h.root.join("abi-files");
    std::fs::create_dir_all(dir.join("deny")).expect("mkdir");
    // getpriority: x86_64 140, i386 96; `which` 77 only fails (EINVAL).
    h.write_policy(
        "prio.yaml",
        &kprobe_policy(
            "prio-which",
            "sys_getpriority",
            "    args:\n    - index: 0\n      type: int\n",
            "      matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"77\"]\n",
        ),
    );
    // open: x86_64 2, i386 5; the path is read through a 32-bit pointer.
    h.write_policy(
        "open.yaml",
        &kprobe_policy(
            "open-prefix",
            "sys_open",
            "    args:\n    - index: 0\n      type: string\n",
            &format!(
                "      matchArgs:\n      - index: 0\n        operator: Prefix\n        values: [\"{}/\"]\n",
                dir.join("deny").display()
            ),
        ),
    );
    h.wait_policy("prio-which", "enabled", enabled);
    h.wait_policy("open-prefix", "enabled", enabled);
    let deny = dir.join("deny/x");
    let other = dir.join("other");
    let open32 = |p: &Path, more: &[&str]| {
        let mut args = vec!["int80-open", p.to_str().expect("utf-8")];
        args.extend_from_slice(more);
        testbin_run(&args)
    };
    assert!(
        open32(&other, &["junk"]).success(),
        "i386 open of {other:?}"
    );
    // The string is read where the kernel reads it: at the low 32 bits.
    assert!(
        killed_by_sigkill(open32(&deny, &["junk"])),
        "i386 open of {deny:?}, high bits in rbx"
    );
    assert!(
        killed_by_sigkill(open32(&deny, &[])),
        "i386 open of {deny:?}"
    );
    assert!(
        killed_by_sigkill(testbin_run(&["args", "140", "77"])),
        "x86_64 getpriority(77)"
    );
    assert!(
        killed_by_sigkill(testbin_run(&["int80", "96", "77"])),
        "i386 getpriority(77): ebx"
    );
    // The kernel uses ebx, not rbx: high bits a 64-bit task sets for an
    // int 0x80 do not hide the value.
    assert!(
        killed_by_sigkill(testbin_run(&["int80", "96", "0x10000004d"])),
        "i386 getpriority(77) with high bits in rbx"
    );
    assert!(
        testbin_run(&["int80", "96", "78"]).success(),
        "i386 getpriority(78)"
    );
}
