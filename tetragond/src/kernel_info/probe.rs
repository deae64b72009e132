//! What the running kernel offers tetragond, probed once at start, logged,
//! and shown in the Manager's `KernelFeatures` property.

use std::{fs, path::Path};

use super::HookCaps;

fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

/// Where the kernel lists its active LSMs (securityfs).
pub const ACTIVE_LSMS: &str = "/sys/kernel/security/lsm";

/// The kernel's active LSMs, as `lsm=` names them; empty when unreadable.
pub fn active_lsms() -> String {
    fs::read_to_string(ACTIVE_LSMS).unwrap_or_default()
}

/// kprobes are there when tracefs lists them (CONFIG_KPROBES).
fn kprobes() -> bool {
    exists("/sys/kernel/tracing/kprobe_events") || exists("/sys/kernel/debug/tracing/kprobe_events")
}

/// kprobe.multi links are built on fprobes (Linux 5.18, CONFIG_FPROBE):
/// the kernel has them when its symbols include `register_fprobe`.
fn kprobe_multi() -> bool {
    fs::read_to_string("/proc/kallsyms")
        .is_ok_and(|syms| syms.lines().any(|l| l.ends_with(" register_fprobe")))
}

/// Where the lockdown LSM says its mode (`[none] integrity confidentiality`).
const LOCKDOWN: &str = "/sys/kernel/security/lockdown";

/// Programs may call `bpf_probe_write_user` unless the kernel is locked
/// down (any mode refuses it). Read from securityfs rather than tried: a
/// program with the helper makes the kernel log a warning at each load.
fn write_user() -> bool {
    match fs::read_to_string(LOCKDOWN) {
        Ok(modes) => modes.contains("[none]"),
        // No lockdown LSM: nothing refuses it.
        Err(_) => !exists(LOCKDOWN),
    }
}

/// The running kernel's release (`6.12.118+deb13-cloud-amd64`).
const OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// The kernel release in `file` is older than `major.minor`; false when
/// it cannot be read.
fn release_before(file: &str, version: (u32, u32)) -> bool {
    fs::read_to_string(file)
        .ok()
        .and_then(|r| major_minor(&r))
        .is_some_and(|r| r < version)
}

/// `6.12` of `6.12.118+deb13-cloud-amd64`.
fn major_minor(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// File-system facts; `Kernel::probe_programs` adds what needs a load attempt.
pub fn probe() -> Vec<(&'static str, bool)> {
    vec![
        ("btf", exists("/sys/kernel/btf/vmlinux")),
        ("tracefs", exists("/sys/kernel/tracing/events/sched")),
        (
            "tracepoints",
            exists("/sys/kernel/tracing/events/raw_syscalls/sys_enter"),
        ),
        (
            "syscall_tracepoints",
            exists("/sys/kernel/tracing/events/syscalls"),
        ),
        ("kprobes", kprobes()),
        ("kprobe_multi", kprobes() && kprobe_multi()),
        (
            "bpf_lsm_active",
            active_lsms().split(',').any(|l| l.trim() == "bpf"),
        ),
        ("bpf_probe_write_user", write_user()),
        ("xattr_discard_one", release_before(OSRELEASE, (6, 12))),
        // The object (with its ring buffer) loaded, or we would not be here.
        ("ring_buffer", true),
    ]
}

/// The hook mechanisms compiling may choose from.
pub fn hook_caps(features: &[(&str, bool)]) -> HookCaps {
    let has = |name: &str| features.iter().any(|(k, v)| *k == name && *v);
    HookCaps {
        kprobes: has("kprobes"),
        trampolines: has("bpf_trampolines"),
        trampoline_cookies: has("trampoline_cookies"),
        lsm_programs: has("bpf_lsm_programs"),
        lsm_active: has("bpf_lsm_active"),
        uprobe_cookies: has("attach_cookie"),
        write_user: has("bpf_probe_write_user"),
        uprobe_regs: has("uprobe_regs"),
        ima_file_hash: has("ima_file_hash"),
        xattr_discard_one: has("xattr_discard_one"),
        kernel_functions: Default::default(),
    }
}

pub fn describe(features: &[(&str, bool)]) -> String {
    features
        .iter()
        .map(|(k, v)| format!("{k}={}", if *v { "yes" } else { "no" }))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::major_minor;

    #[test]
    fn a_release_gives_its_major_and_minor() {
        assert_eq!(major_minor("6.12.118+deb13-cloud-amd64\n"), Some((6, 12)));
        assert_eq!(major_minor("5.10.0-46-cloud-amd64"), Some((5, 10)));
        assert_eq!(major_minor("6.1"), Some((6, 1)));
        assert_eq!(major_minor("6"), None);
        assert_eq!(major_minor("x.y"), None);
        assert!((6, 1) < (6, 12) && (5, 19) < (6, 1));
    }
}
