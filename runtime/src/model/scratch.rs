//! Scratch arena sizing (placeholder).
/// Bytes of scratch.
pub fn scratch_bytes(_m: &crate::ModelView<'_>, _n: usize) -> usize { 0 }
