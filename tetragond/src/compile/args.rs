//! Hook argument types to how the kernel side reads them ([`ArgSpec`]):
//! integers by value, pointer types by the structure behind them.

use tetragond_ebpf::{arg_kind, ArgSpec};

use crate::{error::CompileError, policy::model::ArgType};

/// What a matchArgs filter on an argument compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgClass {
    Integer,
    /// Strings and paths: the string operators.
    Text,
    /// Sockets and socket addresses: the socket operators.
    Socket,
    /// Read for the event only (a credential).
    Opaque,
}

/// Where the pointer arguments of a hook point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// Kernel functions and LSM hooks: structures can be followed.
    Kernel,
    /// Syscall arguments and uprobes: user pointers, so only strings (and
    /// descriptors, resolved in the kernel) can be read.
    User,
}

/// The kernel reading kind of an argument type, and its class.
pub fn kind_of(ty: ArgType, memory: Memory) -> Result<(u8, ArgClass), String> {
    use ArgType::*;
    let kernel_only = |kind, class| {
        match memory {
        Memory::Kernel => Ok((kind, class)),
        Memory::User => Err(format!(
            "type {ty} is a kernel structure; it can be read on kernel functions and LSM hooks, not from user memory"
        )),
    }
    };
    // A pointer to a kernel_cap_t, whose 8 bytes are the value (see
    // `fields::read_member`), as Tetragon reads it.
    if ty.is_capability_set() {
        return kernel_only(arg_kind::INT, ArgClass::Integer);
    }
    if ty.is_numeric() || ty == Capability {
        return Ok((arg_kind::INT, ArgClass::Integer));
    }
    match ty {
        String => Ok((arg_kind::STRING, ArgClass::Text)),
        CharBuf => Ok((arg_kind::CHAR_BUF, ArgClass::Text)),
        CharIovec => Ok((arg_kind::CHAR_IOVEC, ArgClass::Text)),
        Fd => Ok((arg_kind::FD, ArgClass::Text)),
        Filename => kernel_only(arg_kind::FILENAME, ArgClass::Text),
        File => kernel_only(arg_kind::FILE, ArgClass::Text),
        Path => kernel_only(arg_kind::PATH, ArgClass::Text),
        Dentry => kernel_only(arg_kind::DENTRY, ArgClass::Text),
        LinuxBinprm => kernel_only(arg_kind::BINPRM, ArgClass::Text),
        Sockaddr => kernel_only(arg_kind::SOCKADDR, ArgClass::Socket),
        // Its `sun_path`, a string in place (see `fields::read_through`).
        SockaddrUn => kernel_only(arg_kind::STRING, ArgClass::Text),
        Sock => kernel_only(arg_kind::SOCK, ArgClass::Socket),
        Socket => kernel_only(arg_kind::SOCKET, ArgClass::Socket),
        // Its packet's addresses, ports and protocol, as a socket's.
        Skb => kernel_only(arg_kind::SKB, ArgClass::Socket),
        Cred => kernel_only(arg_kind::CRED, ArgClass::Opaque),
        // Its `name`, a string in place (see `fields::member_read`).
        NetDevice => kernel_only(arg_kind::STRING, ArgClass::Text),
        // The file its `ki_filp` points at.
        Kiocb => kernel_only(arg_kind::FILE, ArgClass::Text),
        // Its data's first bytes, as a char_buf's.
        IovIter => kernel_only(arg_kind::IOV_ITER, ArgClass::Text),
        UserNamespace => kernel_only(arg_kind::USER_NS, ArgClass::Opaque),
        // Records of their members, for the event (`kernel_info::records`).
        BpfAttr => kernel_only(arg_kind::BPF_ATTR, ArgClass::Opaque),
        BpfProg => kernel_only(arg_kind::BPF_PROG, ArgClass::Opaque),
        BpfMap => kernel_only(arg_kind::BPF_MAP, ArgClass::Opaque),
        PerfEvent => kernel_only(arg_kind::PERF_EVENT, ArgClass::Opaque),
        Module => kernel_only(arg_kind::MODULE, ArgClass::Opaque),
        LoadInfo => kernel_only(arg_kind::LOAD_INFO, ArgClass::Opaque),
        Auto => Err(
            "type auto takes the type BTF declares, on kernel functions, LSM hooks and raw tracepoints; name the type here".into(),
        ),
        other => Err(format!("arguments of type {other} are not supported yet")),
    }
}

/// An 8-byte argument at `offset` of the context (a register, or a slot
/// of a trampoline's argument array).
pub fn word_arg(ty: ArgType, offset: u16, memory: Memory) -> Result<ArgSpec, String> {
    let (kind, _) = kind_of(ty, memory)?;
    Ok(ArgSpec {
        offset,
        size: int_width(ty).unwrap_or(8),
        signed: u8::from(is_signed(ty)),
        kind,
        ..Default::default()
    })
}

/// `char_buf` and `char_iovec` args with `sizeArgIndex` (1-based, as
/// Tetragon counts; a char_iovec's counts its iovecs):
/// where the size argument is, by `offset_of(index)`; and the `maxData`
/// arg, if any (see [`mark_max_data`]).
pub fn link_sizes(
    what: &str,
    conf: &mut tetragond_ebpf::HookConf,
    args: &[crate::policy::model::Arg],
    offset_of: impl Fn(u32) -> Option<u16>,
) -> Result<(), CompileError> {
    for (spec, arg) in conf.args.iter_mut().zip(args) {
        if arg.ty == ArgType::CharIovec && arg.size_arg_index == 0 {
            return Err(unsupported_arg(
                what,
                arg.index,
                "a char_iovec needs sizeArgIndex: the argument that counts its iovecs".into(),
            ));
        }
        if !matches!(arg.ty, ArgType::CharBuf | ArgType::CharIovec) || arg.size_arg_index == 0 {
            continue;
        }
        let offset = offset_of(arg.size_arg_index - 1).ok_or_else(|| {
            unsupported_arg(
                what,
                arg.index,
                format!(
                    "sizeArgIndex {} names no readable argument",
                    arg.size_arg_index
                ),
            )
        })?;
        spec.size_from = tetragond_ebpf::size_from::ARG;
        spec.size_offset = offset;
    }
    mark_max_data(what, conf, args)
}

/// The arg whose buffer the kernel posts whole (`maxData`, up to
/// `MAX_DATA` bytes): a `char_buf` of `sizeArgIndex` bytes or an
/// `iov_iter`, one per hook. Where the hook kind cannot serve it,
/// `policy::unsupported` refused it before.
fn mark_max_data(
    what: &str,
    conf: &mut tetragond_ebpf::HookConf,
    args: &[crate::policy::model::Arg],
) -> Result<(), CompileError> {
    let marked: Vec<usize> = (0..args.len()).filter(|&i| args[i].max_data).collect();
    let &[position] = marked.as_slice() else {
        if marked.len() > 1 {
            return Err(CompileError::Unsupported(format!(
                "{what}: maxData is given on more than one argument; one buffer per hook is read whole"
            )));
        }
        return Ok(());
    };
    let (arg, spec) = (&args[position], &conf.args[position]);
    let refuse = |msg: String| Err(unsupported_arg(what, arg.index, msg));
    match spec.kind {
        arg_kind::IOV_ITER => {}
        arg_kind::CHAR_BUF if spec.size_from == tetragond_ebpf::size_from::ARG => {}
        arg_kind::CHAR_BUF => {
            return refuse(
                "maxData reads a char_buf of sizeArgIndex bytes; without sizeArgIndex its size is unknown"
                    .into(),
            )
        }
        _ => {
            return refuse(format!(
                "maxData reads a char_buf or an iov_iter whole, not a {}",
                arg.ty
            ))
        }
    }
    conf.max_data_arg = position as u8 + 1;
    Ok(())
}

/// The bytes an integer type holds: an `int` is read as the low 4 bytes of
/// its register or record slot (a caller may leave the high half zero, as
/// for AT_FDCWD), as Tetragon reads it and as the event prints it. `None`
/// for types that are not integers.
pub fn int_width(ty: ArgType) -> Option<u8> {
    use ArgType::*;
    match ty {
        Int8 | Sint8 | Uint8 => Some(1),
        Int16 | Sint16 | Uint16 => Some(2),
        Int | Int32 | Sint32 | Uint32 | BpfCmd => Some(4),
        _ if ty.is_numeric() => Some(8),
        _ => None,
    }
}

pub fn is_signed(ty: ArgType) -> bool {
    let name = ty.as_str();
    name.starts_with("int") || name.starts_with("sint") || name == "long"
}

/// Typed args of a hook, as `Err(CompileError)` naming the hook.
pub fn unsupported_arg(what: &str, index: u32, msg: String) -> CompileError {
    CompileError::Unsupported(format!("{what}: arg {index}: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_structures_need_kernel_memory() {
        assert_eq!(
            kind_of(ArgType::File, Memory::Kernel),
            Ok((arg_kind::FILE, ArgClass::Text))
        );
        assert!(kind_of(ArgType::File, Memory::User).is_err());
        assert_eq!(
            kind_of(ArgType::String, Memory::User),
            Ok((arg_kind::STRING, ArgClass::Text))
        );
        assert_eq!(
            kind_of(ArgType::Sockaddr, Memory::Kernel),
            Ok((arg_kind::SOCKADDR, ArgClass::Socket))
        );
        assert!(kind_of(ArgType::Skb, Memory::User).is_err());
        assert!(kind_of(ArgType::IovIter, Memory::User).is_err());
    }
}
