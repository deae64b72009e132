//! Never accept and ignore: walks every field of the policy model (the
//! names serde's derive knows, so a field added to the model shows up here)
//! and fails for one that is neither served nor refused. A refused field is
//! parsed in a policy that sets it and must fail at its own line.

use std::cell::Cell;
use std::path::Path;

use serde::de::{DeserializeOwned, Error as _, Visitor};

use super::model::*;
use super::parse_policy;

/// What tetragond does with a field.
enum Verdict {
    /// Has its effect; says where.
    Served(&'static str),
    /// Refused at its key when set: the lines under `spec:` that set it.
    Refused(String),
    /// Part of an object refused as a whole (named).
    InRefused(&'static str),
}
use Verdict::*;

/// A deserializer that only records the field names a derived struct asks
/// for, then stops.
struct Introspect<'a>(&'a Cell<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for Introspect<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(Self::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(fields);
        Err(Self::Error::custom("fields read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let fields = Cell::new(&[][..]);
    let _ = T::deserialize(Introspect(&fields));
    fields.get()
}

/// Every struct of the model with its fields.
fn model() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("TracingPolicy", fields_of::<TracingPolicy>()),
        ("Metadata", fields_of::<Metadata>()),
        ("Spec", fields_of::<Spec>()),
        ("KprobeSpec", fields_of::<KprobeSpec>()),
        ("Ignore", fields_of::<Ignore>()),
        ("TracepointSpec", fields_of::<TracepointSpec>()),
        ("UprobeSpec", fields_of::<UprobeSpec>()),
        ("LsmHookSpec", fields_of::<LsmHookSpec>()),
        ("UsdtSpec", fields_of::<UsdtSpec>()),
        ("Arg", fields_of::<Arg>()),
        ("Selector", fields_of::<Selector>()),
        ("ArgSelector", fields_of::<ArgSelector>()),
        ("BinarySelector", fields_of::<BinarySelector>()),
        ("PidSelector", fields_of::<PidSelector>()),
        ("NamespaceSelector", fields_of::<NamespaceSelector>()),
        (
            "NamespaceChangesSelector",
            fields_of::<NamespaceChangesSelector>(),
        ),
        ("CapabilitiesSelector", fields_of::<CapabilitiesSelector>()),
        ("ActionSelector", fields_of::<ActionSelector>()),
        ("ListSpec", fields_of::<ListSpec>()),
        ("EnforcerSpec", fields_of::<EnforcerSpec>()),
        ("OptionSpec", fields_of::<OptionSpec>()),
        ("LabelSelector", fields_of::<LabelSelector>()),
        (
            "LabelSelectorRequirement",
            fields_of::<LabelSelectorRequirement>(),
        ),
    ]
}

const KPROBE: &str = "  kprobes:\n  - call: sys_openat\n    args: [{index: 1, type: string}]\n";

/// A kprobe with `lines` at the level of its fields.
fn hook(lines: &str) -> String {
    format!("{KPROBE}{lines}")
}

/// A kprobe selector with `lines` at the level of its filters.
fn selector(lines: &str) -> String {
    hook(&format!(
        "    selectors:\n    - matchArgs: [{{index: 1, operator: Prefix, values: [/etc]}}]\n{lines}"
    ))
}

/// A Post action with `lines` at the level of its fields.
fn post(lines: &str) -> String {
    selector(&format!(
        "      matchActions:\n      - action: Post\n{lines}"
    ))
}

fn refused(lines: impl Into<String>) -> Verdict {
    Refused(lines.into())
}

fn verdict(model: &str, field: &str) -> Option<Verdict> {
    let kubernetes = "Kubernetes object metadata, no effect in Tetragon either";
    let selectors = "compile/selectors.rs, run in the kernel";
    Some(match (model, field) {
        ("TracingPolicy", "apiVersion" | "kind") => Served("parse.rs: checked"),
        ("TracingPolicy", "metadata" | "spec") => Served("the policy"),
        ("Metadata", "name" | "namespace") => Served("policy/key.rs: identity, scope"),
        ("Metadata", "labels" | "annotations") => Served(kubernetes),
        ("Spec", "kprobes" | "fentries" | "tracepoints" | "uprobes" | "lsmhooks" | "usdts") => {
            Served("compile/")
        }
        ("Spec", "lists") => Served("compile/selectors.rs: InMap list:; compile/kprobe.rs: call: list:"),
        ("Spec", "options") => Served("mode.rs policy-mode; unsupported.rs the rest"),
        ("Spec", "enforcers") => refused("  enforcers:\n  - calls: [sys_symlinkat]\n"),
        ("Spec", "podSelector") => refused("  podSelector: {matchLabels: {app: web}}\n"),
        ("Spec", "containerSelector") => refused("  containerSelector: {}\n"),
        ("Spec", "hostSelector") => refused("  hostSelector: {matchLabels: {a: b}}\n"),
        ("Spec", "selectorsMacros") => {
            Served("policy/macros.rs: expanded into the selectors naming them")
        }
        ("Selector", "macros") => Served("policy/macros.rs: the named macros' filters"),
        ("Spec", "loader") => Served("compile/loader.rs: process_loader events"),
        ("KprobeSpec", "data") => Served(
            "compile/data.rs: read from the current task (source: current_task); \
             pt_regs refused by policy/unsupported.rs",
        ),
        ("KprobeSpec", "returnArgAction") => Served(
            "compile/kprobe.rs: HookConf.ret_sock_action (TrackSock, UntrackSock on a returned \
             sock), run in the kernel (track_sock); refused elsewhere by policy/unsupported.rs",
        ),
        ("KprobeSpec", _) => Served("compile/kprobe.rs, compile/function.rs"),
        ("Ignore", "callNotFound") => Served("compile/kprobe.rs: skipped"),
        ("TracepointSpec", _) => Served("compile/tracepoint.rs"),
        ("UprobeSpec", "data") => Served(
            "compile/data.rs: register_spec (source: pt_regs), read by the uprobe program; \
             other sources refused by policy/unsupported.rs",
        ),
        ("UprobeSpec", "refCtrOffsets") => Served(
            "compile/uprobe.rs: each offset's semaphore, raised by the kernel (bpf_syscall::uprobe_link)",
        ),
        ("UprobeSpec", "btfPath") => refused(uprobe("    btfPath: /x.btf\n")),
        ("UprobeSpec", _) => Served("compile/uprobe.rs"),
        ("LsmHookSpec", _) => Served("compile/lsm.rs"),
        ("UsdtSpec", "btfPath") => refused(usdt("    btfPath: /x.btf\n")),
        ("UsdtSpec", _) => Served("compile/usdt.rs"),
        ("Arg", "index" | "type" | "label" | "sizeArgIndex") => Served("compile/args.rs"),
        ("Arg", "resolve" | "btfType") => Served(
            "compile/fields.rs on kernel functions, LSM hooks and raw tracepoints; \
             refused on user memory by policy/unsupported.rs",
        ),
        ("Arg", "source") => Served(
            "compile/data.rs on data values; refused on args by policy/unsupported.rs",
        ),
        ("Arg", "returnCopy") => Served(
            "compile/returns.rs on kprobe return hooks; refused elsewhere by policy/unsupported.rs",
        ),
        ("Arg", "maxData") => Served(
            "compile/args.rs: mark_max_data on kprobes, uprobes and LSM hooks; \
             refused elsewhere by policy/unsupported.rs",
        ),
        ("Selector", "matchData") => Served(
            "compile/data.rs: matchArgs on the data values (kprobes); \
             refused on other hooks by policy/unsupported.rs",
        ),
        ("Selector", _) => Served(selectors),
        ("ArgSelector", "args") => Served(
            "compile/selectors.rs: HookArgs::filter_positions (matchArgs); \
             refused on matchReturnArgs by policy/unsupported.rs",
        ),
        ("ArgSelector", _) => Served(selectors),
        ("BinarySelector" | "PidSelector" | "NamespaceSelector", _) => Served(selectors),
        ("NamespaceChangesSelector", _) => Served(selectors),
        ("CapabilitiesSelector", _) => Served(selectors),
        ("ActionSelector", "action") => Served(selectors),
        ("ActionSelector", "argError") => refused(post("        argError: -1\n")),
        ("ActionSelector", "argSig") => refused(post("        argSig: 9\n")),
        ("ActionSelector", "argUrl" | "argFqdn") => Served(
            "compile/selectors.rs: daemon_actions, requested by outbound.rs when the event \
             arrives; refused on other actions by policy/unsupported.rs",
        ),
        ("ActionSelector", "argSock") => Served(
            "compile/selectors.rs: sock_action (TrackSock, UntrackSock), run in the kernel \
             (track_sock); refused on other actions by policy/unsupported.rs",
        ),
        ("ActionSelector", "argIndex" | "argValue") => Served(
            "compile/selectors.rs: set_action (Set on usdts), written by the kernel's \
             uprobe_dispatch_writing; refused on other actions by policy/unsupported.rs",
        ),
        ("ActionSelector", "argRegs") => Served(
            "compile/regs.rs: override_of (Override on uprobes), made by the kernel's \
             uprobe_dispatch_regs; refused on other actions by policy/unsupported.rs",
        ),
        ("ActionSelector", "rateLimit" | "rateLimitScope") => {
            Served("compile/selectors.rs: ActionSpec.rate_limit_*, run in the kernel (rate_limited)")
        }
        ("ActionSelector", "kernelStackTrace" | "userStackTrace") => Served(
            "compile/selectors.rs: ActionSpec.stacks, taken in the kernel (take_stacks), events.rs: StackFrames",
        ),
        ("ActionSelector", "imaHash") => Served(
            "compile/selectors.rs: ActionSpec.ima_hash, taken by the LSM hook's IMA companion \
             (sensors/functions.rs), export/ima_waits.rs; refused off LSM hooks with a file by \
             policy/unsupported.rs",
        ),
        ("ListSpec", "name" | "type" | "values" | "pattern") => {
            Served("validate.rs, compile/kprobe.rs, compile/selectors.rs; unsupported.rs: generated_ftrace refused")
        }
        ("ListSpec", "validated") => {
            refused("  lists:\n  - name: l\n    values: [sys_dup]\n    validated: true\n")
        }
        ("EnforcerSpec", _) => InRefused("spec.enforcers"),
        ("OptionSpec", _) => Served("mode.rs, unsupported.rs: names and values checked"),
        ("LabelSelector" | "LabelSelectorRequirement", _) => {
            InRefused("podSelector, containerSelector, a non-empty hostSelector")
        }
        _ => return None,
    })
}

fn uprobe(lines: &str) -> String {
    format!("  uprobes:\n  - path: /bin/true\n    symbols: [main]\n{lines}")
}

fn usdt(lines: &str) -> String {
    format!("  usdts:\n  - path: /bin/true\n    provider: p\n    name: n\n{lines}")
}

/// A kprobe whose argument has `field`.
fn arg(field: &str) -> String {
    format!("  kprobes:\n  - call: sys_openat\n    args: [{{index: 1, type: string, {field}}}]\n")
}

fn policy(spec: &str) -> String {
    format!("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: fields\nspec:\n{spec}")
}

#[test]
fn every_field_of_the_model_is_served_or_refused() {
    let mut unclassified = Vec::new();
    for (model, fields) in model() {
        assert!(!fields.is_empty(), "{model}: no fields read");
        for field in fields {
            match verdict(model, field) {
                None => unclassified.push(format!("{model}.{field}")),
                // Each claim names the place that serves or refuses it.
                Some(Served(place) | InRefused(place)) => assert!(!place.is_empty()),
                Some(Refused(spec)) => assert!(spec.contains(*field), "{model}.{field}"),
            }
        }
    }
    assert!(
        unclassified.is_empty(),
        "fields with neither an effect nor a refusal: {unclassified:?}"
    );
}

#[test]
fn a_refused_field_fails_at_its_own_line() {
    let mut checked = 0;
    for (model, fields) in model() {
        for field in fields {
            let Some(Refused(spec)) = verdict(model, field) else {
                continue;
            };
            let text = policy(&spec);
            let err = parse_policy(Path::new("f.yaml"), &text)
                .err()
                .unwrap_or_else(|| panic!("{model}.{field} accepted:\n{text}"));
            let (line, _) = err.position().unwrap_or_else(|| panic!("{err}"));
            let key = format!("{field}:");
            // The last: a key may also name an earlier, served field.
            let lines: Vec<&str> = text.lines().collect();
            let at = lines
                .iter()
                .rposition(|l| l.contains(&key))
                .unwrap_or_else(|| panic!("{key} not in\n{text}"));
            assert_eq!(line, at + 1, "{model}.{field}: {err}\n{text}");
            assert!(err.message().contains(*field), "{model}.{field}: {err}");
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} refusals checked");
}

/// `source` and `matchData` are served on a kprobe's data values, and
/// refused, each at its line, where they cannot be read.
#[test]
fn data_is_served_on_kprobes_and_refused_where_it_is_not_read() {
    let data = |fields: &str| {
        hook(&format!(
            "    data:\n    - index: 0\n      type: int\n{fields}    selectors:\n    - matchData: [{{index: 0, operator: Equal, values: [0]}}]\n"
        ))
    };
    let served = policy(&data(
        "      source: current_task\n      resolve: cred.uid.val\n",
    ));
    assert!(
        parse_policy(Path::new("f.yaml"), &served).is_ok(),
        "{served}"
    );
    let cases = [
        (
            arg("source: current_task"),
            "source:",
            "source is given on data values",
        ),
        (
            data("      source: pt_regs\n      resolve: ax\n"),
            "source:",
            "source pt_regs is not supported",
        ),
        (
            data("      source: current_task\n"),
            "- index: 0",
            "a data value needs resolve",
        ),
        (
            data("      resolve: pid\n"),
            "- index: 0",
            "a data value needs its source",
        ),
        (
            data("      source: current_task\n      resolve: pid\n      btfType: cred\n"),
            "btfType:",
            "starts from the current task",
        ),
    ];
    for (spec, key, message) in cases {
        let text = policy(&spec);
        let err = parse_policy(Path::new("f.yaml"), &text).expect_err(&text);
        let (line, _) = err.position().unwrap_or_else(|| panic!("{err}"));
        let at = text.lines().position(|l| l.contains(key)).expect(key);
        assert_eq!(line, at + 1, "{err}\n{text}");
        assert!(err.message().contains(message), "{err}");
    }
}

#[test]
fn what_is_served_still_parses() {
    let served = [
        "  hostSelector: {}\n".to_string(),
        "  options:\n  - {name: disable-kprobe-multi, value: \"1\"}\n".into(),
        "  options:\n  - {name: override-method, value: fmod-ret}\n".into(),
        post(""),
        hook("    return: true\n    returnArg: {index: 0, type: int}\n    returnArgAction: Post\n"),
        selector("      matchActions:\n      - {action: Signal, argSig: 10}\n"),
        selector("      matchActions:\n      - {action: Override, argError: -1}\n"),
        "  lists:\n  - {name: l, type: syscalls, values: [sys_dup]}\n  - {name: all, type: generated_syscalls}\n  kprobes:\n  - call: list:l\n  - call: list:all\n".into(),
        "  kprobes:\n  - call: sys_dup3\n    args: [{index: 0, type: nop}, {index: 1, type: int}]\n".into(),
    ];
    for spec in served {
        let text = policy(&spec);
        if let Err(e) = parse_policy(Path::new("f.yaml"), &text) {
            panic!("{e}\n{text}");
        }
    }
    let text = policy("  options:\n  - {name: disable-kprobe-multi, value: maybe}\n");
    let err = parse_policy(Path::new("f.yaml"), &text).err();
    assert!(err.is_some_and(|e| e.message().contains("true, false")));
    let text = policy(&hook("    returnArg: {index: 0, type: int}\n"));
    let err = parse_policy(Path::new("f.yaml"), &text).err();
    assert!(err.is_some_and(|e| e.message().contains("return: true")));
    let text = policy("  options:\n  - {name: override-method, value: override-return}\n");
    let err = parse_policy(Path::new("f.yaml"), &text).err();
    assert!(err.is_some_and(|e| e.message().contains("never with bpf_override_return")));
    let text = policy("  options:\n  - {name: override-method, value: fmodret}\n");
    let err = parse_policy(Path::new("f.yaml"), &text).err();
    assert!(err.is_some_and(|e| e.message().contains("takes fmod-ret or override-return")));
    let text = policy("  options:\n  - {name: bogus-option, value: \"1\"}\n");
    let err = parse_policy(Path::new("f.yaml"), &text).err();
    assert!(err.is_some_and(|e| e.message().contains("bogus-option")));
}

/// Set's `argIndex` and `argValue` are read by Set only: on another action
/// each is refused at its line.
#[test]
fn set_arguments_are_refused_off_set() {
    for field in ["argIndex", "argValue"] {
        let text = policy(&post(&format!("        {field}: 0\n")));
        let err = parse_policy(Path::new("f.yaml"), &text).expect_err(field);
        let at = text
            .lines()
            .position(|l| l.contains(&format!("{field}:")))
            .expect("the field's line");
        assert_eq!(err.position().map(|(line, _)| line), Some(at + 1), "{err}");
        assert!(err.message().contains(field), "{err}");
    }
}
