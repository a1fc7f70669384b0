//! Positions (placeholder).
/// Max positions.
pub fn max_positions(c: &crate::blob::Config) -> usize { c.max_position_embeddings as usize }
