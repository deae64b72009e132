//! Hook arguments as Tetragon exports them: integers by width, and the
//! data the kernel read behind pointers (strings, paths, sockets,
//! credentials) from the event's data slots. Written straight into the
//! event's JSON line; objects have their keys in sorted order, as
//! serde_json's maps wrote them before.

use std::{
    borrow::Cow,
    io::Write,
    net::{IpAddr, Ipv6Addr},
};

use tetragond_ebpf::{CredInfo, SkbInfo, SockInfo, UserNsInfo, NS_CHANGE_KINDS, PATH_CUT, STR_LEN};

use crate::{capabilities::CapSets, json::Json};

mod records;

/// The data slot of argument `i`, when the event carries one.
pub fn slot(data: &[u8], i: usize) -> Option<&[u8]> {
    data.get(i * STR_LEN..(i + 1) * STR_LEN)
}

fn text(slot: Option<&[u8]>, len: u64) -> Cow<'_, str> {
    let Some(bytes) = slot else {
        return Cow::Borrowed("");
    };
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(bytes.len())
        .min(len as usize);
    String::from_utf8_lossy(&bytes[..end])
}

/// The path of a `file`/`fd` argument the kernel walked, None when it
/// could not (an anonymous mapping's descriptor) or when it was cut short.
pub fn whole_path(slot: Option<&[u8]>, raw: u64) -> Option<Cow<'_, str>> {
    if raw & PATH_CUT != 0 {
        return None;
    }
    Some(text(slot, raw & (PATH_CUT - 1))).filter(|p| p.starts_with('/'))
}

/// A path the kernel walked: its first `STR_LEN - 1` bytes, flagged
/// `truncated` when that is not all of it (longer, or cut before the root:
/// `PATH_CUT`).
fn path_object(j: &mut Json, slot: Option<&[u8]>, raw: u64) {
    let path = text(slot, raw & (PATH_CUT - 1));
    j.open(b'{');
    if raw & PATH_CUT != 0 || raw & (PATH_CUT - 1) >= STR_LEN as u64 {
        j.key("flags");
        j.str("truncated");
    }
    j.key("path");
    j.str(&path);
    j.close(b'}');
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

/// A known name, else the number (as a string).
fn name_or_number(j: &mut Json, name: Option<&str>, n: u16) {
    match name {
        Some(name) => j.str(name),
        None => j.u64_string(u64::from(n)),
    }
}

fn family(j: &mut Json, family: u16) {
    let name = match family {
        0 => Some("AF_UNSPEC"),
        1 => Some("AF_UNIX"),
        2 => Some("AF_INET"),
        10 => Some("AF_INET6"),
        _ => None,
    };
    j.key("family");
    name_or_number(j, name, family);
}

/// Protocol 0 (unknown) is left out.
fn protocol(j: &mut Json, protocol: u16) {
    let name = match protocol {
        0 => return,
        1 => Some("IPPROTO_ICMP"),
        6 => Some("IPPROTO_TCP"),
        17 => Some("IPPROTO_UDP"),
        58 => Some("IPPROTO_ICMPV6"),
        _ => None,
    };
    j.key("protocol");
    name_or_number(j, name, protocol);
}

/// IPv4-mapped addresses print as IPv4.
fn addr(j: &mut Json, key: &str, bytes: [u8; 16]) {
    let v6 = Ipv6Addr::from(bytes);
    let ip = match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    };
    j.key(key);
    let out = j.buf();
    // An address is digits, dots, hex and colons: nothing to escape; and a
    // Vec cannot fail to take it.
    out.push(b'"');
    let _ = write!(out, "{ip}");
    out.push(b'"');
}

fn port(j: &mut Json, key: &str, port: u16) {
    if port != 0 {
        j.key(key);
        j.u64(u64::from(port));
    }
}

/// A capability set as Tetragon exports it: the names of its bits, in bit
/// order (`CAP_41` for a bit this table does not know).
fn cap_names(j: &mut Json, set: u64) {
    j.open(b'[');
    for bit in (0..64).filter(|bit| set & (1u64 << bit) != 0) {
        j.element();
        match crate::capabilities::NAMES.get(bit as usize) {
            Some(name) => j.str(name),
            None => {
                let out = j.buf();
                let _ = write!(out, "\"CAP_{bit}\"");
            }
        }
    }
    j.close(b']');
}

/// `{effective, inheritable, permitted}`, an empty set left out.
pub(crate) fn caps(j: &mut Json, c: &CapSets) {
    j.open(b'{');
    for (key, set) in [
        ("effective", c.effective),
        ("inheritable", c.inheritable),
        ("permitted", c.permitted),
    ] {
        if set != 0 {
            j.key(key);
            cap_names(j, set);
        }
    }
    j.close(b'}');
}

/// Standard base64 with padding, as a JSON string.
pub(crate) fn base64(j: &mut Json, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let out = j.buf();
    out.push(b'"');
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out.push(b'"');
}

/// The key of an argument of type `ty` in Tetragon's export.
pub fn arg_key(ty: &str) -> &'static str {
    match ty {
        "int" | "int32" | "int16" | "int8" => "int_arg",
        "uint32" | "uint16" | "uint8" => "uint_arg",
        // Tetragon exports every unsigned 64-bit type as its size_arg.
        "size_t" | "uint64" | "ulong" => "size_arg",
        "syscall64" => "syscall_id",
        "bpf_cmd" => "bpf_cmd_arg",
        "string" | "filename" | "data_loc" => "string_arg",
        "char_buf" | "char_iovec" | "iov_iter" => "bytes_arg",
        // A descriptor is exported as the file it names, a kiocb as the
        // file it is for.
        "file" | "fd" | "kiocb" => "file_arg",
        "path" | "dentry" => "path_arg",
        "linux_binprm" => "linux_binprm_arg",
        "sockaddr" => "sockaddr_arg",
        "sockaddr_un" => "sockaddrun_arg",
        "sock" | "socket" => "sock_arg",
        "skb" => "skb_arg",
        "cred" => "process_credentials_arg",
        "net_device" => "net_dev_arg",
        "user_namespace" => "user_ns_arg",
        "kernel_cap_t" => "kernel_cap_t_arg",
        "cap_inheritable" => "cap_inheritable_arg",
        "cap_permitted" => "cap_permitted_arg",
        "cap_effective" => "cap_effective_arg",
        _ => records::key(ty).unwrap_or("long_arg"),
    }
}

/// One argument as elements of an `args` list: one element, but for an
/// array of longs (`const_buf`), which Tetragon exports as one `size_arg`
/// per element.
pub fn push_arg(j: &mut Json, ty: &str, raw: u64, slot: Option<&[u8]>, label: Option<&str>) {
    if ty != "const_buf" {
        j.element();
        write_arg(j, ty, raw, slot, label);
        return;
    }
    let bytes = slot.map_or(&[][..], |b| &b[..(raw as usize).min(b.len())]);
    for element in bytes.as_chunks::<8>().0 {
        j.element();
        write_arg(j, "uint64", u64::from_le_bytes(*element), None, label);
    }
}

/// One argument: `{key: value}`, with its `label` when it has one (the two
/// keys in sorted order).
pub fn write_arg(j: &mut Json, ty: &str, raw: u64, slot: Option<&[u8]>, label: Option<&str>) {
    let key = arg_key(ty);
    j.open(b'{');
    let label_first = label.filter(|_| "label" < key);
    if let Some(label) = label_first {
        j.key("label");
        j.str(label);
    }
    j.key(key);
    arg_value(j, ty, raw, slot);
    if let Some(label) = label.filter(|_| label_first.is_none()) {
        j.key("label");
        j.str(label);
    }
    j.close(b'}');
}

/// The argument's value in Tetragon's export.
fn arg_value(j: &mut Json, ty: &str, raw: u64, slot: Option<&[u8]>) {
    match ty {
        "int" | "int32" | "int16" | "int8" => j.i64(i64::from(raw as i64 as i32)),
        // uint_arg is a uint32 in tetragon.proto: protojson writes a number.
        "uint32" | "uint16" | "uint8" => j.u64(u64::from(raw as u32)),
        "size_t" | "uint64" | "ulong" => j.u64_string(raw),
        // Tetragon's capability sets: 16 hex digits.
        "kernel_cap_t" | "cap_inheritable" | "cap_permitted" | "cap_effective" => {
            j.str(&format!("{raw:016x}"))
        }
        // Tetragon's SyscallId: the number in its ABI (bit 31 marks i386).
        "syscall64" => {
            let (abi, id) = crate::compile::split_id(raw);
            j.open(b'{');
            j.key("abi");
            j.str(abi);
            j.key("id");
            j.u64(u64::from(id));
            j.close(b'}');
        }
        "bpf_cmd" => records::bpf_cmd(j, raw as u32),
        "string" | "filename" | "data_loc" => j.str(&text(slot, raw)),
        // Tetragon's KprobeSockaddrUn: the path read is sun_path, of an
        // address the type declares AF_UNIX.
        "sockaddr_un" => {
            j.open(b'{');
            j.key("family");
            j.str("AF_UNIX");
            j.key("path");
            j.str(&text(slot, raw));
            j.close(b'}');
        }
        // Tetragon's bytes_arg: protojson writes bytes as base64.
        "char_buf" | "char_iovec" | "iov_iter" => base64(
            j,
            slot.map_or(&[][..], |b| &b[..(raw as usize).min(b.len())]),
        ),
        "file" | "fd" | "kiocb" | "path" | "dentry" | "linux_binprm" => path_object(j, slot, raw),
        "sockaddr" => sockaddr(j, &pod(slot)),
        "sock" | "socket" => sock(j, &pod(slot)),
        "skb" => skb(j, &pod(slot)),
        "cred" => cred(j, &pod(slot)),
        "user_namespace" => user_ns(j, &pod(slot), host_user_ns()),
        "net_device" => {
            j.open(b'{');
            j.key("name");
            j.str(&text(slot, raw));
            j.close(b'}');
        }
        _ if records::write(j, ty, slot) => {}
        // int64, long and anything integer-like: Tetragon writes 64-bit as strings.
        _ => j.i64_string(raw as i64),
    }
}

fn sockaddr(j: &mut Json, s: &SockInfo) {
    j.open(b'{');
    addr(j, "addr", s.daddr);
    family(j, s.family);
    port(j, "port", s.dport);
    j.close(b'}');
}

/// Empty and zero fields left out, as protojson does inside Tetragon's
/// KprobeSock.
fn sock(j: &mut Json, s: &SockInfo) {
    j.open(b'{');
    addr(j, "daddr", s.daddr);
    port(j, "dport", s.dport);
    family(j, s.family);
    protocol(j, s.protocol);
    addr(j, "saddr", s.saddr);
    port(j, "sport", s.sport);
    if s.state != 0 {
        let states = &crate::compile::TCP_STATES;
        j.key("state");
        match states.get(usize::from(s.state) - 1) {
            Some(name) => j.str(name),
            None => j.str(&s.state.to_string()),
        }
    }
    if s.sock_type != 0 {
        let name = match s.sock_type {
            1 => Some("SOCK_STREAM"),
            2 => Some("SOCK_DGRAM"),
            3 => Some("SOCK_RAW"),
            4 => Some("SOCK_RDM"),
            5 => Some("SOCK_SEQPACKET"),
            6 => Some("SOCK_DCCP"),
            10 => Some("SOCK_PACKET"),
            _ => None,
        };
        j.key("type");
        name_or_number(j, name, s.sock_type);
    }
    j.close(b'}');
}

/// Tetragon's KprobeSkb: `proto` the IP protocol's number, `protocol`
/// its name; zeros and the IPsec path lengths (not read) left out.
fn skb(j: &mut Json, s: &SkbInfo) {
    let n = &s.sock;
    j.open(b'{');
    if n.family != 0 {
        addr(j, "daddr", n.daddr);
    }
    port(j, "dport", n.dport);
    if n.family != 0 {
        family(j, n.family);
    }
    records::nonzero(j, "hash", s.hash);
    records::nonzero(j, "len", s.len);
    records::nonzero(j, "mark", s.mark);
    records::nonzero(j, "priority", s.priority);
    records::nonzero(j, "proto", u32::from(n.protocol));
    protocol(j, n.protocol);
    if n.family != 0 {
        addr(j, "saddr", n.saddr);
    }
    port(j, "sport", n.sport);
    j.close(b'}');
}

/// Tetragon's UserNamespace: `is_host` written only when true, as
/// protobuf's JSON leaves a false bool out.
fn user_ns(j: &mut Json, u: &UserNsInfo, host: u32) {
    j.open(b'{');
    j.key("gid");
    j.u64(u64::from(u.gid));
    j.key("level");
    j.i64(i64::from(u.level));
    j.key("ns");
    j.open(b'{');
    j.key("inum");
    j.u64(u64::from(u.inum));
    if u.inum != 0 && u.inum == host {
        j.key("is_host");
        j.bool(true);
    }
    j.close(b'}');
    j.key("uid");
    j.u64(u64::from(u.uid));
    j.close(b'}');
}

/// Tetragon's ProcessCredentials, keys in sorted order; `securebits` by
/// Tetragon's names (SecureBitsType), left out when none is set.
pub(crate) fn cred(j: &mut Json, c: &CredInfo) {
    j.open(b'{');
    j.key("caps");
    caps(j, &CapSets::of_cred(c));
    let ids = |j: &mut Json, list: &[(&str, u32)]| {
        for &(key, id) in list {
            j.key(key);
            j.u64(u64::from(id));
        }
    };
    ids(
        j,
        &[
            ("egid", c.egid),
            ("euid", c.euid),
            ("fsgid", c.fsgid),
            ("fsuid", c.fsuid),
            ("gid", c.gid),
        ],
    );
    if c.securebits & 0xff != 0 {
        j.key("securebits");
        j.open(b'[');
        for (bit, name) in SECURE_BITS.iter().enumerate() {
            if c.securebits & (1 << bit) != 0 {
                j.element();
                j.str(name);
            }
        }
        j.close(b']');
    }
    ids(j, &[("sgid", c.sgid), ("suid", c.suid), ("uid", c.uid)]);
    j.key("user_ns");
    user_ns(j, &c.user_ns, host_user_ns());
    j.close(b'}');
}

/// Tetragon's Namespaces: `{inum, is_host}` of each kind (by `ns_kind::*`
/// in `ns`), keys in sorted order; an unknown one (0) left out.
pub(crate) fn namespaces(j: &mut Json, ns: &[u32; NS_CHANGE_KINDS]) {
    use tetragond_ebpf::ns_kind::*;
    let host = host_namespaces();
    j.open(b'{');
    for (key, kind) in [
        ("cgroup", CGROUP),
        ("ipc", IPC),
        ("mnt", MNT),
        ("net", NET),
        ("pid", PID),
        ("pid_for_children", PID_FOR_CHILDREN),
        ("time", TIME),
        ("time_for_children", TIME_FOR_CHILDREN),
        ("user", USER),
        ("uts", UTS),
    ] {
        let kind = usize::from(kind);
        let inum = ns[kind];
        if inum == 0 {
            continue;
        }
        j.key(key);
        j.open(b'{');
        j.key("inum");
        j.u64(u64::from(inum));
        if inum == host[kind] {
            j.key("is_host");
            j.bool(true);
        }
        j.close(b'}');
    }
    j.close(b'}');
}

/// The initial user namespace's inode number (0 when unreadable): what
/// makes a user namespace's `is_host`.
pub(crate) fn host_user_ns() -> u32 {
    host_namespaces()[usize::from(tetragond_ebpf::ns_kind::USER)]
}

/// The host's namespaces by `ns_kind::*`, as `host_ns` reads them (pid
/// 1's); 0 where unreadable.
pub(crate) fn host_namespaces() -> [u32; NS_CHANGE_KINDS] {
    static HOST: std::sync::OnceLock<[u32; NS_CHANGE_KINDS]> = std::sync::OnceLock::new();
    *HOST.get_or_init(|| {
        let mut host = [0; NS_CHANGE_KINDS];
        for name in [
            "Uts",
            "Ipc",
            "Mnt",
            "Pid",
            "PidForChildren",
            "Net",
            "Time",
            "TimeForChildren",
            "Cgroup",
            "User",
        ] {
            let kind = usize::from(crate::compile::namespace_kind(name));
            host[kind] = crate::compile::host_namespace(name).unwrap_or(0);
        }
        host
    })
}

/// Tetragon's SecureBitsType names, by bit (`SECBIT_*` of securebits.h).
pub const SECURE_BITS: [&str; 8] = [
    "SecBitNoRoot",
    "SecBitNoRootLocked",
    "SecBitNoSetUidFixup",
    "SecBitNoSetUidFixupLocked",
    "SecBitKeepCaps",
    "SecBitKeepCapsLocked",
    "SecBitNoCapAmbientRaise",
    "SecBitNoCapAmbientRaiseLocked",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The argument rendered alone: its key and its value, parsed back. The
    /// rendering is checked to be what serde_json writes for that value
    /// (keys sorted, same number and string forms).
    fn typed_arg(ty: &str, raw: u64, slot: Option<&[u8]>) -> (&'static str, Value) {
        let mut out = vec![];
        write_arg(&mut Json::new(&mut out), ty, raw, slot, None);
        let v: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            serde_json::to_string(&v).expect("JSON"),
            String::from_utf8_lossy(&out),
            "as serde_json writes it"
        );
        let key = arg_key(ty);
        (key, v[key].clone())
    }

    fn caps_value(c: &CredInfo) -> Value {
        typed_arg("cred", 0, Some(bytes_of(c))).1["caps"].clone()
    }

    fn bytes_of<T>(v: &T) -> &[u8] {
        // SAFETY: plain data, read as bytes for as long as `v` lives.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
    }

    #[test]
    fn labels_sort_with_their_key() {
        for (ty, expected) in [
            ("int", r#"{"int_arg":-1,"label":"l"}"#),
            (
                "linux_binprm",
                r#"{"label":"l","linux_binprm_arg":{"flags":"truncated","path":""}}"#,
            ),
            (
                "uint64",
                r#"{"label":"l","size_arg":"18446744073709551615"}"#,
            ),
            (
                "cap_effective",
                r#"{"cap_effective_arg":"ffffffffffffffff","label":"l"}"#,
            ),
        ] {
            let mut out = vec![];
            write_arg(&mut Json::new(&mut out), ty, u64::MAX, None, Some("l"));
            assert_eq!(String::from_utf8_lossy(&out), expected);
        }
    }

    #[test]
    fn every_type_renders_as_serde_json_would() {
        let mut data = vec![0u8; STR_LEN];
        // Escapes, UTF-8, and a byte that is not UTF-8.
        let text = b"a\"b\\c\n\x01\xc3\xa9z\xffz";
        data[..text.len()].copy_from_slice(text);
        for ty in [
            "int",
            "int8",
            "uint8",
            "uint32",
            "uint64",
            "size_t",
            "syscall64",
            "string",
            "filename",
            "data_loc",
            "char_buf",
            "file",
            "fd",
            "path",
            "dentry",
            "linux_binprm",
            "sockaddr",
            "sockaddr_un",
            "sock",
            "socket",
            "cred",
            "net_device",
            "kiocb",
            "user_namespace",
            "bpf_cmd",
            "skb",
            "bpf_attr",
            "bpf_prog",
            "bpf_map",
            "perf_event",
            "module",
            "load_info",
            "long",
            "int64",
        ] {
            for raw in [0, 5, 12, 300, PATH_CUT | 4, u64::MAX] {
                typed_arg(ty, raw, slot(&data, 0));
                typed_arg(ty, raw, None);
            }
        }
    }

    #[test]
    fn bytes_are_base64() {
        let b64 = |bytes: &[u8]| {
            let mut out = vec![];
            base64(&mut Json::new(&mut out), bytes);
            String::from_utf8(out).expect("ASCII")
        };
        assert_eq!(b64(b""), r#""""#);
        assert_eq!(b64(b"f"), r#""Zg==""#);
        assert_eq!(b64(b"fo"), r#""Zm8=""#);
        assert_eq!(b64(b"foo"), r#""Zm9v""#);
        assert_eq!(b64(b"foobar"), r#""Zm9vYmFy""#);
        let mut data = vec![0u8; STR_LEN];
        data[..5].copy_from_slice(b"hello");
        assert_eq!(
            typed_arg("char_buf", 5, slot(&data, 0)),
            ("bytes_arg", json!("aGVsbG8="))
        );
    }

    /// Tetragon's const_buf: one size_arg per element of the array, in a
    /// list with the other args; nothing for an array that was not read.
    #[test]
    fn an_array_of_longs_is_one_size_arg_per_element() {
        let list = |raw: u64, data: &[u8]| {
            let mut out = vec![];
            let mut j = Json::new(&mut out);
            j.open(b'[');
            push_arg(&mut j, "int", 1, None, None);
            push_arg(&mut j, "const_buf", raw, Some(data), None);
            push_arg(&mut j, "int", 2, None, None);
            j.close(b']');
            String::from_utf8(out).expect("ASCII")
        };
        let data: Vec<u8> = [7u64, u64::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            list(16, &data),
            r#"[{"int_arg":1},{"size_arg":"7"},{"size_arg":"18446744073709551615"},{"int_arg":2}]"#
        );
        assert_eq!(list(0, &data), r#"[{"int_arg":1},{"int_arg":2}]"#);
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
        assert_eq!(
            typed_arg("sockaddr_un", 10, slot(&data, 0)),
            (
                "sockaddrun_arg",
                json!({"family": "AF_UNIX", "path": "/etc/shado"})
            )
        );
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
            state: 2,
            sock_type: 1,
            ..Default::default()
        };
        let bytes = bytes_of(&sock);
        data[STR_LEN..STR_LEN + bytes.len()].copy_from_slice(bytes);
        let (key, v) = typed_arg("sock", 2, slot(&data, 1));
        assert_eq!(key, "sock_arg");
        assert_eq!(v["saddr"], "127.0.0.1");
        assert_eq!(v["daddr"], "10.0.0.1");
        assert_eq!(v["dport"], 4242);
        assert_eq!(v["protocol"], "IPPROTO_TCP");
        assert_eq!(
            (&v["state"], &v["type"]),
            (&json!("TCP_SYN_SENT"), &json!("SOCK_STREAM"))
        );
        assert_eq!(typed_arg("string", 3, None).1, "");
        // A socket not yet bound: no source port, no protocol.
        let (_, v) = typed_arg("sock", 2, None);
        assert_eq!(
            v,
            json!({"family": "AF_UNSPEC", "saddr": "::", "daddr": "::"})
        );
    }

    #[test]
    fn packets_are_written_as_tetragons_kprobe_skb() {
        let packet = SkbInfo {
            sock: SockInfo {
                family: 2,
                protocol: 6,
                sport: 40000,
                dport: 4251,
                saddr: std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets(),
                daddr: std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets(),
                ..Default::default()
            },
            hash: 0,
            len: 60,
            priority: 0,
            mark: 7,
        };
        let mut data = vec![0u8; STR_LEN];
        let bytes = bytes_of(&packet);
        data[..bytes.len()].copy_from_slice(bytes);
        assert_eq!(
            typed_arg("skb", 2, slot(&data, 0)),
            (
                "skb_arg",
                json!({"daddr": "127.0.0.1", "dport": 4251, "family": "AF_INET", "len": 60,
                       "mark": 7, "proto": 6, "protocol": "IPPROTO_TCP",
                       "saddr": "127.0.0.1", "sport": 40000})
            )
        );
        // Not an IP packet: nothing but the buffer's own fields.
        assert_eq!(typed_arg("skb", 0, None).1, json!({}));
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
        let v = caps_value(&c);
        assert_eq!(v["effective"], json!(["CAP_CHOWN", "CAP_SYS_ADMIN"]));
        assert_eq!(v["permitted"], json!(["CAP_63"]));
        assert!(v.get("inheritable").is_none());
    }

    #[test]
    fn credentials_carry_every_id_their_securebits_and_user_namespace() {
        let c = CredInfo {
            uid: 1,
            gid: 2,
            euid: 3,
            egid: 4,
            suid: 5,
            sgid: 6,
            fsuid: 7,
            fsgid: 8,
            securebits: 0x10 | 0x80,
            user_ns: UserNsInfo {
                level: 1,
                uid: 9,
                gid: 10,
                inum: 4026532001,
            },
            ..CredInfo::default()
        };
        let (key, v) = typed_arg("cred", 0, Some(bytes_of(&c)));
        assert_eq!(key, "process_credentials_arg");
        let want = json!({
            "caps": {}, "uid": 1, "gid": 2, "euid": 3, "egid": 4, "suid": 5, "sgid": 6,
            "fsuid": 7, "fsgid": 8,
            "securebits": ["SecBitKeepCaps", "SecBitNoCapAmbientRaiseLocked"],
            "user_ns": {"level": 1, "uid": 9, "gid": 10, "ns": {"inum": 4026532001u32}},
        });
        assert_eq!(v, want);
        let plain = CredInfo::default();
        let (_, v) = typed_arg("cred", 0, Some(bytes_of(&plain)));
        assert!(v.get("securebits").is_none(), "none set: left out");
    }

    #[test]
    fn a_user_namespace_is_host_only_when_it_is_the_initial_one() {
        let u = UserNsInfo {
            level: 1,
            uid: 1000,
            gid: 1000,
            inum: 4026532001,
        };
        let render = |host| {
            let mut out = vec![];
            user_ns(&mut Json::new(&mut out), &u, host);
            serde_json::from_slice::<Value>(&out).expect("valid JSON")
        };
        let nested = json!({"gid": 1000, "level": 1, "ns": {"inum": 4026532001u32}, "uid": 1000});
        assert_eq!(render(4026531837), nested);
        let mut host = nested;
        host["ns"]["is_host"] = json!(true);
        assert_eq!(render(4026532001), host);
    }
}
