//! Where the instructions of an inference go: a [`Kernels`] wrapper that counts the calls of
//! every kernel method (products split by operand kind) and the counter ticks spent in them
//! (included with `#[path]` by the firmware examples that count instructions).
//!
//! It is a diagnostic beside the plain count: each call adds two counter reads (a few tens
//! of instructions), so the per-kernel figures are a little above what the kernels execute,
//! and the remainder (`other`: tokenizer-free encoder code, embeddings, pooling) is the
//! plain count minus the kernels'.

use core::cell::Cell;
use microbert::kernels::{
    Gemm, LayerNormParams, LeI32s, Lhs, LogitScale, MatRef, PvScale, Requant, Rhs,
};
use microbert::Kernels;

/// The kernel methods and product kinds counted, in print order.
pub(crate) const SLOTS: [&str; 18] = [
    "gemm i8 x channels",
    "gemm i8 x prepared",
    "gemm u16 x depths",
    "gemm other",
    "quantize_row_i8",
    "quantize_row_pow2",
    "requantize_row",
    "attention_logits_row",
    "softmax_row",
    "pv_scale_row",
    "layer_norm_row",
    "gelu_row",
    "prepare",
    "gemm u8 x weights",
    "gemm i16 x weights",
    "quantize_row_i8_scaled",
    "quantize_row_i16",
    "quantize_row_u8_offset",
];

/// Calls and ticks of one slot.
#[derive(Clone, Copy, Default)]
pub(crate) struct Tally {
    pub(crate) calls: u32,
    pub(crate) ticks: u64,
}

/// `K` with every method timed by `ticks`.
pub(crate) struct Profiled<K> {
    inner: K,
    ticks: fn() -> u64,
    tallies: [Cell<Tally>; SLOTS.len()],
}

impl<K: Kernels> Profiled<K> {
    pub(crate) fn new(inner: K, ticks: fn() -> u64) -> Self {
        Self {
            inner,
            ticks,
            tallies: Default::default(),
        }
    }

    /// Calls and ticks per slot of [`SLOTS`].
    pub(crate) fn tallies(&self) -> [Tally; SLOTS.len()] {
        core::array::from_fn(|i| self.tallies[i].get())
    }

    fn timed<R>(&self, slot: usize, f: impl FnOnce(&K) -> R) -> R {
        let t0 = (self.ticks)();
        let r = f(&self.inner);
        let dt = (self.ticks)() - t0;
        if let Some(c) = self.tallies.get(slot) {
            let t = c.get();
            c.set(Tally {
                calls: t.calls + 1,
                ticks: t.ticks + dt,
            });
        }
        r
    }
}

impl<K: Kernels> Kernels for Profiled<K> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn gemm(&self, g: Gemm<'_, '_>) {
        let slot = match (g.a(), g.b()) {
            (Lhs::I8(_), Rhs::Channels(_)) => 0,
            (Lhs::I8(_), Rhs::Prepared(_)) => 1,
            (Lhs::U16(_), Rhs::Depths(_)) => 2,
            (Lhs::U8 { .. }, Rhs::Channels(_) | Rhs::Prepared(_)) => 13,
            (Lhs::I16(_), Rhs::Channels(_) | Rhs::Prepared(_)) => 14,
            _ => 3,
        };
        self.timed(slot, |k| k.gemm(g));
    }
    fn prepared_len(&self, channels: usize, depth: usize) -> usize {
        self.inner.prepared_len(channels, depth)
    }
    fn prepare(&self, w: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        self.timed(12, |k| k.prepare(w, out))
    }
    fn attention_logits_row(&self, acc: &mut [i32], q_amax: u32, k_exp: &[u32], scale: LogitScale) {
        self.timed(7, |k| k.attention_logits_row(acc, q_amax, k_exp, scale));
    }
    fn quantize_row_i8(&self, row: &[i32], out: &mut [i8]) -> u32 {
        self.timed(4, |k| k.quantize_row_i8(row, out))
    }
    fn quantize_row_pow2(&self, row: &[i32], out: &mut [i8]) -> u32 {
        self.timed(5, |k| k.quantize_row_pow2(row, out))
    }
    fn quantize_row_i8_scaled(&self, row: &[i32], factors: LeI32s<'_>, out: &mut [i8]) -> u32 {
        self.timed(15, |k| k.quantize_row_i8_scaled(row, factors, out))
    }
    fn quantize_row_i16(
        &self,
        row: &[i32],
        factors: Option<LeI32s<'_>>,
        qmax: i32,
        out: &mut [i16],
    ) -> u32 {
        self.timed(16, |k| k.quantize_row_i16(row, factors, qmax, out))
    }
    fn quantize_row_u8_offset(&self, row: &[i32], offset: i32, out: &mut [u8]) -> u32 {
        self.timed(17, |k| k.quantize_row_u8_offset(row, offset, out))
    }
    fn requantize_row(&self, acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
        self.timed(6, |k| k.requantize_row(acc, amax, rq, out));
    }
    fn softmax_row(&self, logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> PvScale {
        self.timed(8, |k| k.softmax_row(logits, v_amax, p))
    }
    fn pv_scale_row(&self, acc: &[i32], scale: PvScale, out: &mut [i32]) {
        self.timed(9, |k| k.pv_scale_row(acc, scale, out));
    }
    fn layer_norm_row(&self, row: &mut [i32], ln: &LayerNormParams<'_>) {
        self.timed(10, |k| k.layer_norm_row(row, ln));
    }
    fn gelu_row(&self, row: &mut [i32]) {
        self.timed(11, |k| k.gelu_row(row));
    }
}
