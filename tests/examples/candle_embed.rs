//! The f32 reference for `cargo xtask bench-long`: embeds one text file with candle's
//! `BertModel` and the same hierarchical position table as the runtime (see
//! `tests/common/long.rs`), and prints one JSON object like `microbert embed`:
//! `{"tokens": N, "truncated": bool, "embedding": [...]}`.
//!
//! ```text
//! candle_embed --file DOC.txt [--max-tokens N] [--alpha 0.4] [--checkpoint DIR]
//! ```
//! `--checkpoint` defaults to the cached all-MiniLM-L6-v2 (`cargo xtask fetch-model minilm`);
//! `--alpha` should be the blob's (`position_alpha_q16 / 65536`). candle materialises the
//! `n x n` attention scores: use it up to about 8,192 tokens.

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/common/long.rs"]
mod long;

use anyhow::{Context, Result, bail};
use std::path::PathBuf;

struct Args {
    checkpoint: PathBuf,
    file: PathBuf,
    max_tokens: Option<usize>,
    alpha: f64,
}

const USAGE: &str =
    "usage: candle_embed --file DOC.txt [--max-tokens N] [--alpha A] [--checkpoint DIR]";

fn parse_args() -> Result<Args> {
    let mut checkpoint = microbert_tests::corpus::model_dir("minilm");
    let (mut file, mut max_tokens, mut alpha) = (None, None, 0.4);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--checkpoint" => checkpoint = PathBuf::from(value()?),
            "--file" => file = Some(PathBuf::from(value()?)),
            "--max-tokens" => {
                let n: usize = value()?.parse().context("--max-tokens")?;
                if n < 2 {
                    bail!("--max-tokens must be at least 2 ([CLS] and [SEP])");
                }
                max_tokens = Some(n);
            }
            "--alpha" => alpha = value()?.parse().context("--alpha")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Args {
        checkpoint,
        file: file.context(USAGE)?,
        max_tokens,
        alpha,
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mut tok = tokenizers::Tokenizer::from_file(args.checkpoint.join("tokenizer.json"))
        .map_err(|e| anyhow::anyhow!("tokenizer.json: {e}"))?;
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| anyhow::anyhow!("truncation off: {e}"))?;
    let enc = tok
        .encode(text.as_str(), true)
        .map_err(|e| anyhow::anyhow!("tokenize: {e}"))?;
    let mut ids = enc.get_ids().to_vec();
    let truncated = args.max_tokens.is_some_and(|n| ids.len() > n);
    if let (true, Some(n)) = (truncated, args.max_tokens) {
        let sep = *ids.last().context("no tokens")?;
        ids.truncate(n - 1);
        ids.push(sep);
    }
    let oracle = long::LongOracle::load(&args.checkpoint, ids.len().max(1), args.alpha)?;
    let embedding = oracle.embed(&ids)?;
    println!(
        "{}",
        serde_json::json!({
            "tokens": ids.len(),
            "truncated": truncated,
            "embedding": embedding,
        })
    );
    Ok(())
}
