//! `cargo xtask cross` and `cargo xtask asm-report`: the Cortex-A (NEON, dotprod, i8mm)
//! and RISC-V (RVV 1.0) backends built with Debian's rustc and `-Zbuild-std`, run under
//! qemu-user; the Cortex-M backends (DSP, Helium) as bare-metal conformance programs under
//! qemu-system-arm ([`crate::cortex_m`]); and their GEMM inner loops (and the host AVX2
//! one's) measured from the disassembly.
//!
//! The builds are [`crate::debian_cargo`]'s (shared/toolchain.md): Debian's cargo and rustc
//! with `-Zbuild-std`, one target directory per configuration under the cache's
//! `cross-target/cross/` (a different `target-feature` rebuilds std, so configurations never
//! share one), linkers and runners set through `CARGO_TARGET_<TRIPLE>_*` variables. The
//! linkers, sysroots and qemu-user come from [`TOOLS`], installed when missing.
//!
//! Each qemu configuration runs the backend crate's tests: the kernel conformance suite
//! (bit-identical to `microbert::Scalar`) and an end-to-end MiniLM embedding of [`TEXTS`]
//! (at most [`MAX_TOKENS`] tokens each) whose pooled Q.16 hashes must equal the ones this
//! process computes on the host with `microbert::Scalar`.

use crate::debian_cargo::DebianCargo;
use crate::exec::{Kind, cargo_executable, output};
use crate::toolchain::{Tool, ensure};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Truncation of the end-to-end texts, `[CLS]` and `[SEP]` included.
const MAX_TOKENS: usize = 128;

/// The end-to-end texts: short and long (the last ones are truncated to [`MAX_TOKENS`]),
/// lengths off every tile size, punctuation, accents and CJK.
const TEXTS: [&str; 8] = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog.",
    "Integer-only inference runs BERT encoders on microcontrollers without a floating point unit.",
    "Ça coûte 12,50 € — naïve café déjà vu? 東京は日本の首都です。",
    "A sentence embedding maps text to a vector so that texts with similar meanings land \
     close together, which makes semantic search, clustering and deduplication possible \
     on devices that never talk to a server.",
    "Cortex-A cores with the dot-product extension compute four int8 products and their \
     sum per 32-bit lane in one instruction, while RISC-V vector cores widen and \
     accumulate over as many lanes as their vector registers hold.",
    "In the beginning the Universe was created. This has made a lot of people very angry \
     and been widely regarded as a bad move. Many were increasingly of the opinion that \
     they'd all made a big mistake in coming down from the trees in the first place. And \
     some said that even the trees had been a bad move, and that no one should ever have \
     left the oceans. Far out in the uncharted backwaters of the unfashionable end of the \
     western spiral arm of the Galaxy lies a small unregarded yellow sun.",
    "Attention streams by query rows: keys and values for the whole sequence are kept as \
     int8, and each query row's scores, softmax and weighted sum use scratch linear in the \
     sequence length, so memory grows with n and never with n squared. Positions beyond \
     the trained table are built from three rows of it, and everything stays in fixed \
     point from the embedding lookup to the pooled output vector, which is hashed and \
     compared bit for bit between the host and every emulated target in this test.",
];

/// One cross build of a backend crate.
struct Build {
    /// Directory under `target/cross/` and label.
    dir: &'static str,
    triple: &'static str,
    rustflags: &'static str,
    krate: &'static str,
    linker: &'static str,
    qemu: &'static str,
    sysroot: &'static str,
    objdump: &'static str,
}

const DOTPROD: Build = Build {
    dir: "aarch64-dotprod",
    triple: "aarch64-unknown-linux-gnu",
    rustflags: "-C target-feature=+dotprod",
    krate: "microbert-cortex-a",
    linker: "aarch64-linux-gnu-gcc",
    qemu: "qemu-aarch64",
    sysroot: "/usr/aarch64-linux-gnu",
    objdump: "aarch64-linux-gnu-objdump",
};
const NEON: Build = Build {
    dir: "aarch64",
    rustflags: "",
    ..DOTPROD
};
/// Armv8.6-A: `smmla` on prepared weights (and `sdot` elsewhere).
const I8MM: Build = Build {
    dir: "aarch64-i8mm",
    rustflags: "-C target-feature=+dotprod,+i8mm",
    ..DOTPROD
};
const RVV: Build = Build {
    dir: "riscv64-v",
    triple: "riscv64gc-unknown-linux-gnu",
    rustflags: "-C target-feature=+v",
    krate: "microbert-riscv",
    linker: "riscv64-linux-gnu-gcc",
    qemu: "qemu-riscv64",
    sysroot: "/usr/riscv64-linux-gnu",
    objdump: "riscv64-linux-gnu-objdump",
};

/// The qemu configurations: a build, the `-cpu` it runs on, and whether `cargo xtask ci`
/// runs it (the others only with `cross --all`: their code is what a CI configuration
/// already runs, at another vector length).
const RUNS: [(&Build, &str, bool); 5] = [
    (&I8MM, "max", true),
    (&DOTPROD, "max", true),
    (&NEON, "cortex-a53", true),
    (&RVV, "rv64,v=true,vlen=128", true),
    (&RVV, "rv64,v=true,vlen=256", false),
];

/// Bare-metal builds (library only: no linker needed) proving the crates stay `no_std`,
/// and whether `cargo xtask ci` builds it (the i8mm build compiles the dotprod code too).
const BARE_METAL: [(&str, &str, &str, &str, bool); 3] = [
    (
        "aarch64-none",
        "aarch64-unknown-none",
        "",
        "microbert-cortex-a",
        true,
    ),
    (
        "aarch64-none-dotprod",
        "aarch64-unknown-none",
        "-C target-feature=+dotprod",
        "microbert-cortex-a",
        false,
    ),
    (
        "aarch64-none-i8mm",
        "aarch64-unknown-none",
        "-C target-feature=+dotprod,+i8mm",
        "microbert-cortex-a",
        true,
    ),
];

/// The tools of `cross` (besides [`crate::debian_cargo::TOOLS`]).
const TOOLS: [Tool; 9] = [
    Tool::Aarch64Gcc,
    Tool::Aarch64Libc,
    Tool::Riscv64Gcc,
    Tool::Riscv64Libc,
    Tool::QemuAarch64,
    Tool::QemuRiscv64,
    Tool::RustLld,
    Tool::QemuSystemArm,
    Tool::Timeout,
];

/// The disassemblers `asm-report` adds.
const ASM_TOOLS: [Tool; 4] = [
    Tool::Objdump,
    Tool::Aarch64Objdump,
    Tool::Riscv64Objdump,
    Tool::ArmObjdump,
];

/// Installs (when missing) and checks the tools of the cross builds plus `extra`.
fn ensure_toolchain(extra: &[Tool]) -> Result<()> {
    let tools: Vec<Tool> = crate::debian_cargo::TOOLS
        .iter()
        .chain(&TOOLS)
        .chain(extra)
        .copied()
        .collect();
    ensure(&tools)
}

/// `cargo xtask cross [--all]`: the configurations `cargo xtask ci` runs, or every one.
pub fn cross(root: &Path, all: bool) -> Result<()> {
    let start = Instant::now();
    ensure_toolchain(&[])?;
    let blob = crate::blobs::blob("minilm")?;
    let texts = root.join("target/cross/texts.txt");
    std::fs::create_dir_all(texts.parent().unwrap_or(root))?;
    std::fs::write(&texts, TEXTS.join("\n") + "\n")?;
    let expect = host_hashes(&blob)?;
    eprintln!("==> host scalar hashes: {expect}");

    for (dir, triple, rustflags, krate, _) in BARE_METAL.iter().filter(|b| all || b.4) {
        let t = Instant::now();
        let mut cmd = debian_cargo(root, dir, triple, rustflags, "");
        cmd.args([
            "build",
            "--release",
            "-Zbuild-std=core",
            "--target",
            triple,
            "-p",
            krate,
        ]);
        let out = output(&mut cmd)?;
        if !out.status.success() {
            bail!(
                "bare-metal build {dir} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        eprintln!(
            "==> {krate} builds for {triple} {rustflags} ({:.0?})",
            t.elapsed()
        );
    }

    let mut lines = Vec::new();
    let mut failed = false;
    for &(build, cpu, _) in RUNS.iter().filter(|r| all || r.2) {
        let t = Instant::now();
        let runner = format!("{} -cpu {cpu} -L {}", build.qemu, build.sysroot);
        let mut cmd = debian_cargo(root, build.dir, build.triple, build.rustflags, build.linker);
        cmd.env(
            crate::debian_cargo::target_var(build.triple, "RUNNER"),
            &runner,
        )
        .env("MICROBERT_BLOB", &blob)
        .env("MICROBERT_TEXTS", &texts)
        .env("MICROBERT_EXPECT", &expect)
        .env("MICROBERT_MAX_TOKENS", MAX_TOKENS.to_string())
        .args(["test", "-Zbuild-std", "--release", "--target", build.triple])
        .args(["-p", build.krate, "--", "--nocapture"]);
        let out = output(&mut cmd)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = stdout
            .lines()
            .find(|l| l.contains("texts match the host scalar hashes"))
            .unwrap_or("minilm: no result line")
            .trim()
            .to_string();
        let backend = stdout
            .lines()
            .find_map(|l| l.strip_prefix("backend: "))
            .unwrap_or("?")
            .to_string();
        let ok = out.status.success();
        failed |= !ok;
        let line = format!(
            "{:<5} {:<18} {:<34} backend {backend:<13} conformance + {summary} ({:.1?})",
            if ok { "ok" } else { "FAIL" },
            format!(
                "{} {}",
                build.dir,
                build.rustflags.trim_start_matches("-C ")
            ),
            format!("{} -cpu {cpu}", build.qemu),
            t.elapsed()
        );
        println!("{line}");
        if !ok {
            eprintln!(
                "--- stdout\n{stdout}\n--- stderr\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        lines.push(line);
    }
    let (cortex_m, cortex_m_failed) = crate::cortex_m::conformance(root, all)?;
    failed |= cortex_m_failed;
    lines.extend(cortex_m);
    println!(
        "cross: {} configurations in {:.0?}",
        lines.len(),
        start.elapsed()
    );
    if failed {
        bail!("a cross configuration failed (output above)");
    }
    Ok(())
}

/// `cargo xtask asm-report`: builds the backends' test binaries (reusing `cross`'s target
/// directories), disassembles the GEMM micro-kernels and prints, for each inner loop
/// (a backward branch with no other loop inside), its instructions per multiply-accumulate.
pub fn asm_report(root: &Path) -> Result<()> {
    ensure_toolchain(&ASM_TOOLS)?;
    let dsp = &crate::cortex_m::CONFORMANCE[0];
    let mve = &crate::cortex_m::CONFORMANCE[3];
    let kernels: [(Binary, &str, &str, u32); 11] = [
        (
            Binary::User(&I8MM),
            "kernel_8x8",
            "NEON i8mm 8x8 (prepared)",
            128,
        ),
        (
            Binary::User(&DOTPROD),
            "kernel_8x4",
            "NEON dotprod 8x4",
            128,
        ),
        (
            Binary::User(&DOTPROD),
            "kernel_4x4",
            "NEON dotprod 4x4 (last rows)",
            128,
        ),
        (Binary::User(&NEON), "tile_4x4", "NEON plain 4x4", 128),
        (Binary::User(&RVV), "tile_2x2", "RVV 2x2", 128),
        (Binary::User(&RVV), "tile_2x2", "RVV 2x2", 256),
        (
            Binary::CortexM(dsp),
            "dot_4x1",
            "Cortex-M DSP 4x1 (SMLAD)",
            0,
        ),
        (
            Binary::CortexM(dsp),
            "dot_4xn",
            "Cortex-M DSP 4xN (SMLAD, panel)",
            0,
        ),
        (Binary::CortexM(mve), "tile_i8_3x2", "Helium 3x2 int8", 0),
        (
            Binary::CortexM(mve),
            "tile_i16_3x2",
            "Helium 3x2 int16 x int8",
            0,
        ),
        (
            Binary::CortexM(mve),
            "tile_u16_3x2",
            "Helium 3x2 u16 x u8 (P.V)",
            0,
        ),
    ];
    println!(
        "{:<30} {:<8} {:>6} {:>6} {:>10}  loop body",
        "kernel", "VLEN", "insns", "MACs", "insns/MAC"
    );
    for (binary, symbol, label, vlen) in kernels {
        let (exe, text) = disassemble(root, &binary)?;
        let Some(func) = function(&text, symbol) else {
            bail!("no function containing `{symbol}` in {}", exe.display());
        };
        let loops = inner_loops(&func);
        if loops.is_empty() {
            bail!("`{symbol}`: no backward branch found");
        }
        for body in loops {
            let macs = macs(body, vlen);
            if macs == 0 {
                continue;
            }
            let vl = match binary {
                Binary::User(b) if b.triple.starts_with("riscv") => vlen.to_string(),
                _ => "-".to_string(),
            };
            println!(
                "{label:<30} {vl:<8} {:>6} {macs:>6} {:>10.4}  {}",
                body.len(),
                body.len() as f64 / macs as f64,
                mix(body)
            );
        }
    }
    // The host's AVX2 GEMM: one loop per tile height (rows = `vpmaddwd` / `vpmovsxbw`: each
    // pair of depths widens two weight vectors and multiplies each by every row; the
    // compiler unrolls some loops by two pairs); 6 rows is the main tile.
    let exe = host_test_binary(root)?;
    let out = output(
        Command::new("objdump")
            .args(["-d", "--no-show-raw-insn"])
            .arg(&exe),
    )?;
    if !out.status.success() {
        bail!("objdump failed on {}", exe.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(func) = function(&text, "gemm_pairs") else {
        bail!("no function containing `gemm_pairs` in {}", exe.display());
    };
    let mut loops: Vec<_> = inner_loops(&func)
        .into_iter()
        .map(|body| (macs(body, 0), body))
        .filter(|(m, _)| *m > 0)
        .collect();
    loops.sort_by_key(|(m, _)| core::cmp::Reverse(*m));
    for (macs, body) in loops {
        println!(
            "{:<30} {:<8} {:>6} {macs:>6} {:>10.4}  {}",
            format!(
                "AVX2 packed {}x16",
                count(body, "vpmaddwd") / count(body, "vpmovsxbw").max(1)
            ),
            "-",
            body.len(),
            body.len() as f64 / f64::from(macs),
            mix(body)
        );
    }
    Ok(())
}

/// Where an `asm-report` kernel is disassembled from.
enum Binary {
    /// A qemu-user build's conformance test binary.
    User(&'static Build),
    /// A Cortex-M configuration's bare-metal conformance program.
    CortexM(&'static crate::cortex_m::Config),
}

/// Builds (if needed) and disassembles `binary`: the ELF and the objdump text.
fn disassemble(root: &Path, binary: &Binary) -> Result<(PathBuf, String)> {
    let (exe, mut cmd) = match binary {
        Binary::User(build) => {
            let mut exe = test_binary(root, build)?;
            if build.triple.starts_with("riscv") {
                exe = strip_isa_mapping_symbols(root, &exe)?;
            }
            (exe, Command::new(build.objdump))
        }
        Binary::CortexM(config) => {
            let exe = crate::cortex_m::conformance_binary(root, config)?;
            let mut cmd = Command::new("arm-none-eabi-objdump");
            // Armv8.1-M decodes Helium (and every Armv7E-M instruction).
            cmd.args(["-m", "armv8.1-m.main"]);
            (exe, cmd)
        }
    };
    let out = output(cmd.arg("-d").arg("--no-show-raw-insn").arg(&exe))?;
    if !out.status.success() {
        bail!("{:?} failed on {}", cmd.get_program(), exe.display());
    }
    Ok((exe, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// Instructions of `body` with this mnemonic.
fn count(body: &[Insn], mnemonic: &str) -> usize {
    body.iter().filter(|i| i.mnemonic == mnemonic).count()
}

/// The host backend's conformance test binary (x86-64, `release` profile: the code the
/// benchmark and the CLI run; `test-release` adds overflow checks to the loop).
fn host_test_binary(root: &Path) -> Result<PathBuf> {
    cargo_executable(
        crate::exec::cargo().current_dir(root).args([
            "test",
            "--release",
            "--no-run",
            "-p",
            "microbert-host",
            "--test",
            "conformance",
        ]),
        "conformance",
        Kind::Test,
    )
}

/// A Debian-cargo command for one configuration: its own target directory, its
/// `RUSTFLAGS`, and its linker (`""`: none, a library build).
fn debian_cargo(root: &Path, dir: &str, triple: &str, rustflags: &str, linker: &str) -> Command {
    let target_dir = crate::cache::cross_target_dir(root, &format!("cross/{dir}"));
    let mut cargo = DebianCargo::new(root, &target_dir).target(triple, "RUSTFLAGS", rustflags);
    if !linker.is_empty() {
        cargo = cargo.target(triple, "LINKER", linker);
    }
    cargo.command()
}

/// The pooled-vector hashes of [`TEXTS`] with `microbert::Scalar` on the host, as the
/// `MICROBERT_EXPECT` value (hex, comma-separated).
fn host_hashes(blob: &Path) -> Result<String> {
    let bytes = std::fs::read(blob).with_context(|| format!("reading {}", blob.display()))?;
    let model = microbert::parse(&bytes).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let tokenizer = microbert::Tokenizer::new(&model);
    let encoder = microbert::Encoder::new(&model, microbert::Scalar);
    let mut hashes = Vec::new();
    for text in TEXTS {
        let mut ids = [0u32; MAX_TOKENS];
        let enc = tokenizer
            .encode(text, &mut ids)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut arena = vec![0u8; microbert::scratch_bytes(&model, enc.len)];
        let mut pooled = vec![0i32; model.config.hidden_size as usize];
        encoder
            .embed(&ids[..enc.len], &mut arena, &mut pooled)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        hashes.push(format!("{:016x}", microbert::output::hash(&pooled)));
    }
    Ok(hashes.join(","))
}

/// Builds (if needed) the backend's `conformance` test binary and returns its path.
fn test_binary(root: &Path, build: &Build) -> Result<PathBuf> {
    let mut cmd = debian_cargo(root, build.dir, build.triple, build.rustflags, build.linker);
    cmd.args(["test", "-Zbuild-std", "--release", "--no-run"])
        .args([
            "--target",
            build.triple,
            "-p",
            build.krate,
            "--test",
            "conformance",
        ]);
    cargo_executable(&mut cmd, "conformance", Kind::Test)
        .with_context(|| format!("the {} conformance test of {}", build.krate, build.dir))
}

/// A copy of a RISC-V binary without its `$x<isa>` mapping symbols. LLVM marks a few code
/// ranges with an ISA string that lacks `v`; binutils 2.40 keeps decoding with that ISA
/// after such a symbol and prints the vector instructions as `.4byte`. With plain `$x`
/// symbols only, objdump uses the ELF's arch attribute, which has `v1p0`.
fn strip_isa_mapping_symbols(root: &Path, exe: &Path) -> Result<PathBuf> {
    let dir = root.join("target/cross/asm-report");
    std::fs::create_dir_all(&dir)?;
    let copy = dir.join(exe.file_name().unwrap_or_default());
    let out = output(
        Command::new("riscv64-linux-gnu-objcopy")
            .args(["--wildcard", "--strip-symbol=$xrv*"])
            .arg(exe)
            .arg(&copy),
    )?;
    if !out.status.success() {
        bail!(
            "riscv64-linux-gnu-objcopy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(copy)
}

/// One disassembled instruction.
struct Insn {
    addr: u64,
    mnemonic: String,
    operands: String,
}

/// The instructions of the first function whose symbol contains `symbol`.
fn function(objdump: &str, symbol: &str) -> Option<Vec<Insn>> {
    let mut lines = objdump.lines();
    lines.find(|l| l.ends_with(">:") && l.contains(symbol))?;
    let mut insns = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            break;
        }
        let Some((addr, rest)) = line.trim().split_once(':') else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(addr.trim(), 16) else {
            continue;
        };
        let rest = rest.trim();
        let (mnemonic, operands) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        insns.push(Insn {
            addr,
            mnemonic: mnemonic.to_string(),
            operands: operands.trim().to_string(),
        });
    }
    Some(insns)
}

/// The branch target of a direct branch (`b.ne 53ed4 <...>`, `bnez a5, 1234 <...>`).
fn branch_target(insn: &Insn) -> Option<u64> {
    // Thumb's width suffixes (`bne.n`, `b.w`); Armv8.1-M loop ends (`le`, `letp`).
    let m = insn.mnemonic.as_str();
    let m = m
        .strip_suffix(".n")
        .or_else(|| m.strip_suffix(".w"))
        .unwrap_or(m);
    if matches!(m, "le" | "letp") {
        return insn
            .operands
            .split('<')
            .next()?
            .split(',')
            .next_back()
            .and_then(|t| u64::from_str_radix(t.trim(), 16).ok());
    }
    // x86-64 conditional jumps (`jb`, `jne`, ...) as well.
    let x86_jump = m.starts_with('j') && !matches!(m, "j" | "jal" | "jalr" | "jr" | "jmp");
    let is_branch = x86_jump
        || m.starts_with("b.")
        || matches!(m, "b" | "cbz" | "cbnz" | "tbz" | "tbnz" | "j")
        || (m.starts_with('b') && m.len() <= 4 && !m.starts_with("bi") && !m.starts_with("br"));
    if !is_branch {
        return None;
    }
    let target = insn
        .operands
        .split('<')
        .next()?
        .split(',')
        .next_back()?
        .trim();
    u64::from_str_radix(target, 16).ok()
}

/// Loop bodies (target..=branch) of backward branches that contain no other backward branch.
fn inner_loops(func: &[Insn]) -> Vec<&[Insn]> {
    let loops: Vec<(usize, usize)> = func
        .iter()
        .enumerate()
        .filter_map(|(end, insn)| {
            let target = branch_target(insn)?;
            let start = func.iter().position(|i| i.addr == target)?;
            (start <= end).then_some((start, end))
        })
        .collect();
    loops
        .iter()
        .filter(|(s, e)| {
            !loops
                .iter()
                .any(|&(s2, e2)| (s2, e2) != (*s, *e) && *s <= s2 && e2 < *e)
        })
        .map(|&(s, e)| &func[s..=e])
        .collect()
}

/// Multiply-accumulates per iteration of a loop body. AArch64: `smmla` 32 (a 2x8 by 8x2
/// product), `sdot` 16, `smull`/`smlal` (8-bit to 16-bit, 8 lanes) 8, `mla`/`mul` `.4s` 4.
/// Cortex-M: `smlad` 2; Helium `vmladava` (binutils prints `vmlava`) 16 for `.s8`/`.u8`, 8
/// for `.s16`/`.u16`. x86-64: `vpmaddwd` on `ymm` 16. RVV: `vwmacc*`/`vmacc` one per
/// element at the `vl` of the loop's `vsetvli` (VLMAX: `vlen * LMUL / SEW`).
fn macs(body: &[Insn], vlen: u32) -> u32 {
    let mut vl = 0u32;
    let mut total = 0u32;
    for insn in body {
        let m = insn.mnemonic.as_str();
        if m == "vsetvli" {
            vl = vlmax(&insn.operands, vlen);
        }
        total += match m {
            "smmla" | "ummla" | "usmmla" => 32,
            "smlad" | "smladx" => 2,
            _ if m.starts_with("vmlava") || m.starts_with("vmladava") => {
                match m.rsplit('.').next() {
                    Some("s8" | "u8") => 16,
                    Some("s16" | "u16") => 8,
                    Some("s32" | "u32") => 4,
                    _ => 0,
                }
            }
            "sdot" | "udot" => 16,
            "smull" | "smull2" | "smlal" | "smlal2" | "umull" | "umull2" | "umlal" | "umlal2"
                if insn.operands.contains(".8h") =>
            {
                8
            }
            "mla" | "mul" if insn.operands.contains(".4s") => 4,
            // x86-64: 16 i16 x i16 products, summed in pairs, per `ymm` `vpmaddwd`.
            "vpmaddwd" if insn.operands.contains("ymm") => 16,
            _ if m.starts_with("vwmacc") || m.starts_with("vmacc") => vl,
            _ => 0,
        };
    }
    total
}

/// VLMAX of a `vsetvli` operand list (`a5,a4,e16,m2,tu,ma`).
fn vlmax(operands: &str, vlen: u32) -> u32 {
    let mut sew = 8;
    let mut lmul_num = 1;
    let mut lmul_den = 1;
    for part in operands.split(',').map(str::trim) {
        if let Some(Ok(e)) = part.strip_prefix('e').map(str::parse) {
            sew = e;
        } else if let Some(Ok(f)) = part.strip_prefix("mf").map(str::parse) {
            lmul_den = f;
        } else if let Some(Ok(l)) = part.strip_prefix('m').map(str::parse) {
            lmul_num = l;
        }
    }
    vlen * lmul_num / lmul_den / sew
}

/// Instruction mix of a loop body, most frequent first: `32 sdot, 6 ld1, ...`.
fn mix(body: &[Insn]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for insn in body {
        match counts.iter_mut().find(|(m, _)| *m == insn.mnemonic) {
            Some((_, c)) => *c += 1,
            None => counts.push((insn.mnemonic.clone(), 1)),
        }
    }
    counts.sort_by_key(|c| core::cmp::Reverse(c.1));
    counts
        .iter()
        .map(|(m, c)| format!("{c} {m}"))
        .collect::<Vec<_>>()
        .join(", ")
}
