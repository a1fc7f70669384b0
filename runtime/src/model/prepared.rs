//! Prepared weights: a backend's copies of a model's dense weights (packed panels,
//! precomputed sums, whatever its GEMM reads fastest), made once into storage the caller
//! owns and found again by the encoder layer by layer.
//!
//! Layout of the storage: for each encoder layer the six dense weight matrices in
//! [`DenseRole::ALL`] order, then the MLM head's transform and decoder (the word embedding
//! table) when the model has that head; each region is [`Kernels::prepared_len`] bytes,
//! rounded up to [`REGION_ALIGN`]. A backend that prepares nothing needs 0 bytes, and the
//! encoder then reads the blob's weights in place.

use super::scratch::REGION_ALIGN;
use crate::blob::{Dense, LayerSection, ModelView};
use crate::error::RunError;
use crate::kernels::{Kernels, MatRef};

/// The dense layers of one encoder layer, in storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseRole {
    /// `attention.self.query`.
    Query,
    /// `attention.self.key`.
    Key,
    /// `attention.self.value`.
    Value,
    /// `attention.output.dense`.
    AttentionOutput,
    /// `intermediate.dense`.
    Intermediate,
    /// `output.dense`.
    Output,
}

impl DenseRole {
    /// Every role, in storage order.
    pub const ALL: [Self; 6] = [
        Self::Query,
        Self::Key,
        Self::Value,
        Self::AttentionOutput,
        Self::Intermediate,
        Self::Output,
    ];

    /// The role's dense layer in `layer`.
    pub fn of<'l, 'a>(self, layer: &'l LayerSection<'a>) -> &'l Dense<'a> {
        match self {
            Self::Query => &layer.query,
            Self::Key => &layer.key,
            Self::Value => &layer.value,
            Self::AttentionOutput => &layer.attention_output,
            Self::Intermediate => &layer.intermediate,
            Self::Output => &layer.output,
        }
    }
}

/// A weight tensor (`[out, in]` int8) as a matrix view (empty if it is not one, which a
/// validated blob rules out).
pub(crate) fn weight_matrix<'a>(t: &crate::blob::Tensor<'a>) -> MatRef<'a, i8> {
    let [rows, cols] = t.shape.map(|x| x as usize);
    MatRef::contiguous(bytemuck::cast_slice(t.data), rows, cols).unwrap_or(MatRef::EMPTY)
}

/// Byte lengths of the regions: six per layer, then the MLM transform and decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Regions {
    layer: [usize; 6],
    mlm: [usize; 2],
    layers: usize,
}

impl Regions {
    fn of<K: Kernels>(k: &K, model: &ModelView<'_>) -> Option<Self> {
        let c = &model.config;
        let (d, ffn) = (c.hidden_size as usize, c.intermediate_size as usize);
        let len = |out: usize, input: usize| {
            k.prepared_len(out, input)
                .checked_add(REGION_ALIGN - 1)
                .map(|x| x / REGION_ALIGN * REGION_ALIGN)
        };
        let mut layer = [0usize; 6];
        for (l, role) in layer.iter_mut().zip(DenseRole::ALL) {
            let (out, input) = match role {
                DenseRole::Intermediate => (ffn, d),
                DenseRole::Output => (d, ffn),
                _ => (d, d),
            };
            *l = len(out, input)?;
        }
        let mlm = if model.head.mlm.is_some() {
            [len(d, d)?, len(c.vocab_size as usize, d)?]
        } else {
            [0, 0]
        };
        Some(Self {
            layer,
            mlm,
            layers: c.num_hidden_layers as usize,
        })
    }

    fn per_layer(&self) -> Option<usize> {
        self.layer.iter().try_fold(0usize, |a, &b| a.checked_add(b))
    }

    fn total(&self) -> Option<usize> {
        self.per_layer()?
            .checked_mul(self.layers)?
            .checked_add(self.mlm[0])?
            .checked_add(self.mlm[1])
    }
}

/// Bytes of storage [`prepare_weights`] needs for `model` with `kernels` (0 when the
/// backend reads weights in place; `usize::MAX` if the size does not fit).
pub fn prepared_bytes<K: Kernels>(kernels: &K, model: &ModelView<'_>) -> usize {
    Regions::of(kernels, model)
        .and_then(|r| r.total())
        .unwrap_or(usize::MAX)
}

/// A backend's prepared copies of a model's dense weights, borrowed from the caller's
/// storage (see [`prepare_weights`] and [`crate::Encoder::with_prepared`]).
#[derive(Debug, Clone, Copy)]
pub struct PreparedWeights<'p> {
    bytes: &'p [u8],
    backend: &'static str,
    regions: Regions,
}

/// Prepares every dense weight matrix of `model` for `kernels` into `storage` (at least
/// [`prepared_bytes`] long; any alignment). The result is used by an encoder with a backend
/// of the same name ([`crate::Encoder::with_prepared`]).
///
/// # Errors
/// [`RunError::PreparedTooSmall`] when `storage` is shorter than needed.
pub fn prepare_weights<'p, K: Kernels>(
    kernels: &K,
    model: &ModelView<'_>,
    storage: &'p mut [u8],
) -> Result<PreparedWeights<'p>, RunError> {
    let needed = prepared_bytes(kernels, model);
    let given = storage.len();
    let regions = match Regions::of(kernels, model) {
        Some(r) if needed <= given => r,
        _ => return Err(RunError::PreparedTooSmall { given, needed }),
    };
    {
        let mut rest: &mut [u8] = &mut *storage;
        let mut take = |len: usize| -> &mut [u8] {
            let taken = core::mem::take(&mut rest);
            let (region, tail) = taken.split_at_mut(len.min(taken.len()));
            rest = tail;
            region
        };
        for layer in model.layers() {
            for (role, &len) in DenseRole::ALL.iter().zip(&regions.layer) {
                let region = take(len);
                if len > 0 {
                    kernels.prepare(weight_matrix(&role.of(&layer).weight), region);
                }
            }
        }
        if let Some(mlm) = &model.head.mlm {
            for (t, &len) in [&mlm.transform.weight, &model.embeddings.word.weight]
                .into_iter()
                .zip(&regions.mlm)
            {
                let region = take(len);
                if len > 0 {
                    kernels.prepare(weight_matrix(t), region);
                }
            }
        }
    }
    let bytes: &'p [u8] = storage;
    Ok(PreparedWeights {
        bytes: bytes.get(..needed).unwrap_or_default(),
        backend: kernels.name(),
        regions,
    })
}

impl<'p> PreparedWeights<'p> {
    /// The view of storage that [`prepare_weights`] filled earlier for `kernels` and a
    /// model shaped like `model` (e.g. kept in a static buffer, or across calls of the C
    /// API). Only the length is checked: bytes prepared for another model of the same shape
    /// give wrong numbers, never undefined behaviour.
    ///
    /// # Errors
    /// [`RunError::PreparedTooSmall`] when `bytes` is shorter than [`prepared_bytes`].
    pub fn from_bytes<K: Kernels>(
        kernels: &K,
        model: &ModelView<'_>,
        bytes: &'p [u8],
    ) -> Result<Self, RunError> {
        let needed = prepared_bytes(kernels, model);
        let given = bytes.len();
        match Regions::of(kernels, model) {
            Some(regions) if needed <= given => Ok(Self {
                bytes: bytes.get(..needed).unwrap_or_default(),
                backend: kernels.name(),
                regions,
            }),
            _ => Err(RunError::PreparedTooSmall { given, needed }),
        }
    }

    /// The backend that prepared them ([`Kernels::name`]).
    pub const fn backend(&self) -> &'static str {
        self.backend
    }

    /// Bytes of prepared weights.
    pub const fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the backend prepared nothing.
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether these were prepared by `kernels` for a model shaped like `model`.
    pub(crate) fn matches<K: Kernels>(&self, kernels: &K, model: &ModelView<'_>) -> bool {
        self.backend == kernels.name() && Regions::of(kernels, model) == Some(self.regions)
    }

    /// The region at byte `start` of length `len`.
    fn region(&self, start: Option<usize>, len: usize) -> &'p [u8] {
        start
            .and_then(|s| self.bytes.get(s..s.checked_add(len)?))
            .unwrap_or_default()
    }

    /// The prepared copy of layer `layer`'s dense `role` (empty when the backend prepares
    /// nothing).
    pub(crate) fn dense(&self, layer: usize, role: DenseRole) -> &'p [u8] {
        let r = &self.regions;
        let i = DenseRole::ALL.iter().position(|&x| x == role).unwrap_or(0);
        let within: usize = r.layer.iter().take(i).sum();
        let start = r
            .per_layer()
            .and_then(|p| p.checked_mul(layer))
            .and_then(|x| x.checked_add(within));
        self.region(start, r.layer[i])
    }

    /// The prepared copies of the MLM head's transform (`0`) and decoder (`1`).
    pub(crate) fn mlm(&self, which: usize) -> &'p [u8] {
        let r = &self.regions;
        let before: usize = r.mlm.iter().take(which).sum();
        let start = r
            .per_layer()
            .and_then(|p| p.checked_mul(r.layers))
            .and_then(|x| x.checked_add(before));
        self.region(start, r.mlm.get(which).copied().unwrap_or(0))
    }
}
