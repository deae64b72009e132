//! The hook mechanisms a policy may be compiled for on this kernel.

/// Which program serves a kernel-function kprobe when the kernel offers
/// both (the daemon configuration's `kernel_functions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelFunctions {
    /// kprobes where the kernel has them, else fentry.
    #[default]
    Auto,
    Kprobe,
    /// fentry (a BPF trampoline: cheaper per call) where the kernel has
    /// trampolines, else kprobes.
    Fentry,
}

/// Hook mechanisms the running kernel offers (from the feature probe).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookCaps {
    pub kprobes: bool,
    pub trampolines: bool,
    /// Trampoline links carry a BPF cookie (Linux 5.19): fentry, fexit and
    /// LSM hooks need no numbered slots.
    pub trampoline_cookies: bool,
    /// The configured preference between the two: it rides along because
    /// the choice can only be made against what the kernel offers.
    pub kernel_functions: KernelFunctions,
    /// LSM programs load and `bpf` is an active LSM.
    pub lsm_programs: bool,
    pub lsm_active: bool,
    /// `bpf_get_attach_cookie` (Linux 5.15): a uprobe finds its hook by it.
    pub uprobe_cookies: bool,
    /// `bpf_probe_write_user` may be loaded (no kernel lockdown): Set.
    pub write_user: bool,
    /// Uprobe programs may write their registers (Linux 6.18): Override
    /// on uprobes.
    pub uprobe_regs: bool,
    /// Sleepable LSM programs may call `bpf_ima_file_hash` (Linux 5.18),
    /// the kernel has IMA, and LSM links carry cookies: Post `imaHash`.
    pub ima_file_hash: bool,
    /// `security_inode_copy_up_xattr` answers 1 to discard an xattr
    /// (before Linux 6.12; -ECANCELED since): a positive `argError` there.
    pub xattr_discard_one: bool,
}
