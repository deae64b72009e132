//! Parsing matchArgs values into what the kernel maps hold: string trie
//! keys, CIDRs, port ranges, families and protocols.

use std::net::IpAddr;

use tetragond_ebpf::STR_MATCH_LEN;

use super::selectors::parse_int;

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
}
