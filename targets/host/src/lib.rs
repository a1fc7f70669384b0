//! Host backend of microbert: [`HostKernels`] implements [`microbert::Kernels`] with AVX2
//! on x86-64 CPUs that have it, chosen at run time, and the scalar reference elsewhere.
//!
//! Selection happens in exactly one place, [`HostKernels::detect`]
//! (`is_x86_feature_detected!("avx2")`); every AVX2 body is a
//! `#[target_feature(enable = "avx2")] unsafe fn` in [`avx2`](crate) that only the methods of
//! a `HostKernels` built by `detect` call. The crate is built with the default x86-64
//! codegen (no `target-cpu=native`), so one binary runs on every x86-64 machine.
//!
//! Every kernel is bit-identical to [`microbert::Scalar`]: the arithmetic is integer and
//! exact (int8 values are sign-extended to i16 and multiplied with `vpmaddwd`, which cannot
//! saturate on such inputs; sums wrap modulo 2^32 exactly as the scalar `i32` sums do in
//! release builds). `tests/conformance.rs` runs the runtime's conformance suite on it.
//!
//! What is accelerated: every kernel. `gemm_i8` (dense layers, attention Q.K, the MLM
//! head), `weighted_sum_block` (attention P.V for a block of query rows) and
//! `weighted_sum_u16_i8` with `vpmaddwd` on weights packed in 16-channel panels (see
//! `avx2/packed.rs`: packed once per model by [`HostKernels::pack_model`], or by the call);
//! the per-row passes (quantisation, requantisation, attention logits, softmax, the P.V
//! scale, LayerNorm, GELU) with `vpmuldq` 32 x 32 -> 64-bit products, an exact emulation of
//! the 64-bit arithmetic shift and table gathers (see `avx2/rows.rs`). Each pass hands the
//! reference the rare chunks or rows whose shifts or ranges its vector path does not cover,
//! and every tail.
//!
//! [`lines`] is the `microbert` command's line decoding (raw bytes to numbered UTF-8 lines,
//! one error per bad line, bounded memory), a library module so fuzz targets can reach it.
//!
//! ```no_run
//! use microbert_host::HostKernels;
//! # let blob: Vec<u8> = Vec::new();
//! let model = microbert::parse(&blob).expect("a valid blob");
//! // AVX2 when the CPU has it, with the dense weights packed for its GEMM.
//! let k = HostKernels::detect().pack_model(&model);
//! println!("kernels: {}", microbert::Kernels::name(&k));
//! ```
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod lines;

use core::marker::PhantomData;
use microbert::kernels::scalar;
use microbert::{Kernels, ModelView};
use std::sync::Arc;

/// Which instruction set a [`HostKernels`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// The portable scalar reference (`microbert::Scalar`).
    Scalar,
    /// x86-64 AVX2 (checked at run time).
    Avx2,
}

/// The host's kernels: AVX2 when the CPU has it, the scalar reference otherwise.
///
/// A value of this type with [`Backend::Avx2`] exists only after a successful run-time
/// check, which is what makes calling the AVX2 bodies sound.
///
/// With AVX2, [`Self::pack_model`] (or [`Self::pack`]) re-lays a model's dense-layer weights
/// out in the panels the fastest GEMM reads (a copy the size of the int8 weights, made
/// once); `'m` is the borrow of the blob they came from. `gemm_i8` calls whose weight
/// operand is one of those slices then use the packed copy, every other call packs its
/// operand itself. Clones share the packed weights.
#[derive(Debug, Clone)]
pub struct HostKernels<'m> {
    backend: Backend,
    /// Packed weights, sorted by the address of the slice they were packed from.
    packed: Arc<[Packed]>,
    /// The packed slices are borrowed for `'m`: immutable and alive while `self` is.
    _weights: PhantomData<&'m [i8]>,
}

/// One weight matrix packed for the AVX2 GEMM, found again by its slice's address.
#[derive(Debug, Clone)]
struct Packed {
    addr: usize,
    len: usize,
    ldb: usize,
    #[cfg(target_arch = "x86_64")]
    b: avx2::PackedB,
}

impl HostKernels<'static> {
    /// The fastest backend this CPU supports (AVX2 if present, else scalar).
    pub fn detect() -> Self {
        Self::avx2().unwrap_or_else(Self::scalar)
    }

    /// AVX2 kernels, or `None` when the CPU (or the architecture) lacks AVX2.
    pub fn avx2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(Self::with_backend(Backend::Avx2));
        }
        None
    }

    /// The scalar reference, whatever the CPU.
    pub fn scalar() -> Self {
        Self::with_backend(Backend::Scalar)
    }

    fn with_backend(backend: Backend) -> Self {
        Self {
            backend,
            packed: Arc::new([]),
            _weights: PhantomData,
        }
    }
}

impl<'m> HostKernels<'m> {
    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Packs the weights of every dense layer of `model`'s encoder and, when it has a
    /// masked-language-model head, of the head's transform and decoder (the word embedding
    /// table, which the decoder shares); see [`Self::pack`]. A no-op for the scalar
    /// backend. Takes about as much memory as those int8 weights.
    pub fn pack_model(self, model: &ModelView<'m>) -> Self {
        let as_gemm = |t: &microbert::blob::Tensor<'m>| {
            let [n, depth] = t.shape.map(|x| x as usize);
            let b: &'m [i8] = bytemuck::cast_slice(t.data);
            (b, n, depth, depth)
        };
        let mut weights = Vec::new();
        for layer in model.layers() {
            for dense in [
                &layer.query,
                &layer.key,
                &layer.value,
                &layer.attention_output,
                &layer.intermediate,
                &layer.output,
            ] {
                weights.push(as_gemm(&dense.weight));
            }
        }
        if let Some(mlm) = &model.head.mlm {
            weights.push(as_gemm(&mlm.transform.weight));
            weights.push(as_gemm(&model.embeddings.word.weight));
        }
        self.pack(weights)
    }

    /// Packs weight matrices given as `(b, n, depth, ldb)` (the `gemm_i8` operands) for the
    /// AVX2 GEMM. A later `gemm_i8` call with exactly one of these slices (same address
    /// and length) and the same `n`, `depth` and `ldb` reads the packed copy; the borrow
    /// `'m` guarantees the slice still holds what was packed. Operands that do not cover
    /// their shape are skipped. A no-op for the scalar backend.
    pub fn pack<I>(mut self, weights: I) -> Self
    where
        I: IntoIterator<Item = (&'m [i8], usize, usize, usize)>,
    {
        if self.backend != Backend::Avx2 {
            return self;
        }
        let mut all = self.packed.to_vec();
        for (b, n, depth, ldb) in weights {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the backend is AVX2 (checked above), detected at run time.
            if let Some(packed) = unsafe { avx2::PackedB::new(n, depth, b, ldb) } {
                all.retain(|p| p.addr != b.as_ptr() as usize);
                all.push(Packed {
                    addr: b.as_ptr() as usize,
                    len: b.len(),
                    ldb,
                    b: packed,
                });
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (b, n, depth, ldb);
        }
        all.sort_by_key(|p| p.addr);
        self.packed = all.into();
        self
    }

    /// The packed copy of `b`, if it was packed with this shape.
    #[cfg(target_arch = "x86_64")]
    fn packed(&self, n: usize, depth: usize, b: &[i8], ldb: usize) -> Option<&avx2::PackedB> {
        let addr = b.as_ptr() as usize;
        let i = self.packed.binary_search_by_key(&addr, |p| p.addr).ok()?;
        let p = self.packed.get(i)?;
        (p.len == b.len() && p.ldb == ldb && p.b.n() == n && p.b.depth() == depth).then_some(&p.b)
    }
}

impl Default for HostKernels<'static> {
    fn default() -> Self {
        Self::detect()
    }
}

impl Kernels for HostKernels<'_> {
    fn name(&self) -> &'static str {
        match self.backend {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
        }
    }

    fn gemm_i8(
        &self,
        m: usize,
        n: usize,
        depth: usize,
        a: &[i8],
        lda: usize,
        b: &[i8],
        ldb: usize,
        out: &mut [i32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2
            && microbert::kernels::gemm_fits(m, n, depth, a, lda, b, ldb, out)
        {
            if let Some(packed) = self.packed(n, depth, b, ldb) {
                // SAFETY: as below; `packed` has this call's `n` and `depth`.
                unsafe { avx2::gemm_i8_packed(m, a, lda, packed, out) };
                return;
            }
            // SAFETY: `backend == Avx2` only after `is_x86_feature_detected!("avx2")`
            // (see `avx2()`), and `gemm_fits` checked that the shapes are non-empty and that
            // `a`, `b` and `out` hold every element the shapes and strides address.
            unsafe { avx2::gemm_i8(m, n, depth, a, lda, b, ldb, out) };
            return;
        }
        // Empty shapes and slices that do not cover them keep the reference's semantics.
        scalar::gemm_i8(m, n, depth, a, lda, b, ldb, out);
    }

    fn weighted_sum_u16_i8(&self, p: &[u16], v: &[i8], ldv: usize, out: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 && !p.is_empty() && !out.is_empty() {
            let covered = microbert::kernels::strided_covers(p.len(), out.len(), ldv, v.len());
            if covered {
                // SAFETY: AVX2 was detected (see `avx2()`), and `covered` checked that `v`
                // holds `out.len()` values in each of the `p.len()` rows of stride `ldv`.
                unsafe { avx2::weighted_sum_u16_i8(p, v, ldv, out) };
                return;
            }
        }
        scalar::weighted_sum_u16_i8(p, v, ldv, out);
    }

    fn weighted_sum_block(
        &self,
        rows: usize,
        keys: usize,
        p: &[u16],
        v: &[i8],
        ldv: usize,
        width: usize,
        out: &mut [i32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2
            && rows > 0
            && keys > 0
            && width > 0
            && rows.checked_mul(keys).is_some_and(|x| x <= p.len())
            && rows.checked_mul(width).is_some_and(|x| x <= out.len())
            && microbert::kernels::strided_covers(keys, width, ldv, v.len())
        {
            // SAFETY: AVX2 was detected (see `avx2()`), and the conditions above are the
            // shapes the body needs.
            unsafe { avx2::weighted_sum_block(rows, keys, p, v, ldv, width, out) };
            return;
        }
        // Short slices and empty shapes keep the per-row semantics of the default.
        microbert::kernels::weighted_sum_rows(self, rows, keys, p, v, ldv, width, out);
    }

    fn requantize_row(
        &self,
        acc: &[i32],
        amax: u32,
        rq: &microbert::kernels::Requant<'_>,
        out: &mut [i32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            unsafe { avx2::requantize_row(acc, amax, rq, out) };
            return;
        }
        scalar::requantize_row(acc, amax, rq, out);
    }

    fn quantize_row_i8(&self, row: &[i32], out: &mut [i8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            return unsafe { avx2::quantize_row_i8(row, out) };
        }
        microbert::quant::quantize_row_i8(row, out)
    }

    fn quantize_row_pow2(&self, row: &[i32], out: &mut [i8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            return unsafe { avx2::quantize_row_pow2(row, out) };
        }
        microbert::quant::quantize_row_pow2(row, out)
    }

    fn attention_logits_row(
        &self,
        acc: &mut [i32],
        q_amax: u32,
        k_exp: &[u32],
        multiplier: i32,
        shift: u8,
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            unsafe { avx2::attention_logits_row(acc, q_amax, k_exp, multiplier, shift) };
            return;
        }
        scalar::attention_logits_row(acc, q_amax, k_exp, multiplier, shift);
    }

    fn softmax_row(&self, logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> scalar::PvScale {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            return unsafe { avx2::softmax_row(logits, v_amax, p) };
        }
        scalar::softmax_row(logits, v_amax, p)
    }

    fn pv_scale_row(&self, acc: &[i32], scale: scalar::PvScale, out: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            unsafe { avx2::pv_scale_row(acc, scale, out) };
            return;
        }
        scalar::pv_scale_row(acc, scale, out);
    }

    fn gelu_row(&self, row: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`).
            unsafe { avx2::gelu_row(row) };
            return;
        }
        scalar::gelu_row(row);
    }

    fn layer_norm_row(&self, row: &mut [i32], gamma: &[u8], beta: &[u8], eps_q32: u64) {
        #[cfg(target_arch = "x86_64")]
        if self.backend == Backend::Avx2 {
            // SAFETY: AVX2 was detected (see `avx2()`); the body checks every length itself.
            unsafe { avx2::layer_norm_row(row, gamma, beta, eps_q32) };
            return;
        }
        scalar::layer_norm_row(row, gamma, beta, eps_q32);
    }
}
