//! Hook arguments as Tetragon exports them: integers by width, and the
//! data the kernel read behind pointers (strings, paths, sockets,
//! credentials) from the event's data slots.

use std::net::{IpAddr, Ipv6Addr};

use serde_json::{json, Map, Value};
use tetragond_ebpf::{CredInfo, SockInfo, PATH_CUT, STR_LEN};

/// The data slot of argument `i`, when the event carries one.
pub fn slot(data: &[u8], i: usize) -> Option<&[u8]> {
    data.get(i * STR_LEN..(i + 1) * STR_LEN)
}

fn text(slot: Option<&[u8]>, len: u64) -> String {
    let Some(bytes) = slot else {
        return String::new();
    };
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(bytes.len())
        .min(len as usize);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A path the kernel walked: its first `STR_LEN - 1` bytes, flagged
/// `truncated` when that is not all of it (longer, or cut before the root:
/// `PATH_CUT`).
fn path_object(slot: Option<&[u8]>, raw: u64) -> Value {
    let path = text(slot, raw & (PATH_CUT - 1));
    if raw & PATH_CUT != 0 || raw & (PATH_CUT - 1) >= STR_LEN as u64 {
        json!({ "path": path, "flags": "truncated" })
    } else {
        json!({ "path": path })
    }
}

/// `T` is one of the plain-data records the kernel writes into a slot.
fn pod<T: Copy + Default>(slot: Option<&[u8]>) -> T {
    match slot {
        Some(b) if b.len() >= std::mem::size_of::<T>() => {
            // SAFETY: T is repr(C) plain data and the length was checked.
            unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) }
        }
        _ => T::default(),
    }
}

fn family_name(family: u16) -> String {
    match family {
        0 => "AF_UNSPEC".into(),
        1 => "AF_UNIX".into(),
        2 => "AF_INET".into(),
        10 => "AF_INET6".into(),
        n => n.to_string(),
    }
}

fn protocol_name(protocol: u16) -> String {
    match protocol {
        0 => String::new(),
        1 => "IPPROTO_ICMP".into(),
        6 => "IPPROTO_TCP".into(),
        17 => "IPPROTO_UDP".into(),
        58 => "IPPROTO_ICMPV6".into(),
        n => n.to_string(),
    }
}

/// IPv4-mapped addresses print as IPv4.
fn addr(bytes: [u8; 16]) -> String {
    let v6 = Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4).to_string(),
        None => IpAddr::V6(v6).to_string(),
    }
}

fn put_port(v: &mut Map<String, Value>, key: &str, port: u16) {
    if port != 0 {
        v.insert(key.into(), json!(port));
    }
}

/// A capability set as Tetragon exports it: the names of its bits, in bit
/// order (`CAP_41` for a bit this table does not know).
fn cap_names(set: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| set & (1u64 << bit) != 0)
        .map(|bit| {
            crate::capabilities::NAMES
                .get(bit as usize)
                .map_or_else(|| format!("CAP_{bit}"), |n| n.to_string())
        })
        .collect()
}

/// `{effective, permitted, inheritable}`, an empty set left out.
fn caps(c: &CredInfo) -> Value {
    let mut v = Map::new();
    for (key, set) in [
        ("effective", c.cap_effective),
        ("permitted", c.cap_permitted),
        ("inheritable", c.cap_inheritable),
    ] {
        if set != 0 {
            v.insert(key.into(), json!(cap_names(set)));
        }
    }
    Value::Object(v)
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The argument's key and value in Tetragon's export.
pub fn typed_arg(ty: &str, raw: u64, slot: Option<&[u8]>) -> (&'static str, Value) {
    match ty {
        "int" | "int32" | "int16" | "int8" => ("int_arg", json!(raw as i64 as i32)),
        // Tetragon's uint_arg is a uint64, so protojson writes it as a string.
        "uint32" | "uint16" | "uint8" => ("uint_arg", json!((raw as u32).to_string())),
        "size_t" => ("size_arg", json!(raw.to_string())),
        "uint64" => ("uint_arg", json!(raw.to_string())),
        // Tetragon's SyscallId: the number in its ABI (bit 31 marks i386).
        "syscall64" => {
            let (abi, id) = crate::compile::split_id(raw);
            ("syscall_id", json!({ "id": id, "abi": abi }))
        }
        "string" | "filename" => ("string_arg", json!(text(slot, raw))),
        // Tetragon's bytes_arg: protojson writes bytes as base64.
        "char_buf" => {
            let bytes = slot.map_or(&[][..], |b| &b[..(raw as usize).min(b.len())]);
            ("bytes_arg", json!(base64(bytes)))
        }
        "file" => ("file_arg", path_object(slot, raw)),
        // A descriptor is exported as the file it names.
        "fd" => ("file_arg", path_object(slot, raw)),
        "path" | "dentry" => ("path_arg", path_object(slot, raw)),
        "linux_binprm" => ("linux_binprm_arg", path_object(slot, raw)),
        "sockaddr" => {
            let s: SockInfo = pod(slot);
            let mut v = Map::new();
            v.insert("family".into(), json!(family_name(s.family)));
            v.insert("addr".into(), json!(addr(s.daddr)));
            put_port(&mut v, "port", s.dport);
            ("sockaddr_arg", Value::Object(v))
        }
        // Empty and zero fields left out, as protojson does inside Tetragon's
        // KprobeSock.
        "sock" | "socket" => {
            let s: SockInfo = pod(slot);
            let mut v = Map::new();
            v.insert("family".into(), json!(family_name(s.family)));
            let protocol = protocol_name(s.protocol);
            if !protocol.is_empty() {
                v.insert("protocol".into(), json!(protocol));
            }
            v.insert("saddr".into(), json!(addr(s.saddr)));
            v.insert("daddr".into(), json!(addr(s.daddr)));
            put_port(&mut v, "sport", s.sport);
            put_port(&mut v, "dport", s.dport);
            ("sock_arg", Value::Object(v))
        }
        "cred" => {
            let c: CredInfo = pod(slot);
            (
                "process_credentials_arg",
                json!({
                    "uid": c.uid, "gid": c.gid, "euid": c.euid, "egid": c.egid,
                    "caps": caps(&c),
                }),
            )
        }
        // int64, long and anything integer-like: Tetragon writes 64-bit as strings.
        _ => ("long_arg", json!((raw as i64).to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_base64() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let mut data = vec![0u8; STR_LEN];
        data[..5].copy_from_slice(b"hello");
        assert_eq!(
            typed_arg("char_buf", 5, slot(&data, 0)),
            ("bytes_arg", json!("aGVsbG8="))
        );
    }

    #[test]
    fn a_path_longer_than_its_slot_or_cut_is_flagged_truncated() {
        let mut data = vec![0u8; STR_LEN];
        data[..STR_LEN - 1].fill(b'a');
        let (_, whole) = typed_arg("fd", STR_LEN as u64 - 1, slot(&data, 0));
        assert_eq!(whole.get("flags"), None, "{whole}");
        let (_, long) = typed_arg("fd", 500, slot(&data, 0));
        assert_eq!(long["flags"], "truncated", "{long}");
        assert_eq!(long["path"].as_str().map(str::len), Some(STR_LEN - 1));
        let (_, cut) = typed_arg("path", PATH_CUT | 3, slot(&data, 0));
        assert_eq!(
            (cut["path"].as_str(), &cut["flags"]),
            (Some("aaa"), &json!("truncated"))
        );
    }

    #[test]
    fn paths_and_sockets_render_from_their_slots() {
        let mut data = vec![0u8; 2 * STR_LEN];
        data[..10].copy_from_slice(b"/etc/shado");
        let (key, v) = typed_arg("file", 10, slot(&data, 0));
        assert_eq!((key, v["path"].as_str()), ("file_arg", Some("/etc/shado")));
        let sock = SockInfo {
            family: 2,
            protocol: 6,
            sport: 5000,
            dport: 4242,
            saddr: std::net::Ipv4Addr::new(127, 0, 0, 1)
                .to_ipv6_mapped()
                .octets(),
            daddr: std::net::Ipv4Addr::new(10, 0, 0, 1)
                .to_ipv6_mapped()
                .octets(),
        };
        // SAFETY: SockInfo is plain data.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&sock as *const SockInfo).cast::<u8>(),
                std::mem::size_of::<SockInfo>(),
            )
        };
        data[STR_LEN..STR_LEN + bytes.len()].copy_from_slice(bytes);
        let (key, v) = typed_arg("sock", 2, slot(&data, 1));
        assert_eq!(key, "sock_arg");
        assert_eq!(v["saddr"], "127.0.0.1");
        assert_eq!(v["daddr"], "10.0.0.1");
        assert_eq!(v["dport"], 4242);
        assert_eq!(v["protocol"], "IPPROTO_TCP");
        assert_eq!(typed_arg("string", 3, None).1, "");
        // A socket not yet bound: no source port, no protocol.
        let (_, v) = typed_arg("sock", 2, None);
        assert_eq!(
            v,
            json!({"family": "AF_UNSPEC", "saddr": "::", "daddr": "::"})
        );
    }

    #[test]
    fn syscall_ids_carry_their_abi() {
        assert_eq!(
            typed_arg("syscall64", 272, None),
            ("syscall_id", json!({"id": 272, "abi": "x64"}))
        );
        assert_eq!(
            typed_arg("syscall64", 0x8000_0000 | 310, None),
            ("syscall_id", json!({"id": 310, "abi": "i386"}))
        );
    }

    #[test]
    fn credentials_name_their_capabilities() {
        let c = CredInfo {
            cap_effective: (1 << 21) | 1,
            cap_permitted: 1 << 63,
            ..CredInfo::default()
        };
        let v = caps(&c);
        assert_eq!(v["effective"], json!(["CAP_CHOWN", "CAP_SYS_ADMIN"]));
        assert_eq!(v["permitted"], json!(["CAP_63"]));
        assert!(v.get("inheritable").is_none());
    }
}
