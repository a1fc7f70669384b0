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
//! The caller supplies a scratch arena of [`scratch_bytes`] bytes; nothing is allocated.
//!
//! ```ignore
//! let model = microbert::parse(&blob)?;
//! let mut ids = [0u32; 128];
//! let enc = microbert::Tokenizer::new(&model).encode("hello world", &mut ids)?;
//! let mut arena = vec![0u8; microbert::scratch_bytes(&model, enc.len)];
//! let mut pooled = [0i32; 384];
//! microbert::Encoder::new(&model, microbert::Scalar).embed(&ids[..enc.len], &mut arena, &mut pooled)?;
//! ```
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

pub use blob::{ModelView, parse};
pub use error::{BlobError, RunError, TokenizeError};
pub use kernels::{Kernels, Scalar};
pub use model::{EmbedOptions, Encoder, Progress, scratch::arena, scratch::scratch_bytes};
pub use tokenizer::Tokenizer;
