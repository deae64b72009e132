//! Fields of Tetragon's model that tetragond parses but does not serve.
//! Each one, when set, is refused at its key with the reason, so no field
//! is accepted and then ignored. `fields_tests.rs` walks every field of
//! the model and fails for one that is neither served nor refused here.
//!
//! Refusals that depend on the running kernel (a missing hook, a helper
//! the kernel lacks) belong to the compile step instead.

use super::ima;
use super::issue::{Check, Issue};
use super::location::{NodePath, Part};
use super::mode::POLICY_MODE_OPTION;
use super::model::*;

/// The `source` of a data value served (see `check_data`).
const CURRENT_TASK: &str = "current_task";
const PT_REGS: &str = "pt_regs";

/// `spec.options` that ask Tetragon not to attach kprobes or uprobes in
/// bulk: tetragond never does, so they hold whatever their value.
pub const ATTACH_OPTIONS: [&str; 2] = ["disable-kprobe-multi", "disable-uprobe-multi"];

/// `spec.options` naming how Override changes a kernel function's return.
/// tetragond uses fmod_ret (security_* functions; LSM hooks return the
/// error themselves), never bpf_override_return.
pub const OVERRIDE_METHOD_OPTION: &str = "override-method";

/// The first field of `policy` that tetragond cannot serve, in document
/// order within each part.
pub fn check(policy: &TracingPolicy) -> Check {
    let spec = NodePath::root().key("spec");
    check_spec(&policy.spec, &spec)?;
    for (i, hook) in policy.spec.hooks() {
        check_hook(hook, &spec.key(hook.section()).index(i))?;
    }
    Ok(())
}

fn refuse(path: NodePath, field: &str, why: &str) -> Issue {
    Issue::at(
        path,
        Part::Key,
        format!("{field} is not supported by tetragond: {why}"),
    )
}

/// `Err` at `key` under `path` when `set`.
fn refuse_if(set: bool, path: &NodePath, key: &str, why: &str) -> Check {
    if set {
        return Err(refuse(path.key(key), key, why));
    }
    Ok(())
}

fn check_spec(spec: &Spec, path: &NodePath) -> Check {
    let why = "the hooks served are tracepoints, kprobes, fentries, lsmhooks, uprobes and usdts";
    refuse_if(!spec.enforcers.is_empty(), path, "enforcers", why)?;
    let pods = "it needs Kubernetes pod information, which tetragond does not have";
    refuse_if(spec.pod_selector.is_some(), path, "podSelector", pods)?;
    refuse_if(
        spec.container_selector.is_some(),
        path,
        "containerSelector",
        pods,
    )?;
    let host = spec.host_selector.as_ref().is_some_and(|s| !s.is_empty());
    let why = "tetragond has no node labels to select on; only `{}` (every host) is served";
    refuse_if(host, path, "hostSelector", why)?;
    for (i, list) in spec.lists.iter().enumerate() {
        let here = path.key("lists").index(i);
        let why = "it records a check Tetragon made; tetragond checks lists itself";
        refuse_if(list.validated, &here, "validated", why)?;
        check_list_type(list, &here)?;
    }
    check_options(&spec.options, &path.key("options"))
}

/// A generated_ftrace list expands to every kernel function matching its
/// pattern, each one a kprobe (or fentry) program of its own in Tetragon.
/// tetragond does not expand such patterns (a pattern routinely matches
/// hundreds of functions, past its 4,096 kprobe sites and its 8 fentry
/// slots alike), so such a list is refused where its type is given.
fn check_list_type(list: &ListSpec, path: &NodePath) -> Check {
    if list.ty != Some(ListType::GeneratedFtrace) {
        return Ok(());
    }
    let message = format!(
        "list {:?}: generated_ftrace lists are not supported by tetragond: each function the \
         pattern matches needs a kernel-function program of its own, and tetragond does not \
         expand patterns over the kernel's functions; name the functions as kprobes instead",
        list.name
    );
    Err(Issue::at(path.key("type"), Part::Value, message))
}

/// `policy-mode` is checked with the modes; the attach switches must hold
/// a boolean; any other option is refused.
fn check_options(options: &[OptionSpec], path: &NodePath) -> Check {
    for (i, option) in options.iter().enumerate() {
        let here = path.index(i);
        if option.name == POLICY_MODE_OPTION {
            continue;
        }
        if option.name == OVERRIDE_METHOD_OPTION {
            check_override_method(option, &here)?;
            continue;
        }
        if !ATTACH_OPTIONS.contains(&option.name.as_str()) {
            let message = format!(
                "option {:?} is not supported by tetragond (it serves {POLICY_MODE_OPTION}, {OVERRIDE_METHOD_OPTION}, {})",
                option.name,
                ATTACH_OPTIONS.join(", ")
            );
            return Err(Issue::at(here.key("name"), Part::Value, message));
        }
        if !matches!(option.value.trim(), "1" | "0" | "true" | "false") {
            let message = format!(
                "option {} takes true, false, 1 or 0, not {:?}",
                option.name, option.value
            );
            return Err(Issue::at(here.key("value"), Part::Value, message));
        }
    }
    Ok(())
}

/// `fmod-ret` is what tetragond does; `override-return` it cannot honour.
fn check_override_method(option: &OptionSpec, path: &NodePath) -> Check {
    let message = match option.value.trim() {
        "fmod-ret" => return Ok(()),
        "override-return" => format!(
            "option {OVERRIDE_METHOD_OPTION} override-return is not supported by tetragond: it \
             overrides with fmod_ret (security_* functions) and LSM hooks, never with \
             bpf_override_return; use fmod-ret"
        ),
        other => format!(
            "option {OVERRIDE_METHOD_OPTION} takes fmod-ret or override-return, not {other:?}"
        ),
    };
    Err(Issue::at(path.key("value"), Part::Value, message))
}

/// Why `resolve` cannot be served on the args of `hook`, if it cannot.
fn resolve_refusal(hook: &Hook<'_>) -> Option<&'static str> {
    match hook {
        Hook::Kprobe(k) | Hook::Fentry(k) if k.syscall => Some(
            "a syscall's arguments point into user memory; resolve follows kernel structures \
             (on kernel functions, LSM hooks and raw: true tracepoints)",
        ),
        Hook::Tracepoint(t) if !t.raw => Some(
            "a tracepoint's args are fields of its record; resolve follows the arguments of \
             raw: true tracepoints",
        ),
        Hook::Uprobe(_) | Hook::Usdt(_) => {
            Some("a uprobe's arguments point into user memory; resolve follows kernel structures")
        }
        _ => None,
    }
}

/// Why `returnCopy` cannot be served on the args of `hook`, if it cannot.
fn return_copy_refusal(hook: &Hook<'_>) -> Option<&'static str> {
    match hook {
        Hook::Kprobe(k) | Hook::Fentry(k) if k.ret => None,
        Hook::Uprobe(u) if u.ret => None,
        Hook::Kprobe(_) | Hook::Fentry(_) | Hook::Uprobe(_) => {
            Some("returnCopy reads a buffer when the call returns: the hook needs return: true")
        }
        _ => Some(
            "returnCopy is served on kprobes and uprobes with return: true (syscalls, kernel functions, user functions)",
        ),
    }
}

/// Why `maxData` cannot be served on the args of `hook`, if it cannot.
fn max_data_refusal(hook: &Hook<'_>) -> Option<&'static str> {
    match hook {
        Hook::Kprobe(_) | Hook::Fentry(_) | Hook::Uprobe(_) | Hook::LsmHook(_) => None,
        _ => Some("maxData reads a buffer argument of a kprobe, uprobe or LSM hook whole"),
    }
}

fn check_hook(hook: Hook<'_>, path: &NodePath) -> Check {
    let not_resolved = resolve_refusal(&hook);
    match hook {
        Hook::Kprobe(k) | Hook::Fentry(k) => {
            check_data(&k.data, path)?;
            check_return_arg_action(k, path)?;
            check_return_arg(k.return_arg.as_ref(), path)?;
        }
        Hook::Tracepoint(_) => {}
        Hook::Uprobe(u) => {
            check_uprobe_data(u, path)?;
            let why = "arguments are read by position; a binary's BTF is not used";
            refuse_if(u.btf_path.is_some(), path, "btfPath", why)?;
            check_return_arg(u.return_arg.as_ref(), path)?;
        }
        Hook::LsmHook(_) => {}
        Hook::Usdt(u) => {
            let why =
                "arguments are read where the probe's note puts them; a binary's BTF is not used";
            refuse_if(u.btf_path.is_some(), path, "btfPath", why)?;
        }
    }
    let not_copied = return_copy_refusal(&hook);
    let not_whole = max_data_refusal(&hook);
    for (i, arg) in hook.args().iter().enumerate() {
        let here = path.key("args").index(i);
        check_arg(arg, &here, not_resolved)?;
        if let Some(why) = not_copied {
            refuse_if(arg.return_copy, &here, "returnCopy", why)?;
        }
        if let Some(why) = not_whole {
            refuse_if(arg.max_data, &here, "maxData", why)?;
        }
    }
    let kprobe_events = matches!(hook, Hook::Kprobe(_) | Hook::Fentry(_));
    let not_hashed = ima_hash_refusal(&hook);
    let takes_data = kprobe_events || matches!(hook, Hook::Uprobe(u) if !u.data.is_empty());
    for (i, selector) in hook.selectors().iter().enumerate() {
        let here = path.key("selectors").index(i);
        let why = "matchData filters the hook's data values (kprobes, uprobes with data); this hook has none";
        refuse_if(
            !takes_data && !selector.match_data.is_empty(),
            &here,
            "matchData",
            why,
        )?;
        check_selector(selector, &here, kprobe_events, not_hashed.as_deref())?;
    }
    Ok(())
}

/// Why Post `imaHash` cannot be served on `hook`, if it cannot: it hashes
/// the file an LSM hook's first argument names (Tetragon warns and
/// ignores it elsewhere).
fn ima_hash_refusal(hook: &Hook<'_>) -> Option<String> {
    let Hook::LsmHook(l) = hook else {
        return Some("imaHash is taken on LSM hooks (lsmhooks) only, as in Tetragon".into());
    };
    if let Some(why) = ima::unreadable(&l.hook) {
        return Some(why.to_string());
    }
    match ima::subject(&l.hook) {
        Some(_) => None,
        None => Some(format!(
            "imaHash hashes the file an LSM hook's first argument names; {} has none (hooks: {})",
            l.hook,
            ima::hooks()
        )),
    }
}

/// `returnArgAction` TrackSock or UntrackSock records (or forgets) the
/// `struct sock` a kernel function returns: `returnArg` must be one.
fn check_return_arg_action(k: &KprobeSpec, path: &NodePath) -> Check {
    let Some(action @ (ActionType::TrackSock | ActionType::UntrackSock)) = k.return_arg_action
    else {
        return Ok(());
    };
    let why = if !k.ret {
        Some(format!("{action} acts on the returned struct sock: the hook needs return: true and a returnArg of type sock"))
    } else if k.syscall {
        Some(format!("{action} acts on a returned struct sock: a syscall returns a number; hook the kernel function that returns the socket (sk_alloc, inet_csk_accept)"))
    } else if k.return_arg.as_ref().map(|a| a.ty) != Some(ArgType::Sock) {
        Some(format!(
            "{action} acts on the returned struct sock: returnArg must be of type sock"
        ))
    } else {
        None
    };
    match why {
        Some(message) => Err(Issue::at(path.key("returnArgAction"), Part::Value, message)),
        None => Ok(()),
    }
}

/// A kprobe's `data` values (`compile/data.rs`): each read from the
/// current task through its `resolve` path.
fn check_data(data: &[Arg], path: &NodePath) -> Check {
    for (i, value) in data.iter().enumerate() {
        let here = path.key("data").index(i);
        check_data_source(value, &here)?;
        let btf_type =
            "a data value's resolve path starts from the current task's struct task_struct";
        check_unread_data_fields(value, &here, "a field of the current task", btf_type)?;
    }
    Ok(())
}

/// The fields a data value (`what`) does not read: `btfType` (`btf_type`
/// says why), and those that read a buffer argument.
fn check_unread_data_fields(value: &Arg, here: &NodePath, what: &str, btf_type: &str) -> Check {
    let unread = [
        ("btfType", value.btf_type.is_some(), btf_type.to_string()),
        (
            "maxData",
            value.max_data,
            format!("maxData reads a buffer argument whole; a data value is {what}"),
        ),
        (
            "returnCopy",
            value.return_copy,
            format!("returnCopy reads a buffer argument at return; a data value is {what}"),
        ),
        (
            "sizeArgIndex",
            value.size_arg_index != 0,
            format!("a data value is {what}, not a buffer sized by an argument"),
        ),
    ];
    for (key, set, why) in unread {
        refuse_if(set, here, key, &why)?;
    }
    Ok(())
}

/// `source: current_task` with a `resolve` path, as Tetragon requires;
/// `pt_regs` is refused with its reason.
fn check_data_source(value: &Arg, path: &NodePath) -> Check {
    let message = match value.source.as_deref() {
        Some(CURRENT_TASK) if value.resolve.is_some() => return Ok(()),
        Some(CURRENT_TASK) => {
            let message = "a data value needs resolve: the field of the current task it reads (e.g. cred.uid.val)";
            return Err(Issue::at(path.clone(), Part::Key, message));
        }
        Some(PT_REGS) => {
            return Err(refuse(
                path.key("source"),
                "source pt_regs",
                "a register is read as data on uprobes, as in Tetragon; a kprobe's data is read from the current task (current_task)",
            ))
        }
        Some(other) => {
            format!("data source {other:?} is not one Tetragon knows: current_task or pt_regs")
        }
        None => "a data value needs its source: current_task (with resolve)".into(),
    };
    let part = if value.source.is_some() {
        Part::Value
    } else {
        Part::Key
    };
    let at = if value.source.is_some() {
        path.key("source")
    } else {
        path.clone()
    };
    Err(Issue::at(at, part, message))
}

/// A uprobe's `data` values (`compile/data.rs`): each a register at the
/// probe (`source: pt_regs`, `resolve` naming it), as Tetragon reads them,
/// at the call.
fn check_uprobe_data(u: &UprobeSpec, path: &NodePath) -> Check {
    let why = "data values are read at the call; on a return: true uprobe read them as args";
    refuse_if(u.ret && !u.data.is_empty(), path, "data", why)?;
    for (i, value) in u.data.iter().enumerate() {
        let here = path.key("data").index(i);
        match value.source.as_deref() {
            Some(PT_REGS) => {}
            Some(other) => {
                let message = format!("a uprobe's data value is a register (source: pt_regs), not {other}; current_task is read on kprobes");
                return Err(Issue::at(here.key("source"), Part::Value, message));
            }
            None => {
                let message = "a data value needs its source: pt_regs (with resolve naming a register) on a uprobe";
                return Err(Issue::at(here, Part::Key, message));
            }
        }
        let register = value.resolve.as_deref();
        if register.and_then(crate::usdt::register_at).is_none() {
            let message = format!(
                "source pt_regs reads the register resolve names: {} names no x86-64 general-purpose register (rax, eax, rdi, r8d, ...)",
                register.map_or("nothing".to_string(), |r| format!("{r:?}"))
            );
            let at = if register.is_some() {
                here.key("resolve")
            } else {
                here.clone()
            };
            return Err(Issue::at(at, Part::Key, message));
        }
        let btf_type = "a register is read as its type says";
        check_unread_data_fields(value, &here, "a register", btf_type)?;
    }
    Ok(())
}

fn check_return_arg(arg: Option<&Arg>, path: &NodePath) -> Check {
    let why = "resolve follows the fields behind a function's arguments, not its return value";
    arg.map_or(Ok(()), |arg| {
        check_arg(arg, &path.key("returnArg"), Some(why))
    })
}

/// `not_resolved`: why `resolve` cannot be served here, if it cannot.
fn check_arg(arg: &Arg, here: &NodePath, not_resolved: Option<&str>) -> Check {
    if let Some(why) = not_resolved {
        refuse_if(arg.resolve.is_some(), here, "resolve", why)?;
    }
    let fields = [
        (
            "source",
            arg.source.is_some(),
            "an argument is read from its hook; source is given on data values",
        ),
        (
            "btfType",
            arg.btf_type.is_some() && arg.resolve.is_none(),
            "btfType names the struct that resolve starts from; without resolve the argument is read as its type says",
        ),
    ];
    for (key, set, why) in fields {
        refuse_if(set, here, key, why)?;
    }
    Ok(())
}

/// `kprobe_events`: the hook's events are `process_kprobe`, the one kind
/// that carries stack traces in Tetragon's events; `not_hashed`: why
/// `imaHash` is not served on the hook.
fn check_selector(
    selector: &Selector,
    path: &NodePath,
    kprobe_events: bool,
    not_hashed: Option<&str>,
) -> Check {
    for (i, filter) in selector.match_return_args.iter().enumerate() {
        let why =
            "matchReturnArgs filters the return value; there are no argument positions to name";
        refuse_if(
            !filter.args.is_empty(),
            &path.key("matchReturnArgs").index(i),
            "args",
            why,
        )?;
    }
    let actions = [
        ("matchActions", &selector.match_actions),
        ("matchReturnActions", &selector.match_return_actions),
    ];
    for (key, list) in actions {
        for (i, action) in list.iter().enumerate() {
            let here = path.key(key).index(i);
            check_action_arguments(action, &here)?;
            let why =
                "a stack trace is written on process_kprobe events only (kprobes), as in Tetragon";
            let stacks = [
                ("kernelStackTrace", action.kernel_stack_trace),
                ("userStackTrace", action.user_stack_trace),
            ];
            for (field, set) in stacks {
                refuse_if(set && !kprobe_events, &here, field, why)?;
            }
            if let Some(why) = not_hashed {
                refuse_if(action.ima_hash, &here, "imaHash", why)?;
            }
        }
    }
    Ok(())
}

/// An action's argument fields, each given only with an action that
/// reads it.
fn check_action_arguments(action: &ActionSelector, path: &NodePath) -> Check {
    use ActionType::*;
    let fields: [(&str, bool, &[ActionType]); 13] = [
        (
            "argError",
            action.arg_error.is_some(),
            &[Override, NotifyEnforcer],
        ),
        (
            "argSig",
            action.arg_sig.is_some(),
            &[Signal, NotifyEnforcer],
        ),
        ("argUrl", action.arg_url.is_some(), &[GetUrl]),
        ("argFqdn", action.arg_fqdn.is_some(), &[DnsLookup]),
        (
            "argSock",
            action.arg_sock.is_some(),
            &[TrackSock, UntrackSock],
        ),
        ("argIndex", action.arg_index.is_some(), &[Set]),
        ("argRegs", !action.arg_regs.is_empty(), &[Override]),
        ("argValue", action.arg_value.is_some(), &[Set]),
        // Only the posting of an event is rate limited, never an
        // enforcement action.
        ("rateLimit", action.rate_limit.is_some(), &[Post]),
        ("rateLimitScope", action.rate_limit_scope.is_some(), &[Post]),
        ("kernelStackTrace", action.kernel_stack_trace, &[Post]),
        ("userStackTrace", action.user_stack_trace, &[Post]),
        ("imaHash", action.ima_hash, &[Post]),
    ];
    for (key, set, takers) in fields {
        if set && !takers.contains(&action.action) {
            let takers: Vec<&str> = takers.iter().map(|t| t.as_str()).collect();
            let message = format!(
                "{key} has no effect on action {}: it is read by {}",
                action.action.as_str(),
                takers.join(" and ")
            );
            return Err(Issue::at(path.key(key), Part::Key, message));
        }
    }
    Ok(())
}
