//! Builds the kernel programs (`tetragond-ebpf`, feature `bpf`) for
//! `bpfel-unknown-none` with the pinned nightly and bpf-linker, and puts the
//! object in OUT_DIR for `include_bytes!`.

use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../tetragond-ebpf");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let object = out_dir.join("tetragond.bpf.o");
    println!("cargo::rerun-if-changed={}", ebpf_dir.join("src").display());
    println!(
        "cargo::rerun-if-changed={}",
        ebpf_dir.join("Cargo.toml").display()
    );
    println!("cargo::rerun-if-env-changed=TETRAGOND_SKIP_BPF");

    // Only for helpers that unit-test pure user-space code: the daemon refuses
    // to start with the empty object this leaves.
    if env::var_os("TETRAGOND_SKIP_BPF").is_some_and(|v| v == "1") {
        println!("cargo::warning=TETRAGOND_SKIP_BPF=1: no kernel programs built");
        fs::write(&object, b"")?;
        return Ok(());
    }

    let nightly = pinned_nightly(&manifest_dir.join("../scripts/toolchain.env"))?;
    // A target dir of its own: the nightly's artifacts must not mix with
    // the stable build's, and cargo's lock on the outer dir is held by us.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("../target"))
        .join("bpf");
    let status = Command::new("rustup")
        .args([
            "run",
            &nightly,
            "cargo",
            "build",
            "--release",
            "--features",
            "bpf",
        ])
        .args([
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--bin",
            "tetragond",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&ebpf_dir)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        // BTF (func_info) is required by the verifier for the global
        // functions the loops call.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        )
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTUP_TOOLCHAIN")
        .status()
        .context("running cargo for the BPF target (is rustup installed? run scripts/setup)")?;
    if !status.success() {
        bail!("building tetragond-ebpf failed; run scripts/setup to install the nightly and bpf-linker");
    }
    let built = target_dir.join("bpfel-unknown-none/release/tetragond");
    let mut bytes = fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    make_memory_builtins_static(&mut bytes)?;
    fs::write(&object, bytes).with_context(|| format!("writing {}", object.display()))?;
    Ok(())
}

/// LLVM calls `memset`/`memcpy` for some struct initialisations, and the
/// linker exports them, so their BTF says global. The verifier checks a
/// global function on its own with only its declared arguments, and Linux
/// 5.10 refuses any pointer argument ("Unrecognized arg#0 type PTR"); a
/// static one is checked inline with the caller's pointers, on every
/// kernel. bpf-linker has no switch for this (`--disable-memory-builtins`
/// leaves them exported by rustc), so the linkage is rewritten here.
fn make_memory_builtins_static(elf: &mut [u8]) -> Result<()> {
    use object::{Object, ObjectSection};
    let (start, size) = {
        let file = object::File::parse(&*elf).context("parsing the BPF object")?;
        let section = file
            .section_by_name(".BTF")
            .context("the BPF object has no .BTF section")?;
        section.file_range().context(".BTF holds no file data")?
    };
    let btf = &mut elf[start as usize..(start + size) as usize];
    let u32_at = |b: &[u8], at: usize| -> Result<u32> {
        b.get(at..at + 4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .context("truncated BTF")
    };
    if btf.get(0..2) != Some(&[0x9f, 0xeb]) {
        bail!(".BTF is not little-endian BTF");
    }
    let hdr_len = u32_at(btf, 4)? as usize;
    let (type_off, type_len) = (u32_at(btf, 8)? as usize, u32_at(btf, 12)? as usize);
    let str_off = u32_at(btf, 16)? as usize;
    let types = hdr_len + type_off;
    let strings = hdr_len + str_off;
    let mut at = types;
    while at < types + type_len {
        let (name_off, info) = (u32_at(btf, at)? as usize, u32_at(btf, at + 4)?);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        const FUNC: u32 = 12;
        if kind == FUNC && vlen == 1 {
            let name = btf
                .get(strings + name_off..)
                .and_then(|n| n.split(|&c| c == 0).next())
                .unwrap_or_default();
            if matches!(
                name,
                b"memset" | b"memcpy" | b"memmove" | b"memcmp" | b"bcmp"
            ) {
                btf[at + 4..at + 8].copy_from_slice(&(info & !0xffff).to_le_bytes());
            }
        }
        // The size of each kind's data after the 12-byte header (linux/btf.h).
        at += 12
            + match kind {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                _ => 0,
            };
    }
    Ok(())
}

fn pinned_nightly(env_file: &std::path::Path) -> Result<String> {
    let text =
        fs::read_to_string(env_file).with_context(|| format!("reading {}", env_file.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("NIGHTLY="))
        .map(|v| v.trim().to_string())
        .context("NIGHTLY= missing in scripts/toolchain.env")
}
