//! Syscall names to numbers, by ABI.
//!
//! An x86-64 kernel with IA32 emulation has two syscall tables: the 64-bit
//! one (`syscall`) and the i386 one (`int 0x80`, and the 32-bit
//! `syscall`/`sysenter` entries). Their numbers differ (x86_64 272 is
//! `unshare`, i386 272 is `fadvise64_64`), so a number always goes with its
//! ABI: a 32-bit number carries [`ABI_I386`] (Tetragon's `Is32Bit`), in
//! the dispatch keys and in `syscall64` values alike.
//!
//! A name covers the syscall through both entries, where Tetragon covers
//! the 64-bit one only: `unshare` is x86_64 272 and i386 310. A policy
//! restricts the ABI as Tetragon spells it: `x64/NAME` or `__x64_sys_NAME`
//! for the 64-bit entry, `i386/NAME` or `__ia32_sys_NAME` for the 32-bit
//! one. A number is taken as written (64-bit unless bit 31 is set).

use tetragond_ebpf::ABI_I386;

mod i386;
mod x86_64;

/// The entries a syscall name may be restricted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abis {
    Both,
    X64,
    I386,
}

/// i386 syscalls that do what an x86-64 syscall of another name does: the
/// 32-bit uid/gid calls, the large-file and 64-bit time calls, the older
/// calls the 64-bit table folded away. A name covers these on the 32-bit
/// entry as well as the i386 syscall of the same name (a policy denying
/// `setuid` must deny `setuid32`). Their arguments can differ in layout (a
/// 64-bit offset takes two 32-bit registers), as they can for i386
/// syscalls of the same name. Not here: `socketcall` and `ipc`, which
/// multiplex many calls behind one number; name them to cover them.
const I386_EQUIVALENTS: &[(&str, &[&str])] = &[
    ("chown", &["chown32"]),
    ("lchown", &["lchown32"]),
    ("fchown", &["fchown32"]),
    ("getuid", &["getuid32"]),
    ("getgid", &["getgid32"]),
    ("geteuid", &["geteuid32"]),
    ("getegid", &["getegid32"]),
    ("setreuid", &["setreuid32"]),
    ("setregid", &["setregid32"]),
    ("getgroups", &["getgroups32"]),
    ("setgroups", &["setgroups32"]),
    ("setresuid", &["setresuid32"]),
    ("getresuid", &["getresuid32"]),
    ("setresgid", &["setresgid32"]),
    ("getresgid", &["getresgid32"]),
    ("setuid", &["setuid32"]),
    ("setgid", &["setgid32"]),
    ("setfsuid", &["setfsuid32"]),
    ("setfsgid", &["setfsgid32"]),
    ("stat", &["stat64"]),
    ("lstat", &["lstat64"]),
    ("fstat", &["fstat64"]),
    ("newfstatat", &["fstatat64"]),
    ("statfs", &["statfs64"]),
    ("fstatfs", &["fstatfs64"]),
    ("truncate", &["truncate64"]),
    ("ftruncate", &["ftruncate64"]),
    ("fcntl", &["fcntl64"]),
    ("sendfile", &["sendfile64"]),
    ("lseek", &["_llseek"]),
    ("mmap", &["mmap2"]),
    ("getrlimit", &["ugetrlimit"]),
    ("fadvise64", &["fadvise64_64"]),
    ("select", &["_newselect"]),
    ("wait4", &["waitpid"]),
    ("umount2", &["umount"]),
    ("rt_sigaction", &["sigaction"]),
    ("rt_sigprocmask", &["sigprocmask"]),
    ("rt_sigpending", &["sigpending"]),
    ("rt_sigsuspend", &["sigsuspend"]),
    ("rt_sigreturn", &["sigreturn"]),
    ("clock_gettime", &["clock_gettime64"]),
    ("clock_settime", &["clock_settime64"]),
    ("clock_adjtime", &["clock_adjtime64"]),
    ("clock_getres", &["clock_getres_time64"]),
    ("clock_nanosleep", &["clock_nanosleep_time64"]),
    ("timer_gettime", &["timer_gettime64"]),
    ("timer_settime", &["timer_settime64"]),
    ("timerfd_gettime", &["timerfd_gettime64"]),
    ("timerfd_settime", &["timerfd_settime64"]),
    ("utimensat", &["utimensat_time64"]),
    ("pselect6", &["pselect6_time64"]),
    ("ppoll", &["ppoll_time64"]),
    ("io_pgetevents", &["io_pgetevents_time64"]),
    ("recvmmsg", &["recvmmsg_time64"]),
    ("mq_timedsend", &["mq_timedsend_time64"]),
    ("mq_timedreceive", &["mq_timedreceive_time64"]),
    ("semtimedop", &["semtimedop_time64"]),
    ("rt_sigtimedwait", &["rt_sigtimedwait_time64"]),
    ("futex", &["futex_time64"]),
    ("sched_rr_get_interval", &["sched_rr_get_interval_time64"]),
];

fn lookup(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr)
}

/// The ABI restriction and the bare name of `name`: `i386/unshare`,
/// `x64/unshare`, `__ia32_sys_unshare`, `__x64_sys_unshare`,
/// `sys_unshare`, `unshare`. None for an ABI this machine does not have.
fn parse(name: &str) -> Option<(Abis, &str)> {
    let name = name.trim();
    let (abis, rest) = match name.split_once('/') {
        Some(("x64", rest)) => (Abis::X64, rest),
        Some(("i386", rest)) => (Abis::I386, rest),
        Some(_) => return None,
        None => (Abis::Both, name),
    };
    // Tetragon's kernel symbols name their entry.
    let prefixes: [(&str, Abis); 7] = [
        ("__x64_sys_", Abis::X64),
        ("__ia32_compat_sys_", Abis::I386),
        ("__ia32_sys_", Abis::I386),
        ("__se_sys_", Abis::Both),
        ("__do_sys_", Abis::Both),
        ("ksys_", Abis::Both),
        ("sys_", Abis::Both),
    ];
    let (entry, bare) = prefixes
        .iter()
        .find_map(|(p, a)| rest.strip_prefix(p).map(|b| (*a, b)))
        .unwrap_or((Abis::Both, rest));
    let abis = match (abis, entry) {
        (a, Abis::Both) => a,
        (Abis::Both, e) => e,
        (a, e) if a == e => a,
        // `i386/__x64_sys_unshare`: contradicts itself.
        _ => return None,
    };
    Some((abis, bare))
}

/// Every syscall number `name` covers, 32-bit ones with [`ABI_I386`]; None
/// when no entry has such a syscall.
pub fn syscall_ids(name: &str) -> Option<Vec<u32>> {
    let (abis, bare) = parse(name)?;
    let mut ids = Vec::new();
    if abis != Abis::I386 {
        ids.extend(lookup(x86_64::SYSCALLS, bare));
    }
    if abis != Abis::X64 {
        ids.extend(lookup(i386::SYSCALLS, bare).map(|nr| nr | ABI_I386));
    }
    if abis == Abis::Both {
        let more = I386_EQUIVALENTS
            .iter()
            .filter(|(n, _)| *n == bare)
            .flat_map(|(_, names)| names.iter())
            .filter_map(|n| lookup(i386::SYSCALLS, n));
        ids.extend(more.map(|nr| nr | ABI_I386));
    }
    ids.sort_unstable();
    ids.dedup();
    (!ids.is_empty()).then_some(ids)
}

/// What one value of a list of syscalls adds to the values before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Share {
    /// The numbers no earlier value covers (never empty).
    Ids(Vec<u32>),
    /// No entry has such a syscall.
    Unknown,
    /// Every number it names is covered by the earlier values (a name
    /// covers both entries and the i386 variants: `setuid` covers
    /// `__ia32_sys_setuid32`).
    Covered,
}

/// Each name's share of the syscalls `names` cover, in order, so that a
/// number belongs to one value only: a list hooked as calls makes one hook
/// per value, and a call hooked twice would be counted and acted on twice.
pub fn share_out<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Share> {
    let mut covered = std::collections::HashSet::new();
    names
        .into_iter()
        .map(|name| match syscall_ids(name) {
            None => Share::Unknown,
            Some(ids) => {
                let ids: Vec<u32> = ids.into_iter().filter(|id| covered.insert(*id)).collect();
                if ids.is_empty() {
                    Share::Covered
                } else {
                    Share::Ids(ids)
                }
            }
        })
        .collect()
}

/// Every syscall of both tables once, under the name a policy would give
/// it: `sys_NAME` for each x86-64 syscall (which covers its i386
/// counterparts too), then `__ia32_sys_NAME` for each i386 syscall no such
/// name covers (`socketcall`, `ipc`, ...). What a `generated_syscalls`
/// list holds, and what `tetra tp generate all-syscalls` writes.
pub fn every_syscall() -> Vec<(String, Vec<u32>)> {
    let names: Vec<String> = x86_64::SYSCALLS
        .iter()
        .map(|(n, _)| format!("sys_{n}"))
        .chain(
            i386::SYSCALLS
                .iter()
                .map(|(n, _)| format!("__ia32_sys_{n}")),
        )
        .collect();
    let shares = share_out(names.iter().map(String::as_str));
    names
        .into_iter()
        .zip(shares)
        .filter_map(|(name, share)| match share {
            Share::Ids(ids) => Some((name, ids)),
            Share::Unknown | Share::Covered => None,
        })
        .collect()
}

/// The x86-64 number of `name` (`openat`, `sys_openat`, `__x64_sys_openat`).
pub fn syscall_number(name: &str) -> Option<u32> {
    let (abis, bare) = parse(name)?;
    (abis != Abis::I386)
        .then(|| lookup(x86_64::SYSCALLS, bare))
        .flatten()
}

/// `(abi, number)` of a `syscall64` value, as Tetragon exports it.
pub fn split_id(value: u64) -> (&'static str, u32) {
    let v = value as u32;
    if v & ABI_I386 != 0 {
        ("i386", v & !ABI_I386)
    } else {
        ("x64", v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I386: u32 = ABI_I386;

    #[test]
    fn a_name_covers_both_entries() {
        assert_eq!(syscall_ids("unshare"), Some(vec![272, 310 | I386]));
        assert_eq!(syscall_ids("sys_unshare"), Some(vec![272, 310 | I386]));
        assert_eq!(syscall_ids("getppid"), Some(vec![110, 64 | I386]));
        // i386 272 is fadvise64_64: never the same number as x86_64 272.
        assert_eq!(
            syscall_ids("fadvise64"),
            Some(vec![221, 250 | I386, 272 | I386])
        );
    }

    #[test]
    fn the_abi_can_be_restricted() {
        assert_eq!(syscall_ids("x64/unshare"), Some(vec![272]));
        assert_eq!(syscall_ids("__x64_sys_unshare"), Some(vec![272]));
        assert_eq!(syscall_ids("i386/unshare"), Some(vec![310 | I386]));
        assert_eq!(syscall_ids("__ia32_sys_unshare"), Some(vec![310 | I386]));
        assert_eq!(syscall_ids("i386/sys_unshare"), Some(vec![310 | I386]));
        // No equivalents once the ABI is named.
        assert_eq!(syscall_ids("i386/setuid"), Some(vec![23 | I386]));
        assert_eq!(syscall_ids("i386/__x64_sys_unshare"), None);
        assert_eq!(syscall_ids("arm64/unshare"), None);
        // Only one of the two tables has these.
        assert_eq!(syscall_ids("i386/arch_prctl"), Some(vec![384 | I386]));
        assert_eq!(syscall_ids("x64/socketcall"), None);
        assert_eq!(syscall_ids("socketcall"), Some(vec![102 | I386]));
        assert_eq!(syscall_ids("nope"), None);
    }

    #[test]
    fn equivalents_cover_the_32_bit_variants() {
        assert_eq!(
            syscall_ids("setuid"),
            Some(vec![105, 23 | I386, 213 | I386])
        );
        assert_eq!(syscall_ids("newfstatat"), Some(vec![262, 300 | I386]));
        for (x64, names) in I386_EQUIVALENTS {
            assert!(
                lookup(x86_64::SYSCALLS, x64).is_some(),
                "{x64} is an x86-64 syscall"
            );
            for n in *names {
                assert!(
                    lookup(i386::SYSCALLS, n).is_some(),
                    "{n} is an i386 syscall"
                );
            }
        }
    }

    #[test]
    fn a_list_shares_out_its_numbers() {
        let shares = share_out(["sys_dup", "nope", "setuid", "__ia32_sys_setuid32", "dup"]);
        assert_eq!(shares[0], Share::Ids(vec![32, 41 | I386]));
        assert_eq!(shares[1], Share::Unknown);
        assert_eq!(shares[2], Share::Ids(vec![105, 23 | I386, 213 | I386]));
        assert_eq!(shares[3], Share::Covered);
        assert_eq!(shares[4], Share::Covered);
        // The other order: the i386 name keeps its number, `setuid` the rest.
        let shares = share_out(["i386/setuid32", "setuid"]);
        assert_eq!(shares[0], Share::Ids(vec![213 | I386]));
        assert_eq!(shares[1], Share::Ids(vec![105, 23 | I386]));
    }

    #[test]
    fn every_syscall_is_covered_once() {
        let all = every_syscall();
        let mut ids: Vec<u32> = all
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "a number under two names");
        let expected = x86_64::SYSCALLS.len() + i386::SYSCALLS.len();
        assert_eq!(n, expected, "every number of both tables");
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"sys_unshare"));
        assert!(names.contains(&"__ia32_sys_socketcall"));
        assert!(
            !names.contains(&"__ia32_sys_unshare"),
            "covered by sys_unshare"
        );
        for (name, ids) in &all {
            assert!(syscall_ids(name).is_some_and(|all| ids.iter().all(|i| all.contains(i))));
        }
    }

    #[test]
    fn numbers_of_64_bit_names() {
        assert_eq!(syscall_number("getppid"), Some(110));
        assert_eq!(syscall_number("__x64_sys_sysinfo"), Some(99));
        assert_eq!(syscall_number("i386/unshare"), None);
        assert_eq!(split_id(272), ("x64", 272));
        assert_eq!(split_id(u64::from(310 | I386)), ("i386", 310));
    }
}
