//! Reading a policy file: YAML to the typed model, then the semantic checks.
//! Every error names the file, line and column.

use std::path::Path;

use serde::Deserialize;
use serde_saphyr::{MessageFormatter, UserMessageFormatter};

use super::error::PolicyError;
use super::issue::Issue;
use super::location::{NodePath, Part, Positions};
use super::macros;
use super::model::{Kind, TracingPolicy, API_VERSION};
use super::unsupported;
use super::validate::validate;

/// Reads and checks the policy in `path`.
pub fn load_policy_file(path: &Path) -> Result<TracingPolicy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, e))?;
    parse_policy(path, &text)
}

/// Parses and checks a policy, refusing the fields tetragond does not
/// serve; `path` is only used to name it in errors.
pub fn parse_policy(path: &Path, text: &str) -> Result<TracingPolicy, PolicyError> {
    let policy = parse_model(path, text)?;
    unsupported::check(&policy)
        .map_err(|issue| locate(path, text, &policy.macro_origins.relocate(issue)))?;
    Ok(policy)
}

/// Parses and checks a policy against Tetragon's model alone.
fn parse_model(path: &Path, text: &str) -> Result<TracingPolicy, PolicyError> {
    let header: Header = from_yaml(path, text)?;
    check_header(&header).map_err(|issue| locate(path, text, &issue))?;
    let mut policy: TracingPolicy = from_yaml(path, text)?;
    policy.macro_origins =
        macros::expand(&mut policy).map_err(|issue| locate(path, text, &issue))?;
    validate(&policy).map_err(|issue| locate(path, text, &policy.macro_origins.relocate(issue)))?;
    Ok(policy)
}

/// Read first, leniently, so a wrong kind is reported as such rather than as
/// a pile of unknown fields.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

fn check_header(header: &Header) -> Result<(), Issue> {
    let root = NodePath::root();
    let kind = header.kind.as_deref().ok_or_else(|| Issue {
        path: root.clone(),
        part: Part::Value,
        message: format!(
            "missing kind: expected {} or {}",
            Kind::TracingPolicy,
            Kind::TracingPolicyNamespaced
        ),
    })?;
    if !Kind::ALL.iter().any(|k| k.as_str() == kind) {
        return Err(Issue {
            path: root.key("kind"),
            part: Part::Value,
            message: format!(
                "unsupported kind {kind:?}: expected {} or {}",
                Kind::TracingPolicy,
                Kind::TracingPolicyNamespaced
            ),
        });
    }
    match header.api_version.as_deref() {
        Some(API_VERSION) => Ok(()),
        Some(other) => Err(Issue {
            path: root.key("apiVersion"),
            part: Part::Value,
            message: format!("unsupported apiVersion {other:?}: expected {API_VERSION}"),
        }),
        None => Err(Issue {
            path: root,
            part: Part::Value,
            message: format!("missing apiVersion: expected {API_VERSION}"),
        }),
    }
}

fn from_yaml<'a, T: Deserialize<'a>>(path: &Path, text: &'a str) -> Result<T, PolicyError> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| yaml_error(path, &e))
}

fn yaml_error(path: &Path, err: &serde_saphyr::Error) -> PolicyError {
    let (line, column) = err
        .location()
        .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
    let message = UserMessageFormatter.format_message(err.without_snippet());
    // The formatter leaves sanitizing to its renderer: keep the message on one line.
    let message: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    PolicyError::located(path, line, column, message)
}

fn locate(path: &Path, text: &str, issue: &Issue) -> PolicyError {
    let position = Positions::index(text).find(&issue.path, issue.part);
    PolicyError::located(path, position.line, position.column, issue.message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::*;

    const FILE: &str = "/etc/policies.d/x.yaml";

    fn parse(text: &str) -> Result<TracingPolicy, PolicyError> {
        parse_policy(Path::new(FILE), text)
    }

    fn ok(text: &str) -> TracingPolicy {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Parsed against Tetragon's model, with the fields tetragond refuses.
    fn model(text: &str) -> TracingPolicy {
        parse_model(Path::new(FILE), text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The error text, checked to be located in FILE.
    fn err(text: &str) -> (usize, usize, String) {
        let e = match parse(text) {
            Ok(p) => panic!("parsed: {p:?}"),
            Err(e) => e,
        };
        assert_eq!(e.file(), Some(Path::new(FILE)), "{e}");
        let (line, column) = e.position().unwrap_or_else(|| panic!("no position: {e}"));
        assert_eq!(
            e.to_string(),
            format!("{FILE}:{line}:{column}: {}", e.message())
        );
        (line, column, e.message())
    }

    // The fd_install example of Tetragon's documentation, plus more selectors.
    const DOCS_KPROBE: &str = r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: "fd-install"
  labels:
    app: demo
spec:
  kprobes:
  - call: "fd_install"
    syscall: false
    args:
    - index: 0
      type: "int"
    - index: 1
      type: "file"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Equal"
        values:
        - "/etc/passwd"
        - "/etc/shadow"
      matchPIDs:
      - operator: NotIn
        followForks: true
        isNamespacePID: true
        values:
        - 1
      matchNamespaces:
      - namespace: Pid
        operator: In
        values:
        - "host_ns"
      matchCapabilities:
      - type: Effective
        operator: In
        values:
        - "CAP_SYS_ADMIN"
      matchActions:
      - action: Post
        rateLimit: 1m
        kernelStackTrace: true
        userStackTrace: true
  - call: "sys_write"
    syscall: true
    return: true
    returnArg:
      index: 0
      type: int
    args:
    - index: 0
      type: "int"
    - index: 1
      type: "char_buf"
      returnCopy: true
      sizeArgIndex: 3
    - index: 2
      type: "size_t"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Equal"
        values:
        - 1
        - "2"
      matchBinaries:
      - operator: "In"
        values:
        - "/usr/bin/cat"
        - "/usr/bin/tail"
      matchReturnArgs:
      - index: 0
        operator: "LT"
        values: [0]
      matchActions:
      - action: Signal
        argSig: 9
      matchReturnActions:
      - action: Post
"#;

    #[test]
    fn docs_kprobe_policy_parses() {
        let p = model(DOCS_KPROBE);
        assert_eq!(p.kind, Kind::TracingPolicy);
        assert_eq!(p.name(), "fd-install");
        assert_eq!(p.namespace(), "");
        assert_eq!(
            p.metadata.labels.get("app").map(String::as_str),
            Some("demo")
        );
        let k = &p.spec.kprobes;
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].call, "fd_install");
        assert!(!k[0].syscall);
        assert!(k[1].syscall && k[1].ret);
        assert_eq!(k[0].args[1].ty, ArgType::File);
        let sel = &k[0].selectors[0];
        assert_eq!(sel.match_args[0].operator, Operator::Equal);
        assert_eq!(sel.match_args[0].values, ["/etc/passwd", "/etc/shadow"]);
        assert_eq!(sel.match_pids[0].values, [1]);
        assert!(sel.match_pids[0].follow_forks && sel.match_pids[0].is_namespace_pid);
        assert_eq!(sel.match_namespaces[0].namespace, NamespaceType::Pid);
        assert_eq!(sel.match_capabilities[0].ty, CapabilityType::Effective);
        let post = &sel.match_actions[0];
        assert_eq!(post.action, ActionType::Post);
        assert_eq!(post.rate_limit_secs(), Some(60));
        assert!(post.kernel_stack_trace && post.user_stack_trace);
        let write = &k[1];
        assert_eq!(write.args[1].size_arg_index, 3);
        assert!(write.args[1].return_copy);
        let sel = &write.selectors[0];
        // Numbers and strings alike end up as text.
        assert_eq!(sel.match_args[0].values, ["1", "2"]);
        assert_eq!(sel.match_binaries[0].operator, BinaryOperator::In);
        assert_eq!(sel.match_return_args[0].operator, Operator::LessThan);
        assert_eq!(sel.match_actions[0].arg_sig, Some(9));
        assert_eq!(sel.match_return_actions[0].action, ActionType::Post);
    }

    const TRACEPOINT: &str = r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: no-cat-syscalls
spec:
  lists:
  - name: mylist
    type: syscalls
    values:
    - sys_openat
    - sys_read
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args: [{index: 4, type: syscall64}]
    selectors:
    - matchArgs: [{index: 0, operator: InMap, values: ["list:mylist"]}]
      matchBinaries: [{operator: In, values: [/usr/bin/cat]}]
      matchActions: [{action: Sigkill}]
"#;

    #[test]
    fn raw_syscalls_tracepoint_with_list() {
        let p = ok(TRACEPOINT);
        assert_eq!(p.spec.lists[0].ty, Some(ListType::Syscalls));
        assert_eq!(p.spec.lists[0].values, ["sys_openat", "sys_read"]);
        let tp = &p.spec.tracepoints[0];
        assert_eq!(
            (tp.subsystem.as_str(), tp.event.as_str()),
            ("raw_syscalls", "sys_enter")
        );
        assert_eq!((tp.args[0].index, tp.args[0].ty), (4, ArgType::Syscall64));
        let sel = &tp.selectors[0];
        assert_eq!(sel.match_args[0].index, 0);
        assert_eq!(sel.match_args[0].operator, Operator::InMap);
        assert_eq!(sel.match_args[0].values, ["list:mylist"]);
        assert_eq!(sel.match_binaries[0].values, ["/usr/bin/cat"]);
        assert_eq!(sel.match_actions[0].action, ActionType::Sigkill);
        assert!(crate::policy::has_enforcement_action(&p));
    }

    #[test]
    fn other_hooks_parse() {
        let p = model(
            r#"apiVersion: cilium.io/v1alpha1
kind: TracingPolicyNamespaced
metadata:
  name: hooks
  namespace: web
spec:
  podSelector:
    matchLabels: {app: web}
    matchExpressions: [{key: tier, operator: In, values: [front]}]
  containerSelector:
    matchExpressions: [{key: name, operator: NotIn, values: [sidecar]}]
  options:
  - name: policy-mode
    value: monitor
  - name: disable-kprobe-multi
    value: "1"
  enforcers:
  - calls: [sys_symlinkat]
  lsmhooks:
  - hook: file_open
    args: [{index: 0, type: file}]
    selectors:
    - matchArgs: [{index: 0, operator: Postfix, values: [shadow]}]
      matchActions: [{action: Override, argError: -1}]
  uprobes:
  - path: /bin/bash
    symbols: [readline]
    message: bash readline
    tags: [observability]
  usdts:
  - path: /usr/bin/python3
    provider: python
    name: function__entry
  fentries:
  - call: security_bprm_check
    ignore: {callNotFound: true}
"#,
        );
        assert!(p.is_namespaced());
        assert_eq!(p.namespace(), "web");
        assert_eq!(p.spec.lsmhooks[0].hook, "file_open");
        assert_eq!(p.spec.uprobes[0].symbols, ["readline"]);
        assert_eq!(p.spec.usdts[0].provider, "python");
        assert_eq!(
            p.spec.fentries[0].ignore.as_ref().map(|i| i.call_not_found),
            Some(true)
        );
        assert!(p.spec.fentries[0].syscall, "syscall defaults to true");
        assert_eq!(p.spec.enforcers[0].calls, ["sys_symlinkat"]);
        let pods = p.spec.pod_selector.as_ref().map(|s| s.match_labels.len());
        assert_eq!(pods, Some(1));
        assert_eq!(
            crate::policy::policy_mode(&p).ok(),
            Some(Some(crate::policy::Mode::Monitor))
        );
    }

    #[test]
    fn empty_sections_may_be_null() {
        let p = ok("apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: nulls
spec:
  kprobes:
  - call: sys_openat
    args:
    selectors:
  tracepoints:
");
        assert!(p.spec.kprobes[0].selectors.is_empty());
        assert!(p.spec.tracepoints.is_empty());
    }

    #[test]
    fn unknown_field_is_located() {
        let text = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: x
spec:
  kprobes:
  - call: sys_openat
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        foo: 1
";
        let e = parse(text).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with("/etc/policies.d/x.yaml:12:9: unknown field `foo`, expected one of "),
            "{shown}"
        );
        assert!(shown.contains("operator"), "{shown}");
    }

    #[test]
    fn unknown_top_level_and_spec_fields() {
        let (line, col, msg) = err("apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: x
spec:
  kprobe: []
");
        assert_eq!((line, col), (6, 3));
        assert!(msg.starts_with("unknown field `kprobe`"), "{msg}");
    }

    #[test]
    fn bad_enum_values_are_located() {
        let (line, col, msg) = err("apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: x
spec:
  kprobes:
  - call: sys_openat
    args: [{index: 0, type: strin}]
");
        assert_eq!((line, col), (8, 29));
        assert!(
            msg.starts_with("unknown argument type `strin`, expected one of auto, int"),
            "{msg}"
        );
        let (line, _, msg) = err("apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: x
spec:
  kprobes:
  - call: sys_openat
    selectors:
    - matchActions:
      - action: Kill
");
        assert_eq!(line, 10);
        assert!(msg.starts_with("unknown action `Kill`"), "{msg}");
    }

    #[test]
    fn missing_required_field() {
        let (line, _, msg) = err("apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: x
spec:
  tracepoints:
  - subsystem: raw_syscalls
");
        assert_eq!(line, 7);
        assert_eq!(msg, "missing field `event`");
    }

    #[test]
    fn yaml_syntax_error() {
        let (line, _, _) = err("apiVersion: cilium.io/v1alpha1\nkind: [\n");
        assert!(line >= 2);
    }

    #[test]
    fn wrong_kind() {
        let (line, col, msg) = err("apiVersion: v1
kind: Pod
metadata:
  name: x
spec:
  containers: []
");
        assert_eq!((line, col), (2, 7));
        assert_eq!(
            msg,
            r#"unsupported kind "Pod": expected TracingPolicy or TracingPolicyNamespaced"#
        );
        let (_, _, msg) = err("metadata: {name: x}\n");
        assert!(msg.starts_with("missing kind"), "{msg}");
    }

    #[test]
    fn wrong_api_version() {
        let (line, col, msg) = err("apiVersion: cilium.io/v2
kind: TracingPolicy
metadata: {name: x}
spec: {}
");
        assert_eq!((line, col), (1, 13));
        assert_eq!(
            msg,
            r#"unsupported apiVersion "cilium.io/v2": expected cilium.io/v1alpha1"#
        );
    }

    #[test]
    fn bad_name() {
        let (line, col, msg) = err("apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: Read_Etc
spec: {}
");
        assert_eq!((line, col), (4, 9));
        assert!(
            msg.starts_with(r#"invalid metadata.name "Read_Etc": "#),
            "{msg}"
        );
    }

    #[test]
    fn namespaced_needs_namespace() {
        let (line, _, msg) = err("apiVersion: cilium.io/v1alpha1
kind: TracingPolicyNamespaced
metadata:
  name: x
spec: {}
");
        assert_eq!(line, 3);
        assert_eq!(msg, "TracingPolicyNamespaced requires metadata.namespace");
        let (line, _, _) = err("apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: x
  namespace: web
spec: {}
");
        assert_eq!(line, 5);
    }

    fn with_selectors(n: usize) -> String {
        let mut text = String::from(
            "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: many
spec:
  kprobes:
  - call: sys_openat
    args: [{index: 0, type: int}]
    selectors:
",
        );
        for _ in 0..n {
            text.push_str("    - matchArgs: [{index: 0, operator: Equal, values: [1]}]\n");
        }
        text
    }

    #[test]
    fn selector_limit() {
        ok(&with_selectors(5));
        let (line, col, msg) = err(&with_selectors(6));
        assert_eq!((line, col), (9, 5));
        assert_eq!(msg, "no more than 5 selectors supported");
    }

    #[test]
    fn bad_mode_option() {
        let (line, col, msg) = err("apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: x
spec:
  options:
  - name: policy-mode
    value: bogus
");
        assert_eq!((line, col), (8, 12));
        assert_eq!(msg, r#"invalid mode: "bogus""#);
    }

    fn kprobe_selector(selector: &str) -> String {
        format!(
            "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: x
spec:
  kprobes:
  - call: sys_openat
    args:
    - index: 1
      type: int
    - index: 2
      type: string
    selectors:
    - {selector}
"
        )
    }

    #[test]
    fn match_args_index_must_name_an_arg() {
        ok(&kprobe_selector(
            "matchArgs: [{index: 2, operator: Prefix, values: [/etc]}]",
        ));
        let (line, col, msg) = err(&kprobe_selector(
            "matchArgs: [{index: 0, operator: Equal, values: [1]}]",
        ));
        assert_eq!((line, col), (14, 27));
        assert_eq!(
            msg,
            "matchArgs index 0 does not match the index of any entry of args (indexes: [1, 2])"
        );
    }

    #[test]
    fn tracepoint_match_args_index_is_a_position_or_past_them_a_field() {
        ok(&TRACEPOINT.replace("{index: 0, operator: InMap", "{index: 4, operator: InMap"));
        let text = TRACEPOINT.replace("{index: 0, operator: InMap", "{index: 3, operator: InMap");
        let (line, _, msg) = err(&text);
        assert_eq!(line, 17);
        assert!(msg.starts_with("matchArgs index 3 names no arg"), "{msg}");
    }

    #[test]
    fn numeric_value_limit() {
        ok(&kprobe_selector(
            "matchArgs: [{index: 1, operator: Equal, values: [1, 2, 3, 4]}]",
        ));
        ok(&kprobe_selector(
            "matchArgs: [{index: 1, operator: InMap, values: [1, 2, 3, 4, 5]}]",
        ));
        ok(&kprobe_selector(
            "matchArgs: [{index: 2, operator: Equal, values: [a, b, c, d, e]}]",
        ));
        let (_, _, msg) = err(&kprobe_selector(
            "matchArgs: [{index: 1, operator: NotEqual, values: [1, 2, 3, 4, 5]}]",
        ));
        assert!(msg.contains("at most 4 values"), "{msg}");
        assert!(msg.contains("use InMap"), "{msg}");
    }

    #[test]
    fn string_length_limits() {
        let long = |n| "a".repeat(n);
        let sel = |op, n| {
            kprobe_selector(&format!(
                "matchArgs: [{{index: 2, operator: {op}, values: [{}]}}]",
                long(n)
            ))
        };
        ok(&sel("Prefix", 256));
        ok(&sel("Postfix", 128));
        assert!(err(&sel("Prefix", 257)).2.contains("limit is 256"));
        assert!(err(&sel("NotPostfix", 129)).2.contains("limit is 128"));
    }

    #[test]
    fn list_references() {
        let text = TRACEPOINT.replace("list:mylist", "list:other");
        let (line, col, msg) = err(&text);
        assert_eq!((line, col), (17, 56));
        assert_eq!(msg, r#"list "other" is not defined in spec.lists"#);
    }

    #[test]
    fn action_arguments() {
        let (_, _, msg) = err(&kprobe_selector("matchActions: [{action: Signal}]"));
        assert_eq!(msg, "action Signal requires argSig");
        let (_, _, msg) = err(&kprobe_selector("matchActions: [{action: Override}]"));
        assert_eq!(msg, "action Override requires argError");
        ok(&kprobe_selector(
            "matchActions: [{action: Override, argError: -1}]",
        ));
        let four = "matchActions: [{action: Post}, {action: Post}, {action: Post}, {action: Post}]";
        let (_, _, msg) = err(&kprobe_selector(four));
        assert_eq!(msg, "no more than 3 actions per selector supported");
        let (_, _, msg) = err(&kprobe_selector(
            "matchActions: [{action: Post, rateLimit: 1d}]",
        ));
        assert!(msg.starts_with("invalid rateLimit"), "{msg}");
    }

    #[test]
    fn arg_limit() {
        let mut text = String::from(
            "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: x}
spec:
  kprobes:
  - call: f
    args:
",
        );
        for i in 0..6 {
            text.push_str(&format!("    - {{index: {i}, type: int}}\n"));
        }
        let (line, col, msg) = err(&text);
        assert_eq!((line, col), (7, 5));
        assert_eq!(msg, "no more than 5 args supported");
    }

    #[test]
    fn uprobe_needs_a_target() {
        let (_, _, msg) = err("apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: x}
spec:
  uprobes:
  - path: /bin/bash
");
        assert_eq!(msg, "a uprobe needs one of symbols, offsets or addrs");
    }

    #[test]
    fn multiple_documents_are_refused() {
        let text = format!("{TRACEPOINT}---\n{TRACEPOINT}");
        let (line, _, _) = err(&text);
        assert_eq!(line, 21, "the start of the second document");
    }

    #[test]
    fn load_from_disk() {
        let dir = std::env::temp_dir().join(format!("tetragond-parse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tp.yaml");
        std::fs::write(&path, TRACEPOINT).unwrap();
        assert_eq!(load_policy_file(&path).unwrap().name(), "no-cat-syscalls");
        let missing = dir.join("missing.yaml");
        let e = load_policy_file(&missing).unwrap_err();
        assert!(matches!(e, PolicyError::Io { .. }));
        assert!(e.to_string().starts_with(&missing.display().to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
