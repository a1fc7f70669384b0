//! `cargo xtask fuzz`: coverage-guided fuzzing of the runtime with libFuzzer.
//!
//! The targets are the files of `fuzz/src/bin/` (the `fuzz/` Cargo project, outside the
//! workspace); see `fuzz/README.md` for what each checks. The recipe, with no cargo-fuzz:
//!
//! ```sh
//! RUSTC_BOOTSTRAP=1 RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
//!   -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
//!   -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-stack-depth \
//!   -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
//!   -Zsanitizer=address -Ccodegen-units=1" \
//! cargo build --release --manifest-path fuzz/Cargo.toml --target x86_64-unknown-linux-gnu \
//!   --target-dir fuzz/target --bins
//! nice -n 19 fuzz/target/x86_64-unknown-linux-gnu/release/blob WORK_DIR fuzz/corpus/blob SEEDS \
//!   -max_total_time=60 -print_final_stats=1 -artifact_prefix=fuzz/artifacts/blob/
//! ```
//! (the flags cargo-fuzz 0.13 passes, less `-sanitizer-coverage-trace-compares`: with it,
//! the comparison callbacks in the scalar kernels' inner loops took 58% of the encoder
//! target's time; the targets decode structured choices and re-seal blobs, so they need no
//! help past magic numbers, and ASan's `memcmp` interceptor still feeds slice comparisons
//! to libFuzzer. `RUSTC_BOOTSTRAP=1` unlocks `-Zsanitizer` on rustup's
//! stable toolchain, whose x86-64 Linux build ships the ASan runtime; `libfuzzer-sys`
//! compiles libFuzzer itself with the system's C++ compiler). `--target` keeps the flags off
//! build scripts and proc macros. The fuzz profile keeps overflow checks and debug
//! assertions on. A fresh build took 181 s of CPU (626 s of wall time on the shared 2-core
//! build machine at a load average of 12); later builds only recompile what changed.
//!
//! Directories: `fuzz/corpus/T/` is the committed, minimised corpus of target `T`
//! (`--minimize` rewrites it with `-merge=1`); `fuzz/target/seeds/T/` holds seeds written
//! from the fixture on every run (the fixture blob, its body re-sealed, each section, a few
//! texts), which the committed corpus only complements; `fuzz/target/corpus/T/` is the
//! working corpus that grows across runs; a crash's reproducer goes to `fuzz/artifacts/T/`.
//! Every run appends a line to `fuzz/target/runs.tsv` (the totals per target are printed).

use crate::toolchain::{Tool, ensure};
use anyhow::{Context, Result, bail};
use core::fmt::Write as _;
use microbert::blob::format::HEADER_LEN;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The only host the sanitizer build is set up for.
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Flags of an instrumented build (those of cargo-fuzz 0.13 for `--sanitizer address`;
/// [`Sanitizer::None`] leaves out the last but one).
const RUSTFLAGS: &[&str] = &[
    "--cfg fuzzing",
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
    "-Zsanitizer=address",
    "-Ccodegen-units=1",
];

/// libFuzzer options of every run: inputs up to 64 KiB (the fixture blob is 41 KiB;
/// libFuzzer grows lengths gradually), 20 s per input at most (so a hang is a finding).
/// Fuzzing runs narrow `-max_len` per target with [`fuzz_max_len`] (a later flag wins).
const LIBFUZZER_FLAGS: &[&str] = &["-max_len=65536", "-timeout=20", "-rss_limit_mb=2048"];

/// The longest input worth generating for `target`. The encoder target reads at most about
/// 2 kB (300 tokens of at most 5 bytes of id and 1 of token type, then a few choices): longer
/// inputs are never read and only slowed a long run (1,375 instead of 2,300 executions per
/// second once libFuzzer's length limit passed 38 kB). The others read all of their input.
fn fuzz_max_len(target: &str) -> usize {
    match target {
        "encoder" => 4096,
        _ => 65536,
    }
}

/// What the fuzz targets are built with besides coverage instrumentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sanitizer {
    /// AddressSanitizer: catches out-of-bounds and use-after-free in the `unsafe` SIMD
    /// kernels of `targets/host` that the encoder target runs; about 2.2-2.8x slower.
    Address,
    /// No sanitizer: panics (bounds, overflow and debug assertions stay on) and invariant
    /// failures only, at 2.2-2.8x the executions per second, for long campaigns. Follow one
    /// with `--seconds 0 --minimize` (AddressSanitizer), which executes every input of the
    /// campaign's corpus again under AddressSanitizer.
    None,
}

impl Sanitizer {
    fn name(self) -> &'static str {
        match self {
            Sanitizer::Address => "address",
            Sanitizer::None => "none",
        }
    }

    /// The build's flags.
    fn rustflags(self) -> String {
        RUSTFLAGS
            .iter()
            .filter(|f| self == Sanitizer::Address || !f.starts_with("-Zsanitizer"))
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Its cargo target directory: `fuzz/target/` for AddressSanitizer (the one CI's
    /// replay builds), `fuzz/target/nosan/` for none (the flags differ, so nothing is shared).
    fn target_dir(self, root: &Path) -> PathBuf {
        match self {
            Sanitizer::Address => root.join("fuzz/target"),
            Sanitizer::None => root.join("fuzz/target/nosan"),
        }
    }
}

/// `cargo xtask fuzz` flags.
#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Seconds of fuzzing per target (0: none, e.g. only --minimize).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Also stop a target after this many executions (libFuzzer's -runs).
    #[arg(long)]
    runs: Option<u64>,
    /// Only this target (a file name in fuzz/src/bin/ without `.rs`); all of them when
    /// absent, one after the other.
    #[arg(long)]
    target: Option<String>,
    /// Afterwards, minimise the working and committed corpora (`-merge=1`, over the seeds)
    /// into fuzz/corpus/T/, the corpus to commit.
    #[arg(long)]
    minimize: bool,
    /// Only replay the committed corpora once (`-runs=0`), as CI does: no fuzzing.
    #[arg(long, conflicts_with_all = ["minimize", "target"])]
    replay: bool,
    /// Sanitizer of the build fuzzed (--minimize and --replay always use address).
    #[arg(long, value_enum, default_value_t = Sanitizer::Address)]
    sanitizer: Sanitizer,
}

/// What one libFuzzer run did.
#[derive(Debug, Default)]
struct Stats {
    seconds: u64,
    executions: u64,
    per_second: u64,
    new_units: u64,
    crash: Option<String>,
    /// libFuzzer stopped on SIGINT/SIGTERM (`run interrupted; exiting`, status 72): the
    /// executions so far count, and it is not a crash.
    interrupted: bool,
}

/// `cargo xtask fuzz`: builds the targets, fuzzes each for `--seconds` under `nice -n 19`,
/// prints executions, executions per second and crashes per target, and fails if any
/// target crashed (the reproducer's path is printed).
pub fn run(root: &Path, args: &FuzzArgs) -> Result<()> {
    if args.replay {
        return replay(root);
    }
    let targets = selected(root, args.target.as_deref())?;
    let bins = build(root, args.sanitizer)?;
    // The merge re-executes every input of the corpora, under AddressSanitizer always.
    let merge_bins = if args.minimize && args.sanitizer != Sanitizer::Address {
        build(root, Sanitizer::Address)?
    } else {
        bins.clone()
    };
    let cpu = cpu_model();
    println!("CPU: {cpu}, sanitizer: {}", args.sanitizer.name());
    let mut rows = Vec::new();
    for target in &targets {
        let seeds = write_seeds(root, target)?;
        let work = root.join("fuzz/target/corpus").join(target);
        let committed = corpus_dir(root, target);
        let artifacts = root.join("fuzz/artifacts").join(target);
        for dir in [&work, &committed, &artifacts] {
            std::fs::create_dir_all(dir)?;
        }
        let mut cmd = Command::new("nice");
        cmd.arg("-n")
            .arg("19")
            .arg(bins.join(target))
            .arg(&work)
            .arg(&committed)
            .arg(&seeds)
            .arg(format!("-max_total_time={}", args.seconds))
            .args(args.runs.map(|n| format!("-runs={n}")))
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(LIBFUZZER_FLAGS)
            .arg(format!("-max_len={}", fuzz_max_len(target)));
        if args.seconds == 0 {
            // libFuzzer reads -max_total_time=0 as "no limit".
            if args.minimize {
                minimize(root, &merge_bins, target, &seeds, &[&work, &committed])?;
            }
            continue;
        }
        let log = root.join("fuzz/target/logs").join(format!("{target}.log"));
        eprintln!(
            "==> fuzzing {target} for {} s (log: {})",
            args.seconds,
            log.display()
        );
        let stats = libfuzzer(&mut cmd, &log)?;
        record(root, target, &stats, &cpu, args.sanitizer)?;
        if args.minimize && stats.crash.is_none() {
            minimize(root, &merge_bins, target, &seeds, &[&work, &committed])?;
        }
        rows.push((target.clone(), stats));
    }
    println!();
    println!(
        "{:<12} {:>8} {:>14} {:>9} {:>10} {:>8}",
        "target", "seconds", "executions", "exec/s", "new units", "crashes"
    );
    for (target, s) in &rows {
        println!(
            "{:<12} {:>8} {:>14} {:>9} {:>10} {:>8}",
            target,
            s.seconds,
            s.executions,
            s.per_second,
            s.new_units,
            u8::from(s.crash.is_some())
        );
    }
    print_totals(root)?;
    let crashed: Vec<String> = rows
        .iter()
        .filter_map(|(t, s)| s.crash.as_ref().map(|c| format!("{t}: {c}")))
        .collect();
    if !crashed.is_empty() {
        bail!(
            "fuzzing found {} crash(es); reproducers:\n  {}\n(replay one with the target binary in {}/ and the file as its argument)",
            crashed.len(),
            crashed.join("\n  "),
            bins.display()
        );
    }
    Ok(())
}

/// Builds the fuzz targets and runs each once over its committed corpus and seeds
/// (`-runs=0`: every input executed, no mutation): for `cargo xtask ci`. Takes a few
/// seconds after the build.
pub fn replay(root: &Path) -> Result<()> {
    let start = Instant::now();
    let targets = selected(root, None)?;
    let bins = build(root, Sanitizer::Address)?;
    for target in &targets {
        let seeds = write_seeds(root, target)?;
        let committed = corpus_dir(root, target);
        std::fs::create_dir_all(&committed)?;
        let replayed = Instant::now();
        let log = root
            .join("fuzz/target/logs")
            .join(format!("{target}-replay.log"));
        let mut cmd = Command::new(bins.join(target));
        cmd.arg(&committed)
            .arg(&seeds)
            .arg("-runs=0")
            .arg(format!(
                "-artifact_prefix={}/",
                root.join("fuzz/artifacts").join(target).display()
            ))
            .args(LIBFUZZER_FLAGS);
        std::fs::create_dir_all(root.join("fuzz/artifacts").join(target))?;
        let stats = libfuzzer(&mut cmd, &log)?;
        if let Some(crash) = stats.crash {
            bail!(
                "fuzz corpus replay of {target} crashed: {crash} (log: {})",
                log.display()
            );
        }
        eprintln!(
            "    {target}: {} inputs replayed in {:.1?}",
            count_files(&committed)? + count_files(&seeds)?,
            replayed.elapsed()
        );
    }
    eprintln!(
        "    fuzz corpus replay: {} targets, build and replay in {:.1?}",
        targets.len(),
        start.elapsed()
    );
    Ok(())
}

/// The committed corpus of a target.
fn corpus_dir(root: &Path, target: &str) -> PathBuf {
    root.join("fuzz/corpus").join(target)
}

/// Targets: every `fuzz/src/bin/*.rs`, or the one asked for.
fn selected(root: &Path, only: Option<&str>) -> Result<Vec<String>> {
    let dir = root.join("fuzz/src/bin");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            all.push(stem.to_owned());
        }
    }
    all.sort();
    match only {
        None => Ok(all),
        Some(t) if all.iter().any(|a| a == t) => Ok(vec![t.to_owned()]),
        Some(t) => bail!("no fuzz target `{t}` (targets: {})", all.join(", ")),
    }
}

/// The tools of the instrumented build: the rustup toolchain (its x86-64 Linux build ships
/// the AddressSanitizer runtime) and the C/C++ compilers `libfuzzer-sys` builds libFuzzer
/// with (Debian's gcc and g++, installed when missing and root).
const TOOLS: [Tool; 4] = [Tool::Cargo, Tool::Rustc, Tool::Cc, Tool::Cxx];

/// The instrumented build; returns the directory of the target binaries. The build keeps
/// its own target directory, `fuzz/target/` (the sanitizer flags differ from the
/// workspace's, so nothing can be shared with `target/`), which later builds reuse: only
/// what changed is rebuilt.
fn build(root: &Path, sanitizer: Sanitizer) -> Result<PathBuf> {
    ensure(&TOOLS)?;
    let host = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    let host = String::from_utf8_lossy(&host.stdout);
    if !host.lines().any(|l| l == format!("host: {TRIPLE}")) {
        bail!("fuzzing is set up for {TRIPLE} hosts only (rustc -vV says:\n{host})");
    }
    let version = host.lines().next().unwrap_or("rustc ?").to_owned();
    let start = Instant::now();
    eprintln!(
        "==> building the fuzz targets ({version}, sanitizer: {}, libFuzzer)",
        sanitizer.name()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = sanitizer.target_dir(root);
    let status = Command::new("nice")
        .arg("-n")
        .arg("19")
        .arg(cargo)
        .args(["build", "--release", "--bins", "--target", TRIPLE])
        .arg("--manifest-path")
        .arg(root.join("fuzz/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTFLAGS", sanitizer.rustflags())
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("running cargo build for fuzz/")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    eprintln!("    built in {:.0?}", start.elapsed());
    Ok(target_dir.join(TRIPLE).join("release"))
}

/// Runs a libFuzzer command, its output going to `log`, and reads its statistics.
fn libfuzzer(cmd: &mut Command, log: &Path) -> Result<Stats> {
    std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")))?;
    let mut file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let asan = match std::env::var("ASAN_OPTIONS") {
        Ok(o) if !o.is_empty() => format!("{o}:detect_odr_violation=0"),
        _ => "detect_odr_violation=0".to_owned(),
    };
    let mut child = cmd
        .env("ASAN_OPTIONS", asan)
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the fuzz target")?;
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut reproducer = None;
    let stderr = child.stderr.take().context("fuzz target stderr")?;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        writeln!(file, "{line}")?;
        if let Some(rest) = line.strip_prefix('#') {
            // Status lines: `#1234  pulse  cov: ...`.
            if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                stats.executions = n;
            }
            if line.contains("pulse") || line.contains("DONE") || line.contains("INITED") {
                eprintln!("    {line}");
            }
        } else if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            stats.executions = v.trim().parse().unwrap_or(stats.executions);
        } else if let Some(v) = line.strip_prefix("stat::average_exec_per_sec:") {
            stats.per_second = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("stat::new_units_added:") {
            stats.new_units = v.trim().parse().unwrap_or(0);
        } else {
            if let Some(path) = line.split("Test unit written to ").nth(1) {
                reproducer = Some(path.trim().to_owned());
            }
            if line.contains("libFuzzer: run interrupted") {
                stats.interrupted = true;
            }
            if !line.starts_with("stat::") {
                eprintln!("    {line}");
            }
        }
    }
    let status = child.wait()?;
    stats.seconds = start.elapsed().as_secs();
    if stats.interrupted && reproducer.is_none() {
        eprintln!("    interrupted: {} executions recorded", stats.executions);
    } else if !status.success() {
        stats.crash = Some(reproducer.unwrap_or_else(|| {
            format!(
                "exit status {status} without a reproducer (see {})",
                log.display()
            )
        }));
    }
    Ok(stats)
}

/// `-merge=1` of `dirs` into a fresh corpus over the seeds (which stay out of it), which
/// then replaces `fuzz/corpus/T/`.
fn minimize(root: &Path, bins: &Path, target: &str, seeds: &Path, dirs: &[&Path]) -> Result<()> {
    let out = root.join("fuzz/target/merge").join(target);
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(&out)?;
    let mut seed_names = Vec::new();
    for entry in std::fs::read_dir(seeds)? {
        let entry = entry?;
        std::fs::copy(entry.path(), out.join(entry.file_name()))?;
        seed_names.push(entry.file_name());
    }
    let log = root
        .join("fuzz/target/logs")
        .join(format!("{target}-merge.log"));
    let mut cmd = Command::new("nice");
    cmd.arg("-n")
        .arg("19")
        .arg(bins.join(target))
        .arg("-merge=1")
        .args(LIBFUZZER_FLAGS)
        .arg(&out)
        .args(dirs);
    let stats = libfuzzer(&mut cmd, &log)?;
    if let Some(crash) = stats.crash {
        bail!("merging the corpus of {target} failed: {crash}");
    }
    for name in seed_names {
        std::fs::remove_file(out.join(name))?;
    }
    let committed = corpus_dir(root, target);
    if committed.exists() {
        std::fs::remove_dir_all(&committed)?;
    }
    std::fs::create_dir_all(&committed)?;
    let mut bytes = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(&out)? {
        let entry = entry?;
        bytes += entry.metadata()?.len();
        files += 1;
        std::fs::copy(entry.path(), committed.join(entry.file_name()))?;
    }
    eprintln!(
        "    minimised corpus of {target}: {files} inputs, {bytes} bytes in {}",
        committed.display()
    );
    Ok(())
}

fn count_files(dir: &Path) -> Result<usize> {
    Ok(std::fs::read_dir(dir)?.count())
}

/// Writes a target's seed inputs to `fuzz/target/seeds/T/` and returns the directory.
/// Each target's first input byte picks its mode (see the target's file); the seeds
/// start every mode from the fixture.
fn write_seeds(root: &Path, target: &str) -> Result<PathBuf> {
    let dir = root.join("fuzz/target/seeds").join(target);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    match target {
        "blob" => {
            let blob = std::fs::read(root.join(crate::fixture::FIXTURE_DIR).join("model.blob"))?;
            let body = &blob[HEADER_LEN..];
            // Mode 0: the blob as it is; mode 1: its body, re-sealed; mode 2: the fixture
            // with no edit; mode 3: a synthesised blob from no choices.
            seeds.push(("fixture-raw".into(), [&[0u8][..], &blob].concat()));
            seeds.push(("fixture-resealed".into(), [&[1u8][..], body].concat()));
            seeds.push(("fixture-patched".into(), vec![2]));
            seeds.push(("synthesised".into(), vec![3]));
            // The legacy format-1 fixture: raw, and its body re-sealed as format 1.
            let v1 = std::fs::read(root.join(crate::fixture::FIXTURE_DIR).join("model-v1.blob"))?;
            seeds.push(("fixture-v1-raw".into(), [&[0u8][..], &v1].concat()));
            seeds.push((
                "fixture-v1-resealed".into(),
                [&[5u8][..], &v1[HEADER_LEN..]].concat(),
            ));
            let ends = section_ends(&blob)?;
            let mut start = HEADER_LEN;
            for (i, &end) in ends.iter().enumerate() {
                // Each section alone, and the body up to its end, re-sealed.
                let alone = &blob[start..end];
                let prefix = &blob[HEADER_LEN..end];
                seeds.push((format!("section-{i}"), [&[1u8][..], alone].concat()));
                seeds.push((format!("prefix-{i}"), [&[1u8][..], prefix].concat()));
                start = end;
            }
        }
        "tokenizer" => {
            let texts = [
                "Hello, World! The quick brown fox.",
                "[CLS] café über naïve résumé [SEP] [MASK]",
                "中文 한국 😀 👍🏽 Ωμέγα e\u{301} \u{200b}\t\r\n\u{0}",
                "unaffable running ##ing supercalifragilisticexpialidocious",
            ];
            for (i, text) in texts.iter().enumerate() {
                for mode in 0u8..3 {
                    let mut input = vec![mode, i as u8];
                    if mode == 2 {
                        input.extend_from_slice(
                            "[UNK]\n[CLS]\n[SEP]\nhello\n##o\nh\n,\0".as_bytes(),
                        );
                    }
                    if mode > 0 {
                        input.push(0x0f);
                    }
                    input.extend_from_slice(text.as_bytes());
                    seeds.push((format!("text-{i}-mode-{mode}"), input));
                }
            }
        }
        "tokenizer_lines" => {
            // Limit and buffer choices, then lines: CRLF, invalid UTF-8, empty, a last
            // line without `\n`, a long one.
            let text: &[u8] =
                b"Hello, World!\r\n\xff\xfe caf\xc3\xa9\n\n[CLS] \xe4\xb8\xad\xe6\x96\x87\r\nlast";
            for (i, (limit, capacity)) in [(0u8, 0u8), (0, 130), (136, 0), (150, 131)]
                .into_iter()
                .enumerate()
            {
                seeds.push((
                    format!("lines-{i}"),
                    [&[limit, capacity][..], text].concat(),
                ));
            }
        }
        // The encoder target reads choices; the empty input is 0 tokens, and the fuzzer
        // finds the rest.
        _ => seeds.push(("empty".into(), Vec::new())),
    }
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(dir)
}

/// Where each section of a format-2 blob ends (config, tokenizer, embeddings, each
/// layer, the heads, numerics, in storage order).
fn section_ends(blob: &[u8]) -> Result<Vec<usize>> {
    microbert::blob::sections(blob)
        .map(|s| {
            s.map(|s| s.end())
                .map_err(|e| anyhow::anyhow!("the fixture's sections do not walk: {e}"))
        })
        .collect()
}

/// The CPU's model name (for figures: they always state the CPU).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// Appends a run to `fuzz/target/runs.tsv`.
fn record(root: &Path, target: &str, s: &Stats, cpu: &str, sanitizer: Sanitizer) -> Result<()> {
    let path = root.join("fuzz/target/runs.tsv");
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    if new {
        writeln!(
            f,
            "unix_time\ttarget\tseconds\texecutions\texec_per_s\tcrashes\tcpu\tsanitizer"
        )?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    writeln!(
        f,
        "{now}\t{target}\t{}\t{}\t{}\t{}\t{cpu}\t{}",
        s.seconds,
        s.executions,
        s.per_second,
        u8::from(s.crash.is_some()),
        sanitizer.name()
    )?;
    Ok(())
}

/// Prints the totals of `fuzz/target/runs.tsv` per target.
fn print_totals(root: &Path) -> Result<()> {
    let text = std::fs::read_to_string(root.join("fuzz/target/runs.tsv")).unwrap_or_default();
    let mut totals: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if let [_, target, seconds, execs, _, crashes, ..] = f[..] {
            let t = totals.entry(target.to_owned()).or_default();
            t.0 += seconds.parse::<u64>().unwrap_or(0);
            t.1 += execs.parse::<u64>().unwrap_or(0);
            t.2 += crashes.parse::<u64>().unwrap_or(0);
        }
    }
    let mut out = String::from("all runs recorded in fuzz/target/runs.tsv:\n");
    for (target, (seconds, execs, crashes)) in totals {
        writeln!(
            out,
            "  {target:<12} {seconds:>8} s {execs:>14} executions {crashes:>4} crashes"
        )?;
    }
    print!("{out}");
    Ok(())
}
