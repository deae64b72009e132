//! Checks that need more than the shape of the YAML: names, Tetragon's
//! limits, references between parts of the policy, the mode option.
//!
//! An [`Issue`] names the offending node by path; the parser turns that into
//! a line and column.

use std::collections::HashSet;

use super::issue::{Check, Issue};
use crate::syscalls;

use super::limits::{OverLimit, MAX_POSTFIX_LEN, MAX_PREFIX_LEN, MAX_VALUES};
use super::location::{NodePath, Part};
use super::mode::{InvalidMode, Mode, POLICY_MODE_OPTION};
use super::model::*;

/// The first problem of a policy, in document order where it matters.
pub fn validate(policy: &TracingPolicy) -> Check {
    let root = NodePath::root();
    check_metadata(policy, &root.key("metadata"))?;
    let spec = root.key("spec");
    check_options(&policy.spec, &spec.key("options"))?;
    let lists = check_lists(&policy.spec, &spec.key("lists"))?;
    for (i, hook) in policy.spec.hooks() {
        let path = spec.key(hook.section()).index(i);
        check_hook(hook, &path, &lists)?;
        if let Hook::Kprobe(kp) = hook {
            check_call_list(kp, &policy.spec, &path)?;
        }
    }
    Ok(())
}

fn check_metadata(policy: &TracingPolicy, path: &NodePath) -> Check {
    let meta = &policy.metadata;
    check_dns_subdomain(&meta.name).map_err(|m| Issue::at(path.key("name"), Part::Value, m))?;
    match (&meta.namespace, policy.is_namespaced()) {
        (None, true) => Err(Issue::at(
            path.clone(),
            Part::Key,
            "TracingPolicyNamespaced requires metadata.namespace",
        )),
        (Some(_), false) => Err(Issue::at(
            path.key("namespace"),
            Part::Key,
            "metadata.namespace is only allowed in a TracingPolicyNamespaced",
        )),
        (Some(ns), true) => {
            check_dns_label(ns).map_err(|m| Issue::at(path.key("namespace"), Part::Value, m))
        }
        (None, false) => Ok(()),
    }
}

/// Kubernetes' RFC 1123 subdomain rule for object names.
pub fn check_dns_subdomain(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| is_dns_label(label, 253));
    if valid {
        return Ok(());
    }
    Err(format!(
        "invalid metadata.name {name:?}: a lowercase RFC 1123 subdomain must consist of lower \
         case alphanumeric characters, '-' or '.', must start and end with an alphanumeric \
         character, and must be at most 253 characters"
    ))
}

/// Kubernetes' RFC 1123 label rule for namespaces.
fn check_dns_label(ns: &str) -> Result<(), String> {
    if is_dns_label(ns, 63) {
        return Ok(());
    }
    Err(format!(
        "invalid metadata.namespace {ns:?}: a lowercase RFC 1123 label must consist of lower \
         case alphanumeric characters or '-', must start and end with an alphanumeric \
         character, and must be at most 63 characters"
    ))
}

fn is_dns_label(label: &str, max: usize) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            bytes.len() <= max
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|&b| alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// Every `policy-mode` value must be a mode; the last one given wins.
fn check_options(spec: &Spec, path: &NodePath) -> Check {
    for (i, option) in spec.options.iter().enumerate() {
        if option.name != POLICY_MODE_OPTION {
            continue;
        }
        option.value.parse::<Mode>().map_err(|e: InvalidMode| {
            Issue::at(path.index(i).key("value"), Part::Value, e.to_string())
        })?;
    }
    Ok(())
}

fn check_lists<'a>(spec: &'a Spec, path: &NodePath) -> Result<HashSet<&'a str>, Issue> {
    let mut names = HashSet::new();
    for (i, list) in spec.lists.iter().enumerate() {
        let here = path.index(i);
        if list.name.is_empty() {
            return Err(Issue::at(
                here.key("name"),
                Part::Value,
                "a list needs a name",
            ));
        }
        if !names.insert(list.name.as_str()) {
            let message = format!("list {:?} is defined more than once", list.name);
            return Err(Issue::at(here.key("name"), Part::Value, message));
        }
        check_list_content(list, &here, skips_unknown(spec, &list.name))?;
    }
    Ok(names)
}

/// Whether a kprobe with `ignore.callNotFound` hooks list `name` as calls:
/// its unknown values are then skipped (compile/kprobe.rs), as that kprobe
/// would skip an unknown call of its own.
fn skips_unknown(spec: &Spec, name: &str) -> bool {
    spec.kprobes.iter().any(|k| {
        k.call.strip_prefix("list:") == Some(name)
            && k.ignore.as_ref().is_some_and(|i| i.call_not_found)
    })
}

/// What each type of list holds, as Tetragon reads them: `syscalls` lists
/// (and untyped ones) their values, `generated_syscalls` every syscall (no
/// values, no pattern: Tetragon ignores one there; tetragond refuses it
/// rather than accept and ignore it), `generated_ftrace` the kernel
/// functions matching `pattern` (no values).
fn check_list_content(list: &ListSpec, path: &NodePath, skips_unknown: bool) -> Check {
    let name = &list.name;
    match list.ty {
        Some(ListType::GeneratedSyscalls) => {
            if !list.values.is_empty() {
                let message = format!(
                    "list {name:?} is generated_syscalls, which holds every syscall: it takes no values"
                );
                return Err(Issue::at(path.key("values"), Part::Key, message));
            }
            if list.pattern.is_some() {
                let message = "pattern is read by generated_ftrace lists only; a generated_syscalls list holds every syscall";
                return Err(Issue::at(path.key("pattern"), Part::Key, message));
            }
            Ok(())
        }
        Some(ListType::GeneratedFtrace) => {
            if !list.values.is_empty() {
                let message = format!(
                    "list {name:?} is generated_ftrace, generated from its pattern: it takes no values"
                );
                return Err(Issue::at(path.key("values"), Part::Key, message));
            }
            if list.pattern.as_deref().is_none_or(str::is_empty) {
                let message = format!("generated_ftrace list {name:?} needs a pattern");
                return Err(Issue::at(path.clone(), Part::Value, message));
            }
            Ok(())
        }
        Some(ListType::Syscalls) | None => {
            if list.pattern.is_some() {
                let message = "pattern is read by generated_ftrace lists only";
                return Err(Issue::at(path.key("pattern"), Part::Key, message));
            }
            if list.ty == Some(ListType::Syscalls) && !skips_unknown {
                return check_syscall_values(list, path);
            }
            Ok(())
        }
    }
}

/// Every value of a `syscalls` list is a syscall name (or a number, which
/// `matchArgs` takes as written).
fn check_syscall_values(list: &ListSpec, path: &NodePath) -> Check {
    for (i, value) in list.values.iter().enumerate() {
        if is_number(value) || syscalls::syscall_ids(value).is_some() {
            continue;
        }
        let message = format!(
            "unknown syscall {value:?} in list {:?} (x86_64 or i386 names; `x64/NAME` or `i386/NAME` names one ABI)",
            list.name
        );
        return Err(Issue::at(path.key("values").index(i), Part::Value, message));
    }
    Ok(())
}

/// A number as the compile step reads one (decimal, negative or `0x` hex).
fn is_number(value: &str) -> bool {
    let value = value.trim();
    match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).is_ok(),
        None => value.parse::<u64>().is_ok() || value.parse::<i64>().is_ok(),
    }
}

/// `call: list:NAME`: the list's type decides what is hooked. Lists of
/// syscalls hook each value as a syscall (`syscall: false` contradicts
/// that); an untyped list names kernel functions in Tetragon, which is not
/// served as a call (generated_ftrace lists are refused with the list).
fn check_call_list(kp: &KprobeSpec, spec: &Spec, path: &NodePath) -> Check {
    let Some(name) = kp.call.strip_prefix("list:") else {
        return Ok(());
    };
    // An undefined list was refused by check_list_ref.
    let Some((i, list)) = spec.lists.iter().enumerate().find(|(_, l)| l.name == name) else {
        return Ok(());
    };
    let syscall_list = matches!(
        list.ty,
        Some(ListType::Syscalls | ListType::GeneratedSyscalls)
    );
    if list.ty.is_none() {
        let message = format!(
            "list {name:?} has no type, so its values are kernel functions (as in Tetragon); \
             tetragond serves lists of type syscalls or generated_syscalls as calls: give the \
             list `type: syscalls` if its values are syscalls"
        );
        return Err(Issue::at(path.key("call"), Part::Value, message));
    }
    if syscall_list && !kp.syscall {
        let message = format!(
            "list {name:?} holds syscalls, which are hooked as syscalls: `syscall: false` contradicts it"
        );
        return Err(Issue::at(path.key("syscall"), Part::Value, message));
    }
    if list.ty == Some(ListType::Syscalls) {
        let values = NodePath::root()
            .key("spec")
            .key("lists")
            .index(i)
            .key("values");
        let skip_unknown = kp.ignore.as_ref().is_some_and(|i| i.call_not_found);
        return check_call_values(list, &values, skip_unknown);
    }
    Ok(())
}

/// Each value of a list hooked as calls is one hook: a name, and not one
/// whose syscalls the values before it already cover (it would be hooked
/// twice, so its actions would run twice).
fn check_call_values(list: &ListSpec, path: &NodePath, skip_unknown: bool) -> Check {
    let shares = syscalls::share_out(list.values.iter().map(String::as_str));
    for (i, (value, share)) in list.values.iter().zip(shares).enumerate() {
        let message = match share {
            syscalls::Share::Ids(_) => continue,
            syscalls::Share::Unknown if skip_unknown => continue,
            syscalls::Share::Unknown => format!(
                "list {:?} is hooked as calls (`call: list:{}`): {value:?} is not a syscall name",
                list.name, list.name
            ),
            syscalls::Share::Covered => format!(
                "{value:?} names syscalls the values before it in list {:?} already cover \
                 (a name covers the 64-bit and 32-bit entries and the i386 variants); \
                 hooked as calls, they would be hooked twice",
                list.name
            ),
        };
        return Err(Issue::at(path.index(i), Part::Value, message));
    }
    Ok(())
}

fn check_list_ref(value: &str, lists: &HashSet<&str>, path: NodePath) -> Check {
    match value.strip_prefix("list:") {
        Some(name) if !lists.contains(name) => Err(Issue::at(
            path,
            Part::Value,
            format!("list {name:?} is not defined in spec.lists"),
        )),
        _ => Ok(()),
    }
}

fn check_hook(hook: Hook<'_>, path: &NodePath, lists: &HashSet<&str>) -> Check {
    check_hook_fields(hook, path, lists)?;
    check_nops(hook, path)?;
    let limits = [
        ("args", OverLimit::Args, hook.args().len()),
        ("tags", OverLimit::Tags, hook.tags().len()),
        ("selectors", OverLimit::Selectors, hook.selectors().len()),
    ];
    for (key, limit, count) in limits {
        limit
            .check(count)
            .map_err(|e| Issue::at(path.key(key), Part::Key, e.to_string()))?;
    }
    for (i, selector) in hook.selectors().iter().enumerate() {
        let here = path.key("selectors").index(i);
        check_selector(hook, selector, &here, lists)?;
    }
    Ok(())
}

/// `nop` args are placeholders: nothing is read and the event leaves them
/// out (as Tetragon's does), so what would describe their value is refused
/// rather than ignored, and a return value cannot be one.
fn check_nops(hook: Hook<'_>, path: &NodePath) -> Check {
    for (i, arg) in hook.args().iter().enumerate() {
        if arg.ty != ArgType::Nop {
            continue;
        }
        let here = path.key("args").index(i);
        if arg.label.is_some() {
            let message =
                "a nop argument is left out of the event, so its label would show nowhere";
            return Err(Issue::at(here.key("label"), Part::Key, message));
        }
        if arg.size_arg_index != 0 {
            let message =
                "sizeArgIndex is read by char_buf arguments; a nop argument reads nothing";
            return Err(Issue::at(here.key("sizeArgIndex"), Part::Key, message));
        }
    }
    if return_type(hook) == Some(ArgType::Nop) {
        let message = "returnArg of type nop would read nothing; leave returnArg out instead";
        return Err(Issue::at(
            path.key("returnArg").key("type"),
            Part::Value,
            message,
        ));
    }
    Ok(())
}

/// The fields each kind of hook requires.
fn check_hook_fields(hook: Hook<'_>, path: &NodePath, lists: &HashSet<&str>) -> Check {
    match hook {
        Hook::Kprobe(k) | Hook::Fentry(k) => check_kprobe(k, path, lists),
        Hook::Tracepoint(t) => {
            required(&t.subsystem, "subsystem", "a tracepoint", path)?;
            required(&t.event, "event", "a tracepoint", path)
        }
        Hook::Uprobe(u) => check_uprobe(u, path),
        Hook::LsmHook(l) => required(&l.hook, "hook", "an LSM hook", path),
        Hook::Usdt(u) => {
            required(&u.path, "path", "a USDT", path)?;
            required(&u.provider, "provider", "a USDT", path)?;
            required(&u.name, "name", "a USDT", path)
        }
    }
}

fn required(value: &str, key: &str, what: &str, path: &NodePath) -> Check {
    if !value.trim().is_empty() {
        return Ok(());
    }
    let message = format!("{what} needs a non-empty {key}");
    Err(Issue::at(path.key(key), Part::Value, message))
}

/// `returnArg` is read by a return probe only, as in Tetragon, where it
/// alone does not make one: refused rather than ignored.
fn check_return_arg(ret: bool, return_arg: Option<&Arg>, path: &NodePath) -> Check {
    if return_arg.is_some() && !ret {
        let message = "returnArg is read by a return probe only: add `return: true`";
        return Err(Issue::at(path.key("returnArg"), Part::Key, message));
    }
    Ok(())
}

fn check_kprobe(k: &KprobeSpec, path: &NodePath, lists: &HashSet<&str>) -> Check {
    required(&k.call, "call", "a kprobe", path)?;
    check_list_ref(&k.call, lists, path.key("call"))?;
    check_return_arg(k.ret, k.return_arg.as_ref(), path)?;
    match k.return_arg_action {
        None | Some(ActionType::Post | ActionType::TrackSock | ActionType::UntrackSock) => Ok(()),
        Some(other) => Err(Issue::at(
            path.key("returnArgAction"),
            Part::Value,
            format!("returnArgAction {other} is not supported, use Post, TrackSock or UntrackSock"),
        )),
    }
}

fn check_uprobe(u: &UprobeSpec, path: &NodePath) -> Check {
    required(&u.path, "path", "a uprobe", path)?;
    check_return_arg(u.ret, u.return_arg.as_ref(), path)?;
    let given = [
        !u.symbols.is_empty(),
        !u.offsets.is_empty(),
        !u.addrs.is_empty(),
    ];
    match given.iter().filter(|g| **g).count() {
        1 => Ok(()),
        0 => Err(Issue::at(
            path.clone(),
            Part::Value,
            "a uprobe needs one of symbols, offsets or addrs",
        )),
        _ => Err(Issue::at(
            path.clone(),
            Part::Value,
            "a uprobe takes only one of symbols, offsets or addrs",
        )),
    }
}

fn check_selector(hook: Hook<'_>, sel: &Selector, path: &NodePath, lists: &HashSet<&str>) -> Check {
    for (i, arg_sel) in sel.match_args.iter().enumerate() {
        let here = path.key("matchArgs").index(i);
        let target = check_arg_target(hook, arg_sel, &here)?;
        if target.is_some_and(|a| a.ty == ArgType::Nop) {
            let message = format!(
                "matchArgs index {} names a nop argument, a placeholder that is not read: \
                 there is no value to compare; give the argument its type",
                arg_sel.index
            );
            return Err(Issue::at(here.key("index"), Part::Value, message));
        }
        check_values(arg_sel, target.map(|a| a.ty), &here, lists)?;
    }
    for (i, arg_sel) in sel.match_data.iter().enumerate() {
        let here = path.key("matchData").index(i);
        let target = check_data_target(hook, arg_sel, &here)?;
        check_values(arg_sel, target.map(|a| a.ty), &here, lists)?;
    }
    for (i, arg_sel) in sel.match_return_args.iter().enumerate() {
        let here = path.key("matchReturnArgs").index(i);
        check_values(arg_sel, return_type(hook), &here, lists)?;
    }
    for (i, ns) in sel.match_namespaces.iter().enumerate() {
        check_namespace_values(ns, &path.key("matchNamespaces").index(i))?;
    }
    check_actions(hook, &sel.match_actions, &path.key("matchActions"))?;
    check_actions(
        hook,
        &sel.match_return_actions,
        &path.key("matchReturnActions"),
    )
}

/// The argument `matchArgs` designates; errors when it designates none.
fn check_arg_target<'a>(
    hook: Hook<'a>,
    sel: &ArgSelector,
    path: &NodePath,
) -> Result<Option<&'a Arg>, Issue> {
    check_positions(hook.args(), sel, path)?;
    if !sel.args.is_empty() {
        return Ok(None);
    }
    match hook.arg_for_selector_index(sel.index) {
        Some(arg) => Ok(Some(arg)),
        None => Err(Issue::at(
            path.key("index"),
            Part::Value,
            bad_index_message(hook, sel.index),
        )),
    }
}

fn bad_index_message(hook: Hook<'_>, index: u32) -> String {
    let args = hook.args();
    if let Hook::Tracepoint(_) = hook {
        let fields: Vec<String> = args.iter().map(|a| a.index.to_string()).collect();
        return format!(
            "matchArgs index {index} names no arg: for a tracepoint it is a position in args, \
             which has {} entries, or past them the field index one arg reads (fields read: [{}])",
            args.len(),
            fields.join(", ")
        );
    }
    let known: Vec<String> = args.iter().map(|a| a.index.to_string()).collect();
    format!(
        "matchArgs index {index} does not match the index of any entry of args (indexes: [{}])",
        known.join(", ")
    )
}

fn check_data_target<'a>(
    hook: Hook<'a>,
    sel: &ArgSelector,
    path: &NodePath,
) -> Result<Option<&'a Arg>, Issue> {
    let data = hook.data();
    check_positions(data, sel, path)?;
    if !sel.args.is_empty() {
        return Ok(None);
    }
    match data.get(sel.index as usize) {
        Some(arg) => Ok(Some(arg)),
        None => Err(Issue::at(
            path.key("index"),
            Part::Value,
            format!(
                "matchData index {} is out of range: data has {} entries",
                sel.index,
                data.len()
            ),
        )),
    }
}

/// `args: [..]` of a selector are positions in the hook's list.
fn check_positions(list: &[Arg], sel: &ArgSelector, path: &NodePath) -> Check {
    for (i, &pos) in sel.args.iter().enumerate() {
        let message = match list.get(pos as usize) {
            None => format!(
                "position {pos} is out of range: the list has {} entries",
                list.len()
            ),
            Some(arg) if arg.ty == ArgType::Nop => format!(
                "position {pos} names a nop argument, a placeholder that is not read: \
                 there is no value to compare"
            ),
            Some(_) => continue,
        };
        return Err(Issue::at(path.key("args").index(i), Part::Value, message));
    }
    Ok(())
}

fn return_type(hook: Hook<'_>) -> Option<ArgType> {
    match hook {
        Hook::Kprobe(k) | Hook::Fentry(k) => k.return_arg.as_ref().map(|a| a.ty),
        Hook::Uprobe(u) => u.return_arg.as_ref().map(|a| a.ty),
        _ => None,
    }
}

fn check_values(
    sel: &ArgSelector,
    ty: Option<ArgType>,
    path: &NodePath,
    lists: &HashSet<&str>,
) -> Check {
    let op = sel.operator;
    let numeric = ty.is_some_and(ArgType::is_numeric);
    if numeric && op.is_inline_numeric() && sel.values.len() > MAX_VALUES {
        let message = format!(
            "operator {op} takes at most {MAX_VALUES} values for a numeric argument \
             (found {}); use InMap for more",
            sel.values.len()
        );
        return Err(Issue::at(path.key("values"), Part::Key, message));
    }
    for (i, value) in sel.values.iter().enumerate() {
        let here = path.key("values").index(i);
        check_value_length(op, value, here.clone())?;
        if op.is_map() {
            check_list_ref(value, lists, here)?;
        }
    }
    Ok(())
}

fn check_value_length(op: Operator, value: &str, path: NodePath) -> Check {
    let max = match op {
        Operator::Prefix | Operator::NotPrefix => MAX_PREFIX_LEN,
        Operator::Postfix | Operator::NotPostfix => MAX_POSTFIX_LEN,
        _ => return Ok(()),
    };
    if value.len() <= max {
        return Ok(());
    }
    let message = format!(
        "{op} value is {} bytes long, the limit is {max}",
        value.len()
    );
    Err(Issue::at(path, Part::Value, message))
}

fn check_namespace_values(ns: &NamespaceSelector, path: &NodePath) -> Check {
    for (i, value) in ns.values.iter().enumerate() {
        if value != "host_ns" && value.parse::<u32>().is_err() {
            let message = format!("namespace value {value:?} is neither a number nor host_ns");
            return Err(Issue::at(path.key("values").index(i), Part::Value, message));
        }
    }
    Ok(())
}

fn check_actions(hook: Hook<'_>, actions: &[ActionSelector], path: &NodePath) -> Check {
    OverLimit::Actions
        .check(actions.len())
        .map_err(|e| Issue::at(path.clone(), Part::Key, e.to_string()))?;
    for (i, action) in actions.iter().enumerate() {
        check_action(hook, action, &path.index(i))?;
    }
    check_daemon_actions_posted(actions, path)
}

/// GetUrl and DnsLookup are done when their event reaches the daemon: a
/// NoPost beside them would keep it in the kernel and they would never
/// be done.
fn check_daemon_actions_posted(actions: &[ActionSelector], path: &NodePath) -> Check {
    if !actions.iter().any(|a| a.action == ActionType::NoPost) {
        return Ok(());
    }
    let daemon = [ActionType::GetUrl, ActionType::DnsLookup];
    match actions.iter().position(|a| daemon.contains(&a.action)) {
        None => Ok(()),
        Some(i) => {
            let message = format!(
                "{} is done by the daemon when the event arrives; NoPost in the same selector keeps the event in the kernel, so it would never be done",
                actions[i].action
            );
            Err(Issue::at(path.index(i).key("action"), Part::Value, message))
        }
    }
}

fn check_action(hook: Hook<'_>, action: &ActionSelector, path: &NodePath) -> Check {
    let missing = |field: &str| {
        let message = format!("action {} requires {field}", action.action);
        Err(Issue::at(path.clone(), Part::Value, message))
    };
    match action.action {
        ActionType::Signal if action.arg_sig.is_none() => missing("argSig"),
        // On uprobes, `argRegs` alone say what Override does.
        ActionType::Override if action.arg_error.is_none() && action.arg_regs.is_empty() => {
            missing("argError")
        }
        ActionType::GetUrl if action.arg_url.is_none() => missing("argUrl"),
        ActionType::DnsLookup if action.arg_fqdn.is_none() => missing("argFqdn"),
        ActionType::Override if matches!(hook, Hook::Tracepoint(_)) => Err(Issue::at(
            path.key("action"),
            Part::Value,
            "Override is not supported on tracepoints: their return value cannot be changed",
        )),
        _ => check_action_values(action, path),
    }
}

fn check_action_values(action: &ActionSelector, path: &NodePath) -> Check {
    if let Some(url) = &action.arg_url {
        check_url(url).map_err(|why| Issue::at(path.key("argUrl"), Part::Value, why))?;
    }
    if let Some(fqdn) = &action.arg_fqdn {
        check_fqdn(fqdn).map_err(|why| Issue::at(path.key("argFqdn"), Part::Value, why))?;
    }
    if let Some(sig) = action.arg_sig {
        if !(1..=64).contains(&sig) {
            let message = format!("argSig {sig} is not a signal number (1 to 64)");
            return Err(Issue::at(path.key("argSig"), Part::Value, message));
        }
    }
    match action.rate_limit_ns() {
        Err(e) => Err(Issue::at(path.key("rateLimit"), Part::Value, e.to_string())),
        // A scope alone would be accepted and do nothing (on other
        // actions both fields are refused as unread).
        Ok(None) if action.action == ActionType::Post && action.rate_limit_scope.is_some() => {
            Err(Issue::at(
                path.key("rateLimitScope"),
                Part::Key,
                "rateLimitScope has no effect without rateLimit",
            ))
        }
        Ok(_) => Ok(()),
    }
}

/// GetUrl's URL: http or https, with a host.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("argUrl {url:?} is not an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') || url.chars().any(char::is_whitespace) {
        return Err(format!("argUrl {url:?} names no host, or holds a space"));
    }
    Ok(())
}

/// DnsLookup's name: at most 253 bytes of dot-separated labels of 1 to
/// 63 letters, digits, `-` or `_` (a trailing dot allowed).
fn check_fqdn(fqdn: &str) -> Result<(), String> {
    let name = fqdn.strip_suffix('.').unwrap_or(fqdn);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "argFqdn {fqdn:?} is not a domain name (labels of 1 to 63 letters, digits, - or _, 253 bytes at most)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomains() {
        for ok in ["a", "read-etc-passwd", "a.b-c.d", "0abc9", &"a".repeat(253)] {
            assert!(check_dns_subdomain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Bad",
            "under_score",
            "-a",
            "a-",
            "a..b",
            "a.-b",
            ".a",
            "a b",
            &"a".repeat(254),
        ] {
            assert!(check_dns_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn get_url_takes_http_and_https_urls_with_a_host() {
        for ok in [
            "http://127.0.0.1:8080/canary?id=1",
            "https://example.com",
            "https://user@example.com/x",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "example.com",
            "ftp://example.com/",
            "http://",
            "http:///path",
            "http://:80/",
            "http://a b/",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_lookup_takes_domain_names() {
        for ok in ["canary.example.com", "a", "x_y.example.", &"a.".repeat(126)] {
            assert!(check_fqdn(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "a..b", "a b.c", &"a".repeat(64), &"a.".repeat(128)] {
            assert!(check_fqdn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_labels() {
        assert!(check_dns_label("kube-system").is_ok());
        assert!(check_dns_label("a.b").is_err());
        assert!(check_dns_label(&"a".repeat(64)).is_err());
    }
}
