//! `cargo xtask prepare`, `cargo xtask ci`, `cargo xtask embed` and `cargo xtask no-std`: the
//! README's commands.
//!
//! `prepare` fetches the pinned models and corpora and converts the blobs the tests use into
//! the cache (reusing converted blobs whose inputs did not change, [`crate::blobs`]). `ci` is
//! what `.ci/run` runs, as [`STEPS`] in order: generated files are current, formatting,
//! `prepare`, clippy, every test in the optimised `test-release` profile, the no_std proof
//! (the runtime built for bare-metal Cortex-M and RISC-V targets with Debian's rustc and
//! `-Zbuild-std`), the SIMD backends under qemu (`cargo xtask cross`) and the firmware
//! examples on emulated boards (`cargo xtask firmware --report`). Each step installs the
//! tools it needs ([`crate::toolchain`]); each prints its wall time as it ends, and a table
//! of every step's time and status ends the run, failed or not.
//! `embed` is the main job: MiniLM sentence embeddings of stdin, converting on first use.

use crate::debian_cargo::DebianCargo;
use crate::exec::{WORKSPACE_TEST, cargo, run};
use crate::toolchain::{Tool, ensure};
use anyhow::{Context, Result, bail};
use core::fmt::Write as _;
use core::time::Duration;
use std::path::Path;
use std::time::Instant;

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
    ("no-std", no_std),
    ("cross (qemu-user)", crate::cross::cross),
    ("firmware --report (qemu-system)", |root| {
        crate::firmware::run(
            root,
            &crate::firmware::FirmwareArgs {
                report: true,
                keep_vocab: None,
            },
        )
    }),
];

/// How a step of `ci` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Passed.
    Ok,
    /// Failed (the run stops).
    Failed,
    /// Not run: an earlier step failed.
    NotRun,
}

/// `cargo xtask ci`.
pub fn ci(root: &Path) -> Result<()> {
    let start = Instant::now();
    let mut rows: Vec<(&str, Duration, StepStatus)> = Vec::new();
    let mut failure = None;
    for (name, step) in STEPS {
        if failure.is_some() {
            rows.push((name, Duration::ZERO, StepStatus::NotRun));
            continue;
        }
        eprintln!("=== step: {name}");
        let t = Instant::now();
        let result = step(root);
        let took = t.elapsed();
        let status = if result.is_ok() {
            StepStatus::Ok
        } else {
            StepStatus::Failed
        };
        eprintln!(
            "=== step {name}: {} in {}",
            if result.is_ok() { "ok" } else { "FAILED" },
            clock(took)
        );
        rows.push((name, took, status));
        if let Err(e) = result {
            failure = Some(e.context(format!("ci step `{name}` failed")));
        }
    }
    eprint!("{}", step_table(&rows, start.elapsed()));
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `83.4 s`, `12 min 05 s`.
fn clock(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = d.as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// The table `ci` prints at the end: every step with its time and status, and the total.
pub fn step_table(rows: &[(&str, Duration, StepStatus)], total: Duration) -> String {
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(5);
    let mut out = format!("\n{:<width$}  {:>12}  status\n", "step", "time");
    for (name, took, status) in rows {
        let (time, status) = match status {
            StepStatus::Ok => (clock(*took), "ok"),
            StepStatus::Failed => (clock(*took), "FAILED"),
            StepStatus::NotRun => ("-".to_string(), "not run"),
        };
        let _ = writeln!(out, "{name:<width$}  {time:>12}  {status}");
    }
    let verdict = if rows.iter().all(|r| r.2 == StepStatus::Ok) {
        "ci passed"
    } else {
        "ci FAILED"
    };
    let _ = writeln!(out, "{:<width$}  {:>12}  {verdict}", "total", clock(total));
    out
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
    fn step_table_lists_every_step_and_the_total() {
        let rows = [
            ("fmt", Duration::from_millis(1500), StepStatus::Ok),
            (
                "cargo test (test-release)",
                Duration::from_secs(725),
                StepStatus::Failed,
            ),
            ("cross", Duration::ZERO, StepStatus::NotRun),
        ];
        let table = step_table(&rows, Duration::from_secs(727));
        let want = "\n\
            step                               time  status\n\
            fmt                               1.5 s  ok\n\
            cargo test (test-release)   12 min 05 s  FAILED\n\
            cross                                 -  not run\n\
            total                       12 min 07 s  ci FAILED\n";
        assert_eq!(table, want);
        let ok = step_table(&rows[..1], Duration::from_secs(2));
        assert!(ok.ends_with("total         2.0 s  ci passed\n"), "{ok}");
    }

    #[test]
    fn every_step_has_a_distinct_name() {
        let mut names: Vec<&str> = STEPS.iter().map(|s| s.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), STEPS.len());
    }
}
