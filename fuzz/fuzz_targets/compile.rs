//! Parse, then compile what parses against kernels that need no tracefs:
//! one with no kprobes, trampolines or LSM (like the development VM) and
//! one with all of them (like Debian's), each kernel-function preference.
//! Compiling never panics: whatever it cannot serve is an error.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tetragond::{
    compile::{compile, FormatSource},
    error::CompileError,
    kernel_info::{
        tracefs::{parse_format, Format},
        HookCaps, KernelFunctions,
    },
};

const COMMON: &str = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
";

/// Formats as a 6.x x86-64 kernel's tracefs gives them.
fn format_text(subsystem: &str, event: &str) -> Option<String> {
    let body = match (subsystem, event) {
        ("raw_syscalls", "sys_enter") => "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;
"
        .to_string(),
        ("raw_syscalls", "sys_exit") => "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;
"
        .to_string(),
        ("syscalls", e) if e.starts_with("sys_enter_") => {
            let mut s = "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n".to_string();
            for i in 0..6 {
                s += &format!(
                    "\tfield:unsigned long arg{i};\toffset:{};\tsize:8;\tsigned:0;\n",
                    16 + 8 * i
                );
            }
            s
        }
        ("syscalls", e) if e.starts_with("sys_exit_") => {
            "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;
"
            .to_string()
        }
        // Non-integer fields too, for the type checks.
        ("sched", _) | ("signal", _) | ("task", _) => {
            "\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:16;\tsize:16;\tsigned:0;
\tfield:unsigned short prio;\toffset:32;\tsize:2;\tsigned:0;
\tfield:u8 flag;\toffset:34;\tsize:1;\tsigned:0;
\tfield:u64 value;\toffset:40;\tsize:8;\tsigned:0;
"
            .to_string()
        }
        _ => return None,
    };
    Some(format!(
        "name: {event}\nID: 443\nformat:\n{COMMON}\n{body}\nprint fmt: \"\"\n"
    ))
}

struct Kernel {
    caps: HookCaps,
    btf: bool,
}

impl FormatSource for Kernel {
    fn format(&self, subsystem: &str, event: &str) -> Result<Format, CompileError> {
        format_text(subsystem, event)
            .map(|text| parse_format(&text).expect("fixture format parses"))
            .ok_or_else(|| {
                CompileError::Unsupported(format!(
                    "tracepoint {subsystem}/{event} does not exist on this kernel"
                ))
            })
    }

    fn caps(&self) -> HookCaps {
        self.caps
    }

    fn function_params(&self, name: &str) -> Option<u32> {
        // Some functions known to BTF, with 0..=6 parameters.
        self.btf.then(|| name.len() as u32 % 7)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = tetragond::policy::parse_policy(Path::new("f.yaml"), text) else {
        return;
    };
    let bare = Kernel {
        caps: HookCaps::default(),
        btf: false,
    };
    let _ = compile(&policy, &bare);
    for kernel_functions in [
        KernelFunctions::Auto,
        KernelFunctions::Kprobe,
        KernelFunctions::Fentry,
    ] {
        let full = Kernel {
            caps: HookCaps {
                kprobes: true,
                trampolines: true,
                trampoline_cookies: kernel_functions == KernelFunctions::Auto,
                kernel_functions,
                lsm_programs: true,
                lsm_active: true,
                uprobe_cookies: true,
                write_user: true,
                uprobe_regs: true,
                ima_file_hash: true,
                xattr_discard_one: kernel_functions == KernelFunctions::Kprobe,
            },
            btf: true,
        };
        let _ = compile(&policy, &full);
    }
});
