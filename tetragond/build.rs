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
        // BTF (func_info) is required by the verifier for bpf_loop callbacks.
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
    fs::copy(&built, &object).with_context(|| format!("copying {}", built.display()))?;
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
