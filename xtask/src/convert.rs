//! Converter (placeholder).
use anyhow::{Result, bail};
/// Args.
#[derive(clap::Args)]
pub struct ConvertArgs { #[arg(long)] checkpoint: std::path::PathBuf }
pub fn run(_a: &ConvertArgs) -> Result<()> { bail!("not written yet") }
