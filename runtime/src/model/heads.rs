//! Task heads after the encoder: the BERT pooler (`BertPooler`: dense + tanh on the `[CLS]`
//! token), sequence classification (`BertForSequenceClassification`: pooler, then
//! `classifier`; one label = a raw regression score, as cross-encoders use) and token
//! classification (`BertForTokenClassification`: `classifier` on every token).
//!
//! Everything is integer: the dense layers are the encoder's int8 products (input quantised
//! per row, requantised per output channel, `docs/numerics.md`), and tanh is
//! [`tanh_q16`], computed from the runtime's base-2 exponential table. Logits are Q.16
//! i32; turning them into probabilities is an output helper
//! ([`crate::output::softmax`]). The heads need no scratch beyond the encoder's own
//! ([`crate::scratch_bytes`]): their outputs are at most `hidden_size` wide, which the
//! validated blob guarantees.

use super::Encoder;
use super::dense::{DenseScratch, forward};
use super::layer::Runner;
use crate::blob::{ClassifierKind, Dense, InputFormat};
use crate::error::RunError;
use crate::kernels::Kernels;
use crate::kernels::scalar::exp2_neg_q16;

/// `2 log2(e)` in Q.16: `e^(-2x) = 2^(-2 log2(e) x)`.
const TWO_LOG2_E_Q16: i64 = 189_099;
/// `ln 2` in Q.16.
const LN2_Q16: i64 = 45_426;
/// One in Q.16.
const ONE: i64 = 1 << 16;

/// `tanh` of a Q.16 value, in Q.16 (within 2^-14 of the exact value), integer only:
/// `tanh(|x|) = (1 - e) / (1 + e)` with `e = e^(-2|x|) = 2^(-t)`, `t = 2 log2(e) |x|`. The
/// integer part of `t` is a shift; of its 16 fraction bits the top 8 index the runtime's
/// `2^(-k/256)` table and the low 8 a first-order correction `1 - r ln 2 / 2^16` (error
/// below 4e-6). The sign is restored at the end (tanh is odd).
pub fn tanh_q16(x: i32) -> i32 {
    let ax = i64::from(x).abs();
    let t = (ax * TWO_LOG2_E_Q16 + (1 << 15)) >> 16;
    let (int, frac) = (t >> 16, t & 0xFFFF);
    let e = if int > 17 {
        0
    } else {
        let coarse = exp2_neg_q16(frac >> 8) as i64;
        let fine = ONE - (((frac & 0xFF) * LN2_Q16 + (1 << 15)) >> 16);
        ((coarse * fine + (1 << 15)) >> 16) >> int
    };
    let num = (ONE - e) * ONE;
    let den = ONE + e;
    let y = ((2 * num + den) / (2 * den)) as i32;
    if x < 0 { -y } else { y }
}

impl<K: Kernels, R: Runner<K>> Encoder<'_, '_, K, R> {
    /// The number of labels of the blob's classifier, if it has one.
    pub fn num_labels(&self) -> Option<usize> {
        self.model.tasks.num_labels()
    }

    /// The pooler output `tanh(dense(h[CLS]))` (`pooled`, length `hidden_size`, Q.16) of
    /// `ids` with `token_types` (all 0 when `None`). Needs [`crate::scratch_bytes`] of
    /// scratch.
    ///
    /// # Errors
    /// [`RunError::NoSuchHead`] when the blob has no pooler; the input and scratch errors of
    /// [`Self::embed`].
    pub fn pooler_output(
        &self,
        ids: &[u32],
        token_types: Option<&[u32]>,
        scratch: &mut [u8],
        pooled: &mut [i32],
    ) -> Result<(), RunError> {
        let pooler = self
            .model
            .tasks
            .pooler
            .ok_or(RunError::NoSuchHead { head: "pooler" })?;
        let d = self.model.config.hidden_size as usize;
        check_len(pooled.len(), d)?;
        let (plan, b) = self.encode(ids, token_types, scratch, false, None)?;
        let blk = plan.block_buffers(b.blocks);
        let mut s = dense_scratch!(blk);
        let cls = b.seq.hidden.get(..d).unwrap_or_default();
        dense_row(&self.kernels, &pooler, cls, &mut s, pooled);
        pooled.iter_mut().for_each(|x| *x = tanh_q16(*x));
        Ok(())
    }

    /// Sequence classification: the logits (`logits`, length [`Self::num_labels`], Q.16) of
    /// the classifier on the pooler output of `ids` with `token_types` (all 0 when `None`;
    /// a pair's come from [`crate::Tokenizer::encode_pair`]). With one label the logit is
    /// the raw score of a regression or cross-encoder head. Needs [`crate::scratch_bytes`]
    /// of scratch.
    ///
    /// # Errors
    /// [`RunError::NoSuchHead`] when the blob has no sequence classifier;
    /// [`RunError::OutputSize`] when `logits` is not `num_labels` long; the input and
    /// scratch errors of [`Self::embed`].
    pub fn classify(
        &self,
        ids: &[u32],
        token_types: Option<&[u32]>,
        scratch: &mut [u8],
        logits: &mut [i32],
    ) -> Result<(), RunError> {
        let head = RunError::NoSuchHead {
            head: "sequence classifier",
        };
        let (Some((ClassifierKind::Sequence, classifier)), Some(pooler)) =
            (self.model.tasks.classifier, self.model.tasks.pooler)
        else {
            return Err(head);
        };
        let d = self.model.config.hidden_size as usize;
        check_len(logits.len(), classifier.weight.shape[0] as usize)?;
        let (plan, b) = self.encode(ids, token_types, scratch, false, None)?;
        let blk = plan.block_buffers(b.blocks);
        let mut s = dense_scratch!(blk);
        let cls = b.seq.hidden.get(..d).unwrap_or_default();
        let pooled = blk.z.get_mut(..d).unwrap_or_default();
        dense_row(&self.kernels, &pooler, cls, &mut s, pooled);
        pooled.iter_mut().for_each(|x| *x = tanh_q16(*x));
        dense_row(&self.kernels, &classifier, pooled, &mut s, logits);
        Ok(())
    }

    /// Token classification: row `t` of `logits` (`ids.len() * num_labels`, Q.16) holds the
    /// classifier's logits for token `t` (special tokens included: a caller keeps the rows
    /// it labels, e.g. each word's first piece). Needs [`crate::scratch_bytes`] of scratch.
    ///
    /// # Errors
    /// [`RunError::NoSuchHead`] when the blob has no token classifier;
    /// [`RunError::OutputSize`] when `logits` has the wrong length; the input and scratch
    /// errors of [`Self::embed`].
    pub fn tag(
        &self,
        ids: &[u32],
        token_types: Option<&[u32]>,
        scratch: &mut [u8],
        logits: &mut [i32],
    ) -> Result<(), RunError> {
        let Some((ClassifierKind::Token, classifier)) = self.model.tasks.classifier else {
            return Err(RunError::NoSuchHead {
                head: "token classifier",
            });
        };
        let d = self.model.config.hidden_size as usize;
        let labels = classifier.weight.shape[0] as usize;
        check_len(logits.len(), ids.len().saturating_mul(labels))?;
        let (plan, b) = self.encode(ids, token_types, scratch, false, None)?;
        let blk = plan.block_buffers(b.blocks);
        let mut s = dense_scratch!(blk);
        for (row, out) in b
            .seq
            .hidden
            .chunks_exact(d.max(1))
            .zip(logits.chunks_exact_mut(labels.max(1)))
        {
            dense_row(&self.kernels, &classifier, row, &mut s, out);
        }
        Ok(())
    }
}

/// `out = dense(row)` for one Q.16 row, the blob's int8 weights, the input in int16
/// (W8A16, `docs/numerics.md`): a head's output is one long dot product per label, and a
/// trained head's weights read directions of small variance, where int8 input rounding
/// would be a large part of the signal (all-MiniLM-L6-v2's trained sentiment head: int8
/// inputs agreed with f32 on 96.3% of 2,500 held-out reviews). One row, so the cost is
/// nothing next to the encoder.
fn dense_row<K: Kernels>(
    k: &K,
    layer: &Dense<'_>,
    row: &[i32],
    s: &mut DenseScratch<'_>,
    out: &mut [i32],
) {
    forward(k, layer, (InputFormat::Int16, &[]), 1, row, s, out);
}

fn check_len(given: usize, needed: usize) -> Result<(), RunError> {
    if given == needed {
        Ok(())
    } else {
        Err(RunError::OutputSize { given, needed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_accurate_odd_and_saturates() {
        let mut worst = 0f64;
        for i in -400_000..=400_000i32 {
            let x = i * 3;
            let got = f64::from(tanh_q16(x)) / 65536.0;
            let want = (f64::from(x) / 65536.0).tanh();
            worst = worst.max((got - want).abs());
            assert_eq!(tanh_q16(-x), -tanh_q16(x));
        }
        assert!(worst < 1.0 / 16384.0, "worst error {worst}");
        assert_eq!(tanh_q16(0), 0);
        assert_eq!(tanh_q16(i32::MAX), 65536);
        assert_eq!(tanh_q16(i32::MIN), -65536);
    }
}
