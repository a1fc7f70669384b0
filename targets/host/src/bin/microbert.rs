//! The `microbert` command (placeholder).
fn main() {}
