//! `uprobes`: one attachment per symbol or offset of `path`, each carrying
//! its hook slot as the BPF cookie. Arguments come from the registers of
//! the x86-64 calling convention (the `pt_regs` layout is the ptrace ABI).

use tetragond_ebpf::{return_half, ArgSpec, HookConf};

use super::{
    args::{word_arg, Memory},
    data,
    function::{return_view, ARG_REGISTERS, RETURN_REGISTER},
    meta,
    regs::RegsSite,
    returns,
    selectors::{compile_selectors, HookArgs},
    Attach, CompiledHook, HookKind, HookMeta, ReturnHalf, UprobeLocation, UprobeTarget,
};
use crate::kernel_info::HookCaps;
use crate::policy::limits::OverLimit;
use crate::{
    error::CompileError,
    policy::model::{ActionType, Arg, Selector, TracingPolicy, UprobeSpec},
};

pub fn compile(
    policy: &TracingPolicy,
    hook_index: usize,
    up: &UprobeSpec,
    caps: HookCaps,
) -> Result<Vec<CompiledHook>, CompileError> {
    let what = format!("uprobes[{hook_index}] {}", up.path);
    let unsupported = |msg: &str| Err(CompileError::Unsupported(format!("{what}: {msg}")));
    if !up.addrs.is_empty() {
        return unsupported("addrs are not supported yet; use symbols or offsets");
    }
    if !up.path.starts_with('/') {
        return Err(CompileError::Invalid(format!(
            "{what}: path must be absolute"
        )));
    }
    if !up.ref_ctr_offsets.is_empty() && up.ref_ctr_offsets.len() != up.offsets.len() {
        return Err(CompileError::Invalid(format!(
            "{what}: refCtrOffsets has {} entries and offsets {}: one per offset, as in Tetragon",
            up.ref_ctr_offsets.len(),
            up.offsets.len()
        )));
    }
    // Each location with the file offset of the semaphore the kernel
    // raises while it is probed (`refCtrOffsets`, by offset), or 0.
    let semaphores = up
        .ref_ctr_offsets
        .iter()
        .copied()
        .chain(std::iter::repeat(0));
    let locations: Vec<(UprobeLocation, u64)> = up
        .symbols
        .iter()
        .map(|s| (UprobeLocation::Symbol(s.clone()), 0))
        .chain(
            up.offsets
                .iter()
                .zip(semaphores)
                .map(|(o, semaphore)| (UprobeLocation::Offset(*o), semaphore)),
        )
        .collect();
    let regs = RegsSite {
        kernel_denied: (!caps.uprobe_regs).then_some(
            "Override on a uprobe changes the registers the process goes on with, which needs uprobe programs that write their context (Linux 6.18); this kernel refuses them",
        ),
        at_entry: up.offsets.is_empty(),
    };
    let hooks = hooks(&what, policy, up, &locations, regs)?;
    // After the policy's own errors, which every kernel reports alike.
    if !caps.uprobe_cookies {
        return unsupported(
            "uprobes need BPF cookies (bpf_get_attach_cookie, Linux 5.15), which this kernel lacks",
        );
    }
    Ok(hooks)
}

/// The hooks of `up` at each of its locations.
fn hooks(
    what: &str,
    policy: &TracingPolicy,
    up: &UprobeSpec,
    locations: &[(UprobeLocation, u64)],
    regs: RegsSite,
) -> Result<Vec<CompiledHook>, CompileError> {
    if !up.ret {
        // Data values (registers, `source: pt_regs`) after the args.
        let with = data::with_data(what, &up.args, &up.data, &up.selectors)?;
        let mut entry = Half::new(what, policy, &with.args, &with.selectors, false, Some(regs))?;
        entry.data_from = with.data_from;
        return Ok(locations
            .iter()
            .map(|l| entry.hook(policy, up, l))
            .collect());
    }
    // A return hook: at each location, the entry half then the exit half
    // (see `ReturnHalf`).
    let view = returns::entry_view(what, &up.args, &up.selectors)?;
    let mut entry = Half::new(what, policy, &view.args, &view.selectors, false, None)?;
    entry.half = returns::mark_entry(&mut entry.conf.0, &mut entry.arg_types, view.copy);
    let return_selectors = returns::return_selectors(&up.selectors);
    let (args, selectors) = return_view(what, &[], up.return_arg.as_ref(), &return_selectors)?;
    let mut exit = Half::new(what, policy, &args, &selectors, true, None)?;
    exit.conf.0.return_half = return_half::EXIT;
    exit.half = ReturnHalf::Exit;
    if let Some(i) = view.copy {
        returns::read_copy_at_return(&mut exit.conf.0, &mut exit.arg_types, &up.args[i]);
    }
    Ok(locations
        .iter()
        .flat_map(|l| [entry.hook(policy, up, l), exit.hook(policy, up, l)])
        .collect())
}

/// A uprobe, or one half of a return uprobe, as compiled for every
/// location.
struct Half {
    conf: Conf,
    arg_types: Vec<(String, Option<String>)>,
    ret: bool,
    half: ReturnHalf,
    /// Where the data values start in the args, if any.
    data_from: Option<usize>,
    /// Its selectors have an Override (served by `uprobe_dispatch_regs`).
    regs: bool,
}

impl Half {
    fn new(
        what: &str,
        policy: &TracingPolicy,
        args: &[Arg],
        selectors: &[Selector],
        ret: bool,
        regs: Option<RegsSite>,
    ) -> Result<Self, CompileError> {
        Ok(Self {
            conf: register_args(what, policy, args, selectors, ret, regs)?,
            arg_types: args
                .iter()
                .map(|a| (a.ty.as_str().to_string(), a.label.clone()))
                .collect(),
            ret,
            half: ReturnHalf::None,
            data_from: None,
            regs: selectors.iter().any(|s| {
                s.match_actions
                    .iter()
                    .any(|a| a.action == ActionType::Override)
            }),
        })
    }

    fn hook(
        &self,
        policy: &TracingPolicy,
        up: &UprobeSpec,
        (location, semaphore): &(UprobeLocation, u64),
    ) -> CompiledHook {
        CompiledHook {
            conf: self.conf.0,
            sub_ids: vec![],
            entries: self.conf.1.entries.clone(),
            meta: HookMeta {
                message: up.message.clone(),
                tags: up.tags.clone(),
                return_position: self.ret.then_some(0),
                return_half: self.half,
                daemon_actions: self.conf.1.daemon_actions.clone(),
                data_from: self.data_from,
                ..meta(
                    policy,
                    HookKind::Uprobe {
                        path: up.path.clone(),
                        symbol: location.to_string(),
                    },
                    self.arg_types.clone(),
                )
            },
            attach: Attach::Uprobe(UprobeTarget {
                binary: up.path.clone(),
                location: location.clone(),
                ret: self.ret,
                writes: false,
                regs: self.regs,
                semaphore: *semaphore,
            }),
        }
    }
}

type Conf = (HookConf, super::selectors::CompiledSelectors);

/// How a hook in user space (a uprobe, a USDT site) finds its args: the
/// read of each, and the register holding a size argument's value.
pub(super) struct UserArgs<'a> {
    pub spec: &'a dyn Fn(&Arg) -> Result<ArgSpec, CompileError>,
    pub size_register: &'a dyn Fn(u32) -> Option<u16>,
    /// Why Override is refused there.
    pub override_denied: &'static str,
    /// Which args Set may write (see `HookArgs::writable`).
    pub writable: Option<Vec<Result<(), String>>>,
    /// What an Override may do (see `HookArgs::regs`).
    pub regs: Option<RegsSite>,
}

/// The conf and selectors of a hook in user space: its args read as
/// `read` says, user memory behind its pointers.
pub(super) fn hook_conf(
    what: &str,
    policy: &TracingPolicy,
    args: &[Arg],
    selectors: &[Selector],
    read: UserArgs<'_>,
) -> Result<Conf, CompileError> {
    OverLimit::Args
        .check(args.len())
        .map_err(|e| CompileError::Invalid(format!("{what}: {e}")))?;
    let mut conf = HookConf {
        n_args: args.len() as u8,
        ..Default::default()
    };
    for (i, arg) in args.iter().enumerate() {
        conf.args[i] = (read.spec)(arg)?;
    }
    super::args::link_sizes(what, &mut conf, args, read.size_register)?;
    let hook_args = HookArgs {
        args,
        positional: false,
        syscall_id: vec![],
        memory: Some(Memory::User),
        override_denied: Some(read.override_denied.into()),
        positive: None,
        writable: read.writable,
        regs: read.regs,
    };
    let sel = compile_selectors(what, policy, selectors, &hook_args, false)?;
    conf.n_selectors = sel.selectors.len() as u8;
    conf.selectors[..sel.selectors.len()].copy_from_slice(&sel.selectors);
    Ok((conf, sel))
}

/// A uprobe's args: in the registers of the calling convention, or the
/// return value's.
fn register_args(
    what: &str,
    policy: &TracingPolicy,
    args: &[Arg],
    selectors: &[Selector],
    ret: bool,
    regs: Option<RegsSite>,
) -> Result<Conf, CompileError> {
    let spec = |arg: &Arg| {
        if data::is_data(arg) {
            return data::register_spec(what, arg);
        }
        let offset = if ret {
            RETURN_REGISTER
        } else {
            *ARG_REGISTERS.get(arg.index as usize).ok_or_else(|| {
                CompileError::Unsupported(format!(
                    "{what}: arg index {}: only the 6 register arguments can be read",
                    arg.index
                ))
            })?
        };
        word_arg(arg.ty, offset, Memory::User)
            .map_err(|m| CompileError::Unsupported(format!("{what}: arg {}: {m}", arg.index)))
    };
    let size_register = |index: u32| {
        (!ret)
            .then(|| ARG_REGISTERS.get(index as usize).copied())
            .flatten()
    };
    let read = UserArgs {
        spec: &spec,
        size_register: &size_register,
        override_denied: "Override is served on uprobes without return: true",
        writable: None,
        regs,
    };
    hook_conf(what, policy, args, selectors, read)
}
