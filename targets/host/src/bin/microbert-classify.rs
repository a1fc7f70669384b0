//! `microbert-classify --model M.blob [--max-tokens N]`: sequence classification of stdin,
//! one JSON object per line, with a blob that carries a sequence classifier (sections 7,
//! 8 and 10 of docs/blob-format.md).
//!
//! An input line is plain text, or `{"text": ..., "text_pair": ...}` (a sentence pair,
//! tokenized with the blob's pair template and `longest_first` truncation; `text_pair` may
//! be absent). Output per line: `{"label", "score", "scores": {label: p}}` (softmax of the
//! integer logits in the float output helper), or `{"score": s}` with the raw score of a
//! one-label head (a cross-encoder). A line that cannot be classified gives
//! `{"error": "..."}` and the command exits non-zero after the last line.
//!
//! A stand-alone binary until the lead wires `classify` into `microbert` (what it needs:
//! this file's `classify_line`, a `--kernels` flag and the batch rules of `lines.rs`).

use anyhow::{Context, Result, bail};
use microbert::{Encoder, Tokenizer};
use microbert_host::HostKernels;
use serde_json::{Map, Value, json};
use std::io::{BufRead, Write};

const USAGE: &str = "usage: microbert-classify --model M.blob [--max-tokens N] < lines";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut max_tokens) = (None, 512usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model" => model = args.next(),
            "--max-tokens" => {
                max_tokens = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("--max-tokens needs a number")?;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let Some(path) = model else {
        bail!("{USAGE}");
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
    let model = microbert::parse(&bytes).with_context(|| path.clone())?;
    if model.tasks.num_labels().is_none() || model.tasks.pooler.is_none() {
        bail!("{path} has no sequence classifier (convert a BertForSequenceClassification)");
    }
    let max_tokens = max_tokens.clamp(3, model.max_tokens());
    let kernels = HostKernels::detect();
    let prepared = kernels.prepare_model(&model);
    let encoder = prepared.encoder(&model)?;
    let tok = Tokenizer::new(&model);
    let mut arena = vec![0u8; microbert::scratch_bytes(&model, max_tokens)];
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin (is it UTF-8?)")?;
        let value = classify_line(&encoder, &tok, &model, &line, max_tokens, &mut arena)
            .unwrap_or_else(|e| {
                failed = true;
                json!({ "error": format!("{e:#}") })
            });
        writeln!(out, "{value}")?;
    }
    out.flush()?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// The output object of one input line.
fn classify_line<K: microbert::Kernels>(
    encoder: &Encoder<'_, '_, K>,
    tok: &Tokenizer<'_>,
    model: &microbert::ModelView<'_>,
    line: &str,
    max_tokens: usize,
    arena: &mut [u8],
) -> Result<Value> {
    let (text, pair) = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(o)) => {
            let field = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            let Some(text) = field("text") else {
                bail!("a JSON line needs a string \"text\"");
            };
            (text, field("text_pair"))
        }
        _ => (line.to_owned(), None),
    };
    let (mut ids, mut types) = (vec![0u32; max_tokens], vec![0u32; max_tokens]);
    let n = match &pair {
        Some(b) => tok.encode_pair(&text, b, &mut ids, &mut types)?.len,
        None => tok.encode(&text, &mut ids)?.len,
    };
    let labels = model.tasks.num_labels().unwrap_or(0);
    let mut logits = vec![0i32; labels];
    encoder.classify(&ids[..n], Some(&types[..n]), arena, &mut logits)?;
    if labels == 1 {
        return Ok(json!({ "score": f64::from(logits[0]) / 65536.0 }));
    }
    let mut probs = vec![0f32; labels];
    microbert::output::softmax(&logits, &mut probs);
    let name = |i: usize| {
        model
            .tasks
            .label(i)
            .map_or_else(|| format!("LABEL_{i}"), str::to_owned)
    };
    let best = (0..labels)
        .max_by(|&a, &b| logits[a].cmp(&logits[b]))
        .unwrap_or(0);
    let scores: Map<String, Value> = (0..labels).map(|i| (name(i), json!(probs[i]))).collect();
    Ok(json!({ "label": name(best), "score": probs[best], "scores": scores }))
}
