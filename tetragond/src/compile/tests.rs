use std::path::Path;

use tetragond_ebpf::{action, arg_kind, op, rate_scope, set_op, ABI_I386, SUB_ANY};

use super::*;
use crate::{
    kernel_info::{tracefs::parse_format, KernelFunctions},
    policy,
};

const RAW_SYS_ENTER: &str = "ID: 443
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;
";

/// Formats of the tracepoints the compile tests use (raw_syscalls/sys_enter);
/// also the store's tests' kernel.
pub(crate) struct Fixed;

/// A kernel with kprobes, trampolines and an active BPF LSM (Debian's).
struct Debian;

impl FormatSource for Debian {
    fn format(&self, subsystem: &str, event: &str) -> Result<Format, CompileError> {
        Fixed.format(subsystem, event)
    }

    fn caps(&self) -> HookCaps {
        HookCaps {
            kprobes: true,
            trampolines: true,
            trampoline_cookies: true,
            lsm_programs: true,
            lsm_active: true,
            uprobe_cookies: true,
            write_user: true,
            uprobe_regs: true,
            ima_file_hash: true,
            // Debian 12's 6.1: before the hook's -ECANCELED.
            xattr_discard_one: true,
            kernel_functions: KernelFunctions::Auto,
        }
    }

    /// Every function but the ones the tests name as missing.
    fn has_function(&self, name: &str) -> bool {
        !name.starts_with("tetragond_no_such")
    }
}

/// A kernel with the stated features; BTF gives the parameter count of
/// `params`' function only.
struct Kernel {
    caps: HookCaps,
    params: Option<(&'static str, u32)>,
}

impl Kernel {
    fn with(caps: HookCaps) -> Kernel {
        Kernel { caps, params: None }
    }
}

impl FormatSource for Kernel {
    fn format(&self, subsystem: &str, event: &str) -> Result<Format, CompileError> {
        Fixed.format(subsystem, event)
    }

    fn caps(&self) -> HookCaps {
        self.caps
    }

    fn function_params(&self, name: &str) -> Option<u32> {
        self.params
            .filter(|(function, _)| *function == name)
            .map(|(_, count)| count)
    }
}

fn compile_on(yaml: &str, kernel: &dyn FormatSource) -> Result<CompiledPolicy, CompileError> {
    let tp = policy::parse_policy(Path::new("t.yaml"), yaml).expect("test policy parses");
    compile(&tp, kernel)
}

impl FormatSource for Fixed {
    fn format(&self, subsystem: &str, event: &str) -> Result<Format, CompileError> {
        match (subsystem, event) {
            ("raw_syscalls", "sys_enter") => {
                Ok(parse_format(RAW_SYS_ENTER).expect("fixture parses"))
            }
            ("raw_syscalls", "sys_exit") => Ok(parse_format(RAW_SYS_EXIT).expect("fixture parses")),
            ("syscalls", "sys_enter_unshare") => {
                Ok(parse_format(SYS_ENTER_UNSHARE).expect("fixture parses"))
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
    // Each name in both ABIs: x86_64 sysinfo 99, getpgid 121; i386 116, 132.
    let i386 = |nr: u32| nr | ABI_I386;
    assert_eq!(hook.sub_ids, vec![99, 121, i386(116), i386(132)]);
    let value = |value| MapEntry::ArgValue {
        selector: 0,
        filter: 0,
        value,
    };
    assert_eq!(
        hook.entries,
        vec![
            value(99),
            value(u64::from(i386(116))),
            value(121),
            value(u64::from(i386(132))),
            MapEntry::Binary {
                selector: 0,
                path: "/usr/bin/true".into()
            },
        ]
    );
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
fn get_url_and_dns_lookup_are_left_to_the_daemon() {
    let yaml = policy_with(
        "    - matchActions:
      - action: Post
      - action: GetUrl
        argUrl: https://canary.example.com/x
    - matchActions:
      - action: DnsLookup
        argFqdn: canary.example.com
",
    );
    let c = compile_yaml(&yaml).expect("compiles");
    let hook = &c.hooks[0];
    let kinds = |s: usize| {
        let sel = &hook.conf.selectors[s];
        sel.actions[..usize::from(sel.n_actions)]
            .iter()
            .map(|a| a.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(0), [action::POST, action::DAEMON]);
    assert_eq!(kinds(1), [action::DAEMON]);
    assert_eq!(
        hook.meta.daemon_actions_of(0),
        [DaemonAction::GetUrl("https://canary.example.com/x".into())]
    );
    assert_eq!(
        hook.meta.daemon_actions_of(1),
        [DaemonAction::DnsLookup("canary.example.com".into())]
    );
    assert!(hook.meta.daemon_actions_of(2).is_empty());
}

#[test]
fn unknown_tracepoint_names_it() {
    let yaml =
        policy_with("    - matchActions:\n      - action: Post\n").replace("sys_enter", "sys_nope");
    let err = compile_yaml(&yaml).expect_err("must not load");
    assert!(err.to_string().contains("raw_syscalls/sys_nope"), "{err}");
}

#[test]
fn kernel_functions_without_kprobes_or_trampolines_are_refused() {
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
    assert!(err.to_string().contains("neither"), "{err}");
}

#[test]
fn syscall_names_resolve() {
    assert_eq!(syscall_number("getppid"), Some(110));
    assert_eq!(syscall_number("sys_openat"), Some(257));
    assert_eq!(syscall_number("__x64_sys_sysinfo"), Some(99));
    assert_eq!(syscall_number("nope"), None);
}

const LSM_OPEN: &str = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: lsm
spec:
  lsmhooks:
  - hook: file_open
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values: [/etc/secret]
      - index: 0
        operator: Postfix
        values: [.key]
      matchActions:
      - action: Override
        argError: -13
";

#[test]
fn lsm_hook_compiles_to_an_lsm_program_with_path_entries() {
    let c = compile_on(LSM_OPEN, &Debian).expect("compiles");
    let hook = &c.hooks[0];
    assert_eq!(
        hook.attach,
        Attach::Function(FunctionTarget {
            family: FunctionFamily::Lsm,
            name: "file_open".into()
        })
    );
    assert_eq!(c.sensors, vec!["generic_lsm".to_string()]);
    assert_eq!(hook.conf.args[0].kind, tetragond_ebpf::arg_kind::FILE);
    assert_eq!(hook.conf.data_slots, 1);
    let sel = &hook.conf.selectors[0];
    assert_eq!(sel.arg_filters[0].op, op::PREFIX);
    assert_eq!(sel.arg_filters[1].op, op::POSTFIX);
    assert_eq!(sel.actions[0].kind, action::OVERRIDE);
    assert_eq!(sel.actions[0].signal as i32, -13);
    let strings: Vec<_> = hook
        .entries
        .iter()
        .filter_map(|e| match e {
            MapEntry::Str { bytes, .. } => Some(bytes.as_slice()),
            _ => None,
        })
        .collect();
    assert_eq!(strings, vec![&b"/etc/secret"[..], b"yek."]);
    assert_eq!(
        hook.meta.kind,
        HookKind::Lsm {
            function: "file_open".into()
        }
    );
}

#[test]
fn lsm_hooks_without_bpf_lsm_name_the_missing_feature() {
    let err = compile_yaml(LSM_OPEN).expect_err("no LSM programs here");
    assert!(
        err.to_string()
            .contains("BPF LSM programs cannot be loaded"),
        "{err}"
    );
}

/// An LSM hook on `hook` whose selector takes `action` with `imaHash`.
fn lsm_ima(hook: &str, action: &str) -> String {
    format!(
        "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ima
spec:
  lsmhooks:
  - hook: {hook}
    selectors:
    - matchActions:
      - action: {action}
        imaHash: true
"
    )
}

fn refusal(yaml: &str) -> String {
    policy::parse_policy(Path::new("t.yaml"), yaml)
        .expect_err("refused")
        .to_string()
}

#[test]
fn ima_hash_is_asked_of_lsm_hooks_with_a_file() {
    for hook in ["mmap_file", "bprm_check_security"] {
        let c = compile_on(&lsm_ima(hook, "Post"), &Debian).expect("compiles");
        let action = c.hooks[0].conf.selectors[0].actions[0];
        assert_eq!((action.kind, action.ima_hash), (action::POST, 1), "{hook}");
    }
}

#[test]
fn ima_hash_is_refused_where_it_would_be_ignored() {
    let no_file = refusal(&lsm_ima("path_mkdir", "Post"));
    assert!(
        no_file.contains("t.yaml:11:9") && no_file.contains("path_mkdir has none"),
        "{no_file}"
    );
    let unreadable = refusal(&lsm_ima("file_open", "Post"));
    assert!(
        unreadable.contains("file_post_open (Linux 6.9) can"),
        "{unreadable}"
    );
    let not_post = refusal(&lsm_ima("mmap_file", "Sigkill"));
    assert!(
        not_post.contains("imaHash has no effect on action Sigkill"),
        "{not_post}"
    );
    let kprobe = refusal(&kprobe(
        "security_file_open",
        "    selectors:\n    - matchActions:\n      - action: Post\n        imaHash: true\n",
    ));
    assert!(kprobe.contains("LSM hooks (lsmhooks) only"), "{kprobe}");
}

#[test]
fn ima_hash_names_what_the_kernel_lacks() {
    let without = Kernel::with(HookCaps {
        ima_file_hash: false,
        ..Debian.caps()
    });
    let e = compile_on(&lsm_ima("mmap_file", "Post"), &without).expect_err("no helper");
    assert!(e.to_string().contains("imaHash needs"), "{e}");
    compile_on(
        &lsm_ima("mmap_file", "Post").replace("        imaHash: true\n", ""),
        &without,
    )
    .expect("compiles without it");
}

fn kprobe(call: &str, extra: &str) -> String {
    format!(
        "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: kp
spec:
  kprobes:
  - call: {call}
    syscall: false
{extra}"
    )
}

#[test]
fn kernel_functions_pick_the_mechanism_the_kernel_has() {
    let sock = "    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: DAddr\n        values: [127.0.0.0/8]\n      - index: 0\n        operator: DPort\n        values: [\"4242\"]\n      matchActions:\n      - action: Sigkill\n";
    let c = compile_on(&kprobe("tcp_connect", sock), &Debian).expect("compiles");
    let hook = &c.hooks[0];
    assert_eq!(
        hook.attach.function().map(|f| f.family),
        Some(FunctionFamily::Kprobe)
    );
    assert_eq!(hook.conf.args[0].offset, 112, "rdi");
    assert!(
        matches!(hook.entries[..], [MapEntry::Addr { prefix: 104, .. }]),
        "{:?}",
        hook.entries
    );
    assert_eq!(
        hook.conf.selectors[0].arg_filters[1].values[0],
        4242 | 4242 << 32
    );
    let fentry_only = HookCaps {
        trampolines: true,
        lsm_programs: true,
        lsm_active: true,
        ..Default::default()
    };
    let c = compile_on(&kprobe("tcp_connect", sock), &Kernel::with(fentry_only)).expect("compiles");
    let hook = &c.hooks[0];
    assert_eq!(
        hook.attach.function().map(|f| f.family),
        Some(FunctionFamily::Fentry)
    );
    assert_eq!(hook.conf.args[0].offset, 0, "first trampoline slot");
    let prefer_fentry = HookCaps {
        kernel_functions: KernelFunctions::Fentry,
        ..Debian.caps()
    };
    let c =
        compile_on(&kprobe("tcp_connect", sock), &Kernel::with(prefer_fentry)).expect("compiles");
    assert_eq!(
        c.hooks[0].attach.function().map(|f| f.family),
        Some(FunctionFamily::Fentry)
    );
}

#[test]
fn override_on_security_functions_is_fentry_with_fmod_ret() {
    let extra = "    args:\n    - index: 0\n      type: file\n    selectors:\n    - matchActions:\n      - action: Override\n        argError: -1\n";
    let c = compile_on(&kprobe("security_file_permission", extra), &Debian).expect("compiles");
    assert_eq!(
        c.hooks[0].attach,
        Attach::Function(FunctionTarget {
            family: FunctionFamily::Fentry,
            name: "security_file_permission".into()
        })
    );
    assert_eq!(
        c.hooks[0].meta.kind,
        HookKind::Kprobe {
            function: "security_file_permission".into()
        }
    );
    assert_eq!(crate::events::hook_kind(&c.hooks[0].meta), "process_kprobe");
    let err = compile_on(&kprobe("do_unlinkat", extra), &Debian).expect_err("no fmod_ret");
    assert!(
        err.to_string().contains("Override on a kernel function"),
        "{err}"
    );
}

/// Where the BPF LSM runs, an Override on `security_X` is served by the
/// LSM program of hook `X` (never skipped by the kernel, as an fentry
/// program running already on the CPU is), its events a kprobe's; where
/// the hook's parameters differ, or a positive argError is served, or the
/// LSM is not active, fentry and fmod_ret.
#[test]
fn override_on_security_functions_is_the_lsm_hook_where_the_kernel_runs_it() {
    let served = |call: &str, kernel: &Tracefs| {
        let ty = if call == "security_bprm_check" {
            "linux_binprm"
        } else {
            "file"
        };
        let extra = format!("    args:\n    - index: 0\n      type: {ty}\n    selectors:\n    - matchActions:\n      - action: Override\n        argError: -1\n");
        let c = compile_on(&kprobe(call, &extra), kernel).expect("compiles");
        (c.hooks[0].attach.clone(), c.hooks[0].meta.kind.clone())
    };
    let function = |family, name: &str| {
        Attach::Function(FunctionTarget {
            family,
            name: name.into(),
        })
    };
    let (attach, kind) = served("security_file_permission", &host());
    assert_eq!(attach, function(FunctionFamily::Lsm, "file_permission"));
    assert_eq!(
        kind,
        HookKind::Kprobe {
            function: "security_file_permission".into()
        }
    );
    // The hook is `bprm_check_security`: no `bpf_lsm_bprm_check`.
    let (attach, _) = served("security_bprm_check", &host());
    assert_eq!(
        attach,
        function(FunctionFamily::Fentry, "security_bprm_check")
    );
    let mut no_lsm = host();
    no_lsm.caps.lsm_active = false;
    let (attach, _) = served("security_file_permission", &no_lsm);
    assert_eq!(
        attach,
        function(FunctionFamily::Fentry, "security_file_permission")
    );
    let positive = "    args:\n    - index: 1\n      type: string\n    selectors:\n    - matchActions:\n      - action: Override\n        argError: -1\n";
    let c =
        compile_on(&kprobe("security_inode_copy_up_xattr", positive), &host()).expect("compiles");
    assert_eq!(
        c.hooks[0].attach.function().map(|f| f.family),
        Some(FunctionFamily::Fentry),
        "a positive argError may be served here: fmod_ret"
    );
}

/// Tetragon's `argError: 1` on security_inode_copy_up_xattr (discard the
/// xattr) returns what this kernel's overlayfs takes for it; a positive
/// value is refused elsewhere, and other positive values there.
#[test]
fn a_positive_arg_error_is_served_where_its_meaning_is_known() {
    let extra = |error: &str| {
        format!("    args:\n    - index: 1\n      type: string\n    selectors:\n    - matchArgs:\n      - index: 1\n        operator: Equal\n        values: [trusted.secret]\n      matchActions:\n      - action: Override\n        argError: {error}\n")
    };
    let returned = |kernel: &dyn FormatSource| {
        let c = compile_on(&kprobe("security_inode_copy_up_xattr", &extra("1")), kernel)
            .expect("compiles");
        let sel = &c.hooks[0].conf.selectors[0];
        assert_eq!(sel.actions[0].kind, action::OVERRIDE);
        sel.actions[0].signal as i32
    };
    assert_eq!(returned(&Debian), 1);
    let since_6_12 = Kernel::with(HookCaps {
        xattr_discard_one: false,
        ..Debian.caps()
    });
    assert_eq!(returned(&since_6_12), -125);
    let c = compile_on(
        &kprobe("security_inode_copy_up_xattr", &extra("-125")),
        &Debian,
    )
    .expect("compiles");
    assert_eq!(c.hooks[0].conf.selectors[0].actions[0].signal as i32, -125);

    let err = compile_on(
        &kprobe("security_inode_copy_up_xattr", &extra("2")),
        &Debian,
    )
    .expect_err("2 means nothing there");
    assert!(
        err.to_string().contains("argError 2 means nothing to security_inode_copy_up_xattr's caller: 1 discards the xattr"),
        "{err}"
    );
    let err = compile_on(&kprobe("security_inode_mkdir", &extra("1")), &Debian)
        .expect_err("no positive answer there");
    assert!(
        err.to_string()
            .contains("tetragond serves argError 1 on security_inode_copy_up_xattr"),
        "{err}"
    );
    let err = compile_on(
        &kprobe("security_inode_copy_up_xattr", &extra("0")),
        &Debian,
    )
    .expect_err("0 does nothing");
    assert!(
        err.to_string()
            .contains("argError 0 is not a negative errno"),
        "{err}"
    );
}

#[test]
fn return_probes_read_the_return_register() {
    let extra = "    return: true\n    returnArg:\n      index: 0\n      type: int\n    selectors:\n    - matchReturnArgs:\n      - index: 0\n        operator: Equal\n        values: [\"-2\"]\n";
    let c = compile_on(&kprobe("do_sys_openat2", extra), &Debian).expect("compiles");
    let families: Vec<_> = c
        .hooks
        .iter()
        .map(|h| h.attach.function().map(|f| f.family))
        .collect();
    assert_eq!(
        families,
        [
            Some(FunctionFamily::Kprobe),
            Some(FunctionFamily::Kretprobe)
        ],
        "the entry half, then the exit half"
    );
    let hook = &c.hooks[1];
    assert_eq!(hook.conf.return_half, tetragond_ebpf::return_half::EXIT);
    assert_eq!(hook.conf.args[0].offset, 80, "rax");
    assert_eq!(
        hook.conf.selectors[0].arg_filters[0].values[0],
        -2i64 as u64
    );
}

/// fexit where BTF gives the function's parameters, unless kprobes are
/// asked for (`kernel_functions = "kprobe"`): a kretprobe.
#[test]
fn return_probes_are_fexit_unless_kprobes_are_asked_for_or_fexit_takes_slots() {
    let extra = "    return: true\n    returnArg:\n      index: 0\n      type: int\n";
    let exit_family = |kernel_functions, trampoline_cookies| {
        let kernel = Kernel {
            caps: HookCaps {
                kernel_functions,
                trampoline_cookies,
                ..Debian.caps()
            },
            params: Some(("vfs_mkdir", 4)),
        };
        let c = compile_on(&kprobe("vfs_mkdir", extra), &kernel).expect("compiles");
        c.hooks[1].attach.function().map(|f| f.family)
    };
    assert_eq!(
        exit_family(KernelFunctions::Auto, true),
        Some(FunctionFamily::Fexit)
    );
    assert_eq!(
        exit_family(KernelFunctions::Fentry, true),
        Some(FunctionFamily::Fexit)
    );
    assert_eq!(
        exit_family(KernelFunctions::Kprobe, true),
        Some(FunctionFamily::Kretprobe)
    );
    // Before 5.19 fexit programs come in 4 numbered slots; kretprobes in
    // none.
    for kernel_functions in [KernelFunctions::Auto, KernelFunctions::Fentry] {
        assert_eq!(
            exit_family(kernel_functions, false),
            Some(FunctionFamily::Kretprobe)
        );
    }
}

#[test]
fn process_selectors_compile_to_kernel_fields() {
    let c = compile_yaml(&policy_with(
        "    - matchCapabilities:
      - type: Permitted
        operator: NotIn
        values: [CAP_SYS_ADMIN, CAP_BPF]
      matchNamespaces:
      - namespace: Net
        operator: In
        values: [\"4026531840\"]
      matchPIDs:
      - operator: In
        followForks: true
        values: [7]
      matchParentBinaries:
      - operator: In
        values: [/bin/sh]
",
    ))
    .expect("compiles");
    let sel = &c.hooks[0].conf.selectors[0];
    assert_eq!(sel.caps[0].op, set_op::NOT_IN);
    assert_eq!(sel.caps[0].set, tetragond_ebpf::cap_set::PERMITTED);
    assert_eq!(sel.caps[0].mask, 1 << 21 | 1 << 39);
    assert_eq!(sel.caps[1].op, set_op::NONE);
    let ns = &sel.namespaces[0];
    assert_eq!(
        (ns.op, ns.kind, ns.n),
        (set_op::IN, tetragond_ebpf::ns_kind::NET, 1)
    );
    assert_eq!(ns.values[0], 4026531840);
    assert_eq!(sel.namespaces[1].op, set_op::NONE);
    assert_eq!(sel.pid_follow, 1);
    assert_eq!(sel.parent_binary_op, set_op::IN);
    assert_eq!(
        c.hooks[0].entries,
        vec![MapEntry::Binary {
            selector: tetragond_ebpf::PARENT_BINARIES,
            path: "/bin/sh".into()
        }]
    );
}

/// Several entries of one kind in a selector are ANDed, as in Tetragon.
#[test]
fn several_process_entries_in_one_selector_must_all_hold() {
    let c = compile_yaml(&policy_with(
        "    - matchCapabilities:
      - operator: In
        values: [CAP_SYS_ADMIN]
      - type: Permitted
        operator: NotIn
        values: [CAP_BPF]
      matchNamespaces:
      - namespace: Pid
        operator: In
        values: [\"4026531836\"]
      - namespace: Mnt
        operator: NotIn
        values: [\"4026531841\", \"4026531842\"]
      matchPIDs:
      - operator: In
        values: [1, 2, 3]
      - operator: In
        values: [2, 3, 4]
      - operator: NotIn
        values: [3]
",
    ))
    .expect("compiles");
    let sel = &c.hooks[0].conf.selectors[0];
    use tetragond_ebpf::{cap_set, ns_kind};
    let caps: Vec<_> = sel.caps.iter().map(|f| (f.op, f.set, f.mask)).collect();
    assert_eq!(
        caps,
        vec![
            (set_op::IN, cap_set::EFFECTIVE, 1 << 21),
            (set_op::NOT_IN, cap_set::PERMITTED, 1 << 39),
            (set_op::NONE, 0, 0),
        ]
    );
    let ns: Vec<_> = sel.namespaces.iter().map(|f| (f.op, f.kind, f.n)).collect();
    assert_eq!(
        ns,
        vec![
            (set_op::IN, ns_kind::PID, 1),
            (set_op::NOT_IN, ns_kind::MNT, 2),
            (set_op::NONE, 0, 0),
            (set_op::NONE, 0, 0),
        ]
    );
    assert_eq!(sel.namespaces[1].values[..2], [4026531841, 4026531842]);
    // In {1,2,3} and In {2,3,4} and NotIn {3}: only 2.
    assert_eq!((sel.pid_op, sel.n_pids, sel.pids[0]), (set_op::IN, 1, 2));
}

/// Several matchParentBinaries entries fold as matchBinaries ones do, into
/// the parent's own set; followChildren extends them to every ancestor.
#[test]
fn several_parent_binary_entries_fold_into_one_list() {
    let c = compile_yaml(&policy_with(
        "    - matchParentBinaries:
      - operator: NotIn
        values: [/bin/a]
      - operator: NotIn
        values: [/bin/b]
",
    ))
    .expect("compiles");
    let sel = &c.hooks[0].conf.selectors[0];
    assert_eq!((sel.parent_binary_op, sel.binary_op), (set_op::NOT_IN, 0));
    let parents: Vec<&str> = c.hooks[0]
        .entries
        .iter()
        .filter_map(|e| match e {
            MapEntry::Binary { selector, path } if *selector == tetragond_ebpf::PARENT_BINARIES => {
                Some(path.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(parents, ["/bin/a", "/bin/b"]);
    assert_eq!(c.hooks[0].binary_gate(), None, "not the running executable");
    let e = compile_yaml(&policy_with(
        "    - matchParentBinaries:
      - operator: In
        values: [/bin/a]
      - operator: Postfix
        values: [sh]
",
    ))
    .expect_err("a Postfix among several");
    assert!(
        e.to_string()
            .contains("several matchParentBinaries entries combine only with In and NotIn"),
        "{e}"
    );
    let c = compile_yaml(&policy_with(
        "    - matchParentBinaries:
      - operator: In
        followChildren: true
        values: [/bin/a]
",
    ))
    .expect("followChildren compiles");
    let sel = &c.hooks[0].conf.selectors[0];
    assert_eq!(
        (
            sel.parent_binary_op,
            sel.parent_binary_follow,
            sel.binary_follow
        ),
        (set_op::IN, 1, 0)
    );
}

#[test]
fn parent_binaries_prefix_and_postfix_use_their_own_trie_filter() {
    let c = compile_yaml(&policy_with(
        "    - matchBinaries:
      - operator: Prefix
        values: [/usr/]
      matchParentBinaries:
      - operator: NotPostfix
        values: [sh]
",
    ))
    .expect("compiles");
    let sel = &c.hooks[0].conf.selectors[0];
    assert_eq!(sel.binary_op, set_op::PREFIX);
    assert_eq!(sel.parent_binary_op, set_op::NOT_POSTFIX);
    let filters: Vec<u8> = c.hooks[0]
        .entries
        .iter()
        .filter_map(|e| match e {
            MapEntry::Str { filter, .. } => Some(*filter),
            _ => None,
        })
        .collect();
    assert_eq!(
        filters,
        vec![
            tetragond_ebpf::BINARY_FILTER,
            tetragond_ebpf::PARENT_BINARY_FILTER
        ]
    );
}

/// A compile error names its file, line and column: the selector (or
/// hook) it is about, as the parser's errors do.
#[test]
fn compile_errors_are_placed_at_their_selector() {
    let yaml = policy_with(
        "    - matchPIDs:
      - operator: In
        values: [1]
    - matchPIDs:
      - operator: In
        values: [1]
      - operator: In
        followForks: true
        values: [1]
",
    );
    let tp = policy::parse_policy(Path::new("t.yaml"), &yaml).expect("parses");
    let e = compile(&tp, &Fixed).expect_err("refused");
    let second = yaml
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("    - matchPIDs"))
        .nth(1)
        .map(|(n, _)| n + 1)
        .expect("two selectors");
    let placed = super::located(&e, &tp, Path::new("t.yaml"), &yaml).to_string();
    assert!(
        placed.starts_with(&format!("t.yaml:{second}:")),
        "{placed} (selector at line {second})"
    );
    assert!(placed.contains("differ in followForks"), "{placed}");
}

/// Several matchBinaries entries are ANDed: In and NotIn fold into one
/// list of exact paths; a Prefix among several is refused with the reason.
#[test]
fn several_binary_entries_fold_into_one_list() {
    let c = compile_yaml(&policy_with(
        "    - matchBinaries:
      - operator: In
        values: [/bin/a, /bin/b, /bin/c]
      - operator: NotIn
        values: [/bin/b]
",
    ))
    .expect("compiles");
    let sel = &c.hooks[0].conf.selectors[0];
    assert_eq!(sel.binary_op, set_op::IN);
    let paths: Vec<&str> = c.hooks[0]
        .entries
        .iter()
        .filter_map(|e| match e {
            MapEntry::Binary { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(paths, ["/bin/a", "/bin/c"]);
    assert_eq!(
        c.hooks[0].binary_gate(),
        Some(vec!["/bin/a".to_string(), "/bin/c".to_string()])
    );
    let e = compile_yaml(&policy_with(
        "    - matchBinaries:
      - operator: In
        values: [/bin/a]
      - operator: Prefix
        values: [/usr/]
",
    ))
    .expect_err("a Prefix among several");
    assert!(
        e.to_string()
            .contains("combine only with In and NotIn, not Prefix"),
        "{e}"
    );
}

#[test]
fn not_in_pid_entries_fold_into_their_union() {
    let c = compile_yaml(&policy_with(
        "    - matchPIDs:
      - operator: NotIn
        values: [1, 2]
      - operator: NotIn
        values: [2, 5]
",
    ))
    .expect("compiles");
    let sel = &c.hooks[0].conf.selectors[0];
    assert_eq!((sel.pid_op, sel.n_pids), (set_op::NOT_IN, 3));
    assert_eq!(sel.pids[..3], [1, 2, 5]);
}

#[test]
fn process_entries_past_the_kernel_limits_are_refused() {
    let entry = "      - namespace: Net\n        operator: In\n        values: [\"1\"]\n";
    let e = compile_yaml(&policy_with(&format!(
        "    - matchNamespaces:\n{}",
        entry.repeat(5)
    )))
    .expect_err("5 entries");
    assert!(
        e.to_string().contains("at most 4 matchNamespaces entries"),
        "{e}"
    );
    let e = compile_yaml(&policy_with(
        "    - matchPIDs:
      - operator: In
        values: [1]
      - operator: In
        followForks: true
        values: [1]
",
    ))
    .expect_err("followForks differs");
    assert!(e.to_string().contains("differ in followForks"), "{e}");
}

#[test]
fn missing_kernel_functions_are_skipped_with_ignore_call_not_found() {
    let missing = compile_on(&kprobe("tetragond_no_such_function", ""), &Debian)
        .expect_err("no such function");
    assert!(
        missing
            .to_string()
            .contains("this kernel has no function tetragond_no_such_function"),
        "{missing}"
    );
    let extra = "    ignore:\n      callNotFound: true\n";
    let c = compile_on(&kprobe("tetragond_no_such_function", extra), &Debian).expect("compiles");
    assert!(c.hooks.is_empty());
    let c = compile_on(&kprobe("security_file_open", extra), &Debian).expect("compiles");
    assert_eq!(c.hooks.len(), 1, "an existing function is hooked");
}

#[test]
fn return_probes_with_args_are_fexit_where_btf_gives_the_parameters() {
    let with_btf = Kernel {
        caps: Debian.caps(),
        params: Some(("do_sys_openat2", 4)),
    };
    let extra = "    return: true\n    args:\n    - index: 1\n      type: string\n    returnArg:\n      index: 0\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 1\n        operator: Prefix\n        values: [/etc/]\n      matchReturnArgs:\n      - index: 0\n        operator: Equal\n        values: [\"-2\"]\n";
    let c = compile_on(&kprobe("do_sys_openat2", extra), &with_btf).expect("compiles");
    let [entry, exit] = c.hooks.as_slice() else {
        panic!("two halves: {:?}", c.hooks.len());
    };
    // The entry half reads the args and runs matchArgs at the call.
    assert_eq!(
        entry.attach.function().map(|f| f.family),
        Some(FunctionFamily::Kprobe)
    );
    assert_eq!(entry.conf.n_args, 1);
    assert_eq!(entry.conf.args[0].offset, 104, "rsi");
    let sel = &entry.conf.selectors[0];
    assert_eq!((sel.n_arg_filters, sel.arg_filters[0].op), (1, op::PREFIX));
    // The exit half reads the return value after the 4 parameters, and
    // filters it.
    assert_eq!(
        exit.attach.function().map(|f| f.family),
        Some(FunctionFamily::Fexit)
    );
    assert_eq!(exit.conf.n_args, 1);
    assert_eq!(
        exit.conf.args[0].offset, 32,
        "the return value after 4 parameters"
    );
    let sel = &exit.conf.selectors[0];
    assert_eq!(
        (
            sel.n_arg_filters,
            sel.arg_filters[0].arg,
            sel.arg_filters[0].op
        ),
        (1, 0, op::EQUAL)
    );
    assert_eq!(exit.meta.return_position, Some(0));
}

const RAW_SYS_EXIT: &str = "ID: 442
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;
";

const SYS_ENTER_UNSHARE: &str = "ID: 192
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:unsigned long unshare_flags;\toffset:16;\tsize:8;\tsigned:0;
";

fn id_policy(values: &str) -> String {
    policy_with(&format!(
        "    - matchArgs:
      - index: 0
        operator: Equal
        values: [{values}]
      matchActions:
      - action: Sigkill
"
    ))
}

#[test]
fn a_syscall_name_is_listed_under_its_number_in_each_abi() {
    let c = compile_yaml(&id_policy("unshare")).expect("compiles");
    let hook = &c.hooks[0];
    // x86_64 unshare is 272, i386 unshare 310; i386 272 (fadvise64_64) is not listed.
    assert_eq!(hook.sub_ids, vec![272, 310 | ABI_I386]);
    assert_eq!(hook.conf.args[0].kind, arg_kind::SYSCALL64);
    let f = &hook.conf.selectors[0].arg_filters[0];
    assert_eq!(f.op, op::EQUAL);
    assert_eq!(&f.values[..2], &[272, u64::from(310 | ABI_I386)]);
    let keys = hook.keys(1);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1].sub_id, 0x8000_0136);
}

#[test]
fn a_restricted_abi_or_a_number_lists_one_entry() {
    let only = |values: &str| {
        compile_yaml(&id_policy(values)).expect("compiles").hooks[0]
            .sub_ids
            .clone()
    };
    assert_eq!(only("\"i386/unshare\""), vec![310 | ABI_I386]);
    assert_eq!(only("\"x64/unshare\""), vec![272]);
    assert_eq!(only("\"__x64_sys_unshare\""), vec![272]);
    assert_eq!(only("\"272\""), vec![272]);
    assert_eq!(only("\"0x80000136\""), vec![310 | ABI_I386]);
    let err = compile_yaml(&id_policy("\"arm64/unshare\"")).expect_err("no such ABI here");
    assert!(err.to_string().contains("unknown syscall"), "{err}");
}

#[test]
fn names_past_four_numbers_become_a_set() {
    // Three names are six numbers: more than an Equal filter holds.
    let c = compile_yaml(&id_policy("unshare, setns, \"x64/mount\"")).expect("compiles");
    let hook = &c.hooks[0];
    let f = &hook.conf.selectors[0].arg_filters[0];
    assert_eq!(f.op, op::IN_MAP);
    assert_eq!(hook.entries.len(), 5);
    assert_eq!(hook.sub_ids.len(), 5);
    // Tetragon's limit still holds for what the policy writes.
    let five = id_policy("\"1\", \"2\", \"3\", \"4\", \"5\"");
    let err = policy::parse_policy(Path::new("t.yaml"), &five).expect_err("5 values");
    assert!(err.to_string().contains("at most 4 values"), "{err}");
}

fn syscall_kprobe(call: &str) -> String {
    kprobe(call, "").replace("syscall: false", "syscall: true")
}

#[test]
fn syscall_kprobes_are_listed_under_both_entries() {
    let c = compile_yaml(&syscall_kprobe("sys_unshare")).expect("compiles");
    let hook = &c.hooks[0];
    assert_eq!(hook.attach, tracepoint("raw_syscalls", "sys_enter"));
    assert_eq!(hook.sub_ids, vec![272, 310 | ABI_I386]);
    let c = compile_yaml(&syscall_kprobe("__ia32_sys_unshare")).expect("compiles");
    assert_eq!(c.hooks[0].sub_ids, vec![310 | ABI_I386]);
}

#[test]
fn a_syscalls_tracepoint_gets_a_raw_twin_for_the_32_bit_entry() {
    let yaml = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: tp
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_unshare
    args:
    - index: 4
      type: syscall64
    - index: 5
      type: uint64
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: [\"0\"]
      matchActions:
      - action: Sigkill
";
    let c = compile_yaml(yaml).expect("compiles");
    assert_eq!(c.hooks.len(), 2);
    let (hook, twin) = (&c.hooks[0], &c.hooks[1]);
    assert_eq!(hook.attach, tracepoint("syscalls", "sys_enter_unshare"));
    assert_eq!(hook.sub_ids, vec![272]);
    assert_eq!(twin.attach, tracepoint("raw_syscalls", "sys_enter"));
    assert_eq!(twin.sub_ids, vec![310 | ABI_I386]);
    // The same record slots, the same selectors; events name the policy's tracepoint.
    assert_eq!(twin.conf, hook.conf);
    assert_eq!(twin.conf.args[0].kind, arg_kind::SYSCALL64);
    assert_eq!(
        twin.meta.kind,
        HookKind::Tracepoint {
            subsystem: "syscalls".into(),
            event: "sys_enter_unshare".into()
        }
    );
    assert_eq!(c.sensors, vec!["generic_tracepoint".to_string()]);
}

fn tracepoint(subsystem: &str, event: &str) -> Attach {
    Attach::Tracepoint {
        subsystem: subsystem.into(),
        event: event.into(),
    }
}

/// A raw_syscalls policy whose one selector has `actions` (matchActions items).
fn post_policy(actions: &str) -> String {
    policy_with(&format!(
        "    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"99\"]\n      matchActions:\n{actions}"
    ))
}

#[test]
fn post_rate_limit_reaches_the_kernel_selector() {
    let cases = [
        ("        rateLimit: \"30\"\n", 30, rate_scope::THREAD),
        ("        rateLimit: 5m\n", 300, rate_scope::THREAD),
        (
            "        rateLimit: 1h\n        rateLimitScope: thread\n",
            3600,
            rate_scope::THREAD,
        ),
        (
            "        rateLimit: 30s\n        rateLimitScope: process\n",
            30,
            rate_scope::PROCESS,
        ),
        (
            "        rateLimit: 1m\n        rateLimitScope: global\n",
            60,
            rate_scope::GLOBAL,
        ),
    ];
    for (lines, secs, scope) in cases {
        let c = compile_yaml(&post_policy(&format!("      - action: Post\n{lines}")))
            .unwrap_or_else(|e| panic!("{lines}: {e}"));
        let post = c.hooks[0].conf.selectors[0].actions[0];
        assert_eq!(post.kind, action::POST, "{lines}");
        assert_eq!(post.rate_limit_ns, secs * 1_000_000_000, "{lines}");
        assert_eq!(post.rate_limit_scope, scope, "{lines}");
    }
    // Without rateLimit every event posts; an enforcement action next to
    // a limited Post carries no limit (it is never rate limited).
    let c = compile_yaml(&post_policy(
        "      - action: Sigkill\n      - action: Post\n        rateLimit: 1m\n",
    ))
    .expect("compiles");
    let actions = c.hooks[0].conf.selectors[0].actions;
    assert_eq!(
        (actions[0].kind, actions[0].rate_limit_ns),
        (action::SIGKILL, 0)
    );
    assert_eq!(actions[1].rate_limit_ns, 60_000_000_000);
    let c = compile_yaml(&post_policy("      - action: Post\n")).expect("compiles");
    assert_eq!(c.hooks[0].conf.selectors[0].actions[0].rate_limit_ns, 0);
}

#[test]
fn bad_rate_limits_are_refused_at_their_place() {
    let cases = [
        (
            "      - action: Post\n        rateLimit: 1d\n",
            "t.yaml:24:20: invalid rateLimit \"1d\": use a number of seconds, or N followed by s, m or h",
        ),
        (
            "      - action: Post\n        rateLimit: \"0\"\n",
            "t.yaml:24:20: invalid rateLimit \"0\": a period of 0 limits nothing; give at least 1 second",
        ),
        (
            "      - action: Post\n        rateLimit: 9999999999h\n",
            "t.yaml:24:20: invalid rateLimit \"9999999999h\": longer than the kernel's clock counts (584 years)",
        ),
        (
            "      - action: Sigkill\n        rateLimit: 1m\n",
            "t.yaml:24:9: rateLimit has no effect on action Sigkill: it is read by Post",
        ),
        (
            "      - action: Signal\n        argSig: 10\n        rateLimitScope: global\n",
            "t.yaml:25:9: rateLimitScope has no effect on action Signal: it is read by Post",
        ),
        (
            "      - action: Post\n        rateLimitScope: process\n",
            "t.yaml:24:9: rateLimitScope has no effect without rateLimit",
        ),
    ];
    for (actions, want) in cases {
        let yaml = post_policy(actions);
        let err = policy::parse_policy(Path::new("t.yaml"), &yaml)
            .expect_err("must not load")
            .to_string();
        assert_eq!(err, want, "\n{yaml}");
    }
}

fn binaries(operator: &str, follow: bool, values: &str) -> String {
    format!(
        "    - matchBinaries:
      - operator: {operator}
        followChildren: {follow}
        values: [{values}]
"
    )
}

#[test]
fn hooks_whose_every_selector_lists_binaries_are_gated_on_them() {
    let gate = |selectors: &str| {
        compile_yaml(&policy_with(selectors))
            .expect("compiles")
            .hooks[0]
            .binary_gate()
    };
    let two = format!(
        "{}{}",
        binaries("In", false, "/bin/a, /bin/b"),
        binaries("In", false, "/bin/c")
    );
    assert_eq!(
        gate(&two),
        Some(vec!["/bin/a".into(), "/bin/b".into(), "/bin/c".into()])
    );
    // One selector that any binary can match makes the hook run for all.
    let open = format!(
        "{}    - matchPIDs:\n      - operator: In\n        values: [7]\n",
        binaries("In", false, "/bin/a")
    );
    assert_eq!(gate(&open), None);
    assert_eq!(gate(&binaries("NotIn", false, "/bin/a")), None);
    assert_eq!(gate(&binaries("Prefix", false, "/bin/")), None);
    // followChildren matches the binary's descendants, whatever they run.
    assert_eq!(gate(&binaries("In", true, "/bin/a")), None);
    // matchParentBinaries paths are not the running executable.
    let parent = "    - matchBinaries:\n      - operator: In\n        values: [/bin/a]\n      matchParentBinaries:\n      - operator: In\n        values: [/bin/sh]\n";
    assert_eq!(gate(parent), Some(vec!["/bin/a".into()]));
}

/// An `int` in an 8-byte syscall slot is its low 4 bytes, sign-extended:
/// AT_FDCWD arrives as 0x00000000ffffff9c and must equal -100.
#[test]
fn int_args_are_read_at_their_width() {
    let yaml = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: widths
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_unshare
    args:
    - index: 5
      type: int
    - index: 5
      type: uint16
    - index: 5
      type: uint64
";
    let c = compile_yaml(yaml).expect("compiles");
    let args = &c.hooks[0].conf.args;
    assert_eq!((args[0].size, args[0].signed), (4, 1));
    assert_eq!((args[1].size, args[1].signed), (2, 0));
    assert_eq!(args[2].size, 8);
    assert_eq!(args[0].offset, args[2].offset);
}

/// A hook whose every selector has a Prefix or Equal on one string arg is
/// gated on those strings (Equal's without its NUL); one selector without
/// such a filter, or binaries to gate on, leaves it ungated.
#[test]
fn string_prefixes_on_one_arg_gate_the_hook() {
    let with = |selectors: &str| {
        kprobe(
            "sys_openat",
            &format!(
                "    syscall: true
    args:
    - index: 0
      type: int
    - index: 1
      type: string
    selectors:
{selectors}"
            ),
        )
        .replace("    syscall: false\n", "")
    };
    let c = compile_yaml(&with(
        "    - matchArgs:
      - index: 1
        operator: Prefix
        values: [/etc/, /tmp/]
    - matchArgs:
      - index: 0
        operator: Equal
        values: [3]
      - index: 1
        operator: Equal
        values: [/root/x]
",
    ))
    .expect("compiles");
    let gate = c.hooks[0].prefix_gate().expect("gated");
    assert_eq!(gate.reader.arg, 1);
    assert_eq!(gate.reader.spec, c.hooks[0].conf.args[1]);
    let prefixes: Vec<&[u8]> = gate.prefixes.iter().map(Vec::as_slice).collect();
    assert_eq!(prefixes, [&b"/etc/"[..], b"/root/x", b"/tmp/"]);
    let c = compile_yaml(&with(
        "    - matchArgs:
      - index: 1
        operator: Prefix
        values: [/etc/]
    - matchArgs:
      - index: 1
        operator: NotPrefix
        values: [/tmp/]
",
    ))
    .expect("compiles");
    assert_eq!(c.hooks[0].prefix_gate(), None, "a selector not gated");
    let c = compile_yaml(&with(
        "    - matchArgs:
      - index: 1
        operator: Prefix
        values: [/etc/]
      matchBinaries:
      - operator: In
        values: [/bin/a]
",
    ))
    .expect("compiles");
    assert_eq!(c.hooks[0].prefix_gate(), None, "gated on the binary");
}

/// matchNamespaceChanges compiles to a mask of namespace kinds and
/// matchCapabilityChanges to one capability filter; a second entry of
/// either, which Tetragon's kernel side would not read, is refused.
#[test]
fn change_selectors_compile_to_one_filter_each() {
    use tetragond_ebpf::ns_kind;
    let c = compile_yaml(&policy_with(
        "    - matchNamespaceChanges:
      - operator: In
        values: [Mnt, User, Pid]
      matchCapabilityChanges:
      - type: Permitted
        operator: NotIn
        values: [CAP_SYS_ADMIN, CAP_NET_RAW]
",
    ))
    .expect("compiles");
    let sel = &c.hooks[0].conf.selectors[0];
    assert_eq!(sel.ns_change_op, set_op::IN);
    assert_eq!(
        sel.ns_change_mask,
        1 << ns_kind::MNT | 1 << ns_kind::USER | 1 << ns_kind::PID
    );
    let caps = sel.cap_change;
    assert_eq!(
        (caps.op, caps.set),
        (set_op::NOT_IN, tetragond_ebpf::cap_set::PERMITTED)
    );
    assert_eq!(caps.mask, 1 << 21 | 1 << 13);
    assert_eq!(caps.host_user_ns, 0);
    let e = compile_yaml(&policy_with(
        "    - matchCapabilityChanges:
      - operator: In
        values: [CAP_SYS_ADMIN]
      - operator: In
        values: [CAP_NET_RAW]
",
    ))
    .expect_err("two entries");
    assert!(
        e.to_string().contains("Tetragon reads only the first"),
        "{e}"
    );
}

/// A char_iovec reads its vector's count from the argument its
/// sizeArgIndex names (1-based), and is refused without one.
#[test]
fn char_iovec_reads_the_count_its_size_argument_gives() {
    let args = "    args:\n    - index: 1\n      type: char_iovec\n      sizeArgIndex: 3\n";
    let yaml = syscall_kprobe("sys_writev") + args;
    let c = compile_yaml(&yaml).expect("compiles");
    let spec = &c.hooks[0].conf.args[0];
    assert_eq!(spec.kind, tetragond_ebpf::arg_kind::CHAR_IOVEC);
    assert_eq!(spec.size_from, tetragond_ebpf::size_from::ARG);
    assert_eq!(spec.size_offset, spec.offset + 8, "args[2], after args[1]");
    let err = compile_yaml(&yaml.replace("      sizeArgIndex: 3\n", "")).expect_err("no count");
    assert!(err.to_string().contains("needs sizeArgIndex"), "{err}");
}

/// returnCopy on a kernel function: the entry half keeps the buffer's
/// pointer, the exit half (a kretprobe here) reads the buffer, as many
/// bytes as the return value in rax says; the event names it char_buf.
#[test]
fn return_copy_on_a_kernel_function_is_read_by_the_exit_half() {
    let extra = "    return: true
    args:
    - index: 0
      type: file
    - index: 1
      type: char_buf
      returnCopy: true
    returnArg:
      index: 0
      type: int
";
    let c = compile_on(&kprobe("vfs_read", extra), &Debian).expect("compiles");
    let [entry, exit] = c.hooks.as_slice() else {
        panic!("two halves: {:?}", c.hooks.len());
    };
    assert_eq!(entry.conf.copy_arg, 2);
    assert_eq!(
        entry.conf.args[1].kind,
        tetragond_ebpf::arg_kind::INT,
        "the pointer"
    );
    assert_eq!(entry.meta.args[1].0, "char_buf");
    assert_eq!(exit.conf.n_args, 2);
    let copy = &exit.conf.args[1];
    assert_eq!(copy.kind, tetragond_ebpf::arg_kind::CHAR_BUF);
    assert_eq!(copy.size_from, tetragond_ebpf::size_from::RETURN_COPY);
    assert_eq!(copy.size_offset, 80, "rax");
    assert_eq!(exit.conf.data_slots, 2);
}

/// The running kernel, as the daemon sees it: raw tracepoints and
/// `resolve` read this machine's BTF.
fn host() -> Tracefs {
    crate::sensors::mounts::ensure_tracefs();
    let btf = crate::kernel_info::btf::KernelBtf::from_sys_fs()
        .expect("these tests need /sys/kernel/btf/vmlinux");
    Tracefs {
        caps: Debian.caps(),
        btf: Some(std::sync::Arc::new(btf)),
        functions: None,
    }
}

/// sched_process_fork's parent (the task forking): its effective and
/// inheritable capability sets, then its pid.
fn fork_caps(filters: &str) -> String {
    format!(
        "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: caps
spec:
  tracepoints:
  - subsystem: sched
    event: sched_process_fork
    raw: true
    args:
    - index: 0
      type: cap_effective
      resolve: cred.cap_effective
    - index: 0
      type: cap_inheritable
      resolve: cred.cap_inheritable
    - index: 0
      type: int
      resolve: tgid
    selectors:
    - matchArgs:
{filters}"
    )
}

#[test]
fn capabilities_gained_compares_the_two_sets_args_names() {
    let filters = "      - args: [0, 1]\n        operator: CapabilitiesGained\n";
    let c = compile_on(&fork_caps(filters), &host()).expect("compiles");
    let hook = &c.hooks[0];
    let filter = &hook.conf.selectors[0].arg_filters[0];
    assert_eq!(
        (filter.op, filter.arg, filter.values[0]),
        (op::CAPS_GAINED, 0, 1)
    );
    // Each set is the 8 bytes of the kernel_cap_t embedded in the cred.
    let cred = crate::kernel_info::btf::KernelBtf::from_sys_fs()
        .expect("btf")
        .member_offset("cred", &["cap_effective"])
        .expect("cap_effective");
    let field = &hook.conf.args[0].field;
    assert_eq!(
        (field.n_loads, field.size),
        (1, 8),
        "task.cred, then the set"
    );
    assert_eq!(u32::from(field.offset), cred.offset);

    let refused = [
        (
            "      - args: [0]\n        operator: CapabilitiesGained\n",
            "takes two args positions",
        ),
        (
            "      - args: [0, 2]\n        operator: CapabilitiesGained\n",
            "position 2 is of type int",
        ),
        (
            "      - index: 0\n        operator: CapabilitiesGained\n",
            "name them with `args: [NEW, OLD]`",
        ),
        (
            "      - args: [0, 1]\n        operator: CapabilitiesGained\n        values: [CAP_CHOWN]\n",
            "takes no values",
        ),
    ];
    for (filters, want) in refused {
        let err = compile_on(&fork_caps(filters), &host()).expect_err(filters);
        assert!(err.to_string().contains(want), "{filters}: {err}");
    }
}

#[test]
fn args_positions_name_the_filtered_argument() {
    // `args: [2]` is the third entry; `index: 2` names the same one here
    // (tracepoints count positions), and both together are refused.
    let by_position = "      - args: [2]\n        operator: Equal\n        values: [\"1\"]\n";
    let c = compile_on(&fork_caps(by_position), &host()).expect("compiles");
    assert_eq!(c.hooks[0].conf.selectors[0].arg_filters[0].arg, 2);
    let both =
        "      - index: 1\n        args: [2]\n        operator: Equal\n        values: [\"1\"]\n";
    let err = compile_on(&fork_caps(both), &host()).expect_err("both");
    assert!(err.to_string().contains("give one of them"), "{err}");
    let two = "      - args: [1, 2]\n        operator: Equal\n        values: [\"1\"]\n";
    let err = compile_on(&fork_caps(two), &host()).expect_err("two");
    assert!(err.to_string().contains("args takes one position"), "{err}");

    // On a kernel function `index` names an entry by its own `index`,
    // `args` by its place in the list.
    let extra = "    args:\n    - index: 1\n      type: int\n    - index: 0\n      type: int\n    selectors:\n    - matchArgs:\n      - FILTER\n        operator: Equal\n        values: [\"7\"]\n";
    let filtered = |filter: &str| {
        let c = compile_on(
            &kprobe("security_file_permission", &extra.replace("FILTER", filter)),
            &Debian,
        )
        .expect("compiles");
        c.hooks[0].conf.selectors[0].arg_filters[0].arg
    };
    assert_eq!(filtered("index: 0"), 1);
    assert_eq!(filtered("args: [0]"), 0);
}

#[test]
fn capability_sets_take_masks_or_capability_names() {
    let names = "      - index: 0\n        operator: Mask\n        values: [\"CAP_CHOWN,cap_kill\", \"0x100\"]\n";
    let c = compile_on(&fork_caps(names), &host()).expect("compiles");
    let filter = &c.hooks[0].conf.selectors[0].arg_filters[0];
    assert_eq!(filter.values[..2], [1 | 1 << 5, 0x100]);
    let bad = "      - index: 0\n        operator: Mask\n        values: [\"CAP_CHOWN,nope\"]\n";
    let err = compile_on(&fork_caps(bad), &host()).expect_err("unknown name");
    assert!(
        err.to_string()
            .contains("capability names separated by commas"),
        "{err}"
    );
}

#[test]
fn capability_sets_are_read_through_their_pointer_in_kernel_memory() {
    let extra = "    args:\n    - index: 2\n      type: kernel_cap_t\n";
    let c = compile_on(&kprobe("security_capset", extra), &Debian).expect("compiles");
    let spec = &c.hooks[0].conf.args[0];
    assert_eq!(spec.kind, arg_kind::INT);
    assert_eq!(
        (
            spec.field.present,
            spec.field.n_loads,
            spec.field.offset,
            spec.field.size
        ),
        (1, 0, 0, 8)
    );
    assert_eq!(c.hooks[0].meta.args[0].0, "kernel_cap_t");
    let user =
        syscall_kprobe("sys_capset") + "    args:\n    - index: 1\n      type: cap_effective\n";
    let err = compile_yaml(&user).expect_err("user memory");
    assert!(err.to_string().contains("is a kernel structure"), "{err}");
}

/// returnCopy on a user function: the uprobe keeps the buffer's pointer,
/// the uretprobe reads as many bytes as rax says.
#[test]
fn return_copy_on_a_uprobe_is_read_by_the_uretprobe() {
    let yaml = "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: up
spec:
  uprobes:
  - path: /bin/true
    symbols: [fill]
    return: true
    args:
    - index: 0
      type: char_buf
      returnCopy: true
    returnArg:
      index: 0
      type: int
";
    let c = compile_on(yaml, &Debian).expect("compiles");
    let [entry, exit] = c.hooks.as_slice() else {
        panic!("two halves: {:?}", c.hooks.len());
    };
    assert_eq!(entry.conf.copy_arg, 1);
    assert_eq!(entry.conf.args[0].kind, arg_kind::INT, "the pointer");
    assert_eq!(entry.meta.args[0].0, "char_buf");
    assert_eq!(entry.meta.return_half, ReturnHalf::Entry { copy: Some(0) });
    let copy = &exit.conf.args[1];
    assert_eq!((exit.conf.n_args, copy.kind), (2, arg_kind::CHAR_BUF));
    assert_eq!(copy.size_from, tetragond_ebpf::size_from::RETURN_COPY);
    assert_eq!(copy.size_offset, exit.conf.args[0].offset, "rax");
    assert_eq!(exit.conf.max_data_arg, 0, "the first bytes only");
    // With maxData, the exit half posts the buffer whole; the entry half,
    // which reads its pointer only, posts none.
    let whole = compile_on(
        &yaml.replace(
            "returnCopy: true\n",
            "returnCopy: true\n      maxData: true\n",
        ),
        &Debian,
    )
    .expect("compiles");
    assert_eq!(whole.hooks[0].conf.max_data_arg, 0, "entry");
    assert_eq!(whole.hooks[1].conf.max_data_arg, 2, "exit: the copy, arg 1");
    // Read at the return, after matchArgs ran: a filter on it, by its
    // position as by its index, is refused.
    for filter in ["index: 0", "args: [0]"] {
        let filtered = format!(
            "{yaml}    selectors:\n    - matchArgs: [{{{filter}, operator: Prefix, values: [x]}}]\n"
        );
        let err = compile_on(&filtered, &Debian).expect_err(filter);
        assert!(
            err.to_string().contains("cannot be filtered"),
            "{filter}: {err}"
        );
    }
}

/// maxData marks the one argument whose buffer the kernel posts whole: a
/// char_buf of sizeArgIndex bytes (or an iov_iter); refused without a
/// size, on other types and on two args.
#[test]
fn max_data_marks_the_one_buffer_posted_whole() {
    let write = |extra: &str| {
        syscall_kprobe("sys_write")
            + "    args:\n    - index: 0\n      type: int\n    - index: 1\n      type: char_buf\n"
            + extra
    };
    let whole = "      sizeArgIndex: 3\n      maxData: true\n";
    let c = compile_yaml(&write(whole)).expect("compiles");
    assert_eq!(c.hooks[0].conf.max_data_arg, 2);
    let c = compile_yaml(&write("      sizeArgIndex: 3\n")).expect("compiles");
    assert_eq!(c.hooks[0].conf.max_data_arg, 0, "not asked for");
    let refusal = |yaml: &str| match policy::parse_policy(Path::new("t.yaml"), yaml) {
        Ok(tp) => compile(&tp, &Fixed).expect_err("refused").to_string(),
        Err(e) => e.to_string(),
    };
    let e = refusal(&write("      maxData: true\n"));
    assert!(
        e.contains("without sizeArgIndex its size is unknown"),
        "{e}"
    );
    let two = write(whole) + "    - index: 1\n      type: char_buf\n" + whole;
    assert!(refusal(&two).contains("more than one argument"));
    let int = syscall_kprobe("sys_write")
        + "    args:\n    - index: 0\n      type: int\n      maxData: true\n";
    assert!(refusal(&int).contains("not a int"), "{}", refusal(&int));
    // On a return hook the entry half, which reads it, posts it.
    let ret = write(whole).replace(
        "    args:\n",
        "    return: true\n    returnArg: {index: 0, type: int}\n    args:\n",
    );
    let c = compile_yaml(&ret).expect("a return hook");
    let [entry, exit] = c.hooks.as_slice() else {
        panic!("two halves: {:?}", c.hooks.len());
    };
    assert_eq!((entry.conf.max_data_arg, exit.conf.max_data_arg), (2, 0));
}

/// A USDT probe's arguments are read where its note puts them: the tiny
/// ELF of the fuzz seed has `tiny:probe` at file offset 0x1000 with
/// `-4@%edi 8@-8(%rbp) 8@%rsi 4@$5`.
#[test]
fn usdt_arguments_are_read_where_the_note_puts_them() {
    let dir = std::env::temp_dir().join(format!("usdt-compile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let binary = dir.join("tiny");
    std::fs::write(
        &binary,
        &include_bytes!("../../../fuzz/corpus/usdt/elf-tiny")[1..],
    )
    .expect("written");
    let policy = |name: &str, args: &str| {
        format!(
            "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: u
spec:
  usdts:
  - path: {}
    provider: tiny
    name: {name}
    args:
{args}",
            binary.display()
        )
    };
    let args = "    - {index: 0, type: int32}\n    - {index: 1, type: uint64}\n    - {index: 2, type: string}\n";
    let c = compile_on(&policy("probe", args), &Debian).expect("compiles");
    let [hook] = c.hooks.as_slice() else {
        panic!("one site: {:?}", c.hooks.len());
    };
    assert_eq!(
        hook.attach,
        Attach::Uprobe(UprobeTarget {
            binary: binary.display().to_string(),
            location: UprobeLocation::Offset(0x1000),
            ret: false,
            writes: false,
            regs: false,
            semaphore: 0,
        })
    );
    assert_eq!(c.sensors, ["generic_usdt"]);
    let [edi, rbp, rsi] = [&hook.conf.args[0], &hook.conf.args[1], &hook.conf.args[2]];
    assert_eq!(
        (edi.offset, edi.size, edi.signed),
        (112, 4, 1),
        "%edi, signed"
    );
    assert_eq!(
        (rbp.offset, rbp.size, rbp.field.present),
        (32, 8, 1),
        "%rbp's value"
    );
    assert_eq!(
        (rbp.field.user, rbp.field.size, rbp.field.offset as i16),
        (1, 8, -8),
        "8 bytes of user memory at -8(%rbp)"
    );
    assert_eq!(
        (rsi.offset, rsi.kind),
        (104, tetragond_ebpf::arg_kind::STRING)
    );
    // `4@$5`: the same value at every passage, as an integer only.
    let c = compile_on(&policy("probe", "    - {index: 3, type: int32}\n"), &Debian)
        .expect("a constant compiles");
    let five = &c.hooks[0].conf.args[0];
    assert_eq!(five.source, tetragond_ebpf::arg_source::CONSTANT);
    assert_eq!(five.constant_value(), 5);
    let text = compile_on(
        &policy("probe", "    - {index: 3, type: string}\n"),
        &Debian,
    )
    .expect_err("a constant is no string");
    assert!(text.to_string().contains("the constant 5"), "{text}");
    let absent = compile_on(&policy("other", ""), &Debian).expect_err("no such probe");
    assert!(
        absent.to_string().contains("no USDT probe tiny:other"),
        "{absent}"
    );
    let old = compile_on(&policy("probe", ""), &Fixed).expect_err("no cookies");
    assert!(old.to_string().contains("BPF cookies"), "{old}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A compile error in a matchData filter is placed at that filter, not
/// among the matchArgs it shares the kernel's arg filters with.
#[test]
fn a_compile_error_in_match_data_is_placed_at_its_filter() {
    let yaml = &unshare_with_data(concat!(
        "    - matchArgs:\n",
        "      - {index: 0, operator: Equal, values: [\"0\"]}\n",
        "      matchData:\n",
        "      - {index: 0, operator: Prefix, values: [\"x\"]}\n",
    ));
    let tp = policy::parse_policy(Path::new("d.yaml"), yaml).expect("parses");
    let e = compile_on(yaml, &host()).expect_err("Prefix on an integer");
    let placed = super::located(&e, &tp, Path::new("d.yaml"), yaml).to_string();
    let line = 1 + yaml
        .lines()
        .position(|l| l.contains("Prefix"))
        .expect("filter");
    assert!(
        placed.starts_with(&format!("d.yaml:{line}:9: ")),
        "{placed}"
    );
    assert!(
        placed.contains("matchData operator Prefix does not apply to integer args"),
        "{placed}"
    );
}

/// A syscall kprobe with two data values, the uid and the comm of the
/// current task, and `selectors`.
fn unshare_with_data(selectors: &str) -> String {
    format!(
        "apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: data
spec:
  kprobes:
  - call: sys_unshare
    syscall: true
    args:
    - index: 0
      type: int
    data:
    - index: 0
      type: auto
      source: current_task
      resolve: cred.uid.val
    - index: 0
      type: string
      source: current_task
      resolve: comm
    selectors:
{selectors}"
    )
}

/// A syscall kprobe's `data`: read from the current task after the args,
/// `matchData` filtering that slot, exported apart from the args.
#[test]
fn data_values_are_read_from_the_current_task_after_the_args() {
    let yaml = &unshare_with_data(concat!(
        "    - matchData:\n",
        "      - index: 1\n",
        "        operator: Equal\n",
        "        values: [testbin]\n",
    ));
    let c = compile_on(yaml, &host()).expect("compiles");
    let hook = &c.hooks[0];
    assert_eq!(hook.conf.n_args, 3);
    assert_eq!(hook.meta.data_from, Some(1));
    let uid = &hook.conf.args[1];
    assert_eq!(uid.source, tetragond_ebpf::arg_source::CURRENT_TASK);
    assert_eq!(
        (uid.field.n_loads, uid.field.size),
        (1, 4),
        "task.cred, then uid"
    );
    // `auto` became the type BTF declares (kuid_t's val: an unsigned int).
    assert_eq!(hook.meta.args[1].0, "uint32");
    let comm = &hook.conf.args[2];
    assert_eq!(comm.kind, tetragond_ebpf::arg_kind::STRING);
    let filter = &hook.conf.selectors[0].arg_filters[0];
    assert_eq!((filter.op, filter.arg), (op::STR_EQUAL, 2));
    // A data value filtered by a prefix gates the hook as an arg would.
    assert!(hook.prefix_gate().is_some_and(|g| g.reader.arg == 2));
}

#[test]
fn fentries_are_trampolines_only() {
    let with_btf = |caps| Kernel {
        caps,
        params: Some(("tcp_connect", 1)),
    };
    let fentries = |extra: &str| kprobe("tcp_connect", extra).replace("kprobes:", "fentries:");
    let c = compile_on(&fentries(""), &with_btf(Debian.caps())).expect("compiles");
    assert_eq!(
        c.hooks[0].attach.function().map(|f| f.family),
        Some(FunctionFamily::Fentry),
        "a kernel with kprobes still serves fentries by fentry"
    );
    let ret = "    return: true\n    returnArg:\n      type: int\n";
    let c = compile_on(&fentries(ret), &with_btf(Debian.caps())).expect("compiles");
    let families: Vec<_> = c
        .hooks
        .iter()
        .map(|h| h.attach.function().map(|f| f.family))
        .collect();
    assert_eq!(
        families,
        [Some(FunctionFamily::Fentry), Some(FunctionFamily::Fexit)]
    );
    let kprobes_only = HookCaps {
        trampolines: false,
        ..Debian.caps()
    };
    let err = compile_on(&fentries(""), &with_btf(kprobes_only)).expect_err("no trampolines");
    assert!(
        err.to_string()
            .starts_with("fentries[0] tcp_connect: fentries need BPF trampolines"),
        "{err}"
    );
    let err = compile_on(&fentries(ret).replace("tcp_connect", "tcp_close"), &Debian)
        .expect_err("no parameters in BTF");
    assert!(
        err.to_string()
            .contains("fexit needs the function's parameters"),
        "{err}"
    );
}

/// `auto` on an array of longs is Tetragon's const_buf: the array read
/// whole from the record; no filter can match it, and the type cannot be
/// given, as in Tetragon.
#[test]
fn an_array_of_longs_is_a_const_buf_read_in_place() {
    let with_args = |args: &str, selectors: &str| {
        policy_with(selectors).replace(
            "      label: id\n",
            &format!("      label: id\n    - index: 5\n{args}"),
        )
    };
    let c = compile_yaml(&with_args(
        "",
        "    - matchActions:\n      - action: Post\n",
    ))
    .expect("compiles");
    let hook = &c.hooks[0];
    let spec = hook.conf.args[1];
    assert_eq!(spec.kind, arg_kind::CONST_BUF);
    assert_eq!((spec.offset, spec.size_offset), (16, 48));
    assert_eq!(spec.size_from, tetragond_ebpf::size_from::CONSTANT);
    assert_eq!(hook.meta.args[1].0, "const_buf");

    let matched =
        "    - matchArgs:\n      - index: 1\n        operator: Equal\n        values: [\"1\"]\n";
    let err = compile_yaml(&with_args("", matched)).expect_err("no filter on an array");
    assert!(
        err.to_string()
            .contains("type const_buf: its fields cannot be matched"),
        "{err}"
    );

    let err = compile_yaml(&with_args(
        "      type: const_buf\n",
        "    - matchActions:\n      - action: Post\n",
    ))
    .expect_err("given");
    assert!(
        err.to_string()
            .contains("type const_buf cannot be given, as in Tetragon"),
        "{err}"
    );
}

/// A compile error in a filter a selector took from a macro is placed in
/// the macro, and names it; one in the selector's own filter stays there.
#[test]
fn a_compile_error_in_a_macro_filter_is_placed_in_the_macro() {
    let filter = "      - {index: 1, operator: Equal, values: [\"1\"]}\n";
    let with = |selectors: &str| {
        policy_with(selectors)
            .replace(
                "spec:\n",
                &format!("spec:\n  selectorsMacros:\n    far:\n      matchArgs:\n{filter}"),
            )
            .replace("      label: id\n", "      label: id\n    - index: 5\n")
    };
    let placed = |yaml: &str| {
        let tp = policy::parse_policy(Path::new("t.yaml"), yaml).expect("parses");
        let e = compile(&tp, &Fixed).expect_err("no filter on an array");
        super::located(&e, &tp, Path::new("t.yaml"), yaml).to_string()
    };
    // The last line that is `text` (a selector follows the macros).
    let line_of = |yaml: &str, text: &str| {
        yaml.lines()
            .collect::<Vec<_>>()
            .iter()
            .rposition(|l| *l == text.trim_end())
            .map(|n| n + 1)
    };
    let yaml = with("    - macros: [far]\n");
    let in_macro = placed(&yaml);
    let at = line_of(&yaml, filter).expect("the macro's filter");
    assert!(
        in_macro.starts_with(&format!("t.yaml:{at}:9: in macro \"far\": ")),
        "{in_macro}"
    );
    assert!(in_macro.contains("type const_buf"), "{in_macro}");
    let yaml = with(&format!("    - matchArgs:\n{filter}"));
    let in_selector = placed(&yaml);
    let at = line_of(&yaml, filter).expect("the selector's filter");
    assert!(
        in_selector.starts_with(&format!("t.yaml:{at}:9: ")),
        "{in_selector}"
    );
    assert!(!in_selector.contains("macro"), "{in_selector}");
}
