//! The BERT encoder (placeholder while it is being written).
pub mod position;
pub mod scratch;
/// Encoder.
pub struct Encoder;
