//! `nop` arguments: Tetragon's placeholders, which keep an argument's
//! place without reading it. They are taken out before anything is
//! compiled, so the kernel reads nothing for them and the event leaves
//! them out of `args`, as Tetragon's does. A filter on one is refused by
//! `policy::validate`, with its place.
//!
//! A filter's `args: [P]` positions, and a tracepoint's `matchArgs.index`,
//! are positions in the hook's `args` list (nops count), so they are
//! renumbered; the other hooks' `index` names an argument by its own
//! `index`, which does not move.

use std::borrow::Cow;

use crate::{
    error::CompileError,
    policy::model::{section, Arg, ArgType, Selector, TracingPolicy},
};

/// `policy` without its nop arguments; borrowed when it has none.
pub fn strip(policy: &TracingPolicy) -> Result<Cow<'_, TracingPolicy>, CompileError> {
    let spec = &policy.spec;
    let has_nop = spec.hooks().any(|(_, h)| h.args().iter().any(is_nop));
    if !has_nop {
        return Ok(Cow::Borrowed(policy));
    }
    let mut out = policy.clone();
    let spec = &mut out.spec;
    for (i, kp) in spec.kprobes.iter_mut().enumerate() {
        strip_hook(
            (section::KPROBES, i),
            &mut kp.args,
            &mut kp.selectors,
            false,
        )?;
    }
    for (i, up) in spec.uprobes.iter_mut().enumerate() {
        strip_hook(
            (section::UPROBES, i),
            &mut up.args,
            &mut up.selectors,
            false,
        )?;
    }
    for (i, lsm) in spec.lsmhooks.iter_mut().enumerate() {
        strip_hook(
            (section::LSMHOOKS, i),
            &mut lsm.args,
            &mut lsm.selectors,
            false,
        )?;
    }
    for (i, tp) in spec.tracepoints.iter_mut().enumerate() {
        strip_hook(
            (section::TRACEPOINTS, i),
            &mut tp.args,
            &mut tp.selectors,
            true,
        )?;
    }
    Ok(Cow::Owned(out))
}

fn is_nop(arg: &Arg) -> bool {
    arg.ty == ArgType::Nop
}

/// Drops the nops of a hook (`section[i]`) and moves its filters'
/// positions (`args`, and `index` where `index_is_position`) to the
/// arguments' new places.
fn strip_hook(
    (section, i): (&str, usize),
    args: &mut Vec<Arg>,
    selectors: &mut [Selector],
    index_is_position: bool,
) -> Result<(), CompileError> {
    // Old position -> new position, None for a nop.
    let mut kept = 0u32;
    let moved: Vec<Option<u32>> = args
        .iter()
        .map(|a| {
            (!is_nop(a)).then(|| {
                kept += 1;
                kept - 1
            })
        })
        .collect();
    for (s, selector) in selectors.iter_mut().enumerate() {
        renumber(selector, &moved, index_is_position).map_err(|what| {
            CompileError::Invalid(format!(
                "{section}[{i}] selectors[{s}]: matchArgs {what} names a nop argument"
            ))
        })?;
    }
    args.retain(|a| !is_nop(a));
    Ok(())
}

/// `Err(what)` for a filter on a nop.
fn renumber(
    selector: &mut Selector,
    moved: &[Option<u32>],
    index_is_position: bool,
) -> Result<(), String> {
    // Past the old list is past the shorter one too: the compile of the
    // selectors says so.
    let place = |p: u32| match moved.get(p as usize) {
        Some(Some(new)) => Ok(*new),
        Some(None) => Err(()),
        None => Ok(p),
    };
    for filter in &mut selector.match_args {
        if index_is_position {
            let index = filter.index;
            filter.index = place(index).map_err(|()| format!("index {index}"))?;
        }
        for p in &mut filter.args {
            let position = *p;
            *p = place(position).map_err(|()| format!("args position {position}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tetragond_ebpf::op;

    use crate::compile::{compile, tests::Fixed, CompiledPolicy};
    use crate::policy::parse_policy;

    fn compiled(yaml: &str) -> CompiledPolicy {
        let tp = parse_policy(Path::new("t.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(&tp, &Fixed).unwrap_or_else(|e| panic!("{e}"))
    }

    fn policy(spec: &str) -> String {
        format!("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: nop\nspec:\n{spec}")
    }

    #[test]
    fn a_nop_is_neither_read_nor_in_the_event() {
        let c = compiled(&policy(
            "  kprobes:
  - call: sys_dup3
    args:
    - {index: 0, type: nop}
    - {index: 1, type: int, label: new}
    selectors:
    - matchArgs: [{index: 1, operator: Equal, values: [\"9\"]}]
",
        ));
        let hook = &c.hooks[0];
        assert_eq!(hook.conf.n_args, 1);
        // The int is read from its own register (args[1] of the record).
        assert_eq!(hook.conf.args[0].offset, 16 + 8);
        assert_eq!(
            hook.meta.args,
            [("int".to_string(), Some("new".to_string()))]
        );
        let filter = &hook.conf.selectors[0].arg_filters[0];
        assert_eq!((filter.op, filter.values[0]), (op::EQUAL, 9));
        assert_eq!(filter.arg, 0);
    }

    #[test]
    fn tracepoint_filters_move_with_their_argument() {
        let c = compiled(&policy(
            "  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args:
    - {index: 5, type: nop}
    - {index: 4, type: syscall64}
    selectors:
    - matchArgs: [{index: 1, operator: Equal, values: [\"99\"]}]
",
        ));
        let hook = &c.hooks[0];
        assert_eq!(hook.conf.n_args, 1);
        assert_eq!(hook.meta.args.len(), 1);
        // The filter on position 1 is the syscall id, now at position 0.
        assert_eq!(hook.sub_ids, vec![99]);
        assert_eq!(hook.conf.selectors[0].arg_filters[0].arg, 0);
    }

    #[test]
    fn args_positions_move_with_their_argument() {
        let c = compiled(&policy(
            "  kprobes:
  - call: sys_dup3
    args:
    - {index: 0, type: nop}
    - {index: 1, type: int}
    selectors:
    - matchArgs: [{args: [1], operator: Equal, values: [\"9\"]}]
",
        ));
        assert_eq!(c.hooks[0].conf.selectors[0].arg_filters[0].arg, 0);
    }

    #[test]
    fn what_would_read_a_nop_is_refused_with_its_place() {
        let cases = [
            (
                "  kprobes:\n  - call: sys_dup3\n    args:\n    - {index: 0, type: nop}\n    selectors:\n    - matchArgs: [{index: 0, operator: Equal, values: [\"1\"]}]\n",
                "0, operator",
                "names a nop argument",
            ),
            (
                "  kprobes:\n  - call: sys_dup3\n    args:\n    - {index: 0, type: nop}\n    - {index: 1, type: int}\n    selectors:\n    - matchArgs: [{args: [0], operator: Equal, values: [\"1\"]}]\n",
                "0], operator",
                "position 0 names a nop argument",
            ),
            (
                "  kprobes:\n  - call: sys_dup3\n    args:\n    - {index: 0, type: nop, label: fd}\n",
                "label",
                "label would show nowhere",
            ),
            (
                "  uprobes:\n  - path: /bin/true\n    symbols: [main]\n    return: true\n    returnArg: {index: 0, type: nop}\n",
                "nop}",
                "returnArg of type nop",
            ),
        ];
        for (spec, place, text) in cases {
            let yaml = policy(spec);
            let err = parse_policy(Path::new("t.yaml"), &yaml).expect_err("refused");
            assert!(err.message().contains(text), "{err}");
            // The line and column of the last `place`.
            let lines: Vec<&str> = yaml.lines().collect();
            let position = (0..lines.len())
                .rev()
                .find_map(|i| lines[i].find(place).map(|c| (i + 1, c + 1)));
            assert_eq!(err.position(), position, "{err}\n{yaml}");
        }
    }
}
