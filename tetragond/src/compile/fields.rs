//! `resolve` (with `btfType`): an argument read as a field behind it,
//! `mm.exe_file.f_path` from a `struct task_struct *`, walked through the
//! running kernel's BTF into the offsets the kernel side follows
//! ([`FieldPath`]).

use tetragond_ebpf::{arg_kind, ArgSpec, FieldPath, MAX_FIELD_LOADS};

use super::args::int_width;
use crate::{
    kernel_info::{
        btf::{ArgOrigin, BtfError, FieldKind, FieldWalk, KernelBtf, Pointee},
        records::record_layout,
    },
    policy::model::{Arg, ArgType},
};

/// Sets `spec` to read `arg.resolve` behind the argument that `origin`
/// declares (or behind a `struct btfType *`). The error says what cannot
/// be followed, or why the field does not fit the arg's `type`.
pub fn resolve_field(
    spec: &mut ArgSpec,
    arg: &Arg,
    origin: ArgOrigin<'_>,
    btf: Option<&KernelBtf>,
) -> Result<(), String> {
    let Some(path) = arg.resolve.as_deref() else {
        return Ok(());
    };
    let btf = need_btf(btf, "resolve")?;
    let walk = walk(path, arg, origin, btf)?;
    let size = field_size(arg.ty, &walk, btf)
        .map_err(|why| format!("resolve `{path}`: {path} is {}; {why}", walk.type_name))?;
    spec.field = field_path(&walk, size).map_err(|why| format!("resolve `{path}`: {why}"))?;
    // The argument itself is the pointer the path starts from.
    spec.size = 8;
    Ok(())
}

const KERNEL_CAP_T: &str = "kernel_cap_t";

/// An argument read where `origin` puts it, against its declaration in
/// BTF: refused when the function has no such argument (its index would
/// read whatever is past its parameters), or when its type reads what the
/// argument cannot be: characters (`string`, `char_buf`) from what is
/// neither a pointer to characters nor an untyped pointer or address (a
/// `struct dentry *`: a filter on it would never match), or a kernel
/// struct (`file`, `sock`, a capability set, ...) through a pointer to
/// another one (`path` on a `struct file *` would read a file's first
/// bytes as a path's, and match nothing or the wrong thing). An untyped
/// pointer (`void *`) or an address (`unsigned long`) is taken as the
/// type says, as Tetragon does. Where BTF is missing or does not know the
/// function, nothing is checked here (the attach needs the function
/// anyway).
pub fn check_declared(
    arg: &Arg,
    origin: ArgOrigin<'_>,
    btf: Option<&KernelBtf>,
) -> Result<(), DeclaredError> {
    let Some(btf) = btf else {
        return Ok(());
    };
    let id = match btf.arg_type(origin) {
        Ok(id) => id,
        Err(BtfError::Field(why)) => return Err(DeclaredError::Index(why)),
        Err(_) => return Ok(()),
    };
    let Some(reads) = Reads::of(arg.ty) else {
        return Ok(());
    };
    let Ok(kind) = btf.value_kind(id) else {
        return Ok(());
    };
    let declared = btf.type_name(id);
    let untyped = declared == "void *" || matches!(kind, FieldKind::Int { size: 8, .. });
    let fits = untyped
        || match reads {
            Reads::Chars => kind == FieldKind::PointerTo(Pointee::Chars),
            Reads::Struct(names) => matches!(kind, FieldKind::PointerTo(p)
                if composite_of(btf, p).is_some_and(|n| names.contains(&n.as_str()))),
            Reads::Typedef(name) => declared == format!("{name} *"),
        };
    if fits {
        return Ok(());
    }
    let index = origin.index();
    let mut why = format!(
        "type {} reads {} through a pointer; argument {index} is {declared} on this kernel (see its BTF)",
        arg.ty,
        reads.what()
    );
    if let Some(other) = type_reading(btf, kind) {
        why.push_str(&format!("; type {other} reads it"));
    }
    Err(DeclaredError::Type(why))
}

/// What an arg type reads through the argument's pointer.
#[derive(Clone, Copy)]
enum Reads {
    Chars,
    /// A struct (or union) of one of these names.
    Struct(&'static [&'static str]),
    /// A type known by its typedef (`kernel_cap_t`: the struct inside is
    /// anonymous from 6.3).
    Typedef(&'static str),
}

/// The address families' own structs start with the family, which is
/// what `sockaddr` reads first; a `sockaddr_un` is read from the generic
/// ones the kernel passes (a `connect` on a unix socket).
const SOCKADDRS: &[&str] = &[
    "sockaddr",
    "sockaddr_storage",
    "__kernel_sockaddr_storage",
    "sockaddr_in",
    "sockaddr_in6",
    "sockaddr_un",
];
const SOCKADDRS_UN: &[&str] = &[
    "sockaddr_un",
    "sockaddr",
    "sockaddr_storage",
    "__kernel_sockaddr_storage",
];

impl Reads {
    fn of(ty: ArgType) -> Option<Reads> {
        Some(match ty {
            ArgType::String | ArgType::CharBuf => Reads::Chars,
            ArgType::Sockaddr => Reads::Struct(SOCKADDRS),
            ArgType::SockaddrUn => Reads::Struct(SOCKADDRS_UN),
            ArgType::CharIovec => Reads::Struct(&["iovec"]),
            _ if ty.is_capability_set() => Reads::Typedef(KERNEL_CAP_T),
            _ => Reads::Struct(std::slice::from_ref(&struct_read_by(ty)?.1)),
        })
    }

    fn what(self) -> String {
        match self {
            Reads::Chars => "characters".into(),
            Reads::Struct(names) => format!("a struct {}", names[0]),
            Reads::Typedef(name) => format!("a {name}"),
        }
    }
}

/// The arg type that reads what a pointer of kind `kind` points at, if
/// any (for the refusal's hint).
fn type_reading(btf: &KernelBtf, kind: FieldKind) -> Option<ArgType> {
    let FieldKind::PointerTo(pointee) = kind else {
        return None;
    };
    if pointee == Pointee::Chars {
        return Some(ArgType::String);
    }
    type_for_struct(&composite_of(btf, pointee)?)
}

/// Why an argument does not fit its declaration: its `index`, or its `type`.
pub enum DeclaredError {
    Index(String),
    Type(String),
}

/// A type read as a member of the struct its pointer names.
struct Through {
    /// The struct and the member (none: the struct's first bytes).
    of: &'static str,
    member: &'static [&'static str],
    /// The member's 8 bytes are loaded (a pointer, or a capability set);
    /// else it is read in place.
    load: bool,
}

/// A `net_device` is its `name`; a `sockaddr_un` its `sun_path`; a
/// `kiocb` the file its `ki_filp` points
/// at; a capability set the 8 bytes of the kernel_cap_t it points at
/// (5.10's `__u32 cap[2]` and 6.x's `u64 val` alike), as Tetragon reads
/// them.
fn read_through(ty: ArgType) -> Option<Through> {
    let (of, member, load): (_, &'static [&'static str], _) = match ty {
        ArgType::NetDevice => ("net_device", &["name"], false),
        ArgType::SockaddrUn => ("sockaddr_un", &["sun_path"], false),
        ArgType::Kiocb => ("kiocb", &["ki_filp"], true),
        _ if ty.is_capability_set() => (KERNEL_CAP_T, &[], true),
        _ => return None,
    };
    Some(Through { of, member, load })
}

/// For a type read through a member (`read_through`), extends `spec` to
/// that member of the struct the argument (or its `resolve` path) reaches.
pub fn read_member(spec: &mut ArgSpec, ty: ArgType, btf: Option<&KernelBtf>) -> Result<(), String> {
    let Some(through) = read_through(ty) else {
        return Ok(());
    };
    let offset = if through.member.is_empty() {
        0
    } else {
        let btf = need_btf(btf, &format!("type {ty}"))?;
        let member = btf
            .member_offset(through.of, through.member)
            .map_err(|e| format!("type {ty}: {e}"))?;
        small(member.offset)?
    };
    let size = if through.load { 8 } else { 0 };
    let field = &mut spec.field;
    if field.present == 0 {
        // The argument is the struct's pointer.
        *field = FieldPath {
            present: 1,
            offset,
            size,
            ..Default::default()
        };
        spec.size = 8;
    } else if field.size == 8 {
        // `resolve` reached a pointer to the struct: follow it too.
        let n = usize::from(field.n_loads);
        let slot = field.loads.get_mut(n).ok_or_else(|| {
            format!("resolve follows {MAX_FIELD_LOADS} pointers, and type {ty} one more; at most {MAX_FIELD_LOADS} can be followed")
        })?;
        *slot = field.offset;
        field.n_loads += 1;
        field.offset = offset;
        field.size = size;
    } else {
        // The struct is embedded where `resolve` ends.
        field.offset = field.offset.checked_add(offset).ok_or_else(|| {
            format!(
                "offset of {}.{} is past 65535 bytes",
                through.of,
                through.member.join(".")
            )
        })?;
        field.size = size;
    }
    Ok(())
}

/// A type read as a record (a BPF program, map, perf event, module):
/// refused, with what is missing, where this kernel's BTF lacks its object.
pub fn check_record(spec: &ArgSpec, ty: ArgType, btf: Option<&KernelBtf>) -> Result<(), String> {
    let Some(record) = arg_kind::record(spec.kind) else {
        return Ok(());
    };
    let btf = need_btf(btf, &format!("type {ty}"))?;
    record_layout(btf, record)
        .map(|_| ())
        .map_err(|e| format!("type {ty} cannot be read on this kernel: {e}"))
}

/// An `iov_iter`: refused where this kernel lays it out otherwise than
/// `kernel_info::offsets` reads it.
pub fn check_iov_iter(ty: ArgType, btf: Option<&KernelBtf>) -> Result<(), String> {
    if ty != ArgType::IovIter {
        return Ok(());
    }
    let btf = need_btf(btf, "type iov_iter")?;
    match crate::kernel_info::offsets::iov_iter(btf).valid {
        0 => Err("type iov_iter cannot be read on this kernel: its struct iov_iter is laid out otherwise (no iter_type/type, count and iovec/kvec union, or no ITER_IOVEC and ITER_KVEC)".into()),
        _ => Ok(()),
    }
}

fn small(offset: u32) -> Result<u16, String> {
    u16::try_from(offset).map_err(|_| format!("offset {offset} is past 65535 bytes"))
}

fn need_btf<'a>(btf: Option<&'a KernelBtf>, what: &str) -> Result<&'a KernelBtf, String> {
    btf.ok_or_else(|| {
        format!("{what} needs the kernel's BTF (/sys/kernel/btf/vmlinux), which could not be read")
    })
}

/// The field `path` names behind the argument (or behind a `struct
/// btfType *`).
fn walk(
    path: &str,
    arg: &Arg,
    origin: ArgOrigin<'_>,
    btf: &KernelBtf,
) -> Result<FieldWalk, String> {
    let members: Vec<&str> = path.split('.').collect();
    if members.iter().any(|m| m.is_empty()) {
        return Err(format!(
            "resolve `{path}`: member names are separated by single dots"
        ));
    }
    let origin = match arg.btf_type.as_deref() {
        Some(name) => ArgOrigin::Struct(name.strip_prefix("struct ").unwrap_or(name)),
        None => origin,
    };
    btf.arg_struct(origin)
        .and_then(|start| btf.walk_fields(start, &members))
        .map_err(|e| format!("resolve `{path}`: {e}"))
}

/// The arg types that read a kernel struct (embedded or pointed at), with
/// the struct's name: what a resolved field must be for them, and what
/// `type: auto` makes of one.
const STRUCT_TYPES: [(ArgType, &str); 21] = [
    (ArgType::File, "file"),
    (ArgType::Path, "path"),
    (ArgType::Dentry, "dentry"),
    (ArgType::LinuxBinprm, "linux_binprm"),
    (ArgType::Sock, "sock"),
    (ArgType::Socket, "socket"),
    (ArgType::Skb, "sk_buff"),
    (ArgType::Sockaddr, "sockaddr"),
    (ArgType::SockaddrUn, "sockaddr_un"),
    (ArgType::Cred, "cred"),
    (ArgType::Filename, "filename"),
    (ArgType::NetDevice, "net_device"),
    (ArgType::Kiocb, "kiocb"),
    (ArgType::UserNamespace, "user_namespace"),
    (ArgType::BpfAttr, "bpf_attr"),
    (ArgType::BpfProg, "bpf_prog"),
    (ArgType::BpfMap, "bpf_map"),
    (ArgType::PerfEvent, "perf_event"),
    (ArgType::Module, "module"),
    (ArgType::LoadInfo, "load_info"),
    (ArgType::IovIter, "iov_iter"),
];

/// The struct arg type `ty` reads, if it reads one (its `STRUCT_TYPES`
/// entry).
fn struct_read_by(ty: ArgType) -> Option<&'static (ArgType, &'static str)> {
    STRUCT_TYPES.iter().find(|(t, _)| *t == ty)
}

/// The arg type that reads struct `name`, if one does.
fn type_for_struct(name: &str) -> Option<ArgType> {
    STRUCT_TYPES
        .iter()
        .find(|(_, of)| *of == name)
        .map(|(ty, _)| *ty)
}

/// The name of the struct `pointee` is, if it is one.
fn composite_of(btf: &KernelBtf, pointee: Pointee) -> Option<std::string::String> {
    match pointee {
        Pointee::Composite(id) => btf.composite_name(id),
        _ => None,
    }
}

/// `type: auto`: the arg type a value of BTF kind `kind` (`type_name`)
/// is read as, as its declaration says: integers by width and sign,
/// characters as a string, the structs tetragond reads by their own type,
/// other pointers as their address.
fn auto_type(kind: FieldKind, type_name: &str, btf: &KernelBtf) -> Result<ArgType, String> {
    use ArgType::*;
    let by_struct = |pointee: Pointee| type_for_struct(&composite_of(btf, pointee)?);
    let found = match kind {
        FieldKind::Int { size, signed } => match (size, signed) {
            (1, true) => Some(Int8),
            (1, false) => Some(Uint8),
            (2, true) => Some(Int16),
            (2, false) => Some(Uint16),
            (4, true) => Some(Int32),
            (4, false) => Some(Uint32),
            (8, true) => Some(Int64),
            (8, false) => Some(Uint64),
            _ => None,
        },
        FieldKind::PointerTo(Pointee::Chars) | FieldKind::Inline(Pointee::Chars) => Some(String),
        FieldKind::PointerTo(p) => Some(by_struct(p).unwrap_or(Uint64)),
        FieldKind::Inline(p) => by_struct(p),
        FieldKind::Other => None,
    };
    found.ok_or_else(|| format!("type auto: {type_name} has no arg type that reads it"))
}

/// The arg's type, with `auto` replaced by what BTF declares: the
/// resolved field's type, else the argument's own.
pub fn concrete_type(
    arg: &Arg,
    origin: ArgOrigin<'_>,
    btf: Option<&KernelBtf>,
) -> Result<ArgType, String> {
    if arg.ty != ArgType::Auto {
        return Ok(arg.ty);
    }
    let btf = need_btf(btf, "type auto")?;
    if let Some(path) = arg.resolve.as_deref() {
        let walk = walk(path, arg, origin, btf)?;
        return auto_type(walk.kind, &walk.type_name, btf);
    }
    let declared = |e: crate::kernel_info::btf::BtfError| format!("type auto: {e}");
    let id = btf.arg_type(origin).map_err(declared)?;
    let kind = btf.value_kind(id).map_err(declared)?;
    auto_type(kind, &btf.type_name(id), btf)
}

/// How many bytes of the field the arg's type reads (0: the field is read
/// where it is, by address).
fn field_size(ty: ArgType, walk: &FieldWalk, btf: &KernelBtf) -> Result<u8, String> {
    use ArgType::*;
    if ty.is_capability_set() {
        // By its typedef's name: the struct inside is anonymous.
        let pointer = format!("{KERNEL_CAP_T} *");
        return match walk.kind {
            FieldKind::Inline(_) if walk.type_name == KERNEL_CAP_T => Ok(0),
            FieldKind::PointerTo(_) if walk.type_name == pointer => Ok(8),
            _ => Err(format!(
                "type {ty} reads a {KERNEL_CAP_T} (or a pointer to one)"
            )),
        };
    }
    let integer = match ty {
        Fd | Capability => Some(4),
        _ => int_width(ty),
    };
    if let Some(width) = integer {
        return match walk.kind {
            FieldKind::Int { size, .. } if u32::from(width) <= size => Ok(width),
            FieldKind::PointerTo(_) if width == 8 => Ok(8),
            _ => Err(format!("type {ty} reads a {width}-byte integer")),
        };
    }
    let expected = match ty {
        String | CharBuf => {
            return match walk.kind {
                FieldKind::PointerTo(Pointee::Chars) => Ok(8),
                FieldKind::Inline(Pointee::Chars) => Ok(0),
                _ => Err(format!("type {ty} reads a character array or pointer")),
            }
        }
        _ => match struct_read_by(ty) {
            Some((_, name)) => *name,
            // Refused by the type's own check, before this one.
            None => return Err(format!("type {ty} cannot be read from a field")),
        },
    };
    match walk.kind {
        FieldKind::PointerTo(p) if composite_of(btf, p).as_deref() == Some(expected) => Ok(8),
        FieldKind::Inline(p) if composite_of(btf, p).as_deref() == Some(expected) => Ok(0),
        _ => Err(format!(
            "type {ty} reads a struct {expected} (or a pointer to one)"
        )),
    }
}

fn field_path(walk: &FieldWalk, size: u8) -> Result<FieldPath, String> {
    if walk.loads.len() > MAX_FIELD_LOADS {
        return Err(format!(
            "it follows {} pointers; at most {MAX_FIELD_LOADS} can be followed",
            walk.loads.len()
        ));
    }
    let mut loads = [0u16; MAX_FIELD_LOADS];
    for (slot, &offset) in loads.iter_mut().zip(&walk.loads) {
        *slot = small(offset)?;
    }
    Ok(FieldPath {
        present: 1,
        n_loads: walk.loads.len() as u8,
        size,
        offset: small(walk.offset)?,
        loads,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::args::{kind_of, ArgClass, Memory};

    /// This machine's own BTF: the offsets differ between kernels, so
    /// they are checked against `member_offset`, not written down.
    fn btf() -> KernelBtf {
        KernelBtf::from_sys_fs().expect("these tests need /sys/kernel/btf/vmlinux")
    }

    fn arg(ty: ArgType, resolve: &str) -> Arg {
        Arg {
            resolve: Some(resolve.into()),
            ..Arg::of(0, ty)
        }
    }

    const EXEC_TASK: ArgOrigin<'static> = ArgOrigin::RawTracepoint {
        event: "sched_process_exec",
        index: 0,
    };

    fn resolve(btf: &KernelBtf, arg: &Arg, origin: ArgOrigin<'_>) -> Result<FieldPath, String> {
        let mut spec = ArgSpec::default();
        resolve_field(&mut spec, arg, origin, Some(btf)).map(|()| spec.field)
    }

    fn offset(btf: &KernelBtf, ty: &str, path: &[&str]) -> u16 {
        btf.member_offset(ty, path).expect("member").offset as u16
    }

    #[test]
    fn pointers_on_the_path_are_loaded_and_the_field_read_as_its_type() {
        let btf = btf();
        let name = "mm.exe_file.f_path.dentry.d_name.name";
        let got = resolve(&btf, &arg(ArgType::String, name), EXEC_TASK).expect("resolves");
        let mut loads = [0; MAX_FIELD_LOADS];
        loads[..3].copy_from_slice(&[
            offset(&btf, "task_struct", &["mm"]),
            offset(&btf, "mm_struct", &["exe_file"]),
            offset(&btf, "file", &["f_path", "dentry"]),
        ]);
        let want = FieldPath {
            present: 1,
            n_loads: 3,
            size: 8,
            offset: offset(&btf, "dentry", &["d_name", "name"]),
            loads,
            ..Default::default()
        };
        assert_eq!(got, want);

        // An array is read where it is; an int loaded at the type's width.
        let comm = resolve(&btf, &arg(ArgType::String, "comm"), EXEC_TASK).expect("comm");
        assert_eq!((comm.n_loads, comm.size), (0, 0));
        assert_eq!(comm.offset, offset(&btf, "task_struct", &["comm"]));
        let tgid = resolve(&btf, &arg(ArgType::Int, "real_parent.tgid"), EXEC_TASK).expect("tgid");
        assert_eq!((tgid.n_loads, tgid.size), (1, 4));
        // An embedded struct, read by the kind of its type.
        let file = ArgOrigin::Function {
            name: "vfs_open",
            index: 1,
        };
        let path = resolve(&btf, &arg(ArgType::Path, "f_path"), file).expect("f_path");
        assert_eq!((path.n_loads, path.size), (0, 0));
    }

    #[test]
    fn btf_type_names_the_struct_the_path_starts_from() {
        let btf = btf();
        let old_pid = ArgOrigin::RawTracepoint {
            event: "sched_process_exec",
            index: 1,
        };
        let plain = arg(ArgType::Path, "f_path");
        let err = resolve(&btf, &plain, old_pid).expect_err("an int is no pointer");
        assert!(err.contains("not a pointer to a struct"), "{err}");
        let cast = Arg {
            btf_type: Some("file".into()),
            ..plain
        };
        resolve(&btf, &cast, old_pid).expect("read as a struct file *");
    }

    #[test]
    fn paths_that_cannot_be_read_as_the_type_are_refused_with_the_reason() {
        let btf = btf();
        let cases = [
            (ArgType::Int, "comm", "type int reads a 4-byte integer"),
            (ArgType::File, "mm", "type file reads a struct file"),
            (
                ArgType::String,
                "mm.nosuch",
                "struct mm_struct has no member nosuch",
            ),
            (ArgType::Int, "pid.x", "which has no member x"),
            (ArgType::String, "mm..owner", "separated by single dots"),
            (ArgType::Skb, "mm", "type skb reads a struct sk_buff"),
            (
                ArgType::IovIter,
                "mm",
                "type iov_iter reads a struct iov_iter",
            ),
        ];
        for (ty, path, want) in cases {
            let err = resolve(&btf, &arg(ty, path), EXEC_TASK).expect_err(path);
            assert!(err.contains(want), "{path}: {err}");
        }
    }

    #[test]
    fn auto_takes_the_type_btf_declares() {
        let btf = btf();
        let exec = |index| ArgOrigin::RawTracepoint {
            event: "sched_process_exec",
            index,
        };
        let open = |index| ArgOrigin::Function {
            name: "vfs_open",
            index,
        };
        let plain = Arg {
            resolve: None,
            ..arg(ArgType::Auto, "")
        };
        let cases = [
            (&plain, exec(1), ArgType::Int32),
            (&plain, exec(2), ArgType::LinuxBinprm),
            (&arg(ArgType::Auto, "comm"), exec(0), ArgType::String),
            (&arg(ArgType::Auto, "mm.exe_file"), exec(0), ArgType::File),
            (&arg(ArgType::Auto, "real_parent"), exec(0), ArgType::Uint64),
            (&plain, open(0), ArgType::Path),
            (&plain, open(1), ArgType::File),
        ];
        for (arg, origin, want) in cases {
            assert_eq!(concrete_type(arg, origin, Some(&btf)), Ok(want), "{arg:?}");
        }
        let err = concrete_type(&arg(ArgType::Auto, "mm"), exec(0), None).expect_err("no BTF");
        assert!(err.contains("needs the kernel's BTF"), "{err}");
        let err = concrete_type(&plain, exec(3), Some(&btf)).expect_err("no 4th argument");
        assert!(err.contains("no argument 3"), "{err}");
    }

    #[test]
    fn a_net_device_is_its_name_and_a_kiocb_its_file() {
        let btf = btf();
        let name = offset(&btf, "net_device", &["name"]);
        let mut plain = ArgSpec::default();
        read_member(&mut plain, ArgType::NetDevice, Some(&btf)).expect("name");
        assert_eq!((plain.field.n_loads, plain.field.size), (0, 0));
        assert_eq!(plain.field.offset, name);
        // Behind `resolve: dev` (a pointer): followed, then its name.
        let queue = ArgOrigin::RawTracepoint {
            event: "net_dev_queue",
            index: 0,
        };
        let mut spec = ArgSpec::default();
        let dev = arg(ArgType::NetDevice, "dev");
        resolve_field(&mut spec, &dev, queue, Some(&btf)).expect("dev");
        read_member(&mut spec, ArgType::NetDevice, Some(&btf)).expect("dev.name");
        let f = spec.field;
        assert_eq!((f.n_loads, f.size, f.offset), (1, 0, name));
        assert_eq!(f.loads[0], offset(&btf, "sk_buff", &["dev"]));
        // A kiocb is the file its ki_filp points at: loaded.
        let mut kiocb = ArgSpec::default();
        read_member(&mut kiocb, ArgType::Kiocb, Some(&btf)).expect("ki_filp");
        let f = kiocb.field;
        assert_eq!((f.n_loads, f.size), (0, 8));
        assert_eq!(f.offset, offset(&btf, "kiocb", &["ki_filp"]));
    }

    #[test]
    fn a_unix_socket_address_is_its_path_in_place() {
        let btf = btf();
        let mut spec = ArgSpec::default();
        read_member(&mut spec, ArgType::SockaddrUn, Some(&btf)).expect("sun_path");
        let f = spec.field;
        // After the 2-byte sun_family, read in place (not loaded).
        assert_eq!((f.present, f.n_loads, f.size, f.offset), (1, 0, 0, 2));
        assert_eq!(
            kind_of(ArgType::SockaddrUn, Memory::Kernel),
            Ok((arg_kind::STRING, ArgClass::Text))
        );
        let user = kind_of(ArgType::SockaddrUn, Memory::User);
        assert!(user.is_err(), "kernel memory only");
    }

    fn declared(btf: &KernelBtf, name: &str, index: u32, ty: ArgType) -> Result<(), String> {
        let origin = ArgOrigin::Function { name, index };
        check_declared(&Arg::of(index, ty), origin, Some(btf)).map_err(|e| match e {
            DeclaredError::Index(m) | DeclaredError::Type(m) => m,
        })
    }

    #[test]
    fn a_struct_type_is_refused_on_a_pointer_to_another_struct() {
        let btf = btf();
        // security_file_open(struct file *); security_socket_connect(struct
        // socket *, struct sockaddr *, int); security_capset(struct cred *,
        // const struct cred *, const kernel_cap_t *, ...).
        for (function, index, ty) in [
            ("security_file_open", 0, ArgType::File),
            ("security_socket_connect", 0, ArgType::Socket),
            ("security_socket_connect", 1, ArgType::Sockaddr),
            ("security_socket_connect", 1, ArgType::SockaddrUn),
            ("security_capset", 0, ArgType::Cred),
            ("security_capset", 2, ArgType::CapEffective),
            // Untyped: `const void *`, taken as the type says.
            ("kfree", 0, ArgType::File),
        ] {
            declared(&btf, function, index, ty)
                .unwrap_or_else(|e| panic!("{function} arg {index} as {ty}: {e}"));
        }
        let err = declared(&btf, "security_file_open", 0, ArgType::Path).expect_err("a file");
        assert_eq!(
            err,
            "type path reads a struct path through a pointer; argument 0 is struct file * on this kernel (see its BTF); type file reads it"
        );
        let err =
            declared(&btf, "security_socket_connect", 0, ArgType::Sock).expect_err("a socket");
        assert!(
            err.ends_with(
                "argument 0 is struct socket * on this kernel (see its BTF); type socket reads it"
            ),
            "{err}"
        );
        let err = declared(&btf, "security_capset", 0, ArgType::KernelCapT).expect_err("a cred");
        assert!(
            err.starts_with("type kernel_cap_t reads a kernel_cap_t through a pointer"),
            "{err}"
        );
        let err = declared(&btf, "security_socket_connect", 2, ArgType::Sock).expect_err("an int");
        assert!(err.contains("argument 2 is s32"), "{err}");
        assert!(
            !err.contains("reads it"),
            "no type reads an int's pointee: {err}"
        );
    }
}
