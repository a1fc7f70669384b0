//! One-thread benchmark: all-MiniLM-L6-v2 end to end at 128 tokens (microbert scalar,
//! microbert AVX2, candle-transformers `BertModel` in f32 on the same safetensors), and the
//! int8 GEMM alone at the two feed-forward shapes, with GMAC/s and the fraction of this
//! core's AVX2 peak (two `vpmaddwd` per cycle = 32 multiply-accumulates per cycle).
//!
//! ```text
//! cargo bench -p microbert-host --bench minilm
//! ```
//!
//! Needs the fetched checkpoint and the converted blob (`cargo xtask prepare`) under the
//! cache directory (`$MICROBERT_CACHE`, `$XDG_CACHE_HOME/microbert` or
//! `$HOME/.cache/microbert`); the text is the first Wikipedia lead of
//! `data/wiki/summaries_en-us.json` with at least 128 tokens (a fixed English paragraph
//! repeated if the corpus is absent), cut to exactly 128 tokens.
//! `MICROBERT_PROFILE_SECS=N` runs only the AVX2 end-to-end embedding for N seconds (for
//! `perf record`), skipping the GEMM part and every other backend; `MICROBERT_GEMM_ONLY=1`
//! stops after the GEMM part. Besides criterion's report, the bench prints a markdown table (also written to
//! `target/bench-table.md`) from its own medians.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as CandleConfig};
use core::fmt::Write as _;
use core::hint::black_box;
use core::time::Duration;
use criterion::Criterion;
use microbert::kernels::{Gemm, Lhs, MatMut, MatRef, Prepared, Rhs};
use microbert::model::scratch::BLOCK_ROWS;
use microbert::{Encoder, Kernels, ModelView, Tokenizer};
use microbert_host::HostKernels;
use std::path::PathBuf;
use std::time::Instant;

const TOKENS: usize = 128;

/// A real paragraph with at least [`TOKENS`] tokens.
fn long_text() -> String {
    let path = microbert_tests::corpus::cache_dir().join("data/wiki/summaries_en-us.json");
    let leads: Vec<String> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&t).ok())
        .map(|m| {
            m.values()
                .filter_map(|v| Some(v.get("extract")?.as_str()?.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    // At least ~110 words makes well over 128 word pieces.
    leads
        .into_iter()
        .find(|s| s.split_whitespace().count() >= 110)
        .unwrap_or_else(|| {
            "The history of the printing press begins in the fifteenth century, when movable \
             metal type, oil-based inks and a screw press were combined in Mainz. Within fifty \
             years presses were running in more than two hundred cities across Europe, and the \
             price of books fell so far that reading spread from monasteries and universities \
             to merchants and craftsmen. "
                .repeat(3)
        })
}

/// Median and fastest wall time of `f` over at least `runs` runs and `min` of total time
/// (on a shared machine the fastest run is the least disturbed one).
fn times(mut f: impl FnMut(), runs: usize, min: Duration) -> (Duration, Duration) {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < runs || start.elapsed() < min {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[0])
}

/// This process's user + system CPU time (from `/proc/self/stat`, in clock ticks of 10 ms).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime field 14, stime field 15 (1-based).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The core clock in GHz, measured: a chain of dependent 64-bit `add`s retires one per
/// cycle on every x86-64 core, so `adds / seconds` is the frequency while it runs.
#[cfg(target_arch = "x86_64")]
fn measure_clock_ghz() -> f64 {
    let chain = |iters: u64| {
        let mut x = 0u64;
        let mut n = iters;
        // SAFETY: the assembly only adds to and decrements the two registers it is given,
        // touches no memory and no stack, and ends with `n == 0`.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "dec {n}",
                "jnz 2b",
                x = inout(reg) x,
                n = inout(reg) n,
                options(nomem, nostack),
            );
        }
        black_box((x, n));
    };
    // The fastest of many short runs: on a shared machine preemption and a busy sibling
    // hyperthread only ever make a run slower, so the minimum is the undisturbed clock.
    let iters = 2_000_000u64;
    chain(iters);
    let t = (0..50)
        .map(|_| {
            let t = Instant::now();
            chain(iters);
            t.elapsed()
        })
        .min()
        .unwrap_or(Duration::MAX);
    (iters * 10) as f64 / t.as_secs_f64() / 1e9
}

#[cfg(not(target_arch = "x86_64"))]
fn measure_clock_ghz() -> f64 {
    f64::NAN
}

struct Candle {
    model: BertModel,
    input: Tensor,
    types: Tensor,
}

impl Candle {
    fn load(ids: &[u32]) -> Option<Self> {
        let dir = microbert_tests::corpus::cache_dir().join("models/minilm");
        let config: CandleConfig =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).ok()?).ok()?;
        let device = Device::Cpu;
        let tensors =
            candle_core::safetensors::load(dir.join("model.safetensors"), &device).ok()?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config).ok()?;
        let input = Tensor::new(ids, &device).ok()?.unsqueeze(0).ok()?;
        let types = input.zeros_like().ok()?;
        Some(Self {
            model,
            input,
            types,
        })
    }

    /// Hidden states and mean pooling, as a sentence embedding needs.
    fn embed(&self) -> Tensor {
        self.model
            .forward(&self.input, &self.types, None)
            .and_then(|h| h.mean(1))
            .expect("candle forward")
    }
}

fn embed<K: Kernels>(enc: &Encoder<'_, '_, K>, ids: &[u32], arena: &mut [u8], pooled: &mut [i32]) {
    enc.embed(ids, arena, pooled).expect("microbert embeds");
}

/// One product `a x b` into `out` with `k`.
fn gemm<K: Kernels>(k: &K, a: MatRef<'_, i8>, b: Rhs<'_>, out: &mut [i32]) {
    let (m, n) = (a.rows(), b.channels());
    let out = MatMut::contiguous(out, m, n).expect("output shape");
    k.gemm(Gemm::new(Lhs::I8(a), b, out).expect("shapes agree"));
}

fn main() {
    // SAFETY: first statement of `main`: no other thread exists yet that could read the
    // environment. candle's matmul (`gemm`) and rayon read it to choose their thread count.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let host = HostKernels::detect();
    let scalar = HostKernels::scalar();
    let mut table = String::new();
    let profile_secs = std::env::var("MICROBERT_PROFILE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let ghz = if profile_secs.is_some() {
        f64::NAN
    } else {
        measure_clock_ghz()
    };
    let peak = 32.0 * ghz;
    let _ = writeln!(
        table,
        "One thread; CPU: {}; AVX2 detected: {}; clock {ghz:.2} GHz measured (fastest of 50 dependent-add chains); AVX2 int8 peak 32 MAC/cycle = {peak:.1} GMAC/s.\n",
        cpu_model(),
        host.name() == "avx2",
    );

    // int8 GEMM alone.
    let _ = writeln!(
        table,
        "| int8 GEMM (m x n x k) | backend | median | GMAC/s | of AVX2 peak | fastest | GMAC/s | of AVX2 peak |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    // (m, n, depth, stride): the two feed-forward shapes, and one head's attention Q.K
    // (depth 32 inside rows of 384) of a row block against 128 keys, as the encoder runs
    // them (`m` = its row block).
    let gemm_shapes: &[(usize, usize, usize, usize)] = if profile_secs.is_some() {
        &[]
    } else {
        &[
            (BLOCK_ROWS, 1536, 384, 384),
            (BLOCK_ROWS, 384, 1536, 1536),
            (BLOCK_ROWS, 128, 32, 384),
        ]
    };
    let mut rng = microbert::kernels::testing::Rng::new(42);
    for &(m, n, k, ld) in gemm_shapes {
        let a: Vec<i8> = (0..m * ld).map(|_| rng.i8()).collect();
        let b: Vec<i8> = (0..n * ld).map(|_| rng.i8()).collect();
        let mut out = vec![0i32; m * n];
        let macs = (m * n * k) as f64;
        let mut group = c.benchmark_group(format!("gemm_i8 {m}x{n}x{k}/{ld}"));
        let av = MatRef::new(&a, m, k, ld).expect("a");
        let bv = MatRef::new(&b, n, k, ld).expect("b");
        // The weights as the encoder meets them: prepared once (`HostKernels::prepare_model`).
        let mut prepared = vec![0u8; host.prepared_len(n, k)];
        host.prepare(bv, &mut prepared);
        for (kern, name, rhs) in [
            (&scalar, "scalar", Rhs::Channels(bv)),
            (&host, "avx2", Rhs::Channels(bv)),
            (
                &host,
                "avx2, prepared b",
                Rhs::Prepared(Prepared::new(bv, &prepared)),
            ),
        ] {
            group.bench_function(name, |bch| {
                bch.iter(|| gemm(kern, black_box(av), rhs, &mut out))
            });
            let (t, best) = times(
                || gemm(kern, black_box(av), rhs, &mut out),
                50,
                Duration::from_millis(500),
            );
            let gmacs = macs / t.as_secs_f64() / 1e9;
            let best_gmacs = macs / best.as_secs_f64() / 1e9;
            let _ = writeln!(
                table,
                "| {m} x {n} x {k}{} | {name} | {:.1} us | {gmacs:.1} | {:.0}% | {:.1} us | {best_gmacs:.1} | {:.0}% |",
                if ld == k {
                    String::new()
                } else {
                    format!(" (stride {ld})")
                },
                t.as_secs_f64() * 1e6,
                100.0 * gmacs / peak,
                best.as_secs_f64() * 1e6,
                100.0 * best_gmacs / peak
            );
        }
        group.finish();
    }

    if std::env::var_os("MICROBERT_GEMM_ONLY").is_some() {
        finish(&mut c, &table);
        return;
    }

    // MiniLM end to end at 128 tokens.
    let blob_path = microbert_tests::corpus::cache_dir().join("blobs/minilm.blob");
    let Ok(bytes) = std::fs::read(&blob_path) else {
        eprintln!(
            "{} missing (cargo xtask prepare): end-to-end part skipped",
            blob_path.display()
        );
        finish(&mut c, &table);
        return;
    };
    let model: ModelView<'_> = microbert::parse(&bytes).expect("MiniLM blob parses");
    let tokenizer = Tokenizer::new(&model);
    let mut ids = vec![0u32; TOKENS];
    let enc = tokenizer.encode(&long_text(), &mut ids).expect("tokenizes");
    assert_eq!(
        enc.len, TOKENS,
        "the text must have at least {TOKENS} tokens"
    );
    let mut arena = vec![0u8; microbert::scratch_bytes(&model, TOKENS)];
    let mut pooled = vec![0i32; model.config.hidden_size as usize];
    if let Some(secs) = profile_secs {
        // Profiling hook: only the AVX2 end-to-end run, for `perf record`.
        let prepared = host.prepare_model(&model);
        let enc = prepared.encoder(&model).expect("prepared for this model");
        let start = Instant::now();
        let mut runs = Vec::new();
        while start.elapsed() < Duration::from_secs(secs) {
            let t = Instant::now();
            embed(&enc, &ids, &mut arena, &mut pooled);
            runs.push(t.elapsed());
        }
        runs.sort();
        eprintln!(
            "profile: {} embeddings, median {:.2?}, fastest {:.2?}",
            runs.len(),
            runs.get(runs.len() / 2).copied().unwrap_or_default(),
            runs.first().copied().unwrap_or_default()
        );
        return;
    }
    let mut group = c.benchmark_group(format!("minilm {TOKENS} tokens"));
    let mut rows = Vec::new();
    let candle = Candle::load(&ids);
    if let Some(candle) = &candle {
        group.bench_function("candle f32", |bch| bch.iter(|| candle.embed()));
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        let t = times(|| drop(candle.embed()), 10, Duration::from_secs(2));
        let cores = match (cpu0, cpu_time()) {
            (Some(a), Some(b)) => (b - a).as_secs_f64() / wall0.elapsed().as_secs_f64(),
            _ => f64::NAN,
        };
        rows.push(("candle-transformers BertModel f32", t, Some(cores)));
    } else {
        eprintln!("candle: models/minilm checkpoint missing: candle row skipped");
    }
    let packing = Instant::now();
    let prepared = host.prepare_model(&model);
    let packing = packing.elapsed();
    eprintln!(
        "preparing the dense weights for AVX2: {packing:.2?} ({} bytes)",
        prepared.len()
    );
    for kern in [scalar, host] {
        let enc = if kern == host {
            prepared.encoder(&model).expect("prepared for this model")
        } else {
            Encoder::new(&model, kern)
        };
        group.bench_function(format!("microbert {}", kern.name()), |bch| {
            bch.iter(|| embed(&enc, &ids, &mut arena, &mut pooled))
        });
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        let t = times(
            || embed(&enc, &ids, &mut arena, &mut pooled),
            5,
            Duration::from_secs(2),
        );
        let cores = match (cpu0, cpu_time()) {
            (Some(a), Some(b)) => (b - a).as_secs_f64() / wall0.elapsed().as_secs_f64(),
            _ => f64::NAN,
        };
        rows.push((
            if kern.name() == "avx2" {
                "microbert int8, AVX2"
            } else {
                "microbert int8, scalar"
            },
            t,
            Some(cores),
        ));
    }
    group.finish();
    let candle_t = candle.as_ref().map(|_| rows[0].1);
    let scalar_t = rows.iter().find(|r| r.0.ends_with("scalar")).map(|r| r.1);
    let _ = writeln!(
        table,
        "\n| MiniLM-L6 end to end, {TOKENS} tokens | median | vs candle f32 | vs microbert scalar | fastest | vs candle f32 | vs microbert scalar | CPU cores busy |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (name, (t, best), cores) in &rows {
        let ratio = |base: Option<(Duration, Duration)>, fastest: bool| {
            base.map_or("-".to_owned(), |(bm, bb)| {
                let (b, x) = if fastest { (bb, best) } else { (bm, t) };
                format!("{:.2}x", b.as_secs_f64() / x.as_secs_f64())
            })
        };
        let _ = writeln!(
            table,
            "| {name} | {:.1} ms | {} | {} | {:.1} ms | {} | {} | {:.2} |",
            t.as_secs_f64() * 1e3,
            ratio(candle_t, false),
            ratio(scalar_t, false),
            best.as_secs_f64() * 1e3,
            ratio(candle_t, true),
            ratio(scalar_t, true),
            cores.unwrap_or(f64::NAN)
        );
    }
    finish(&mut c, &table);
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn finish(c: &mut Criterion, table: &str) {
    c.final_summary();
    println!("\n{table}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = target.join("bench-table.md");
    match std::fs::write(&path, table) {
        Ok(()) => println!("(table written to {})", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}
