//! Prints the byte offset of a struct member in the running kernel's BTF, for
//! tests/vm/hooks/guest.sh: on a kernel without `bpf_prog_aux.verified_insns`
//! (before Linux 5.16) the guest reads the verifier's per-program count
//! through an ftrace kprobe event, whose fetch arguments need the offsets of
//! `bpf_verifier_env.insn_processed` and the path to the program's name on
//! that very kernel. tetragond's own BTF reader finds them, so the guest
//! needs no bpftool or pahole.
//!
//!   btf-offset [--btf FILE] STRUCT MEMBER[.MEMBER]...
//!
//! Prints the offset in bytes (decimal) from the start of STRUCT; nested
//! members walk embedded structs and unions, as `KernelBtf::member_offset`.
//! Exits 1 when the kernel has no such struct or member (the guest uses that
//! to tell which kernels report `verified_insns`), 2 on bad usage or
//! unreadable BTF.

use std::{path::PathBuf, process::ExitCode};

use tetragond::kernel_info::btf::{BtfError, KernelBtf, VMLINUX_BTF_PATH};

fn usage() -> ExitCode {
    eprintln!("usage: btf-offset [--btf FILE] STRUCT MEMBER[.MEMBER]...");
    ExitCode::from(2)
}

/// The command line: the BTF file, the struct and the member path.
struct Args {
    btf: PathBuf,
    struct_name: String,
    member: String,
}

fn parse_args() -> Option<Args> {
    let mut args = std::env::args().skip(1);
    let mut btf = PathBuf::from(VMLINUX_BTF_PATH);
    let mut words = vec![];
    while let Some(a) = args.next() {
        match a.as_str() {
            "--btf" => btf = args.next()?.into(),
            _ if a.starts_with('-') => return None,
            _ => words.push(a),
        }
    }
    let [struct_name, member] = <[String; 2]>::try_from(words).ok()?;
    Some(Args {
        btf,
        struct_name,
        member,
    })
}

/// A struct or member the kernel lacks is an answer (exit 1), not an error
/// of the tool (exit 2).
fn is_absent(e: &BtfError) -> bool {
    matches!(e, BtfError::StructNotFound(_) | BtfError::NoMember { .. })
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        return usage();
    };
    let btf = match KernelBtf::from_file(&args.btf) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("btf-offset: {e}");
            return ExitCode::from(2);
        }
    };
    let path: Vec<&str> = args.member.split('.').collect();
    match btf.member_offset(&args.struct_name, &path) {
        Ok(m) => {
            println!("{}", m.offset);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("btf-offset: {e}");
            ExitCode::from(if is_absent(&e) { 1 } else { 2 })
        }
    }
}
