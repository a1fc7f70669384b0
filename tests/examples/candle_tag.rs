//! The f32 reference of `microbert tag`: candle-transformers' `BertModel` and token
//! classifier (`tests/common/heads.rs`) on a Hugging Face `BertForTokenClassification`
//! checkpoint, tokenized by Hugging Face `tokenizers` with character offsets; each word
//! (the oracle's word ids) takes its first token's label. Prints the CLI's format:
//! `{"entities": [{"word", "start", "end", "label", "score"}], "truncated": bool}`,
//! offsets in Unicode characters, words labelled `O` only with `--all`.
//!
//! ```text
//! cargo run --release -p microbert-tests --example candle_tag -- \
//!     --checkpoint DIR [--max-tokens N] [--all] < lines
//! ```

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/common/heads.rs"]
mod heads;
#[path = "shared/heads_cli.rs"]
mod heads_cli;

use anyhow::{Result, bail};
use heads::softmax;
use serde_json::json;
use std::collections::HashMap;

const USAGE: &str = "usage: candle_tag --checkpoint DIR [--max-tokens N] [--all] < lines";

fn main() -> Result<()> {
    let args = heads_cli::parse_args(USAGE)?;
    let (oracle, tok) = heads_cli::load(&args)?;
    if oracle.classifies_sequences() {
        bail!(
            "{} is a sequence classifier: use candle_classify",
            args.checkpoint.display()
        );
    }
    heads_cli::each_line(|line| {
        let (text, pair) = heads_cli::text_of(line)?;
        if pair.is_some() {
            bail!("tag labels one text: \"text_pair\" is for classify");
        }
        let enc = tok
            .encode_char_offsets(text.as_str(), true)
            .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
        let hidden = oracle.hidden(enc.get_ids(), enc.get_type_ids())?;
        let logits = oracle.tag(&hidden)?;
        // Each word's span: the union of its tokens' offsets.
        let mut spans = HashMap::<u32, (usize, usize)>::new();
        for (w, &(s, e)) in enc.get_word_ids().iter().zip(enc.get_offsets()) {
            if let Some(w) = *w {
                let span = spans.entry(w).or_insert((s, e));
                *span = (span.0.min(s), span.1.max(e));
            }
        }
        let chars: Vec<char> = text.chars().collect();
        let mut entities = Vec::new();
        let mut previous = None;
        for (w, row) in enc.get_word_ids().iter().zip(&logits) {
            let Some(w) = *w else { continue };
            if previous == Some(w) {
                continue;
            }
            previous = Some(w);
            let p = softmax(&row.iter().map(|&l| f64::from(l)).collect::<Vec<_>>());
            let best = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
            let label = &oracle.labels()[best];
            if label == "O" && !args.all {
                continue;
            }
            let (start, end) = spans[&w];
            let word: String = chars[start.min(chars.len())..end.min(chars.len())]
                .iter()
                .collect();
            entities.push(json!({
                "word": word, "start": start, "end": end, "label": label, "score": p[best],
            }));
        }
        let truncated = !enc.get_overflowing().is_empty();
        Ok(json!({ "entities": entities, "truncated": truncated }))
    })
}
