//! The f32 reference of `microbert classify`: candle-transformers' `BertModel`, pooler and
//! classifier (`tests/common/heads.rs`) on a Hugging Face `BertForSequenceClassification`
//! checkpoint, tokenized by Hugging Face `tokenizers` (pairs with its `longest_first`
//! truncation), printing the CLI's format: `{"label", "score", "scores": {label: p}}`, or
//! `{"score": s}` for a one-label head.
//!
//! ```text
//! cargo run --release -p microbert-tests --example candle_classify -- \
//!     --checkpoint DIR [--max-tokens N] < in.jsonl
//! ```
//! Input lines are plain text or `{"text": ..., "text_pair": ...}`.

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/common/heads.rs"]
mod heads;
#[allow(dead_code)]
#[path = "shared/heads_cli.rs"]
mod heads_cli;

use anyhow::{Result, bail};
use heads::softmax;
use serde_json::{Map, Value, json};

const USAGE: &str = "usage: candle_classify --checkpoint DIR [--max-tokens N] < lines";

fn main() -> Result<()> {
    let args = heads_cli::parse_args(USAGE)?;
    let (oracle, tok) = heads_cli::load(&args)?;
    if !oracle.classifies_sequences() {
        bail!(
            "{} is a token classifier: use candle_tag",
            args.checkpoint.display()
        );
    }
    heads_cli::each_line(|line| {
        let (text, pair) = heads_cli::text_of(line)?;
        let enc = match pair {
            Some(b) => tok.encode((text, b), true),
            None => tok.encode(text, true),
        }
        .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
        let hidden = oracle.hidden(enc.get_ids(), enc.get_type_ids())?;
        let logits = oracle.classify(&hidden)?;
        if logits.len() == 1 {
            return Ok(json!({ "score": logits[0] }));
        }
        let p = softmax(&logits.iter().map(|&l| f64::from(l)).collect::<Vec<_>>());
        let best = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
        let labels = oracle.labels();
        let scores: Map<String, Value> = labels
            .iter()
            .zip(&p)
            .map(|(l, &p)| (l.clone(), json!(p)))
            .collect();
        Ok(json!({ "label": labels[best], "score": p[best], "scores": scores }))
    })
}
