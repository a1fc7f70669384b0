//! # microbert
//!
//! Integer-only inference of int8-quantised BERT encoders (BERT, MiniLM,
//! sentence-transformers models) for edge devices: `#![no_std]`, no heap, no floating point
//! in the inference arithmetic, no `unsafe`.
//!
//! Data flow (each step is a module):
//! ```text
//! blob bytes --blob::parse--> ModelView (borrowed, validated)
//! text --tokenizer--> token ids (caller's buffer)
//! ids --model::embeddings--> Q.16 hidden states --model::layer x N--> pooled / MLM logits
//!                 every product and per-row pass goes through a `Kernels` backend
//! ```
//! The caller supplies a scratch arena of [`scratch_bytes`] bytes (any alignment);
//! nothing is allocated. Every problem with a blob, a text, a token id, a length or an
//! arena is an [`Error`] value, never a panic.
//!
//! ```
//! # fn main() -> Result<(), microbert::Error> {
//! # let blob: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/fixtures/tiny/model.blob"));
//! let model = microbert::parse(blob)?; // validates everything, borrows the tensors
//! let mut ids = [0u32; 64];
//! let enc = microbert::Tokenizer::new(&model).encode("hello world", &mut ids)?;
//! let mut arena = vec![0u8; microbert::scratch_bytes(&model, enc.len)];
//! let mut pooled = [0i32; 32]; // hidden_size of this model, Q.16
//! microbert::Encoder::new(&model, microbert::Scalar).embed(&ids[..enc.len], &mut arena, &mut pooled)?;
//! let mut embedding = [0f32; 32];
//! microbert::output::normalize(&pooled, &mut embedding); // the only float: an output helper
//! # assert!((embedding.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
//! # Ok(())
//! # }
//! ```
//!
//! On a microcontroller the arena is a `static` sized at compile time from the model's
//! dimensions ([`Plan`], [`Dims`], [`Arena`]), with no build script; at run time
//! [`Plan::check`] confirms the blob fits what was declared:
//! ```
//! use microbert::{Arena, Dims, Plan};
//! // hidden, heads, intermediate, vocabulary; tokens.
//! const PLAN: Plan = Plan::new(Dims::new(32, 2, 64, 222), 16);
//! // In firmware, a `static` handed out once, e.g. with the `static_cell` crate:
//! // static ARENA: ConstStaticCell<Arena<{ PLAN.arena_bytes() }>> = ConstStaticCell::new(Arena::new());
//! # fn main() -> Result<(), microbert::Error> {
//! # let blob: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/fixtures/tiny/model.blob"));
//! let mut arena = Arena::<{ PLAN.arena_bytes() }>::new();
//! let model = microbert::parse(blob)?;
//! PLAN.check(&Plan::for_model(&model, 16))?; // the blob fits what was declared
//! let mut pooled = [0i32; 32];
//! microbert::Encoder::new(&model, microbert::Scalar).embed(&[2, 7, 3], arena.bytes(), &mut pooled)?;
//! # Ok(())
//! # }
//! ```
//!
//! Reentrancy and threads: a parsed [`ModelView`] is `Copy` and only borrows the blob, so
//! it can be shared read-only by any number of threads or tasks; every [`Encoder`] call
//! owns the arena it is given and touches nothing else (no global or static state in this
//! crate). A long pass reports progress and can be stopped through
//! [`EmbedOptions::progress`].
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod blob;
pub mod error;
pub mod kernels;
pub mod model;
pub mod output;
pub mod quant;
pub mod tokenizer;

pub use blob::{ModelView, Pooling, PositionMode, parse};
pub use error::{BlobError, Error, RunError, TokenizeError};
pub use kernels::{Kernels, Scalar};
pub use model::parallel::{Parallel, Sequential};
pub use model::prepared::{PreparedWeights, prepare_weights, prepared_bytes};
pub use model::scratch::{Arena, Dims, Plan, mlm_scratch_bytes, scratch_bytes};
pub use model::{EmbedOptions, Encoder, Progress, ProgressFn};
pub use tokenizer::{Encoding, Tokenizer, UnigramTokenizer, WordSpan};
