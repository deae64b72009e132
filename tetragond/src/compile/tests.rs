use std::path::Path;

use tetragond_ebpf::{action, op, set_op, SUB_ANY};

use super::*;
use crate::{policy, sensors::tracefs::parse_format};

const RAW_SYS_ENTER: &str = "ID: 443
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;
";

struct Fixed;

impl FormatSource for Fixed {
    fn format(&self, subsystem: &str, event: &str) -> Result<Format, CompileError> {
        match (subsystem, event) {
            ("raw_syscalls", "sys_enter") => {
                Ok(parse_format(RAW_SYS_ENTER).expect("fixture parses"))
            }
            _ => Err(CompileError::Unsupported(format!(
                "tracepoint {subsystem}/{event} does not exist on this kernel"
            ))),
        }
    }
}

fn compile_yaml(yaml: &str) -> Result<CompiledPolicy, CompileError> {
    let tp = policy::parse_policy(Path::new("t.yaml"), yaml).expect("test policy parses");
    compile(&tp, &Fixed)
}

fn policy_with(selectors: &str) -> String {
    format!(
        "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: kill-it
spec:
  lists:
  - name: forbidden
    type: syscalls
    values: [sysinfo, getpgid]
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args:
    - index: 4
      type: syscall64
      label: id
    selectors:
{selectors}"
    )
}

#[test]
fn equal_on_syscall_id_is_listed_per_syscall() {
    let c = compile_yaml(&policy_with(
        "    - matchArgs:
      - index: 0
        operator: Equal
        values: [\"99\"]
      matchActions:
      - action: Sigkill
",
    ))
    .expect("compiles");
    let hook = &c.hooks[0];
    assert_eq!(hook.sub_ids, vec![99]);
    assert_eq!(hook.conf.args[0].offset, 8);
    assert_eq!(hook.conf.args[0].signed, 1);
    let sel = &hook.conf.selectors[0];
    assert_eq!(sel.arg_filters[0].op, op::EQUAL);
    assert_eq!(sel.arg_filters[0].values[0], 99);
    assert_eq!(sel.actions[0].kind, action::SIGKILL);
    assert_eq!(c.sensors, vec!["generic_tracepoint".to_string()]);
}

#[test]
fn in_map_with_list_resolves_syscall_names() {
    let c = compile_yaml(&policy_with(
        "    - matchArgs:
      - index: 0
        operator: InMap
        values: [\"list:forbidden\"]
      matchBinaries:
      - operator: In
        values: [/usr/bin/true]
      matchActions:
      - action: Signal
        argSig: 10
",
    ))
    .expect("compiles");
    let hook = &c.hooks[0];
    assert_eq!(hook.sub_ids, vec![99, 121]);
    assert_eq!(hook.arg_values, vec![(0, 0, 99), (0, 0, 121)]);
    assert_eq!(hook.binaries, vec![(0, "/usr/bin/true".to_string())]);
    assert_eq!(hook.conf.selectors[0].binary_op, set_op::IN);
    assert_eq!(hook.conf.selectors[0].actions[0].signal, 10);
}

#[test]
fn selector_without_syscall_filter_listens_to_all() {
    let c = compile_yaml(&policy_with(
        "    - matchPIDs:
      - operator: NotIn
        values: [1]
",
    ))
    .expect("compiles");
    assert!(c.hooks[0].sub_ids.is_empty());
    assert_eq!(c.hooks[0].keys(1)[0].sub_id, SUB_ANY);
}

#[test]
fn override_on_tracepoint_never_loads() {
    let yaml = policy_with(
        "    - matchActions:
      - action: Override
        argError: -1
",
    );
    let err = policy::parse_policy(Path::new("t.yaml"), &yaml).expect_err("must not load");
    assert!(
        err.to_string()
            .contains("Override is not supported on tracepoints"),
        "{err}"
    );
}

#[test]
fn unknown_tracepoint_names_it() {
    let yaml =
        policy_with("    - matchActions:\n      - action: Post\n").replace("sys_enter", "sys_nope");
    let err = compile_yaml(&yaml).expect_err("must not load");
    assert!(err.to_string().contains("raw_syscalls/sys_nope"), "{err}");
}

#[test]
fn kprobes_are_reported_unsupported() {
    let yaml = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: kp
spec:
  kprobes:
  - call: security_file_open
    syscall: false
";
    let err = compile_yaml(yaml).expect_err("must not load");
    assert!(err.to_string().contains("kprobes"), "{err}");
}

#[test]
fn syscall_names_resolve() {
    assert_eq!(syscall_number("getppid"), Some(110));
    assert_eq!(syscall_number("sys_openat"), Some(257));
    assert_eq!(syscall_number("__x64_sys_sysinfo"), Some(99));
    assert_eq!(syscall_number("nope"), None);
}
