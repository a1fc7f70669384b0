//! Cortex-M bare-metal builds and runs for `cross` (the kernel conformance program of
//! `targets/cortex-m-kernels/conformance` on every Cortex-M configuration) and `icount`
//! (firmware builds counted under `qemu -icount`).
//!
//! Builds are [`crate::debian_cargo`]'s with `-Zbuild-std=core` and the rustup toolchain's
//! `rust-lld`, one target directory per configuration under the cache's
//! `cross-target/cross/` (a different `target-feature` rebuilds core); the rustflags given
//! here replace a project's `.cargo/config.toml` ones, so they always carry cortex-m-rt's
//! `-Tlink.x`. Runs are `qemu-system-arm` with semihosting, bounded by `timeout`.

use crate::debian_cargo::DebianCargo;
use anyhow::{Context, Result, bail};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// A Cortex-M board as qemu 10 models it.
#[derive(Clone, Copy)]
pub struct Board {
    /// `-machine`.
    pub machine: &'static str,
    /// `-cpu` (boards with one fixed CPU take none).
    pub cpu: Option<&'static str>,
    /// The memory map the conformance program links for (`conformance/memory/<map>.x`).
    pub map: &'static str,
}

pub const AN386_M4: Board = Board {
    machine: "mps2-an386",
    cpu: Some("cortex-m4"),
    map: "mps2",
};
pub const AN500_M7: Board = Board {
    machine: "mps2-an500",
    cpu: Some("cortex-m7"),
    map: "mps2",
};
pub const AN505_M33: Board = Board {
    machine: "mps2-an505",
    cpu: None,
    map: "an505",
};
pub const AN547_M55: Board = Board {
    machine: "mps3-an547",
    cpu: None,
    map: "an547",
};

/// One Cortex-M build of the kernels: target, code generation and Cargo feature.
#[derive(Clone, Copy)]
pub struct Config {
    /// Directory under the cache's `cross-target/cross/` and label.
    pub dir: &'static str,
    pub triple: &'static str,
    /// `-C target-feature=...` (without cortex-m-rt's link argument).
    pub rustflags: &'static str,
    /// The kernels crate's feature (`dsp`, `mve`).
    pub feature: &'static str,
    /// The backend name the build must report.
    pub backend: &'static str,
    /// The boards it runs on (same memory map).
    pub boards: &'static [Board],
    /// Whether `cargo xtask ci` runs it (the others, with `cross --all`, compile the same
    /// kernel code for another ABI or architecture version).
    pub in_ci: bool,
}

/// Every Cortex-M configuration of the conformance suite.
pub const CONFORMANCE: [Config; 4] = [
    Config {
        dir: "thumbv7em-dsp",
        triple: "thumbv7em-none-eabihf",
        rustflags: "",
        feature: "dsp",
        backend: "cortex-m-dsp",
        boards: &[AN386_M4, AN500_M7],
        in_ci: true,
    },
    Config {
        dir: "thumbv7em-soft-dsp",
        triple: "thumbv7em-none-eabi",
        rustflags: "",
        feature: "dsp",
        backend: "cortex-m-dsp",
        boards: &[AN386_M4],
        in_ci: false,
    },
    Config {
        dir: "thumbv8m-dsp",
        triple: "thumbv8m.main-none-eabihf",
        rustflags: "-C target-feature=+dsp",
        feature: "dsp",
        backend: "cortex-m-dsp",
        boards: &[AN505_M33],
        in_ci: false,
    },
    Config {
        dir: "thumbv8m-mve",
        triple: "thumbv8m.main-none-eabihf",
        rustflags: "-C target-feature=+mve",
        feature: "mve",
        backend: "cortex-m-mve",
        boards: &[AN547_M55],
        in_ci: true,
    },
];

/// Seconds a qemu run may take.
pub const QEMU_TIMEOUT: u32 = 600;

/// What to build: a Cargo project under `targets/` for one triple.
pub struct Build<'a> {
    pub project: &'a str,
    /// Directory under the cache's `cross-target/cross/`.
    pub dir: &'a str,
    pub triple: &'a str,
    pub rustflags: &'a str,
    /// `--features` (empty: the project's defaults); `no_default` adds
    /// `--no-default-features`.
    pub features: &'a str,
    pub no_default: bool,
    /// Extra environment (`MICROBERT_BOARD`, `MICROBERT_FIRMWARE_BLOB`).
    pub env: &'a [(&'a str, &'a OsStr)],
    /// The binary.
    pub bin: &'a str,
}

/// Builds `b` and returns its ELF.
pub fn build(root: &Path, b: &Build<'_>) -> Result<PathBuf> {
    let t = Instant::now();
    let project = root.join("targets").join(b.project);
    let target_dir = crate::cache::cross_target_dir(root, &format!("cross/{}", b.dir));
    let rustflags = format!("{} -C link-arg=-Tlink.x", b.rustflags);
    let mut cmd = DebianCargo::new(&project, &target_dir)
        .rust_lld()?
        .target(b.triple, "LINKER", "rust-lld")
        .command();
    // `RUSTFLAGS` replaces every `rustflags` of the project's `.cargo/config.toml` (a
    // `CARGO_TARGET_<TRIPLE>_RUSTFLAGS` would be appended to the firmware projects' list: a
    // second `-Tlink.x`, and `+mve` in the Cortex-M55 scalar baseline).
    cmd.env("RUSTFLAGS", rustflags.trim());
    cmd.args([
        "build",
        "--release",
        "-Zbuild-std=core",
        "--target",
        b.triple,
    ]);
    if b.no_default {
        cmd.arg("--no-default-features");
    }
    if !b.features.is_empty() {
        cmd.args(["--features", b.features]);
    }
    for (k, v) in b.env {
        cmd.env(k, v);
    }
    let out = cmd.output().context("cannot start /usr/bin/cargo")?;
    if !out.status.success() {
        bail!(
            "building {} for {} ({}) failed:\n{}",
            b.project,
            b.triple,
            b.dir,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "==> {} {} {} built ({:.1?})",
        b.project,
        b.dir,
        b.features,
        t.elapsed()
    );
    Ok(target_dir.join(b.triple).join("release").join(b.bin))
}

/// Runs `elf` on `board` under qemu-system-arm with semihosting (and `-icount shift=0` when
/// `icount`); returns its standard output, or an error with everything it printed when it
/// exits with a failure.
pub fn run(board: &Board, elf: &Path, icount: bool) -> Result<String> {
    let mut cmd = Command::new("timeout");
    cmd.arg(QEMU_TIMEOUT.to_string())
        .args(["qemu-system-arm", "-machine", board.machine]);
    if let Some(cpu) = board.cpu {
        cmd.args(["-cpu", cpu]);
    }
    if icount {
        cmd.args(["-icount", "shift=0"]);
    }
    cmd.args([
        "-nographic",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
    ])
    .arg(elf)
    .stdin(Stdio::null());
    let out = cmd.output().context("cannot start qemu-system-arm")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{} under {} failed ({}):\n{stdout}\n{}",
            elf.display(),
            board.machine,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// The conformance program of `config`, built.
pub fn conformance_binary(root: &Path, config: &Config) -> Result<PathBuf> {
    let map = config.boards.first().map_or("mps2", |b| b.map);
    build(
        root,
        &Build {
            project: "cortex-m-kernels/conformance",
            dir: config.dir,
            triple: config.triple,
            rustflags: config.rustflags,
            features: config.feature,
            no_default: false,
            env: &[("MICROBERT_BOARD", OsStr::new(map))],
            bin: "microbert-cortex-m-conformance",
        },
    )
}

/// Builds and runs the conformance program of every configuration on each of its boards:
/// one line per run, and whether one failed (or reported another backend).
pub fn conformance(root: &Path, all: bool) -> Result<(Vec<String>, bool)> {
    let mut lines = Vec::new();
    let mut failed = false;
    for config in CONFORMANCE.iter().filter(|c| all || c.in_ci) {
        let elf = conformance_binary(root, config)?;
        for board in config.boards {
            let t = Instant::now();
            let result = run(board, &elf, false);
            let ok = matches!(&result, Ok(out) if out.lines().any(|l| l == "conformance: ok")
                && out.lines().any(|l| l == format!("backend: {}", config.backend)));
            failed |= !ok;
            let line = format!(
                "{:<5} {:<18} {:<34} backend {:<13} conformance ({:.1?})",
                if ok { "ok" } else { "FAIL" },
                format!(
                    "{} {}",
                    config.dir,
                    config.rustflags.trim_start_matches("-C ")
                ),
                format!("qemu-system-arm -M {}", board.machine),
                config.backend,
                t.elapsed()
            );
            println!("{line}");
            if !ok {
                match &result {
                    Ok(out) => eprintln!("--- output\n{out}"),
                    Err(e) => eprintln!("{e:#}"),
                }
            }
            lines.push(line);
        }
    }
    Ok((lines, failed))
}
