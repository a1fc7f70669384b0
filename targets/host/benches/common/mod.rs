//! Helpers the host benchmarks share: timing, the measured clock, the candle f32 peer.

#![allow(dead_code, unreachable_pub)]

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as CandleConfig};
use core::hint::black_box;
use core::time::Duration;
use std::path::Path;
use std::time::Instant;

/// Median and fastest wall time of `f` over at least `runs` runs and `min` of total time
/// (on a shared machine the fastest run is the least disturbed one).
pub fn times(mut f: impl FnMut(), runs: usize, min: Duration) -> (Duration, Duration) {
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

/// CPU time of every thread of this process, in nanoseconds
/// (`clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`, exact to the call). Unlike wall time it
/// leaves out the time spent waiting for a core, which dominates on a loaded machine.
pub fn process_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0;
    ok.then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Like [`times`], also with the CPU time of each run ([`process_cpu_ns`]): (wall median,
/// wall fastest, CPU median, CPU fastest).
pub fn times_cpu(
    mut f: impl FnMut(),
    runs: usize,
    min: Duration,
) -> (Duration, Duration, Duration, Duration) {
    f();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while wall.len() < runs || start.elapsed() < min {
        let (t, c) = (Instant::now(), process_cpu_ns());
        f();
        wall.push(t.elapsed());
        if let (Some(a), Some(b)) = (c, process_cpu_ns()) {
            cpu.push(Duration::from_nanos(b.saturating_sub(a)));
        }
    }
    wall.sort();
    cpu.sort();
    let mid = |v: &[Duration]| v.get(v.len() / 2).copied().unwrap_or_default();
    (
        mid(&wall),
        wall[0],
        mid(&cpu),
        cpu.first().copied().unwrap_or_default(),
    )
}

/// This process's user + system CPU time (from `/proc/self/stat`, in clock ticks of 10 ms).
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime field 14, stime field 15 (1-based).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The core clock in GHz, measured: a chain of dependent 64-bit `imul`s retires one per
/// three cycles on every x86-64 core of the last decade (Intel since Nehalem, AMD since
/// Zen), so `3 * imuls / seconds` is the frequency while it runs. (A chain of `add reg, 1`
/// does not work: recent Intel cores fold immediate adds at rename and report 20 GHz.)
#[cfg(target_arch = "x86_64")]
pub fn measure_clock_ghz() -> f64 {
    let chain = |iters: u64| {
        let mut x = 3u64;
        let mut n = iters;
        // SAFETY: the assembly only multiplies and decrements the two registers it is given,
        // touches no memory and no stack, and ends with `n == 0`.
        unsafe {
            std::arch::asm!(
                "2:",
                "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}",
                "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}",
                "imul {x}, {x}", "imul {x}, {x}",
                "dec {n}",
                "jnz 2b",
                x = inout(reg) x,
                n = inout(reg) n,
                options(nomem, nostack),
            );
        }
        black_box((x, n));
    };
    // The fastest of many short runs, timed by this process's CPU time when it can be
    // read (a run preempted on a loaded machine then does not look slow) and by wall time
    // otherwise: preemption and a busy sibling hyperthread only ever make a run slower.
    let iters = 2_000_000u64;
    chain(iters);
    let t = (0..50)
        .map(|_| {
            let (t, c) = (Instant::now(), process_cpu_ns());
            chain(iters);
            match (c, process_cpu_ns()) {
                (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
                _ => t.elapsed(),
            }
        })
        .min()
        .unwrap_or(Duration::MAX);
    (iters * 10 * 3) as f64 / t.as_secs_f64() / 1e9
}

#[cfg(not(target_arch = "x86_64"))]
pub fn measure_clock_ghz() -> f64 {
    f64::NAN
}

/// candle-transformers' `BertModel` in f32 on a checkpoint, with one input.
pub struct Candle {
    model: BertModel,
    input: Tensor,
    types: Tensor,
}

impl Candle {
    /// The checkpoint of the cache's `models/minilm` with input `ids`.
    pub fn load(ids: &[u32]) -> Option<Self> {
        Self::load_from(
            &microbert_tests::corpus::cache_dir().join("models/minilm"),
            ids,
        )
    }

    /// The checkpoint in `dir` (config.json, model.safetensors) with input `ids`.
    pub fn load_from(dir: &Path, ids: &[u32]) -> Option<Self> {
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
    pub fn embed(&self) -> Tensor {
        self.model
            .forward(&self.input, &self.types, None)
            .and_then(|h| h.mean(1))
            .expect("candle forward")
    }
}
