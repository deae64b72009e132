//! Linux capabilities: names (matchCapabilities values are parsed with
//! them, events name sets with them) and a task's three sets.

use tetragond_ebpf::{cap_set, CredInfo};

/// A task's effective, inheritable and permitted capability sets, as a
/// process's `cap` and a credential's `caps` write them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub inheritable: u64,
    pub permitted: u64,
}

impl CapSets {
    pub fn of_cred(c: &CredInfo) -> Self {
        CapSets {
            effective: c.cap_effective,
            inheritable: c.cap_inheritable,
            permitted: c.cap_permitted,
        }
    }

    /// From the kernel's by-`cap_set::*` array (`ExecCreds::caps`).
    pub fn by_cap_set(sets: &[u64; 3]) -> Self {
        CapSets {
            effective: sets[usize::from(cap_set::EFFECTIVE)],
            inheritable: sets[usize::from(cap_set::INHERITABLE)],
            permitted: sets[usize::from(cap_set::PERMITTED)],
        }
    }
}

/// Linux capabilities (capability.h), indexed by their bit number.
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];
