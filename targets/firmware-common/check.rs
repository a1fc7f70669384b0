//! Every kernel call of an inference compared with the scalar reference on the device: a
//! [`Kernels`] wrapper that runs the backend, then `microbert::Scalar` on the same inputs,
//! and counts the calls whose outputs differ (included with `#[path]` by `app.rs`; the
//! firmware's `check` feature).
//!
//! It pinpoints a difference the final hash only reports: this is how LLVM 22 was found to
//! miscompile an auto-vectorised Helium loop (`cortex-m-kernels/src/rows.rs`,
//! `quantize_row_pow2`). The reference runs on the same core and compiler, so the hash
//! against the host stays the independent check. Products are compared up to
//! [`MAX_OUT`] outputs, rows up to [`MAX_ROW`] elements (larger calls are counted as
//! unchecked).

use core::cell::Cell;
use microbert::kernels::{
    Gemm, LayerNormParams, LogitScale, MatMut, MatRef, PvScale, Requant,
};
use microbert::{Kernels, Scalar};

/// Largest product output compared (i32 on the stack: 48 KiB).
const MAX_OUT: usize = 24 * 512;
/// Largest row compared.
const MAX_ROW: usize = 2048;

/// `K`, with every call checked against [`Scalar`].
pub(crate) struct Checked<K> {
    inner: K,
    calls: Cell<u32>,
    unchecked: Cell<u32>,
    differ: Cell<u32>,
    first: Cell<Option<&'static str>>,
}

impl<K: Kernels> Checked<K> {
    pub(crate) fn new(inner: K) -> Self {
        Self {
            inner,
            calls: Cell::new(0),
            unchecked: Cell::new(0),
            differ: Cell::new(0),
            first: Cell::new(None),
        }
    }

    /// Calls, calls too large to compare, calls that differed, the first that did.
    pub(crate) fn summary(&self) -> (u32, u32, u32, Option<&'static str>) {
        (
            self.calls.get(),
            self.unchecked.get(),
            self.differ.get(),
            self.first.get(),
        )
    }

    fn record(&self, what: &'static str, same: Option<bool>) {
        self.calls.set(self.calls.get() + 1);
        match same {
            None => self.unchecked.set(self.unchecked.get() + 1),
            Some(true) => {}
            Some(false) => {
                self.differ.set(self.differ.get() + 1);
                if self.first.get().is_none() {
                    self.first.set(Some(what));
                }
            }
        }
    }
}

impl<K: Kernels> Kernels for Checked<K> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn gemm(&self, g: Gemm<'_, '_>) {
        let (a, b, mut out) = g.parts();
        let (rows, cols, ld) = (out.rows(), out.cols(), out.ld());
        let len = out.data_mut().len();
        let mut want = [0i32; MAX_OUT];
        let reference = want
            .get_mut(..len)
            .and_then(|w| MatMut::new(w, rows, cols, ld))
            .and_then(|w| Gemm::new(a, b, w));
        let checked = reference.is_some();
        if let Some(r) = reference {
            Scalar.gemm(r);
        }
        if let Some(g) = Gemm::new(a, b, out.reborrow()) {
            self.inner.gemm(g);
        }
        let same = checked.then(|| {
            let got = out.data_mut();
            (0..rows).all(|r| got[r * ld..r * ld + cols] == want[r * ld..r * ld + cols])
        });
        self.record("gemm", same);
    }
    fn prepared_len(&self, channels: usize, depth: usize) -> usize {
        self.inner.prepared_len(channels, depth)
    }
    fn prepare(&self, w: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        self.inner.prepare(w, out)
    }
    fn attention_logits_row(&self, acc: &mut [i32], q_amax: u32, k_exp: &[u32], scale: LogitScale) {
        let mut want = [0i32; MAX_ROW];
        match want.get_mut(..acc.len()) {
            Some(w) => {
                w.copy_from_slice(acc);
                Scalar.attention_logits_row(w, q_amax, k_exp, scale);
                self.inner.attention_logits_row(acc, q_amax, k_exp, scale);
                self.record("attention_logits_row", Some(w == acc));
            }
            None => {
                self.inner.attention_logits_row(acc, q_amax, k_exp, scale);
                self.record("attention_logits_row", None);
            }
        }
    }
    fn quantize_row_i8(&self, row: &[i32], out: &mut [i8]) -> u32 {
        let a = self.inner.quantize_row_i8(row, out);
        let mut want = [0i8; MAX_ROW];
        let same = want
            .get_mut(..out.len())
            .map(|w| Scalar.quantize_row_i8(row, w) == a && *w == *out);
        self.record("quantize_row_i8", same);
        a
    }
    fn quantize_row_pow2(&self, row: &[i32], out: &mut [i8]) -> u32 {
        let e = self.inner.quantize_row_pow2(row, out);
        let mut want = [0i8; MAX_ROW];
        let same = want
            .get_mut(..out.len())
            .map(|w| Scalar.quantize_row_pow2(row, w) == e && *w == *out);
        self.record("quantize_row_pow2", same);
        e
    }
    fn requantize_row(&self, acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
        self.inner.requantize_row(acc, amax, rq, out);
        let mut want = [0i32; MAX_ROW];
        let same = want.get_mut(..out.len()).map(|w| {
            Scalar.requantize_row(acc, amax, rq, w);
            *w == *out
        });
        self.record("requantize_row", same);
    }
    fn softmax_row(&self, logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> PvScale {
        let s = self.inner.softmax_row(logits, v_amax, p);
        let mut want = [0u16; MAX_ROW];
        let same = want
            .get_mut(..p.len())
            .map(|w| Scalar.softmax_row(logits, v_amax, w) == s && *w == *p);
        self.record("softmax_row", same);
        s
    }
    fn pv_scale_row(&self, acc: &[i32], scale: PvScale, out: &mut [i32]) {
        self.inner.pv_scale_row(acc, scale, out);
        let mut want = [0i32; MAX_ROW];
        let same = want.get_mut(..out.len()).map(|w| {
            Scalar.pv_scale_row(acc, scale, w);
            *w == *out
        });
        self.record("pv_scale_row", same);
    }
    fn layer_norm_row(&self, row: &mut [i32], ln: &LayerNormParams<'_>) {
        let mut want = [0i32; MAX_ROW];
        match want.get_mut(..row.len()) {
            Some(w) => {
                w.copy_from_slice(row);
                Scalar.layer_norm_row(w, ln);
                self.inner.layer_norm_row(row, ln);
                self.record("layer_norm_row", Some(*w == *row));
            }
            None => {
                self.inner.layer_norm_row(row, ln);
                self.record("layer_norm_row", None);
            }
        }
    }
    fn gelu_row(&self, row: &mut [i32]) {
        let mut want = [0i32; MAX_ROW];
        match want.get_mut(..row.len()) {
            Some(w) => {
                w.copy_from_slice(row);
                Scalar.gelu_row(w);
                self.inner.gelu_row(row);
                self.record("gelu_row", Some(*w == *row));
            }
            None => {
                self.inner.gelu_row(row);
                self.record("gelu_row", None);
            }
        }
    }
}
