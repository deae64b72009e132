//! The two halves of a return hook (see [`ReturnHalf`](super::ReturnHalf)):
//! what each half's selectors hold, and the `returnCopy` argument.

use tetragond_ebpf::{arg_kind, return_half, size_from, ArgSpec, HookConf};

use super::{CompiledHook, ReturnHalf};
use crate::{
    error::CompileError,
    policy::model::{Arg, ArgType, KprobeSpec, Selector},
};

/// The entry half's selectors: each as written, without its return
/// filters and actions.
pub fn entry_selectors(selectors: &[Selector]) -> Vec<Selector> {
    selectors
        .iter()
        .map(|s| Selector {
            match_return_args: vec![],
            match_return_actions: vec![],
            ..s.clone()
        })
        .collect()
}

/// The exit half's selectors, one per selector (the exit half evaluates
/// the one that matched at entry): its matchReturnArgs, on the return
/// value (arg 0), and its matchReturnActions (a Post when there are none).
pub fn exit_selectors(selectors: &[Selector]) -> Vec<Selector> {
    selectors
        .iter()
        .map(|s| Selector {
            match_args: s
                .match_return_args
                .iter()
                .map(|a| {
                    let mut a = a.clone();
                    a.index = 0;
                    a
                })
                .collect(),
            match_actions: s.match_return_actions.clone(),
            ..Selector::default()
        })
        .collect()
}

/// The exit half's selectors where the return value is read by
/// `function::with_return`: one per selector, its matchReturnArgs and
/// matchReturnActions alone.
pub fn return_selectors(selectors: &[Selector]) -> Vec<Selector> {
    selectors
        .iter()
        .map(|s| Selector {
            match_return_args: s.match_return_args.clone(),
            match_return_actions: s.match_return_actions.clone(),
            ..Selector::default()
        })
        .collect()
}

/// The position among `args` of the one `returnCopy` marks, if any: a
/// `char_buf` whose pointer the entry half keeps, and whose first bytes,
/// as many as the call returns, the exit half reads. Tetragon keeps one.
pub fn copy_arg(
    what: &str,
    args: &[Arg],
    selectors: &[Selector],
) -> Result<Option<usize>, CompileError> {
    let marked: Vec<usize> = (0..args.len()).filter(|&i| args[i].return_copy).collect();
    let refuse = |msg: String| Err(CompileError::Unsupported(format!("{what}: {msg}")));
    let &[position] = marked.as_slice() else {
        return match marked.len() {
            0 => Ok(None),
            _ => refuse("returnCopy is given on more than one argument; one buffer is read at return, as in Tetragon".into()),
        };
    };
    let arg = &args[position];
    if arg.ty != ArgType::CharBuf {
        return refuse(format!(
            "arg {}: returnCopy reads a char_buf at return, not a {}",
            arg.index, arg.ty
        ));
    }
    let filtered = selectors
        .iter()
        .flat_map(|s| &s.match_args)
        .any(|f| match f.args.as_slice() {
            [] => f.index == arg.index,
            positions => positions.contains(&(position as u32)),
        });
    if filtered {
        return refuse(format!(
            "arg {}: a returnCopy buffer is read at return, after matchArgs ran at the call; it cannot be filtered",
            arg.index
        ));
    }
    Ok(Some(position))
}

/// The entry half of return hook `kp`, compiled by `compile` from a copy
/// of `kp` whose `returnCopy` argument is read as its pointer only (kept
/// for the exit half) and from its entry selectors; and the position of
/// that argument, if any.
pub fn entry_half(
    what: &str,
    kp: &KprobeSpec,
    compile: impl FnOnce(&KprobeSpec, &[Selector]) -> Result<CompiledHook, CompileError>,
) -> Result<(CompiledHook, Option<usize>), CompileError> {
    let view = entry_view(what, &kp.args, &kp.selectors)?;
    let entry_kp = KprobeSpec {
        args: view.args,
        ..kp.clone()
    };
    let mut entry = compile(&entry_kp, &view.selectors)?;
    entry.meta.return_half = mark_entry(&mut entry.conf, &mut entry.meta.args, view.copy);
    Ok((entry, view.copy))
}

/// What the entry half of a return hook compiles: its args (the
/// `returnCopy` one as its pointer), its selectors, and where the
/// `returnCopy` argument is.
pub struct EntryView {
    pub args: Vec<Arg>,
    pub selectors: Vec<Selector>,
    pub copy: Option<usize>,
}

pub fn entry_view(
    what: &str,
    args: &[Arg],
    selectors: &[Selector],
) -> Result<EntryView, CompileError> {
    let copy = copy_arg(what, args, selectors)?;
    // The copy's buffer is posted whole by the exit half, another by the
    // entry half: one event carries one.
    if args.iter().filter(|a| a.max_data).count() > 1 {
        return Err(CompileError::Unsupported(format!(
            "{what}: maxData is given on more than one argument; one buffer per hook is read whole"
        )));
    }
    Ok(EntryView {
        args: pointer_only(args, copy),
        selectors: entry_selectors(selectors),
        copy,
    })
}

/// Makes a compiled hook (`conf`, its args' types) the entry half, which
/// keeps the `returnCopy` pointer at `copy`; returns its `ReturnHalf`.
pub fn mark_entry(
    conf: &mut HookConf,
    arg_types: &mut [(String, Option<String>)],
    copy: Option<usize>,
) -> ReturnHalf {
    conf.return_half = return_half::ENTRY;
    conf.copy_arg = copy.map_or(0, |i| i as u8 + 1);
    if let Some(ty) = copy.and_then(|i| arg_types.get_mut(i)) {
        // Written as the buffer the exit half reads.
        ty.0 = ArgType::CharBuf.as_str().to_string();
    }
    ReturnHalf::Entry { copy }
}

/// The entry half's args: the `returnCopy` one (at `copy`) read as its
/// pointer only, kept for the exit half.
fn pointer_only(args: &[Arg], copy: Option<usize>) -> Vec<Arg> {
    let mut args = args.to_vec();
    if let Some(arg) = copy.and_then(|i| args.get_mut(i)) {
        arg.ty = ArgType::Uint64;
        arg.size_arg_index = 0;
        arg.return_copy = false;
        arg.max_data = false;
    }
    args
}

/// Gives the exit half (`conf`, whose arg 0 is the return value, and its
/// args' types) the `returnCopy` buffer as arg 1: the pointer the entry
/// half kept, as many bytes as the return value says; posted whole (up to
/// `MAX_DATA`) with `maxData`.
pub fn read_copy_at_return(
    conf: &mut HookConf,
    arg_types: &mut Vec<(String, Option<String>)>,
    copy: &Arg,
) {
    let ret = conf.args[0];
    conf.args[1] = ArgSpec {
        offset: ret.offset,
        size: 8,
        kind: arg_kind::CHAR_BUF,
        size_from: size_from::RETURN_COPY,
        size_offset: ret.offset,
        ..Default::default()
    };
    conf.n_args = 2;
    if copy.max_data {
        conf.max_data_arg = 2;
    }
    arg_types.push((ArgType::CharBuf.as_str().to_string(), copy.label.clone()));
}
