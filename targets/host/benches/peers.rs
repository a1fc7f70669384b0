//! The Rust half of `cargo xtask bench-peers` (which prepares its inputs and runs the ONNX
//! Runtime half, `peers_onnx.py`, on the same token ids): one thread, one model.
//!
//! - microbert on every tier this CPU has: ms per text at 128 and 512 tokens (weights
//!   prepared once, arena reused) and, for the SIMD tiers, texts per second over the
//!   reviews one by one;
//! - candle-transformers `BertModel` in f32 on the same checkpoint, at 128 and 512 tokens;
//! - each tier's int8 peak, measured: a loop of 12 independent accumulator chains of the
//!   tier's multiply-accumulate instruction (`vpmaddwd` + `vpaddd` for AVX2, `vpdpbusd` for
//!   the VNNI tiers), as multiply-accumulates per second and per cycle of the measured
//!   clock; and the dense GEMM at the encoder's row block (`BLOCK_ROWS` rows, prepared
//!   weights, the model's three dense shapes, int8 activations; the first shape also with
//!   u8 activations with a zero point and with int16 ones) as a fraction of it.
//!
//! Inputs from the environment (`cargo xtask bench-peers` sets them):
//! `MICROBERT_PEERS_IDS` (JSON: `ids128`, `ids512`, `reviews`: token ids),
//! `MICROBERT_PEERS_BLOB` (the microbert blob), `MICROBERT_PEERS_CHECKPOINT` (the
//! checkpoint directory for candle; optional), `MICROBERT_PEERS_OUT` (JSON lines written
//! here, one per measurement). `cargo bench -p microbert-host --bench peers` with them set
//! runs it alone; `MICROBERT_PEERS_TIERS=avx2,avx512-vnni` limits the tiers, and
//! `MICROBERT_PEERS_SKIP=reviews,candle,gemm` skips parts (for quick iterations), and
//! `MICROBERT_PEERS_GEMM_ROWS=24,32,64` times the dense GEMM at these row counts as well as
//! at `BLOCK_ROWS`.

mod common;

use common::{Candle, measure_clock_ghz, process_cpu_ns, times_cpu};
use core::hint::black_box;
use core::time::Duration;
use microbert::kernels::{Gemm, Lhs, MatMut, MatRef, Prepared, Rhs};
use microbert::model::scratch::BLOCK_ROWS;
use microbert::{Encoder, Kernels};
use microbert_host::{HostKernels, Threads, Tier};
use serde_json::{Value, json};
use std::io::Write as _;
use std::time::Instant;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (see the module docs)"))
}

/// Milliseconds of [`times_cpu`]'s wall and CPU medians and fastest runs.
fn ms((median, fastest, cpu, cpu_fastest): (Duration, Duration, Duration, Duration)) -> Value {
    let m = |d: Duration| d.as_secs_f64() * 1e3;
    json!({
        "median": m(median), "fastest": m(fastest),
        "cpu_median": m(cpu), "cpu_fastest": m(cpu_fastest),
    })
}

/// Texts per second of `f` over `texts`, by wall time and by CPU time.
fn throughput<T>(texts: &[T], mut f: impl FnMut(&T)) -> Value {
    let (start, cpu0) = (Instant::now(), process_cpu_ns());
    for t in texts {
        f(t);
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu0, process_cpu_ns()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
        _ => None,
    };
    json!({"wall": texts.len() as f64 / wall, "cpu": cpu.map(|c| texts.len() as f64 / c)})
}

fn main() {
    // SAFETY: first statement of `main`: no other thread exists yet that could read the
    // environment. candle's matmul (`gemm`) and rayon read it to choose their thread count.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    let ids: Value = serde_json::from_str(
        &std::fs::read_to_string(env("MICROBERT_PEERS_IDS")).expect("ids file"),
    )
    .expect("ids JSON");
    let to_ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .expect("an array of ids")
            .iter()
            .map(|x| x.as_u64().expect("an id") as u32)
            .collect()
    };
    let ids128 = to_ids(&ids["ids128"]);
    let ids512 = to_ids(&ids["ids512"]);
    let reviews: Vec<Vec<u32>> = ids["reviews"]
        .as_array()
        .expect("reviews")
        .iter()
        .map(to_ids)
        .collect();
    let bytes = std::fs::read(env("MICROBERT_PEERS_BLOB")).expect("blob");
    let model = microbert::parse(&bytes).expect("blob parses");
    let mut out = std::fs::File::create(env("MICROBERT_PEERS_OUT")).expect("output file");
    let tiers: Vec<Tier> = match std::env::var("MICROBERT_PEERS_TIERS") {
        Ok(list) => list
            .split(',')
            .map(|n| Tier::from_name(n.trim()).unwrap_or_else(|| panic!("no tier {n}")))
            .collect(),
        Err(_) => Tier::ALL.to_vec(),
    };
    let skip = std::env::var("MICROBERT_PEERS_SKIP").unwrap_or_default();
    let skip = |part: &str| skip.split(',').any(|s| s.trim() == part);
    let mut emit = |v: Value| {
        eprintln!("peers: {v}");
        writeln!(out, "{v}").expect("write results");
    };

    // Peaks and the dense GEMM first (short, and least disturbed by what runs after).
    emit(json!({
        "kind": "cpu", "model": microbert_host::cpu::model_name(),
        "features": microbert_host::cpu::features_line(),
        "chosen": HostKernels::detect().name(),
    }));
    let ghz = measure_clock_ghz();
    emit(json!({"kind": "clock", "ghz": ghz}));
    let d = model.config.hidden_size as usize;
    let ffn = model.config.intermediate_size as usize;
    let shapes = [(ffn, d), (d, ffn), (d, d)].map(|(n, depth)| (BLOCK_ROWS, n, depth));
    let more_rows: Vec<usize> = std::env::var("MICROBERT_PEERS_GEMM_ROWS")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .expect("MICROBERT_PEERS_GEMM_ROWS: row counts")
        })
        .filter(|&m| m != BLOCK_ROWS)
        .collect();
    for &tier in tiers.iter().filter(|_| !skip("gemm")) {
        let Some(k) = HostKernels::with_tier(tier) else {
            emit(json!({"kind": "tier", "tier": tier.name(), "supported": false}));
            continue;
        };
        let peak = peak::macs_per_second(tier);
        emit(json!({
            "kind": "peak", "tier": tier.name(), "instruction": peak.map(|p| p.0),
            "gmacs": peak.map(|p| p.1 / 1e9), "mac_per_cycle": peak.map(|p| p.1 / 1e9 / ghz),
            "geometry": tier.geometry().map(|g| [g.mr, g.nr, g.ku]),
        }));
        let mut rng = microbert::kernels::testing::Rng::new(42);
        // The dense shapes with int8 activations, and the other activation kinds at the
        // shapes the calibrated encoder gives them: u8 with a zero point into FFN2
        // (depth = FFN width), int16 into the q/k/v projections (hidden x hidden).
        let cases = shapes
            .iter()
            .map(|&s| (s, "i8"))
            .chain([(shapes[1], "u8"), (shapes[2], "i16")])
            .chain(more_rows.iter().flat_map(|&m| {
                shapes
                    .iter()
                    .map(move |&(_, n, depth)| ((m, n, depth), "i8"))
            }));
        for ((m, n, depth), lhs) in cases {
            let a: Vec<i8> = (0..m * depth).map(|_| rng.i8()).collect();
            let au8: Vec<u8> = a.iter().map(|&x| x as u8).collect();
            let a16: Vec<i16> = a.iter().map(|&x| i16::from(x) * 31).collect();
            let b: Vec<i8> = (0..n * depth).map(|_| rng.i8()).collect();
            let bv = MatRef::contiguous(&b, n, depth).expect("b");
            let av = match lhs {
                "u8" => Lhs::U8 {
                    values: MatRef::contiguous(&au8, m, depth).expect("a"),
                    zero_point: 128,
                },
                "i16" => Lhs::I16(MatRef::contiguous(&a16, m, depth).expect("a")),
                _ => Lhs::I8(MatRef::contiguous(&a, m, depth).expect("a")),
            };
            let mut prepared = vec![0u8; k.prepared_len(n, depth)];
            k.prepare(bv, &mut prepared);
            let rhs = if prepared.is_empty() {
                Rhs::Channels(bv)
            } else {
                Rhs::Prepared(Prepared::new(bv, &prepared))
            };
            let mut acc = vec![0i32; m * n];
            let mut run = || {
                let o = MatMut::contiguous(&mut acc, m, n).expect("out");
                k.gemm(Gemm::new(black_box(av), rhs, o).expect("shapes"));
            };
            // Batches of calls, so that reading the CPU clock costs nothing measurable.
            const CALLS: usize = 20;
            let (wall, _, median, fastest) = times_cpu(
                || (0..CALLS).for_each(|_| run()),
                20,
                Duration::from_millis(300),
            );
            let macs = (CALLS * m * n * depth) as f64;
            let g = |t: Duration| macs / t.as_secs_f64() / 1e9;
            emit(json!({
                "kind": "gemm", "tier": tier.name(), "m": m, "n": n, "k": depth, "lhs": lhs,
                "gmacs_median": g(median), "gmacs_fastest": g(fastest),
                "gmacs_wall_median": g(wall),
                "of_peak_median": peak.map(|p| g(median) * 1e9 / p.1),
                "of_peak_fastest": peak.map(|p| g(fastest) * 1e9 / p.1),
            }));
        }
    }

    // microbert end to end, every tier.
    let max = ids128
        .len()
        .max(ids512.len())
        .max(reviews.iter().map(Vec::len).max().unwrap_or(0));
    let mut arena = vec![0u8; microbert::scratch_bytes(&model, max)];
    let mut pooled = vec![0i32; d];
    for tier in Tier::AUTO.into_iter().filter(|t| tiers.contains(t)) {
        let Some(k) = HostKernels::with_tier(tier) else {
            continue;
        };
        let prepared = k.prepare_model(&model);
        let enc: Encoder<'_, '_, HostKernels> =
            prepared.encoder(&model).expect("prepared for this model");
        let mut embed = |ids: &[u32]| {
            enc.embed(ids, &mut arena, &mut pooled)
                .expect("microbert embeds");
        };
        let scalar = tier == Tier::Scalar;
        let t128 = times_cpu(
            || embed(&ids128),
            if scalar { 3 } else { 30 },
            Duration::from_secs(1),
        );
        let t512 = times_cpu(
            || embed(&ids512),
            if scalar { 1 } else { 10 },
            Duration::from_secs(1),
        );
        // The scalar reference would take minutes over the reviews: not run.
        let per_s = (!scalar && !skip("reviews")).then(|| throughput(&reviews, |r| embed(r)));
        emit(json!({
            "kind": "engine", "engine": format!("microbert {}", k.name()), "tier": k.name(),
            "ms128": ms(t128), "ms512": ms(t512), "reviews_per_s": per_s,
            "reviews_batch": 1,
        }));
    }

    // The best tier with several threads and with packed batches of reviews.
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    if let Some(tier) = Tier::AUTO
        .into_iter()
        .find(|t| tiers.contains(t) && t.supported())
    {
        let k = HostKernels::with_tier(tier).expect("supported");
        let prepared = k.prepare_model(&model);
        let enc = prepared.encoder(&model).expect("prepared for this model");
        let mut counts = vec![1];
        if workers > 1 {
            counts.push(workers);
        }
        for threads in counts {
            let pool = Threads::new(threads);
            let enc = enc.with_parallel(pool.clone());
            let mut arena = Vec::new();
            let mut embed = |ids: &[u32]| {
                arena.resize(arena.len().max(enc.plan(ids.len()).arena_bytes()), 0);
                pool.install(|| enc.embed(ids, &mut arena, &mut pooled))
                    .expect("microbert embeds");
            };
            let (t128, t512) = if threads == 1 {
                (None, None)
            } else {
                (
                    Some(ms(times_cpu(|| embed(&ids128), 30, Duration::from_secs(1)))),
                    Some(ms(times_cpu(|| embed(&ids512), 10, Duration::from_secs(1)))),
                )
            };
            let per_s = (!skip("reviews")).then(|| {
                let groups: Vec<&[Vec<u32>]> = reviews.chunks(REVIEW_BATCH).collect();
                let mut arena = Vec::new();
                let mut out = Vec::new();
                throughput(&groups, |group| {
                    embed_packed(&enc, group, &mut arena, &mut out, &mut pooled);
                })
            });
            emit(json!({
                "kind": "engine", "engine": format!("microbert {} {threads} threads", k.name()),
                "tier": k.name(), "threads": threads,
                "ms128": t128, "ms512": t512,
                "reviews_per_s": per_s.map(|v| scale_per_s(v, REVIEW_BATCH, reviews.len())),
                "reviews_batch": REVIEW_BATCH,
            }));
        }
    }

    // candle f32.
    if let Ok(dir) = std::env::var("MICROBERT_PEERS_CHECKPOINT")
        && !skip("candle")
    {
        let dir = std::path::PathBuf::from(dir);
        let (Some(c128), Some(c512)) = (
            Candle::load_from(&dir, &ids128),
            Candle::load_from(&dir, &ids512),
        ) else {
            panic!("candle cannot load the checkpoint in {}", dir.display());
        };
        let t128 = times_cpu(|| drop(c128.embed()), 10, Duration::from_secs(1));
        let t512 = times_cpu(|| drop(c512.embed()), 3, Duration::from_secs(1));
        emit(json!({
            "kind": "engine", "engine": "candle f32", "ms128": ms(t128), "ms512": ms(t512),
            "reviews_per_s": null,
        }));
    }
    // Keep the results alive past the timing (nothing is optimised away).
    black_box(&pooled);
}

/// Reviews per packed pass in the batch throughput runs (ONNX Runtime's batch size).
const REVIEW_BATCH: usize = 32;

/// Texts of at most this many tokens are packed together; longer ones run alone (as
/// `microbert embed` does).
const PACK_MAX_TOKENS: usize = 128;

/// Embeds one group of reviews as `microbert embed` does: the short ones packed into one
/// pass, the long ones alone.
fn embed_packed<K: Kernels + Sync, R: microbert::model::layer::Runner<K>>(
    enc: &Encoder<'_, '_, K, R>,
    group: &[Vec<u32>],
    arena: &mut Vec<u8>,
    out: &mut Vec<i32>,
    pooled: &mut [i32],
) {
    let (short, long): (Vec<&[u32]>, Vec<&[u32]>) = group
        .iter()
        .map(Vec::as_slice)
        .partition(|ids| ids.len() <= PACK_MAX_TOKENS);
    arena.resize(arena.len().max(enc.batch_plan(&short).arena_bytes()), 0);
    out.resize(short.len() * pooled.len(), 0);
    enc.embed_batch(&short, arena, out)
        .expect("microbert embeds a batch");
    for ids in long {
        arena.resize(arena.len().max(enc.plan(ids.len()).arena_bytes()), 0);
        enc.embed(ids, arena, pooled).expect("microbert embeds");
    }
    black_box(&out);
}

/// A throughput over groups turned into texts per second.
fn scale_per_s(v: Value, per_group: usize, texts: usize) -> Value {
    let groups = texts.div_ceil(per_group) as f64;
    let k = texts as f64 / groups;
    let f = |x: &Value| x.as_f64().map(|x| x * k);
    json!({"wall": f(&v["wall"]), "cpu": f(&v["cpu"])})
}

/// Measured int8 multiply-accumulate peaks of the tiers.
#[cfg(target_arch = "x86_64")]
mod peak {
    use core::arch::asm;
    use microbert_host::Tier;
    use std::time::Instant;

    /// Iterations of one timed loop (12 instructions each).
    const ITERS: u64 = 2_000_000;

    /// Runs `f` (one loop of `ITERS` iterations) 50 times; the fastest run's seconds, by
    /// this process's CPU time (wall time if it cannot be read).
    fn fastest(f: impl Fn()) -> f64 {
        f();
        (0..50)
            .map(|_| {
                let (t, c) = (Instant::now(), super::process_cpu_ns());
                f();
                match (c, super::process_cpu_ns()) {
                    (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
                    _ => t.elapsed().as_secs_f64(),
                }
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// 12 independent `vpmaddwd` + `vpaddd` chains on `ymm` (16 MAC per pair).
    #[target_feature(enable = "avx2")]
    fn avx2_loop() {
        // SAFETY: the block only computes in the vector registers it names as clobbered and
        // counts `n` down; no memory, no stack. AVX2 is enabled (the caller checked it).
        unsafe {
            asm!(
                "vpxor ymm0, ymm0, ymm0", "vpxor ymm1, ymm1, ymm1",
                "2:",
                "vpmaddwd ymm2, ymm0, ymm1", "vpaddd ymm4, ymm4, ymm2",
                "vpmaddwd ymm3, ymm0, ymm1", "vpaddd ymm5, ymm5, ymm3",
                "vpmaddwd ymm2, ymm0, ymm1", "vpaddd ymm6, ymm6, ymm2",
                "vpmaddwd ymm3, ymm0, ymm1", "vpaddd ymm7, ymm7, ymm3",
                "vpmaddwd ymm2, ymm0, ymm1", "vpaddd ymm8, ymm8, ymm2",
                "vpmaddwd ymm3, ymm0, ymm1", "vpaddd ymm9, ymm9, ymm3",
                "vpmaddwd ymm2, ymm0, ymm1", "vpaddd ymm10, ymm10, ymm2",
                "vpmaddwd ymm3, ymm0, ymm1", "vpaddd ymm11, ymm11, ymm3",
                "vpmaddwd ymm2, ymm0, ymm1", "vpaddd ymm12, ymm12, ymm2",
                "vpmaddwd ymm3, ymm0, ymm1", "vpaddd ymm13, ymm13, ymm3",
                "vpmaddwd ymm2, ymm0, ymm1", "vpaddd ymm14, ymm14, ymm2",
                "vpmaddwd ymm3, ymm0, ymm1", "vpaddd ymm15, ymm15, ymm3",
                "dec {n}", "jnz 2b",
                n = inout(reg) ITERS => _,
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _,
                out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _,
                out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _,
                out("ymm14") _, out("ymm15") _,
                options(nomem, nostack),
            );
        }
    }

    /// 12 independent VEX `vpdpbusd` chains on `ymm` (32 MAC each).
    #[target_feature(enable = "avx2,avxvnni")]
    fn avx_vnni_loop() {
        // SAFETY: as in `avx2_loop`; AVX-VNNI is enabled (the caller checked it).
        unsafe {
            asm!(
                "vpxor ymm0, ymm0, ymm0", "vpxor ymm1, ymm1, ymm1",
                "2:",
                "{{vex}} vpdpbusd ymm4, ymm0, ymm1", "{{vex}} vpdpbusd ymm5, ymm0, ymm1",
                "{{vex}} vpdpbusd ymm6, ymm0, ymm1", "{{vex}} vpdpbusd ymm7, ymm0, ymm1",
                "{{vex}} vpdpbusd ymm8, ymm0, ymm1", "{{vex}} vpdpbusd ymm9, ymm0, ymm1",
                "{{vex}} vpdpbusd ymm10, ymm0, ymm1", "{{vex}} vpdpbusd ymm11, ymm0, ymm1",
                "{{vex}} vpdpbusd ymm12, ymm0, ymm1", "{{vex}} vpdpbusd ymm13, ymm0, ymm1",
                "{{vex}} vpdpbusd ymm14, ymm0, ymm1", "{{vex}} vpdpbusd ymm15, ymm0, ymm1",
                "dec {n}", "jnz 2b",
                n = inout(reg) ITERS => _,
                out("ymm0") _, out("ymm1") _, out("ymm4") _, out("ymm5") _, out("ymm6") _,
                out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                options(nomem, nostack),
            );
        }
    }

    /// 12 independent `vpdpbusd` chains on `zmm` (64 MAC each).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn avx512_vnni_loop() {
        // SAFETY: as in `avx2_loop`; AVX-512 F and VNNI are enabled (the caller checked).
        unsafe {
            asm!(
                "vpxord zmm0, zmm0, zmm0", "vpxord zmm1, zmm1, zmm1",
                "2:",
                "vpdpbusd zmm4, zmm0, zmm1", "vpdpbusd zmm5, zmm0, zmm1",
                "vpdpbusd zmm6, zmm0, zmm1", "vpdpbusd zmm7, zmm0, zmm1",
                "vpdpbusd zmm8, zmm0, zmm1", "vpdpbusd zmm9, zmm0, zmm1",
                "vpdpbusd zmm10, zmm0, zmm1", "vpdpbusd zmm11, zmm0, zmm1",
                "vpdpbusd zmm12, zmm0, zmm1", "vpdpbusd zmm13, zmm0, zmm1",
                "vpdpbusd zmm14, zmm0, zmm1", "vpdpbusd zmm15, zmm0, zmm1",
                "dec {n}", "jnz 2b",
                n = inout(reg) ITERS => _,
                out("zmm0") _, out("zmm1") _, out("zmm4") _, out("zmm5") _, out("zmm6") _,
                out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _,
                options(nomem, nostack),
            );
        }
    }

    /// `(instruction, multiply-accumulates per second)` of `tier` on this CPU (`None`
    /// for the scalar reference or a tier the CPU lacks).
    pub(crate) fn macs_per_second(tier: Tier) -> Option<(&'static str, f64)> {
        if !tier.supported() {
            return None;
        }
        // Per loop iteration: 12 instructions of 16, 32 or 64 multiply-accumulates.
        // `tier.supported()` checked the features each loop enables.
        let (name, macs, secs) = match tier {
            Tier::Avx2 => {
                // SAFETY: AVX2 is supported (checked above).
                let secs = fastest(|| unsafe { avx2_loop() });
                ("vpmaddwd+vpaddd ymm", 16.0, secs)
            }
            Tier::AvxVnni => {
                // SAFETY: AVX2 and AVX-VNNI are supported (checked above).
                let secs = fastest(|| unsafe { avx_vnni_loop() });
                ("vpdpbusd ymm", 32.0, secs)
            }
            Tier::Avx512Vnni => {
                // SAFETY: AVX-512 F, BW and VNNI are supported (checked above).
                let secs = fastest(|| unsafe { avx512_vnni_loop() });
                ("vpdpbusd zmm", 64.0, secs)
            }
            Tier::Amx => {
                // A full-tile `tdpbusd` takes about 16 cycles: an eighth of the rounds.
                let rounds = ITERS / 8;
                let macs = microbert_host::amx_peak_loop(1)?;
                let secs = fastest(|| {
                    microbert_host::amx_peak_loop(rounds);
                });
                return Some(("tdpbusd tiles", (rounds * macs) as f64 / secs));
            }
            _ => return None,
        };
        Some((name, (ITERS * 12) as f64 * macs / secs))
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod peak {
    use microbert_host::Tier;

    /// No int8 peak is measured off x86-64.
    pub(crate) fn macs_per_second(_: Tier) -> Option<(&'static str, f64)> {
        None
    }
}
