//! A kprobe's `data`: values read from the current task (`source:
//! current_task` and a `resolve` path from its `struct task_struct`) beside
//! the hook's args, as Tetragon reads them. They take the arg slots after
//! the args (Tetragon's five are shared), `matchData` filters them (compiled
//! as matchArgs on those slots) and events carry them as `data`.

use tetragond_ebpf::{arg_source, ArgSpec};

use super::{
    args::{word_arg, Memory},
    fields::{check_record, concrete_type, read_member, resolve_field},
};
use crate::{
    error::CompileError,
    kernel_info::btf::{ArgOrigin, KernelBtf},
    policy::{
        limits::{OverLimit, MAX_ARGS},
        model::{Arg, Selector},
        NodePath,
    },
};

/// The struct a current_task value's `resolve` path starts from.
const TASK_STRUCT: ArgOrigin<'static> = ArgOrigin::Struct("task_struct");

/// The `index` data value `i` has among the hook's args: past any
/// argument's index (and below the return value's), so that no matchArgs
/// names one.
const DATA_INDEX: u32 = 1 << 30;

/// Is `arg` one of the data values [`with_data`] appended?
pub fn is_data(arg: &Arg) -> bool {
    (DATA_INDEX..DATA_INDEX + MAX_ARGS as u32).contains(&arg.index)
}

/// A hook's args followed by its data values, and its selectors with
/// their matchData filters naming those values among the args.
pub struct WithData {
    pub args: Vec<Arg>,
    pub selectors: Vec<Selector>,
    /// Where the data values start in `args`; None without data.
    pub data_from: Option<usize>,
}

pub fn with_data(
    what: &str,
    args: &[Arg],
    data: &[Arg],
    selectors: &[Selector],
) -> Result<WithData, CompileError> {
    OverLimit::Args
        .check(args.len() + data.len())
        .map_err(|e| {
            CompileError::Invalid(format!(
                "{what}: {e} (args and data share them, as in Tetragon)"
            ))
        })?;
    let n = args.len() as u32;
    let mut all = args.to_vec();
    all.extend(data.iter().enumerate().map(|(i, d)| Arg {
        index: DATA_INDEX + i as u32,
        ..d.clone()
    }));
    let selectors = selectors
        .iter()
        .map(|s| {
            let mut s = s.clone();
            // A matchData index, or `args` position, counts in `data`.
            for f in &mut s.match_data {
                if f.args.is_empty() {
                    f.index += DATA_INDEX;
                } else {
                    f.args.iter_mut().for_each(|p| *p += n);
                }
            }
            s
        })
        .collect();
    Ok(WithData {
        args: all,
        selectors,
        data_from: (!data.is_empty()).then_some(args.len()),
    })
}

/// Data value `arg` with `type: auto` replaced by the type BTF declares
/// for the field it resolves.
pub fn concrete(what: &str, arg: &Arg, btf: Option<&KernelBtf>) -> Result<Arg, CompileError> {
    let ty = concrete_type(arg, TASK_STRUCT, btf).map_err(|m| {
        let position = position(arg);
        CompileError::Unsupported(format!("{what}: data {position}: {m}"))
            .within(NodePath::root().key("data").index(position).key("type"))
    })?;
    Ok(Arg { ty, ..arg.clone() })
}

/// Where data value `arg` is in the hook's `data`.
fn position(arg: &Arg) -> usize {
    arg.index.saturating_sub(DATA_INDEX) as usize
}

/// How data value `arg` is read: the current task, then the field its
/// `resolve` names (kernel memory, on any hook).
pub fn spec(what: &str, arg: &Arg, btf: Option<&KernelBtf>) -> Result<ArgSpec, CompileError> {
    let position = position(arg);
    let at = |key: &'static str| {
        move |m: String| {
            CompileError::Unsupported(format!("{what}: data {position}: {m}"))
                .within(NodePath::root().key("data").index(position).key(key))
        }
    };
    let mut spec = word_arg(arg.ty, 0, Memory::Kernel).map_err(at("type"))?;
    spec.source = arg_source::CURRENT_TASK;
    resolve_field(&mut spec, arg, TASK_STRUCT, btf).map_err(at("resolve"))?;
    read_member(&mut spec, arg.ty, btf).map_err(at("type"))?;
    check_record(&spec, arg.ty, btf).map_err(at("type"))?;
    Ok(spec)
}

/// How a uprobe's data value `arg` is read: the register its `resolve`
/// names (`source: pt_regs`, as Tetragon reads one), as its type says.
pub fn register_spec(what: &str, arg: &Arg) -> Result<ArgSpec, CompileError> {
    let position = position(arg);
    let at = |key: &'static str| {
        move |m: String| {
            CompileError::Unsupported(format!("{what}: data {position}: {m}"))
                .within(NodePath::root().key("data").index(position).key(key))
        }
    };
    let name = arg.resolve.as_deref().unwrap_or_default();
    let (offset, _) = crate::usdt::register_at(name)
        .ok_or_else(|| format!("{name:?} names no x86-64 general-purpose register"))
        .map_err(at("resolve"))?;
    word_arg(arg.ty, offset, Memory::User).map_err(at("type"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{ArgSelector, ArgType, Operator};

    fn filter(index: u32, args: Vec<u32>) -> ArgSelector {
        ArgSelector {
            index,
            operator: Operator::Equal,
            values: vec!["0".into()],
            args,
        }
    }

    #[test]
    fn data_follows_the_args_and_match_data_names_it() {
        let args = [Arg::of(0, ArgType::Int), Arg::of(2, ArgType::String)];
        let data = [Arg::of(0, ArgType::Int), Arg::of(0, ArgType::String)];
        let selector = Selector {
            match_args: vec![filter(2, vec![])],
            match_data: vec![filter(1, vec![]), filter(0, vec![0])],
            ..Selector::default()
        };
        let got = with_data("kprobe", &args, &data, &[selector]).expect("fits");
        assert_eq!(got.data_from, Some(2));
        let indexes: Vec<u32> = got.args.iter().map(|a| a.index).collect();
        assert_eq!(indexes, [0, 2, DATA_INDEX, DATA_INDEX + 1]);
        assert!(got.args[2..].iter().all(is_data) && !got.args[..2].iter().any(is_data));
        assert_eq!(got.selectors[0].match_args[0].index, 2);
        let filters = &got.selectors[0].match_data;
        assert_eq!(filters[0].index, DATA_INDEX + 1);
        // A position in data is one in the hook's args past the args.
        assert_eq!(filters[1].args, [2]);
    }

    #[test]
    fn args_and_data_share_the_five_slots() {
        let five: Vec<Arg> = (0..5).map(|i| Arg::of(i, ArgType::Int)).collect();
        assert!(with_data("kprobe", &five, &[], &[]).is_ok());
        let err = with_data("kprobe", &five, &five[..1], &[])
            .err()
            .expect("six");
        assert!(
            err.to_string().contains("args and data share them"),
            "{err}"
        );
        let none = with_data("kprobe", &five[..2], &[], &[]).expect("no data");
        assert_eq!(none.data_from, None);
    }
}
