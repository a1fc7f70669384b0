//! WordPiece tokenizer (placeholder, being written).
/// Tokenizer.
pub struct Tokenizer;
