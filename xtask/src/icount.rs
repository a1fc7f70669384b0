//! `cargo xtask icount`: instructions of a whole bert-tiny inference on Cortex-M cores,
//! counted under qemu, per kernel build, with estimated latencies and the memory of the
//! smallest builds. A sweep of several firmware builds (minutes the first time), not a CI
//! step: `cargo xtask firmware` counts the DSP and Helium builds on the firmware sentence.
//!
//! **Method.** Debian's qemu has no TCG plugins and models no DWT cycle counter, so each
//! firmware (`targets/cortex-m`, `targets/cortex-m55`, features `icount,profile,sweep`)
//! reads SysTick around its embeddings while qemu runs with `-icount shift=0`: virtual
//! time then advances exactly 1 ns per instruction, and the firmware's calibration loop of
//! 20,000,000 instructions turns ticks into instructions (`firmware-common/icount.rs`; good
//! to one tick: 40 instructions on mps2-an386, 31 on mps3-an547). Each firmware embeds the
//! firmware sentence (23 tokens), a long text cut at 32, 64 and 128 tokens, and the
//! sentence again through a profiling wrapper (instructions per kernel method). Every hash
//! is compared with `microbert::Scalar` on the host for the same blob and tokens.
//!
//! **Builds.** Cortex-M4F (thumbv7em-none-eabihf, mps2-an386): scalar reference, DSP
//! kernels (also run on mps2-an500, a Cortex-M7). Cortex-M55 (thumbv8m.main-none-eabihf,
//! mps3-an547): scalar reference without MVE code generation (the baseline), the scalar
//! reference with `+mve` (LLVM's own auto-vectorisation), and the Helium kernels.
//!
//! **Memory.** Minimum RAM at `n` tokens = static RAM (`.data + .bss`) with the 128-token
//! arena replaced by the `n`-token one (`microbert::scratch_bytes`, exactly what a build
//! declaring `n` tokens reserves: the arena is the only static that depends on `n`) plus
//! the peak stack the firmware measured (painting). The 2 MB-flash build: the DSP firmware
//! with the bert-tiny vocabulary cut to [`SMALL_VOCAB`] tokens, its image measured against
//! 2 MiB and run to check its hash.

use crate::blobs::Request;
use crate::cortex_m::{AN386_M4, AN500_M7, AN547_M55, Board, Build};
use crate::recipe::KeepVocab;
use crate::toolchain::{Tool, ensure};
use anyhow::{Context, Result, bail, ensure as check};
use std::ffi::OsStr;
use std::path::Path;

/// Vocabulary of the 2 MB-flash build.
pub const SMALL_VOCAB: usize = 9_000;
/// A 2 MB-flash part.
const SMALL_FLASH: u64 = 2 << 20;

/// One firmware build of the sweep.
struct Variant {
    label: &'static str,
    project: &'static str,
    /// Target directory under the cache's `cross-target/cross/`, shared by the builds of
    /// one triple and code generation (cargo keeps each feature set's artefacts apart).
    dir: &'static str,
    triple: &'static str,
    rustflags: &'static str,
    /// Kernel feature (empty: the scalar reference).
    kernels: &'static str,
    bin: &'static str,
    boards: &'static [Board],
}

const VARIANTS: [Variant; 5] = [
    Variant {
        label: "Cortex-M4F scalar",
        project: "cortex-m",
        dir: "icount-m4",
        triple: "thumbv7em-none-eabihf",
        rustflags: "-C target-cpu=cortex-m4",
        kernels: "",
        bin: "microbert-cortex-m",
        boards: &[AN386_M4],
    },
    Variant {
        label: "Cortex-M4F DSP",
        project: "cortex-m",
        dir: "icount-m4",
        triple: "thumbv7em-none-eabihf",
        rustflags: "-C target-cpu=cortex-m4",
        kernels: "dsp",
        bin: "microbert-cortex-m",
        boards: &[AN386_M4, AN500_M7],
    },
    Variant {
        label: "Cortex-M55 scalar",
        project: "cortex-m55",
        dir: "icount-m55-scalar",
        triple: "thumbv8m.main-none-eabihf",
        rustflags: "",
        kernels: "",
        bin: "microbert-cortex-m55",
        boards: &[AN547_M55],
    },
    Variant {
        label: "Cortex-M55 scalar, +mve (LLVM)",
        project: "cortex-m55",
        dir: "icount-m55-mve",
        triple: "thumbv8m.main-none-eabihf",
        rustflags: "-C target-feature=+mve",
        kernels: "",
        bin: "microbert-cortex-m55",
        boards: &[AN547_M55],
    },
    Variant {
        label: "Cortex-M55 Helium",
        project: "cortex-m55",
        dir: "icount-m55-mve",
        triple: "thumbv8m.main-none-eabihf",
        rustflags: "-C target-feature=+mve",
        kernels: "mve",
        bin: "microbert-cortex-m55",
        boards: &[AN547_M55],
    },
];

/// A core for the latency estimates: clock and the cycles-per-instruction assumed, by
/// build kind, with the reason.
struct Core {
    name: &'static str,
    mhz: f64,
    /// The variants it runs (labels) with their CPI.
    cpi: &'static [(&'static str, f64)],
}

/// Latency estimates: `instructions * CPI / f`. The CPI figures are assumptions, stated in
/// the README table: see [`CPI_NOTES`].
const CORES: [Core; 3] = [
    Core {
        name: "Cortex-M4F @ 168 MHz",
        mhz: 168.0,
        cpi: &[("Cortex-M4F scalar", 1.25), ("Cortex-M4F DSP", 1.5)],
    },
    Core {
        name: "Cortex-M7 @ 480 MHz (dual issue)",
        mhz: 480.0,
        cpi: &[("Cortex-M4F scalar", 0.7), ("Cortex-M4F DSP", 0.8)],
    },
    Core {
        name: "Cortex-M55 @ 400 MHz",
        mhz: 400.0,
        cpi: &[
            ("Cortex-M55 scalar", 1.0),
            ("Cortex-M55 scalar, +mve (LLVM)", 1.3),
            ("Cortex-M55 Helium", 1.3),
        ],
    },
];

/// Why those CPI figures (printed under the latency table).
pub const CPI_NOTES: &str = "\
CPI assumptions (no board here; cycle counts from the cores' technical reference manuals):
- Cortex-M4F: single issue, 1 cycle per ALU and multiply-accumulate (SMLAD, SMULL), loads 2
  (1 when pipelined), LDM 1+N, taken branches 2-3; flash at zero wait states through the
  ART accelerator assumed. Scalar code 1.25. DSP build 1.5: its GEMM loop is 54 instructions
  in 92 cycles (8 LDM x 5 cycles), 1.7 there, the rest of the inference near 1.2.
- Cortex-M7: dual issue with a 64-bit load port, the same binaries: scalar code 0.7, DSP
  build 0.8 (the GEMM loop's 36 words per 54 instructions pair with the 40 SMLAD/SXTB16).
- Cortex-M55: single issue for scalar code (1.0); a 128-bit MVE instruction is 4 beats and
  the M55 runs 2 per cycle, so 2 cycles, overlapped with the next MVE instruction of
  another kind (load with multiply): the GEMM loop (5 loads, 6 VMLADAVA, LETP) about 12-13
  cycles per 12 instructions, the mixed rest of the inference near 1.3.";

/// What a firmware run printed.
#[derive(Default)]
struct Run {
    sentence_insns: u64,
    tokens: u64,
    hash: String,
    text: String,
    sweep_text: String,
    /// (tokens, instructions, hash, scratch bytes).
    sweep: Vec<(u64, u64, String, u64)>,
    /// (kernel method, calls, instructions).
    profile: Vec<(String, u64, u64)>,
    arena: u64,
    stack: u64,
}

fn parse(stdout: &str) -> Result<Run> {
    let mut run = Run::default();
    let num = |s: &str| -> Option<u64> { s.split_whitespace().find_map(|w| w.parse().ok()) };
    for line in stdout.lines() {
        if let Some(r) = line.strip_prefix("icount: embed ") {
            run.sentence_insns = num(r).context("icount line")?;
        } else if let Some(r) = line.strip_prefix("tokens: ") {
            run.tokens = num(r).context("tokens line")?;
        } else if let Some(r) = line.strip_prefix("hash: ") {
            run.hash = r.trim().to_owned();
        } else if let Some(r) = line.strip_prefix("text: ") {
            run.text = r.to_owned();
        } else if let Some(r) = line.strip_prefix("sweep text: ") {
            run.sweep_text = r.to_owned();
        } else if let Some(r) = line.strip_prefix("arena: ") {
            run.arena = num(r).context("arena line")?;
        } else if let Some(r) = line.strip_prefix("stack: peak ") {
            run.stack = num(r).context("stack line")?;
        } else if let Some(r) = line.strip_prefix("sweep: ") {
            // `32 tokens, 9134500 instructions, hash 7aab..., scratch 159023 bytes`
            let parts: Vec<&str> = r.split(", ").collect();
            check!(parts.len() == 4, "sweep line `{line}`");
            run.sweep.push((
                num(parts[0]).context("sweep tokens")?,
                num(parts[1]).context("sweep instructions")?,
                parts[2].trim_start_matches("hash ").to_owned(),
                num(parts[3]).context("sweep scratch")?,
            ));
        } else if let Some(r) = line.strip_prefix("profile: ") {
            // `gemm i8 x channels: 16 calls, 1505406 instructions`
            if let Some((name, rest)) = r.split_once(": ")
                && let Some((calls, insns)) = rest.split_once(", ")
                && name != "hash"
            {
                if let (Some(c), Some(i)) = (num(calls), num(insns)) {
                    run.profile.push((name.to_owned(), c, i));
                }
            } else if let Some(rest) = r.strip_prefix("other: ") {
                run.profile
                    .push(("other".to_owned(), 0, num(rest).unwrap_or(0)));
            }
        }
    }
    check!(
        run.sentence_insns > 0 && !run.hash.is_empty() && run.sweep.len() == 3,
        "incomplete firmware output:\n{stdout}"
    );
    Ok(run)
}

/// `microbert::Scalar`'s hash of `text` cut to `max_tokens` tokens, on the host.
fn host_hash(blob: &[u8], text: &str, max_tokens: usize) -> Result<String> {
    let model = microbert::parse(blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut ids = vec![0u32; max_tokens];
    let enc = microbert::Tokenizer::new(&model)
        .encode(text, &mut ids)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut arena = vec![0u8; microbert::scratch_bytes(&model, enc.len)];
    let mut pooled = vec![0i32; model.config.hidden_size as usize];
    microbert::Encoder::new(&model, microbert::Scalar)
        .embed(&ids[..enc.len], &mut arena, &mut pooled)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(format!("{:016x}", microbert::output::hash(&pooled)))
}

/// Static RAM (`.data + .bss + .uninit`) and image bytes of an ELF.
fn memory(elf: &Path) -> Result<(u64, u64)> {
    let bytes = std::fs::read(elf)?;
    let secs = crate::firmware::sections(&bytes)?;
    let ram = secs
        .iter()
        .filter(|s| matches!(s.name.as_str(), ".data" | ".bss" | ".uninit"))
        .map(|s| s.size)
        .sum();
    let image = secs
        .iter()
        .filter(|s| s.alloc && s.progbits)
        .map(|s| s.size)
        .sum();
    Ok((ram, image))
}

/// `cargo xtask icount`.
pub fn run(root: &Path) -> Result<()> {
    let tools: Vec<Tool> = crate::debian_cargo::TOOLS
        .iter()
        .chain(&[Tool::RustLld, Tool::QemuSystemArm, Tool::Timeout])
        .copied()
        .collect();
    ensure(&tools)?;
    let blob_path = crate::blobs::blob_of(
        "bert-tiny",
        &Request {
            variant: Some("firmware"),
            keep_vocab: None,
        },
    )?;
    let blob = std::fs::read(&blob_path)?;
    let mut failed = Vec::new();
    let mut results: Vec<(&Variant, Run, u64, u64)> = Vec::new();
    for v in &VARIANTS {
        let features = match v.kernels {
            "" => "icount,profile,sweep".to_owned(),
            k => format!("{k},icount,profile,sweep"),
        };
        let elf = crate::cortex_m::build(
            root,
            &Build {
                project: v.project,
                dir: v.dir,
                triple: v.triple,
                rustflags: v.rustflags,
                features: &features,
                no_default: true,
                env: &[("MICROBERT_FIRMWARE_BLOB", blob_path.as_os_str())],
                bin: v.bin,
            },
        )?;
        let (ram, image) = memory(&elf)?;
        let mut first: Option<Run> = None;
        for board in v.boards {
            let run = parse(&crate::cortex_m::run(board, &elf, true)?)?;
            let mut ok = run.hash == host_hash(&blob, &run.text, 128)?;
            for (n, _, hash, _) in &run.sweep {
                ok &= *hash == host_hash(&blob, &run.sweep_text, *n as usize)?;
            }
            println!(
                "{:<32} {:<12} {:>11} instructions ({} tokens), hashes {}",
                v.label,
                board.machine,
                run.sentence_insns,
                run.tokens,
                if ok {
                    "match the host scalar"
                } else {
                    "DIFFER"
                }
            );
            if !ok {
                failed.push(format!("{} on {}", v.label, board.machine));
            }
            if first.is_none() {
                first = Some(run);
            }
        }
        if let Some(run) = first {
            results.push((v, run, ram, image));
        }
    }
    print_tables(&results);
    small_flash(root, &mut failed)?;
    if !failed.is_empty() {
        bail!("hashes differ from the host scalar reference: {failed:?}");
    }
    Ok(())
}

/// The README tables: instructions and ratios, the kernels' share, latency, memory.
fn print_tables(results: &[(&Variant, Run, u64, u64)]) {
    let find = |label: &str| results.iter().find(|(v, ..)| v.label == label);
    let baseline = |label: &str| -> Option<&Run> {
        let scalar = if label.starts_with("Cortex-M4F") {
            "Cortex-M4F scalar"
        } else {
            "Cortex-M55 scalar"
        };
        find(scalar).map(|(_, r, ..)| r)
    };
    println!();
    println!(
        "| build | sentence (23 tokens) | vs scalar | 32 tokens | 64 tokens | 128 tokens | vs scalar at 128 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (v, run, ..) in results {
        let base = baseline(v.label);
        let ratio = |a: u64, b: Option<u64>| {
            b.map_or(String::new(), |b| format!("{:.2}x", b as f64 / a as f64))
        };
        let at = |r: &Run, n: u64| r.sweep.iter().find(|s| s.0 == n).map(|s| s.1);
        let r128 = at(run, 128).unwrap_or(0);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            v.label,
            group(run.sentence_insns),
            ratio(run.sentence_insns, base.map(|b| b.sentence_insns)),
            at(run, 32).map_or(String::new(), group),
            at(run, 64).map_or(String::new(), group),
            group(r128),
            ratio(r128, base.and_then(|b| at(b, 128))),
        );
    }
    println!();
    println!(
        "Instructions per kernel method, firmware sentence (profiled run; `other`: the rest):"
    );
    print!("| method |");
    for (v, ..) in results {
        print!(" {} |", v.label);
    }
    println!();
    print!("|---|");
    for _ in results {
        print!("---:|");
    }
    println!();
    let mut names: Vec<&str> = Vec::new();
    for (_, run, ..) in results {
        for (n, ..) in &run.profile {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    for name in names {
        print!("| {name} |");
        for (_, run, ..) in results {
            let v = run.profile.iter().find(|p| p.0 == name).map(|p| p.2);
            print!(" {} |", v.map_or(String::new(), group));
        }
        println!();
    }
    println!();
    println!("| core | build | CPI assumed | sentence (23 tokens) | 128 tokens |");
    println!("|---|---|---:|---:|---:|");
    for core in &CORES {
        for &(label, cpi) in core.cpi {
            if let Some((_, run, ..)) = find(label) {
                let ms = |insns: u64| insns as f64 * cpi / core.mhz / 1000.0;
                let r128 = run.sweep.iter().find(|s| s.0 == 128).map_or(0, |s| s.1);
                println!(
                    "| {} | {} | {cpi} | {:.1} ms | {:.1} ms |",
                    core.name,
                    label,
                    ms(run.sentence_insns),
                    ms(r128)
                );
            }
        }
    }
    println!("\n{CPI_NOTES}\n");
    println!(
        "| build | static RAM (128-token arena) | peak stack | min RAM 32 tokens | 64 tokens | 128 tokens | image |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (v, run, ram, image) in results {
        let min = |n: u64| {
            run.sweep
                .iter()
                .find(|s| s.0 == n)
                .map_or(String::new(), |s| group(ram - run.arena + s.3 + run.stack))
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            v.label,
            group(*ram),
            group(run.stack),
            min(32),
            min(64),
            min(128),
            group(*image)
        );
    }
}

/// The DSP firmware with [`SMALL_VOCAB`] tokens: image against 2 MiB, hash against the host.
fn small_flash(root: &Path, failed: &mut Vec<String>) -> Result<()> {
    let blob_path = crate::blobs::blob_of(
        "bert-tiny",
        &Request {
            variant: Some("firmware"),
            keep_vocab: Some(KeepVocab::parse(&SMALL_VOCAB.to_string())),
        },
    )?;
    let blob = std::fs::read(&blob_path)?;
    let elf = crate::cortex_m::build(
        root,
        &Build {
            project: "cortex-m",
            dir: "icount-m4",
            triple: "thumbv7em-none-eabihf",
            rustflags: "-C target-cpu=cortex-m4",
            features: "icount",
            no_default: false,
            env: &[("MICROBERT_FIRMWARE_BLOB", OsStr::new(&blob_path))],
            bin: "microbert-cortex-m",
        },
    )?;
    let (ram, image) = memory(&elf)?;
    let stdout = crate::cortex_m::run(&AN386_M4, &elf, true)?;
    let hash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("hash: "))
        .unwrap_or("")
        .trim();
    let text = stdout
        .lines()
        .find_map(|l| l.strip_prefix("text: "))
        .unwrap_or("");
    let ok = hash == host_hash(&blob, text, 128)?;
    if !ok {
        failed.push("2 MB build".to_owned());
    }
    println!(
        "2 MB-flash build (DSP, vocabulary {SMALL_VOCAB}): image {} bytes ({:.1}% of 2 MiB: {}), blob {} bytes, static RAM {} bytes, hash {}",
        group(image),
        100.0 * image as f64 / SMALL_FLASH as f64,
        if image <= SMALL_FLASH {
            "fits"
        } else {
            "DOES NOT FIT"
        },
        group(blob.len() as u64),
        group(ram),
        if ok {
            "matches the host scalar"
        } else {
            "DIFFERS"
        }
    );
    if image > SMALL_FLASH {
        failed.push(format!("2 MB build: image {image} bytes"));
    }
    Ok(())
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
