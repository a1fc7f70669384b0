//! The command-line frame the `candle_classify` and `candle_tag` examples share: their
//! flags, the checkpoint's oracle and Hugging Face tokenizer, and the line loop in the
//! format of the `microbert` verbs (one output line per input line, a bad line an
//! `{"line": N, "error": ...}` line, exit status 1 when a line failed). Each example
//! declares it beside `tests/common/heads.rs` (`crate::heads`).

use crate::heads::HeadOracle;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Flags: `--checkpoint DIR [--max-tokens N] [--all]`.
pub(crate) struct Args {
    pub(crate) checkpoint: PathBuf,
    pub(crate) max_tokens: usize,
    pub(crate) all: bool,
}

/// Parses the flags (`usage` is the example's usage line).
pub(crate) fn parse_args(usage: &str) -> Result<Args> {
    let (mut checkpoint, mut max_tokens, mut all) = (None, 512, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{usage}"))
        };
        match flag.as_str() {
            "--checkpoint" => checkpoint = Some(PathBuf::from(value()?)),
            "--max-tokens" => max_tokens = value()?.parse().context("--max-tokens")?,
            "--all" => all = true,
            "--help" | "-h" => {
                println!("{usage}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}\n{usage}"),
        }
    }
    Ok(Args {
        checkpoint: checkpoint.with_context(|| format!("--checkpoint is required\n{usage}"))?,
        max_tokens,
        all,
    })
}

/// The checkpoint's oracle and its tokenizer, truncating `longest_first` at `max_tokens`.
pub(crate) fn load(args: &Args) -> Result<(HeadOracle, tokenizers::Tokenizer)> {
    let oracle = HeadOracle::load(&args.checkpoint)?;
    let path = args.checkpoint.join("tokenizer.json");
    let mut tok = tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))?;
    tok.with_padding(None);
    tok.with_truncation(Some(tokenizers::TruncationParams {
        max_length: args.max_tokens,
        ..Default::default()
    }))
    .map_err(|e| anyhow::anyhow!("truncation: {e}"))?;
    Ok((oracle, tok))
}

/// The text and optional pair of a line: the line, or a `{"text", "text_pair"}` object.
pub(crate) fn text_of(line: &str) -> Result<(String, Option<String>)> {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(o)) => {
            let text = o["text"]
                .as_str()
                .context("a JSON object line needs a string \"text\"")?;
            let pair = match o.get("text_pair") {
                None => None,
                Some(v) => Some(
                    v.as_str()
                        .context("\"text_pair\" must be a string")?
                        .to_owned(),
                ),
            };
            Ok((text.to_owned(), pair))
        }
        _ => Ok((line.to_owned(), None)),
    }
}

/// Runs `each` on every stdin line, printing its value or an error line.
pub(crate) fn each_line(mut each: impl FnMut(&str) -> Result<serde_json::Value>) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0usize;
    for (i, line) in std::io::stdin().lock().split(b'\n').enumerate() {
        let mut line = line?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let value = core::str::from_utf8(&line)
            .context("the line is not UTF-8")
            .and_then(&mut each)
            .unwrap_or_else(|e| {
                failed += 1;
                serde_json::json!({ "line": i + 1, "error": format!("{e:#}") })
            });
        writeln!(out, "{value}")?;
    }
    if failed > 0 {
        bail!("{failed} lines failed");
    }
    Ok(())
}
