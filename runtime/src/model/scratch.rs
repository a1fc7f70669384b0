//! The scratch arena: how much memory a forward pass needs, and carving it into buffers.
//!
//! A [`Plan`] says what a pass needs memory for (the model's [`Dims`], the number of tokens,
//! the heads asked for). One list, in the `layout!` invocation below, names every region
//! with its element type and count; from it the macro generates the carved `Buffers`, the
//! `const fn` that sizes the arena and the code that carves it, so sizing and carving
//! cannot disagree and a region cannot be taken in the wrong order. Regions a pass does not
//! use have a count of zero and take no bytes.
//!
//! Buffers are either kept for the whole sequence (the residual stream, K and V: linear in
//! `n`) or sized by a block of [`BLOCK_ROWS`] query rows; nothing is `n x n`. Each region
//! starts on a [`REGION_ALIGN`]-byte boundary. The arena may start at any address: its size
//! includes `REGION_ALIGN - 1` bytes of slack for moving to the first boundary, so a plain
//! `[u8; N]`, a `Vec<u8>` or an [`crate::Arena`] of [`Plan::arena_bytes`] all work.

use crate::blob::{Config, InputFormat, ModelView, QuantizedInput};
use crate::error::RunError;

/// Query rows processed together: the row block of attention and the feed-forward layers.
/// Every product of a layer has this many rows (`m` of the GEMM), so the weights stream
/// through the caches once per block; 24 is a multiple of the AVX2 GEMM's 6-row tile and
/// measured about 2% faster end to end than 16 on the host (MiniLM, 128 tokens).
pub const BLOCK_ROWS: usize = 24;

/// Alignment of every region of the arena, in bytes.
pub const REGION_ALIGN: usize = 16;

/// The model dimensions that size the arena (see [`Dims::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dims {
    /// Width of the hidden states (`hidden_size`).
    pub hidden: usize,
    /// Attention heads (`num_attention_heads`).
    pub heads: usize,
    /// Width of the feed-forward block (`intermediate_size`).
    pub intermediate: usize,
    /// Tokens in the vocabulary (sizes the MLM logits).
    pub vocab: usize,
}

impl Dims {
    /// Dimensions given by hand, e.g. for a `static` arena: `Dims::new(128, 2, 512, 20_000)`
    /// for a bert-tiny with a 20,000-token vocabulary.
    pub const fn new(hidden: usize, heads: usize, intermediate: usize, vocab: usize) -> Self {
        Self {
            hidden,
            heads,
            intermediate,
            vocab,
        }
    }

    /// The dimensions of a model's config.
    pub const fn of(c: &Config) -> Self {
        Self::new(
            c.hidden_size as usize,
            c.num_attention_heads as usize,
            c.intermediate_size as usize,
            c.vocab_size as usize,
        )
    }
}

/// What one forward pass needs memory for: the model's dimensions, the number of tokens
/// and the outputs asked for. Built in a `const` for a `static` arena
/// (`Plan::new(Dims::new(..), 128)`), or from a parsed model ([`Plan::for_model`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    dims: Dims,
    tokens: usize,
    mlm: bool,
    int16: bool,
    uint8: bool,
    heads: bool,
    workers: usize,
    key_panels: usize,
    value_panels: usize,
}

impl Plan {
    /// A pass over `tokens` tokens of a model with `dims`, sentence embeddings only.
    pub const fn new(dims: Dims, tokens: usize) -> Self {
        Self {
            dims,
            tokens,
            mlm: false,
            int16: false,
            uint8: false,
            heads: false,
            workers: 1,
            key_panels: 0,
            value_panels: 0,
        }
    }

    /// The plan of `model` for `tokens` tokens (with the buffers its input formats need).
    pub fn for_model(model: &ModelView<'_>, tokens: usize) -> Self {
        let layers = model.config.num_hidden_layers as usize;
        let formats = (0..layers)
            .flat_map(|l| QuantizedInput::ALL.map(|i| model.input_format(l, i)))
            .fold((false, false), |(i16s, u8s), f| match f {
                InputFormat::Int8 => (i16s, u8s),
                InputFormat::Int16 => (true, u8s),
                InputFormat::Uint8Offset { .. } => (i16s, true),
            });
        Self {
            int16: formats.0,
            uint8: formats.1,
            heads: model.tasks.pooler.is_some() || model.tasks.classifier.is_some(),
            ..Self::new(Dims::of(&model.config), tokens)
        }
    }

    /// The same plan with the task heads' int16 input row (a blob with a pooler or a
    /// classifier: `hidden` int16 values, [`crate::Encoder::classify`]).
    pub const fn with_heads(self) -> Self {
        Self {
            heads: true,
            ..self
        }
    }

    /// The same plan with int16 dense inputs (a blob whose numerics section asks for them).
    pub const fn with_int16_inputs(self) -> Self {
        Self {
            int16: true,
            ..self
        }
    }

    /// The same plan with unsigned 8-bit dense inputs (the GELU output with an offset).
    pub const fn with_uint8_inputs(self) -> Self {
        Self {
            uint8: true,
            ..self
        }
    }

    /// The same plan with the masked-language-model logits ([`crate::Encoder::mlm_logits`]).
    pub const fn with_mlm(self) -> Self {
        Self { mlm: true, ..self }
    }

    /// The same plan for a pass run by `workers` workers at once (see
    /// [`crate::model::parallel`]): each worker gets its own block buffers, and the key and
    /// value scales of every token are staged in token order. 0 counts as 1.
    pub const fn with_workers(self, workers: usize) -> Self {
        Self {
            workers: if workers == 0 { 1 } else { workers },
            ..self
        }
    }

    /// Workers the plan has buffers for.
    pub const fn workers(&self) -> usize {
        self.workers
    }

    /// The same plan with room for each attention head's keys as the backend prepares
    /// them ([`crate::Kernels::prepare`]), `bytes` per head: a layer's keys are then packed
    /// once instead of once per block of queries. [`crate::Encoder::plan`] adds it for long
    /// enough inputs on backends that prepare; an arena without it still works.
    pub const fn with_key_panels(self, bytes: usize) -> Self {
        Self {
            key_panels: match bytes.checked_add(REGION_ALIGN - 1) {
                Some(b) => b / REGION_ALIGN * REGION_ALIGN,
                None => usize::MAX,
            },
            ..self
        }
    }

    /// Bytes of one head's prepared keys (0: keys are not prepared).
    pub const fn key_panels(&self) -> usize {
        self.key_panels
    }

    /// The same plan with room for each head's values as the backend prepares them
    /// ([`crate::Kernels::prepare_depths`]), `bytes` per head (as [`Self::with_key_panels`]).
    pub const fn with_value_panels(self, bytes: usize) -> Self {
        Self {
            value_panels: match bytes.checked_add(REGION_ALIGN - 1) {
                Some(b) => b / REGION_ALIGN * REGION_ALIGN,
                None => usize::MAX,
            },
            ..self
        }
    }

    /// Bytes of one head's prepared values (0: values are not prepared).
    pub const fn value_panels(&self) -> usize {
        self.value_panels
    }

    /// The model dimensions.
    pub const fn dims(&self) -> Dims {
        self.dims
    }

    /// The number of tokens.
    pub const fn tokens(&self) -> usize {
        self.tokens
    }

    /// Query rows per block.
    pub(crate) const fn block(&self) -> usize {
        if self.tokens == 0 {
            1
        } else if self.tokens < BLOCK_ROWS {
            self.tokens
        } else {
            BLOCK_ROWS
        }
    }

    /// Row blocks in one layer's pass.
    pub(crate) const fn blocks(&self) -> usize {
        self.tokens.div_ceil(self.block())
    }

    /// Bytes of an arena for this plan (any start address), or `None` when the size does
    /// not fit in `usize`.
    pub const fn checked_arena_bytes(&self) -> Option<usize> {
        match self.region_bytes() {
            Some(b) => b.checked_add(REGION_ALIGN - 1),
            None => None,
        }
    }

    /// Bytes of an arena for this plan (any start address); `usize::MAX` when the size does
    /// not fit (no arena can be that large, so carving then fails with
    /// [`RunError::ScratchTooSmall`]). A `const fn`, so a firmware can declare
    /// `static ARENA: Arena<{ PLAN.arena_bytes() }>`.
    pub const fn arena_bytes(&self) -> usize {
        match self.checked_arena_bytes() {
            Some(b) => b,
            None => usize::MAX,
        }
    }

    /// Checks that an arena declared for this plan serves `needed` (the plan of a parsed
    /// model, e.g. [`Plan::for_model`]): [`RunError::PlanTooSmall`] otherwise.
    pub fn check(&self, needed: &Plan) -> Result<(), RunError> {
        let (declared, need) = (self.arena_bytes(), needed.arena_bytes());
        if need > declared {
            return Err(RunError::PlanTooSmall {
                declared,
                needed: need,
            });
        }
        Ok(())
    }
}

/// A scratch arena of `BYTES` bytes whose size is fixed at compile time (a `static` on a
/// microcontroller: `Arena<{ PLAN.arena_bytes() }>`), aligned to [`REGION_ALIGN`]. Zeroed,
/// so a `static` of it lands in `.bss`.
#[derive(Debug, Clone)]
#[repr(C, align(16))]
pub struct Arena<const BYTES: usize>([u8; BYTES]);

impl<const BYTES: usize> Arena<BYTES> {
    /// A zeroed arena.
    pub const fn new() -> Self {
        Self([0; BYTES])
    }

    /// The arena's bytes, for [`crate::Encoder::embed`].
    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl<const BYTES: usize> Default for Arena<BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

const _: () = assert!(align_of::<Arena<1>>() == REGION_ALIGN);

/// `count` elements of `size` bytes, rounded up to [`REGION_ALIGN`].
const fn region_len(count: usize, size: usize) -> Option<usize> {
    match count.checked_mul(size) {
        Some(b) => match b.checked_add(REGION_ALIGN - 1) {
            Some(r) => Some(r / REGION_ALIGN * REGION_ALIGN),
            None => None,
        },
        None => None,
    }
}

/// `a * b` in a `const` context, `None` on overflow.
const fn mul(a: usize, b: usize) -> Option<usize> {
    a.checked_mul(b)
}

/// Unwraps an `Option` in a `const fn` (returning `None` from it).
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return None,
        }
    };
}

/// Generates a carved struct, the `const fn` that sizes its regions and the code that
/// carves them, from one list of regions: `name: type = count;` with `count` an
/// `Option<usize>` expression of the plan's sizes `$p`.
macro_rules! layout {
    ($(#[$sdoc:meta])* $name:ident, $bytes:ident, $carve:ident,
     |$p:ident| { $( $(#[$doc:meta])* $field:ident : $ty:ty = $count:expr; )* }) => {
        $(#[$sdoc])*
        pub(crate) struct $name<'s> {
            $( $(#[$doc])* pub(crate) $field: &'s mut [$ty], )*
        }

        impl Plan {
            /// Bytes of all regions from an aligned start (a multiple of [`REGION_ALIGN`]).
            const fn $bytes(&self) -> Option<usize> {
                let $p = Sizes::of(self);
                let mut total = 0usize;
                $(
                    let n = tri!(region_len(tri!($count), size_of::<$ty>()));
                    total = tri!(total.checked_add(n));
                )*
                Some(total)
            }

            /// Carves the regions from the start of `rest` (aligned, and at least
            /// `$bytes` long: the caller checked); returns them and what is left.
            fn $carve<'s>(&self, mut rest: &'s mut [u8]) -> ($name<'s>, &'s mut [u8]) {
                let $p = Sizes::of(self);
                $(
                    let count = ($count).unwrap_or(0);
                    let len = region_len(count, size_of::<$ty>()).unwrap_or(0);
                    let taken = core::mem::take(&mut rest);
                    let (region, tail) = taken.split_at_mut(len.min(taken.len()));
                    rest = tail;
                    let $field: &mut [$ty] = cast_region(region, count);
                )*
                ($name { $( $field, )* }, rest)
            }
        }
    };
}

/// The carved arena: the buffers kept for the whole sequence, and the block buffers of
/// each worker (carved by the worker, [`Plan::block_buffers`]).
pub(crate) struct Buffers<'s> {
    /// The buffers of the whole sequence.
    pub(crate) seq: Sequence<'s>,
    /// `workers` runs of [`Plan::block_bytes`] bytes, each aligned.
    pub(crate) blocks: &'s mut [u8],
}

impl Plan {
    /// Bytes of all regions from an aligned start.
    const fn region_bytes(&self) -> Option<usize> {
        let blocks = tri!(mul(tri!(self.block_bytes()), self.workers));
        tri!(self.sequence_bytes()).checked_add(blocks)
    }

    /// Splits the arena into the buffers, or says how many bytes it lacks.
    pub(crate) fn carve<'s>(&self, arena: &'s mut [u8]) -> Result<Buffers<'s>, RunError> {
        let given = arena.len();
        let needed = self.arena_bytes();
        if given < needed {
            return Err(RunError::ScratchTooSmall { given, needed });
        }
        let skip = arena
            .as_ptr()
            .align_offset(REGION_ALIGN)
            .min(REGION_ALIGN - 1);
        let (_, rest) = arena.split_at_mut(skip);
        let (seq, rest) = self.carve_sequence(rest);
        let len = self.block_bytes().unwrap_or(0).saturating_mul(self.workers);
        let blocks = rest.get_mut(..len).unwrap_or_default();
        Ok(Buffers { seq, blocks })
    }

    /// Bytes of one worker's block buffers (a multiple of [`REGION_ALIGN`]).
    pub(crate) fn worker_bytes(&self) -> usize {
        self.block_bytes().unwrap_or(0)
    }

    /// One worker's block buffers, carved from its aligned run of
    /// [`Self::worker_bytes`] bytes (empty buffers if it is shorter, which `carve`'s size
    /// check rules out).
    pub(crate) fn block_buffers<'s>(&self, run: &'s mut [u8]) -> Block<'s> {
        self.carve_block(run).0
    }
}

/// Sizes derived from a plan, every product checked.
#[derive(Clone, Copy)]
struct Sizes {
    /// Tokens.
    n: usize,
    /// Hidden width.
    d: usize,
    /// Heads.
    h: usize,
    /// Rows per block.
    b: usize,
    /// `max(hidden, intermediate)`: the widest dense input or output.
    w: usize,
    /// Vocabulary when MLM logits are asked for, else 0.
    mlm_vocab: usize,
    /// Whether some dense input is int16.
    int16: bool,
    /// Whether some dense input is unsigned 8-bit.
    uint8: bool,
    /// Whether the task heads' int16 input row is needed.
    heads: bool,
    /// Workers.
    workers: usize,
    /// Bytes of one head's prepared keys.
    kp: usize,
    /// Bytes of one head's prepared values.
    vp: usize,
}

impl Sizes {
    const fn of(p: &Plan) -> Self {
        let d = p.dims.hidden;
        let w = if p.dims.intermediate > d {
            p.dims.intermediate
        } else {
            d
        };
        Self {
            n: p.tokens,
            d,
            h: p.dims.heads,
            b: p.block(),
            w,
            mlm_vocab: if p.mlm { p.dims.vocab } else { 0 },
            int16: p.int16,
            uint8: p.uint8,
            heads: p.heads,
            workers: p.workers,
            kp: p.key_panels,
            vp: p.value_panels,
        }
    }

    /// Head width.
    const fn dh(&self) -> usize {
        match self.d.checked_div(self.h) {
            Some(x) => x,
            None => 0,
        }
    }

    /// Widest row of product accumulators: a dense output or a row of Q.K scores.
    const fn acc_width(&self) -> usize {
        if self.n > self.w { self.n } else { self.w }
    }
}

layout!(
    /// The buffers kept for the whole sequence.
    Sequence, sequence_bytes, carve_sequence, |s| {
    /// Residual stream, Q.16 `[n, d]`.
    hidden: i32 = mul(s.n, s.d);
    /// Keys, int8 `[n, d]`, quantised per (token, head) with power-of-two scales.
    k_q: i8 = mul(s.n, s.d);
    /// Values, int8 `[n, d]`, quantised per (token, head).
    v_q: i8 = mul(s.n, s.d);
    /// Key scale exponents (power-of-two scales), `[heads, n]` (head-major so one head's
    /// are contiguous).
    k_exp: u32 = mul(s.n, s.h);
    /// Value ranges, `[heads, n]`.
    v_amax: u32 = mul(s.n, s.h);
    /// Key exponents and value ranges staged in token order, `[n, heads, 2]`, so that
    /// workers projecting disjoint runs of tokens write disjoint slices (only with more
    /// than one worker).
    kv_staged: u32 = if s.workers > 1 { match mul(s.n, s.h) { Some(x) => mul(x, 2), None => None } } else { Some(0) };
    /// Each head's keys as the backend prepares them, `[heads, key_panels]` (only when
    /// the plan asks).
    k_panels: u8 = mul(s.h, s.kp);
    /// Each head's values as the backend prepares them, `[heads, value_panels]` (only
    /// when the plan asks).
    v_panels: u8 = mul(s.h, s.vp);
    /// MLM logits accumulators, `[vocab]` (empty unless the MLM head is asked for).
    mlm_acc: i32 = Some(s.mlm_vocab);
});

layout!(
    /// One worker's buffers of a block of query rows.
    Block, block_bytes, carve_block, |s| {
    /// Queries of a block, int8 `[block, d]`.
    q_q: i8 = mul(s.b, s.d);
    /// Query ranges of a block, `[block, heads]`.
    q_amax: u32 = mul(s.b, s.h);
    /// Dense-layer int8 inputs, `[block, max(d, ffn)]`.
    x_q: i8 = mul(s.b, s.w);
    /// Ranges of the dense inputs, `[block]`.
    x_amax: u32 = Some(s.b);
    /// int16 dense inputs, `[block, max(d, ffn)]` (only for blobs with int16 inputs), or
    /// the task heads' one `[d]` row (blobs with heads and otherwise int8 inputs).
    x_q16: i16 = if s.int16 { mul(s.b, s.w) } else if s.heads { Some(s.d) } else { Some(0) };
    /// Unsigned 8-bit dense inputs, `[block, max(d, ffn)]` (only for blobs that ask).
    x_u8: u8 = if s.uint8 { mul(s.b, s.w) } else { Some(0) };
    /// Accumulators of products, `[block, max(d, ffn, n)]`.
    acc: i32 = mul(s.b, s.acc_width());
    /// Dense outputs (attention context, FFN intermediate), Q.16 `[block, max(d, ffn)]`.
    y: i32 = mul(s.b, s.w);
    /// Second dense output, Q.16 `[block, d]`.
    z: i32 = mul(s.b, s.d);
    /// Probabilities of a block of query rows for one head, `[block, n]`.
    p: u16 = mul(s.b, s.n);
    /// `p . v` accumulators of a block for one head, `[block, d / heads]`.
    pv: i32 = mul(s.b, s.dh());
});

/// `count` elements of `T` at the start of an aligned region (empty if the region is
/// shorter, which `carve`'s size check rules out).
fn cast_region<T: bytemuck::Pod>(region: &mut [u8], count: usize) -> &mut [T] {
    let size = size_of::<T>();
    let bytes = count.saturating_mul(size).min(region.len()) / size * size;
    bytemuck::try_cast_slice_mut(region.get_mut(..bytes).unwrap_or_default()).unwrap_or_default()
}

/// Bytes of scratch [`crate::Encoder::embed`] needs for `n_tokens` tokens of `model` (an
/// arena at any address; see the module docs). Grows linearly in `n_tokens`. Saturates at
/// `usize::MAX` for absurd lengths.
pub fn scratch_bytes(model: &ModelView<'_>, n_tokens: usize) -> usize {
    Plan::for_model(model, n_tokens).arena_bytes()
}

/// Bytes of scratch [`crate::Encoder::mlm_logits`] needs for `n_tokens` tokens.
pub fn mlm_scratch_bytes(model: &ModelView<'_>, n_tokens: usize) -> usize {
    Plan::for_model(model, n_tokens).with_mlm().arena_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Dims = Dims::new(32, 2, 64, 222);

    #[test]
    fn arena_bytes_is_a_const_fn() {
        const BYTES: usize = Plan::new(TINY, 9).arena_bytes();
        let arena = [0u8; BYTES];
        const { assert!(BYTES > 9 * 32 * 4) };
        assert_eq!(arena.len(), BYTES);
        assert_eq!(Plan::new(TINY, usize::MAX).arena_bytes(), usize::MAX);
    }

    #[test]
    fn carving_any_alignment_of_exactly_the_size_succeeds() {
        let plan = Plan::new(TINY, 9);
        let need = plan.arena_bytes();
        let mut storage = [0u8; 16384];
        for start in 0..REGION_ALIGN {
            let arena = &mut storage[start..start + need];
            let b = plan.carve(arena).expect("exact size carves");
            assert_eq!(b.seq.hidden.len(), 9 * 32);
            assert!(b.seq.mlm_acc.is_empty() && b.seq.kv_staged.is_empty());
            assert_eq!(b.seq.hidden.as_ptr() as usize % REGION_ALIGN, 0);
            assert_eq!(b.blocks.len(), plan.worker_bytes());
            let blk = plan.block_buffers(b.blocks);
            assert_eq!(blk.p.len(), 9 * 9);
            assert!(blk.x_q16.is_empty() && blk.x_u8.is_empty());
            assert_eq!(blk.q_q.as_ptr() as usize % REGION_ALIGN, 0);
        }
        let short = &mut storage[..need - 1];
        assert_eq!(
            plan.carve(short).err(),
            Some(RunError::ScratchTooSmall {
                given: need - 1,
                needed: need
            })
        );
    }

    /// Regression test of a finding of the `encoder` fuzz target (reproducer
    /// `fuzz/corpus/encoder/regression-scratch-too-small-misaligned`, on the earlier layout
    /// of 4-byte regions): an arena that started `k` bytes before a boundary and ended
    /// before reaching it was told it needed `scratch_bytes + len` bytes instead of
    /// `scratch_bytes + k`, a size that failed again. From every start residue, every short
    /// arena (the ones shorter than the slack included) is told the same size, and an arena
    /// of exactly that size carves.
    #[test]
    fn scratch_too_small_names_a_size_that_works_from_every_start() {
        let plan = Plan::new(TINY, 2);
        let need = plan.arena_bytes();
        let mut storage = [0u8; 8192];
        let base = storage.as_ptr().align_offset(REGION_ALIGN);
        assert!(base + REGION_ALIGN + need <= storage.len());
        for residue in 0..REGION_ALIGN {
            let start = base + residue;
            for len in (0..2 * REGION_ALIGN).chain([need - 1]) {
                assert_eq!(
                    plan.carve(&mut storage[start..start + len]).err(),
                    Some(RunError::ScratchTooSmall {
                        given: len,
                        needed: need
                    }),
                    "{len} bytes at residue {residue}"
                );
            }
            assert!(
                plan.carve(&mut storage[start..start + need]).is_ok(),
                "{need} bytes at residue {residue}"
            );
        }
    }

    #[test]
    fn each_worker_adds_its_block_buffers_and_the_staged_scales_once() {
        let one = Plan::new(TINY, 100);
        assert_eq!(one.with_workers(0), one);
        assert_eq!(one.workers(), 1);
        let staged = region_len(100 * 2 * 2, 4).unwrap();
        for workers in 2..6 {
            let many = one.with_workers(workers);
            let extra = (workers - 1) * one.worker_bytes() + staged;
            assert_eq!(many.arena_bytes() - one.arena_bytes(), extra);
            let mut storage = [0u8; 1 << 18];
            let arena = &mut storage[..many.arena_bytes()];
            let b = many.carve(arena).expect("exact size carves");
            assert_eq!(b.seq.kv_staged.len(), 100 * 2 * 2);
            assert_eq!(b.blocks.len(), workers * one.worker_bytes());
            assert_eq!(one.worker_bytes() % REGION_ALIGN, 0);
        }
    }

    #[test]
    fn unused_regions_take_no_bytes() {
        let plain = Plan::new(TINY, 9);
        let mlm = plain.with_mlm();
        assert_eq!(
            mlm.arena_bytes() - plain.arena_bytes(),
            region_len(222, 4).unwrap()
        );
        let big = Plan::new(TINY, 100);
        assert!(plain.check(&big).is_err() && big.check(&plain).is_ok());
    }
}
