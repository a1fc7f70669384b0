//! Fetching pinned packages (placeholder).
use anyhow::{Result, bail};
/// Args.
#[derive(clap::Args)]
pub struct FetchModelArgs { name: String }
/// Args.
#[derive(clap::Args)]
pub struct FetchDataArgs { name: String }
pub fn fetch_model(_a: &FetchModelArgs) -> Result<()> { bail!("not written yet") }
pub fn fetch_data(_a: &FetchDataArgs) -> Result<()> { bail!("not written yet") }
