//! Parsing matchArgs values into what the kernel maps hold: string trie
//! keys, CIDRs, port ranges, families and protocols.

use std::net::IpAddr;

use tetragond_ebpf::{SubstrValue, STR_MATCH_LEN, SUBSTR_LEN};

/// Decimal (possibly negative) or 0x-hex.
pub fn parse_int(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    s.parse::<u64>()
        .ok()
        .or_else(|| s.parse::<i64>().ok().map(|v| v as u64))
}

/// How a string value is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrShape {
    /// The whole string: the trie entry includes the terminating NUL.
    Whole,
    Prefix,
    /// Stored reversed; the kernel looks the argument up reversed.
    Postfix,
}

/// The trie bytes for `value`; None when longer than the kernel compares.
pub fn str_key(value: &str, shape: StrShape) -> Option<Vec<u8>> {
    let mut bytes = value.as_bytes().to_vec();
    match shape {
        StrShape::Whole => bytes.push(0),
        StrShape::Prefix => {}
        StrShape::Postfix => bytes.reverse(),
    }
    (bytes.len() <= STR_MATCH_LEN).then_some(bytes)
}

/// A SubString value as the kernel compares it (lower case for IgnCase).
pub fn substring(value: &str, ign_case: bool) -> Option<SubstrValue> {
    let bytes = if ign_case {
        value.to_ascii_lowercase().into_bytes()
    } else {
        value.as_bytes().to_vec()
    };
    if bytes.is_empty() || bytes.len() > SUBSTR_LEN {
        return None;
    }
    let mut out = SubstrValue {
        len: bytes.len() as u32,
        ..Default::default()
    };
    for (i, b) in bytes.iter().enumerate() {
        out.words[i / 8] |= u64::from(*b) << (8 * (i % 8));
        out.masks[i / 8] |= 0xff << (8 * (i % 8));
    }
    Some(out)
}

/// `low:high` (inclusive), or a single integer.
pub fn range(value: &str) -> Option<(u64, u64)> {
    match value.trim().split_once(':') {
        Some((lo, hi)) => Some((parse_int(lo.trim())?, parse_int(hi.trim())?)),
        None => parse_int(value.trim()).map(|v| (v, v)),
    }
}

/// A port or port range, packed `low | high << 32` as the kernel reads it.
pub fn port_range(value: &str) -> Option<u64> {
    let (lo, hi) = range(value)?;
    (lo <= hi && hi <= 65535).then_some(lo | hi << 32)
}

/// An address or CIDR as IPv6 (IPv4 mapped) and its prefix length.
pub fn cidr(value: &str) -> Option<([u8; 16], u8)> {
    let (addr, len) = match value.trim().split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
        None => (value.trim().parse::<IpAddr>().ok()?, None),
    };
    match addr {
        IpAddr::V4(v4) => {
            let len = len.unwrap_or(32);
            (len <= 32).then_some((v4.to_ipv6_mapped().octets(), 96 + len))
        }
        IpAddr::V6(v6) => {
            let len = len.unwrap_or(128);
            (len <= 128).then_some((v6.octets(), len))
        }
    }
}

pub fn family(value: &str) -> Option<u64> {
    match value.trim() {
        "AF_UNIX" | "AF_LOCAL" => Some(1),
        "AF_INET" => Some(2),
        "AF_INET6" => Some(10),
        other => parse_int(other),
    }
}

pub fn protocol(value: &str) -> Option<u64> {
    match value.trim() {
        "IPPROTO_ICMP" => Some(1),
        "IPPROTO_TCP" => Some(6),
        "IPPROTO_UDP" => Some(17),
        "IPPROTO_ICMPV6" => Some(58),
        "IPPROTO_SCTP" => Some(132),
        "IPPROTO_RAW" => Some(255),
        other => parse_int(other),
    }
}

/// The TCP states (include/net/tcp_states.h), from 1.
pub const TCP_STATES: [&str; 13] = [
    "TCP_ESTABLISHED",
    "TCP_SYN_SENT",
    "TCP_SYN_RECV",
    "TCP_FIN_WAIT1",
    "TCP_FIN_WAIT2",
    "TCP_TIME_WAIT",
    "TCP_CLOSE",
    "TCP_CLOSE_WAIT",
    "TCP_LAST_ACK",
    "TCP_LISTEN",
    "TCP_CLOSING",
    "TCP_NEW_SYN_RECV",
    "TCP_BOUND_INACTIVE",
];

/// A TCP state by its name (`TCP_SYN_SENT`) or number.
pub fn tcp_state(value: &str) -> Option<u64> {
    let value = value.trim();
    match TCP_STATES.iter().position(|s| *s == value) {
        Some(i) => Some(i as u64 + 1),
        None => parse_int(value),
    }
}

/// The bit of a capability (`CAP_SYS_ADMIN` or a number).
pub fn capability(name: &str) -> Option<u32> {
    let name = name.trim();
    crate::capabilities::NAMES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| i as u32)
        .or_else(|| name.parse::<u32>().ok().filter(|n| *n < 64))
}

/// A capability set written as names, `CAP_CHOWN,CAP_SYS_ADMIN`, as its
/// mask (Tetragon's `parseCapabilitiesMask`; a number is taken as the mask
/// itself before this).
pub fn capability_mask(names: &str) -> Option<u64> {
    names.split(',').try_fold(0u64, |mask, name| {
        let name = name.trim();
        let bit = crate::capabilities::NAMES
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))?;
        Some(mask | 1u64 << bit)
    })
}

/// `ns_kind::*` of a matchNamespaces namespace name.
pub fn namespace_kind(name: &str) -> u8 {
    use tetragond_ebpf::ns_kind::*;
    match name {
        "Uts" => UTS,
        "Ipc" => IPC,
        "Mnt" => MNT,
        // The task's own (thread_pid's), as Tetragon reads it; nsproxy's
        // is the one its next children get, which unshare(CLONE_NEWPID)
        // changes.
        "Pid" => PID,
        "PidForChildren" => PID_FOR_CHILDREN,
        "Net" => NET,
        "Time" => TIME,
        "TimeForChildren" => TIME_FOR_CHILDREN,
        "Cgroup" => CGROUP,
        _ => USER,
    }
}

/// The inode number of the initial namespace of that kind: `host_ns`.
/// PID 1's, as Tetragon reads it; where PID 1 cannot be inspected (a
/// sandbox without ptrace rights on it), kthreadd's, which the kernel
/// always runs in the initial namespaces.
pub fn host_namespace(name: &str) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let file = match name {
        "Uts" => "uts",
        "Ipc" => "ipc",
        "Mnt" => "mnt",
        "Pid" => "pid",
        "PidForChildren" => "pid_for_children",
        "Net" => "net",
        "Time" => "time",
        "TimeForChildren" => "time_for_children",
        "Cgroup" => "cgroup",
        _ => "user",
    };
    std::fs::metadata(format!("/proc/1/ns/{file}"))
        .or_else(|e| {
            let kthreadd =
                std::fs::read_to_string("/proc/2/comm").is_ok_and(|c| c.trim() == "kthreadd");
            if kthreadd {
                std::fs::metadata(format!("/proc/2/ns/{file}"))
            } else {
                Err(e)
            }
        })
        .map(|m| m.ino() as u32)
}

/// A file type as Tetragon names it (FileType), as `i_mode >> 12`.
pub fn file_type(name: &str) -> Option<u64> {
    Some(match name {
        "fifo" | "pipe" => 0o01,
        "chr" | "char" => 0o02,
        "dir" => 0o04,
        "blk" | "block" => 0o06,
        "reg" | "regular" => 0o10,
        "lnk" | "link" => 0o12,
        "sock" | "socket" => 0o14,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_keys_by_shape() {
        assert_eq!(str_key("/etc", StrShape::Whole), Some(b"/etc\0".to_vec()));
        assert_eq!(str_key("/etc", StrShape::Prefix), Some(b"/etc".to_vec()));
        assert_eq!(str_key(".so", StrShape::Postfix), Some(b"os.".to_vec()));
        assert_eq!(str_key(&"x".repeat(STR_MATCH_LEN), StrShape::Whole), None);
    }

    #[test]
    fn cidrs_map_ipv4_into_ipv6() {
        let (addr, len) = cidr("127.0.0.0/8").expect("valid");
        assert_eq!(len, 104);
        assert_eq!(&addr[10..13], &[0xff, 0xff, 127]);
        assert_eq!(cidr("::1").map(|c| c.1), Some(128));
        assert_eq!(cidr("10.0.0.1/33"), None);
        assert_eq!(cidr("nope"), None);
    }

    #[test]
    fn ports_and_ranges() {
        assert_eq!(port_range("4242"), Some(4242 | 4242 << 32));
        assert_eq!(port_range("80:90"), Some(80 | 90 << 32));
        assert_eq!(port_range("90:80"), None);
        assert_eq!(port_range("70000"), None);
        assert_eq!(range("-5:5"), Some((-5i64 as u64, 5)));
        assert_eq!(family("AF_INET6"), Some(10));
        assert_eq!(protocol("IPPROTO_TCP"), Some(6));
    }

    #[test]
    fn substrings_as_masked_words() {
        let v = substring("shadowX", true).expect("fits");
        assert_eq!(v.len, 7);
        assert_eq!(v.words[0], u64::from_le_bytes(*b"shadowx\0"));
        assert_eq!(v.masks[0], 0x00ff_ffff_ffff_ffff);
        assert_eq!(v.masks[1], 0);
        assert!(substring("", false).is_none());
        assert!(substring(&"x".repeat(65), false).is_none());
    }

    #[test]
    fn capabilities_by_name_and_number() {
        assert_eq!(capability("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(capability("cap_bpf"), Some(39));
        assert_eq!(capability("12"), Some(12));
        assert_eq!(capability("CAP_NOPE"), None);
    }

    #[test]
    fn host_namespaces_are_pid_1s() {
        use std::os::unix::fs::MetadataExt;
        let kthreadd = std::fs::metadata("/proc/2/ns/mnt")
            .expect("readable as root")
            .ino() as u32;
        assert_eq!(host_namespace("Mnt").expect("host mnt ns"), kthreadd);
    }

    #[test]
    fn file_types_are_named_as_tetragon_names_them() {
        assert_eq!(file_type("reg"), Some(8));
        assert_eq!(file_type("dir"), Some(4));
        assert_eq!(file_type("socket"), file_type("sock"));
        assert_eq!(file_type("directory"), None);
    }
}
