//! The scratch arena: how much memory a forward pass needs, and carving it into buffers.
//!
//! One `Plan` lists every buffer of a forward pass with its element count; the same plan
//! computes [`scratch_bytes`] and carves the caller's arena, so the two cannot disagree.
//! Buffers are either kept for the whole sequence (the residual stream, K and V: linear
//! in `n`) or sized by a block of [`BLOCK_ROWS`] query rows; nothing is `n x n`.
//!
//! The arena must be 4-byte aligned for [`scratch_bytes`] to be exact (a `Vec<u32>` or a
//! `static [u32; N]` viewed as bytes); a misaligned one needs up to 3 bytes more, and the
//! error says exactly how many.

use crate::blob::ModelView;
use crate::error::RunError;

/// Query rows processed together: the row block of attention and the feed-forward layers.
/// Every product of a layer has this many rows (`m` of `Kernels::gemm_i8`), so the weights
/// stream through the caches once per block; 24 is a multiple of the AVX2 GEMM's 6-row
/// tile and measured about 2% faster end to end than 16 on the host (MiniLM, 128 tokens).
pub const BLOCK_ROWS: usize = 24;

/// Element counts of every buffer, for a model and a sequence length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) n: usize,
    pub(crate) d: usize,
    pub(crate) heads: usize,
    pub(crate) block: usize,
    wide: usize,
    mlm_vocab: usize,
}

/// The carved arena.
pub(crate) struct Buffers<'s> {
    /// Residual stream, Q.16 `[n, d]`.
    pub(crate) hidden: &'s mut [i32],
    /// Keys, int8 `[n, d]`, quantised per (token, head) with power-of-two scales.
    pub(crate) k_q: &'s mut [i8],
    /// Values, int8 `[n, d]`, quantised per (token, head).
    pub(crate) v_q: &'s mut [i8],
    /// Key scale exponents (power-of-two scales), `[heads, n]` (head-major so one head's
    /// are contiguous).
    pub(crate) k_exp: &'s mut [u32],
    /// Value ranges, `[heads, n]`.
    pub(crate) v_amax: &'s mut [u32],
    /// Queries of a block, int8 `[block, d]`.
    pub(crate) q_q: &'s mut [i8],
    /// Query ranges of a block, `[block, heads]`.
    pub(crate) q_amax: &'s mut [u32],
    /// Dense-layer int8 inputs, `[block, max(d, ffn)]`.
    pub(crate) x_q: &'s mut [i8],
    /// Ranges of the dense inputs, `[block]`.
    pub(crate) x_amax: &'s mut [u32],
    /// Smoothed dense inputs, Q.16 `[block, max(d, ffn)]`.
    pub(crate) x_smooth: &'s mut [i32],
    /// Accumulators of products, `[block, max(d, ffn, n)]`.
    pub(crate) acc: &'s mut [i32],
    /// Dense outputs (attention context, FFN intermediate), Q.16 `[block, max(d, ffn)]`.
    pub(crate) y: &'s mut [i32],
    /// Second dense output, Q.16 `[block, d]`.
    pub(crate) z: &'s mut [i32],
    /// Probabilities of a block of query rows for one head, `[block, n]`.
    pub(crate) p: &'s mut [u16],
    /// `p . v` accumulators of a block for one head, `[block, d / heads]`.
    pub(crate) pv: &'s mut [i32],
    /// MLM logits accumulators, `[vocab]` (empty unless the MLM head is asked for).
    pub(crate) mlm_acc: &'s mut [i32],
}

fn words_for(count: usize, elem: usize) -> Option<usize> {
    count.checked_mul(elem)?.checked_add(3).map(|b| b / 4)
}

impl Plan {
    pub(crate) fn new(model: &ModelView<'_>, n: usize, with_mlm: bool) -> Self {
        let c = &model.config;
        let d = c.hidden_size as usize;
        let ffn = c.intermediate_size as usize;
        let block = n.clamp(1, BLOCK_ROWS);
        Self {
            n,
            d,
            heads: c.num_attention_heads as usize,
            block,
            wide: d.max(ffn),
            mlm_vocab: if with_mlm { c.vocab_size as usize } else { 0 },
        }
    }

    /// Row blocks in one layer's pass.
    pub(crate) fn blocks(&self) -> usize {
        self.n.div_ceil(self.block)
    }

    /// `(element count, element size)` of each buffer, in carving order.
    fn regions(&self) -> Option<[(usize, usize); 16]> {
        let (n, d, h, b, w) = (self.n, self.d, self.heads, self.block, self.wide);
        let nd = n.checked_mul(d)?;
        let nh = n.checked_mul(h)?;
        let bw = b.checked_mul(w)?;
        let acc = b.checked_mul(w.max(n))?;
        Some([
            (nd, 4),
            (nd, 1),
            (nd, 1),
            (nh, 4),
            (nh, 4),
            (b * d, 1),
            (b * h, 4),
            (bw, 1),
            (b, 4),
            (bw, 4),
            (acc, 4),
            (bw, 4),
            (b * d, 4),
            (b.checked_mul(n)?, 2),
            (b * (d / h.max(1)), 4),
            (self.mlm_vocab, 4),
        ])
    }

    /// Total bytes, each buffer rounded up to whole 4-byte words; `None` on overflow.
    pub(crate) fn bytes(&self) -> Option<usize> {
        let mut words = 0usize;
        for (count, elem) in self.regions()? {
            words = words.checked_add(words_for(count, elem)?)?;
        }
        words.checked_mul(4)
    }

    /// Splits the arena into the buffers, or says how many bytes it lacks.
    pub(crate) fn carve<'s>(&self, arena: &'s mut [u8]) -> Result<Buffers<'s>, RunError> {
        let given = arena.len();
        let needed = self.bytes().ok_or(RunError::ScratchTooSmall {
            given,
            needed: usize::MAX,
        })?;
        // Bytes before the first 4-byte boundary, also when the arena ends before it (then
        // `pod_align_to_mut` puts the whole arena in its unaligned head).
        let misalignment = arena.as_ptr().addr().wrapping_neg() % 4;
        let (_, words, _) = bytemuck::pod_align_to_mut::<u8, u32>(arena);
        if words.len().saturating_mul(4) < needed {
            return Err(RunError::ScratchTooSmall {
                given,
                needed: needed.saturating_add(misalignment),
            });
        }
        let regions = self.regions().ok_or(RunError::ScratchTooSmall {
            given,
            needed: usize::MAX,
        })?;
        let mut rest: &'s mut [u32] = words;
        let mut next = |(count, elem): (usize, usize)| -> &'s mut [u32] {
            let w = words_for(count, elem).unwrap_or(0);
            let taken = core::mem::take(&mut rest);
            // The size check above makes `w <= taken.len()`; `min` keeps this panic-free
            // regardless (a short buffer would give wrong numbers, never a fault).
            let (this, tail) = taken.split_at_mut(w.min(taken.len()));
            rest = tail;
            this
        };
        let [
            r0,
            r1,
            r2,
            r3,
            r4,
            r5,
            r6,
            r7,
            r8,
            r9,
            r10,
            r11,
            r12,
            r13,
            r14,
            r15,
        ] = regions;
        let hidden = i32s(next(r0), r0.0);
        let k_q = i8s(next(r1), r1.0);
        let v_q = i8s(next(r2), r2.0);
        let k_exp = u32s(next(r3), r3.0);
        let v_amax = u32s(next(r4), r4.0);
        let q_q = i8s(next(r5), r5.0);
        let q_amax = u32s(next(r6), r6.0);
        let x_q = i8s(next(r7), r7.0);
        let x_amax = u32s(next(r8), r8.0);
        let x_smooth = i32s(next(r9), r9.0);
        let acc = i32s(next(r10), r10.0);
        let y = i32s(next(r11), r11.0);
        let z = i32s(next(r12), r12.0);
        let p = u16s(next(r13), r13.0);
        let pv = i32s(next(r14), r14.0);
        let mlm_acc = i32s(next(r15), r15.0);
        Ok(Buffers {
            hidden,
            k_q,
            v_q,
            k_exp,
            v_amax,
            q_q,
            q_amax,
            x_q,
            x_amax,
            x_smooth,
            acc,
            y,
            z,
            p,
            pv,
            mlm_acc,
        })
    }
}

fn i32s(words: &mut [u32], count: usize) -> &mut [i32] {
    let all: &mut [i32] = bytemuck::cast_slice_mut(words);
    let len = count.min(all.len());
    all.get_mut(..len).unwrap_or_default()
}

fn u32s(words: &mut [u32], count: usize) -> &mut [u32] {
    let len = count.min(words.len());
    words.get_mut(..len).unwrap_or_default()
}

fn i8s(words: &mut [u32], count: usize) -> &mut [i8] {
    let all: &mut [i8] = bytemuck::cast_slice_mut(words);
    let len = count.min(all.len());
    all.get_mut(..len).unwrap_or_default()
}

fn u16s(words: &mut [u32], count: usize) -> &mut [u16] {
    let all: &mut [u16] = bytemuck::cast_slice_mut(words);
    let len = count.min(all.len());
    all.get_mut(..len).unwrap_or_default()
}

/// Views a word buffer as a scratch arena: `u32` storage is 4-byte aligned, which is what
/// [`scratch_bytes`] assumes (`vec![0u32; scratch_bytes(&model, n).div_ceil(4)]`, or a
/// `static` array on a microcontroller).
pub fn arena(words: &mut [u32]) -> &mut [u8] {
    bytemuck::cast_slice_mut(words)
}

/// Bytes of scratch [`crate::Encoder::embed`] needs for `n_tokens` tokens (4-byte aligned
/// arena; see the module docs). Grows linearly in `n_tokens`. Saturates at `usize::MAX`
/// for absurd lengths.
pub fn scratch_bytes(model: &ModelView<'_>, n_tokens: usize) -> usize {
    Plan::new(model, n_tokens, false)
        .bytes()
        .unwrap_or(usize::MAX)
}

/// Bytes of scratch [`crate::Encoder::mlm_logits`] needs for `n_tokens` tokens.
pub fn mlm_scratch_bytes(model: &ModelView<'_>, n_tokens: usize) -> usize {
    Plan::new(model, n_tokens, true)
        .bytes()
        .unwrap_or(usize::MAX)
}
