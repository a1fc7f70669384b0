//! `microbert tokenize`: `{"ids": [...]}` per line, `[CLS]` and `[SEP]` included, never
//! truncated.

use crate::batch::{self, BatchArgs};
use crate::{Finish, parse_model, read_blob};
use anyhow::Result;
use microbert::Tokenizer;
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(after_help = batch::HELP)]
pub(crate) struct TokenizeArgs {
    /// The model blob (`cargo xtask convert` writes one).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    batch: BatchArgs,
}

/// One line of `tokenize` output.
#[derive(serde::Serialize)]
struct IdsLine<'a> {
    ids: &'a [u32],
}

/// `microbert tokenize`.
pub(crate) fn run(args: &TokenizeArgs) -> Result<Finish> {
    let bytes = read_blob(&args.model)?;
    let model = parse_model(&args.model, &bytes)?;
    let tokenizer = Tokenizer::new(&model);
    let mut ids = Vec::new();
    let outcome = batch::run(
        std::io::stdin().lock(),
        std::io::stdout().lock(),
        args.batch,
        |_, text, out| {
            ids.resize(tokenizer.count(text), 0);
            let enc = tokenizer.encode(text, &mut ids)?;
            let ids = ids.get(..enc.len).unwrap_or_default();
            serde_json::to_writer(out, &IdsLine { ids })?;
            Ok(())
        },
    )?;
    Ok(Finish::from(outcome))
}
