//! `microbert classify`: sequence classification (or a one-label head's raw score) of each
//! input line, with a blob that carries a sequence classifier (a converted
//! `BertForSequenceClassification`: sections 7, 8 and 10 of docs/blob-format.md).
//!
//! An input line is plain text, or `{"text": ..., "text_pair": ...}` (a sentence pair,
//! tokenized with the blob's pair template and `longest_first` truncation; `text_pair` may
//! be absent). Output per line: `{"label", "score", "scores": {label: p}}`, the softmax of
//! the integer logits (the one float step, in `microbert::output`), or `{"score": s}`,
//! the raw Q16.16 score of a one-label head (a cross-encoder) as a number.

use crate::batch::{self, BatchArgs};
use crate::embed::KernelsArg;
use crate::{Finish, parse_model, read_blob};
use anyhow::{Result, bail};
use microbert::{Encoder, Kernels, ModelView, Tokenizer};
use serde_json::{Map, Value, json};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(after_help = batch::HELP)]
pub(crate) struct ClassifyArgs {
    /// The model blob, with a sequence classifier (`cargo xtask convert` of a
    /// BertForSequenceClassification checkpoint).
    #[arg(long)]
    model: PathBuf,
    /// Truncate each input to at most N tokens, special tokens included (a pair by
    /// `longest_first`); default: the model's positions.
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Kernels (as for `embed`); every tier gives bit-identical results.
    #[arg(long, value_enum, default_value_t = KernelsArg::Auto)]
    kernels: KernelsArg,
    /// Also print the classifier's integer logits, `"logits": [..]` in Q16.16 fixed point
    /// (what the C API's `microbert_classify` writes, bit for bit).
    #[arg(long)]
    logits: bool,
    #[command(flatten)]
    batch: BatchArgs,
}

/// `microbert classify`.
pub(crate) fn run(args: &ClassifyArgs) -> Result<Finish> {
    let bytes = read_blob(&args.model)?;
    let model = parse_model(&args.model, &bytes)?;
    if model.tasks.num_labels().is_none() || model.tasks.pooler.is_none() {
        bail!(
            "{} has no sequence classifier (convert a BertForSequenceClassification \
             checkpoint; a token classifier's blob has no pooler)",
            args.model.display()
        );
    }
    let most = model.max_tokens();
    let max_tokens = match args.max_tokens {
        Some(n) if n < 3 => bail!("--max-tokens {n}: a classified text needs at least 3"),
        Some(n) => n.min(most),
        None => most,
    };
    let kernels = args.kernels.kernels()?;
    let prepared = kernels.prepare_model(&model);
    bytes.release_pages();
    let encoder = prepared.encoder(&model)?;
    let mut classifier = Classifier {
        encoder: &encoder,
        tok: Tokenizer::new(&model),
        model: &model,
        arena: vec![0u8; microbert::scratch_bytes(&model, max_tokens)],
        ids: vec![0; max_tokens],
        types: vec![0; max_tokens],
        print_logits: args.logits,
    };
    let outcome = batch::run(
        std::io::stdin().lock(),
        std::io::stdout().lock(),
        args.batch,
        |_, line, out| {
            serde_json::to_writer(out, &classifier.line(line)?)?;
            Ok(())
        },
    )?;
    Ok(Finish::from(outcome))
}

/// What one line needs: the encoder, its arena and the token buffers.
struct Classifier<'e, 'm, K: Kernels> {
    encoder: &'e Encoder<'m, 'e, K>,
    tok: Tokenizer<'m>,
    model: &'e ModelView<'m>,
    arena: Vec<u8>,
    ids: Vec<u32>,
    types: Vec<u32>,
    /// `--logits`.
    print_logits: bool,
}

impl<K: Kernels> Classifier<'_, '_, K> {
    /// The output object of one input line.
    fn line(&mut self, line: &str) -> Result<Value> {
        let (text, pair) = text_of(line)?;
        let n = match &pair {
            Some(b) => {
                self.tok
                    .encode_pair(&text, b, &mut self.ids, &mut self.types)?
                    .len
            }
            None => {
                let n = self.tok.encode(&text, &mut self.ids)?.len;
                self.types[..n].fill(0);
                n
            }
        };
        let labels = self.model.tasks.num_labels().unwrap_or(0);
        let mut logits = vec![0i32; labels];
        self.encoder.classify(
            &self.ids[..n],
            Some(&self.types[..n]),
            &mut self.arena,
            &mut logits,
        )?;
        let mut out = if labels == 1 {
            json!({ "score": f64::from(logits[0]) / 65536.0 })
        } else {
            let mut probs = vec![0f32; labels];
            microbert::output::softmax(&logits, &mut probs);
            let name = |i: usize| label_name(self.model, i);
            let best = argmax(&logits);
            let scores: Map<String, Value> =
                (0..labels).map(|i| (name(i), json!(probs[i]))).collect();
            json!({ "label": name(best), "score": probs[best], "scores": scores })
        };
        if self.print_logits {
            out["logits"] = json!(logits);
        }
        Ok(out)
    }
}

/// The text (and the optional second text of a pair) of an input line: the line itself,
/// or the `text` and `text_pair` strings of a JSON object line.
pub(crate) fn text_of(line: &str) -> Result<(String, Option<String>)> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(o)) => {
            let field = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            let Some(text) = field("text") else {
                bail!("a JSON object line needs a string \"text\"");
            };
            if o.get("text_pair").is_some_and(|v| !v.is_string()) {
                bail!("\"text_pair\" must be a string");
            }
            Ok((text, field("text_pair")))
        }
        _ => Ok((line.to_owned(), None)),
    }
}

/// The blob's name of label `i`, or Hugging Face's default `LABEL_i`.
pub(crate) fn label_name(model: &ModelView<'_>, i: usize) -> String {
    model
        .tasks
        .label(i)
        .map_or_else(|| format!("LABEL_{i}"), str::to_owned)
}

/// The index of the largest logit (the first of equals).
pub(crate) fn argmax(logits: &[i32]) -> usize {
    (0..logits.len())
        .max_by(|&a, &b| logits[a].cmp(&logits[b]).then(b.cmp(&a)))
        .unwrap_or(0)
}
