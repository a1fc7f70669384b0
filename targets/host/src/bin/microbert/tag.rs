//! `microbert tag`: token classification of each input line (entities, parts of speech,
//! word segmentation), with a blob that carries a token classifier (a converted
//! `BertForTokenClassification`: sections 8 and 10 of docs/blob-format.md).
//!
//! An input line is plain text, or `{"text": ...}`. Each word of the text (a word of
//! BERT's pre-tokenizer: split on whitespace, every punctuation character and every CJK
//! ideograph a word of its own) takes the label of its first piece, as Hugging Face's
//! token-classification pipeline does with `aggregation_strategy="first"`. Output per line:
//! `{"entities": [{"word", "start", "end", "label", "score"}], "truncated": bool}`, where
//! `start..end` counts Unicode characters (not bytes) of the input text, `word` is that
//! slice of it, and `score` is the label's softmax probability (the one float step, in
//! `microbert::output`). Words labelled `O` (outside any entity) are left out unless
//! `--all` is given; so are the words after the token limit (`truncated` is then true).

use crate::batch::{self, BatchArgs};
use crate::classify::{argmax, label_name, text_of};
use crate::embed::KernelsArg;
use crate::{Finish, parse_model, read_blob};
use anyhow::{Result, bail};
use microbert::blob::ClassifierKind;
use microbert::{Encoder, Kernels, ModelView, Tokenizer, WordSpan};
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(after_help = batch::HELP)]
pub(crate) struct TagArgs {
    /// The model blob, with a token classifier (`cargo xtask convert` of a
    /// BertForTokenClassification checkpoint).
    #[arg(long)]
    model: PathBuf,
    /// Truncate each input to at most N tokens, [CLS] and [SEP] included; default: the
    /// model's positions.
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Also list the words labelled `O`.
    #[arg(long)]
    all: bool,
    /// Kernels (as for `embed`); every tier gives bit-identical results.
    #[arg(long, value_enum, default_value_t = KernelsArg::Auto)]
    kernels: KernelsArg,
    #[command(flatten)]
    batch: BatchArgs,
}

/// `microbert tag`.
pub(crate) fn run(args: &TagArgs) -> Result<Finish> {
    let bytes = read_blob(&args.model)?;
    let model = parse_model(&args.model, &bytes)?;
    if !matches!(model.tasks.classifier, Some((ClassifierKind::Token, _))) {
        bail!(
            "{} has no token classifier (convert a BertForTokenClassification checkpoint; \
             a sequence classifier is for classify)",
            args.model.display()
        );
    }
    let most = model.max_tokens();
    let max_tokens = match args.max_tokens {
        Some(n) if n < 3 => bail!("--max-tokens {n}: a tagged text needs at least 3"),
        Some(n) => n.min(most),
        None => most,
    };
    let kernels = args.kernels.kernels()?;
    let prepared = kernels.prepare_model(&model);
    bytes.release_pages();
    let encoder = prepared.encoder(&model)?;
    let mut tagger = Tagger {
        encoder: &encoder,
        tok: Tokenizer::new(&model),
        model: &model,
        all: args.all,
        arena: vec![0u8; microbert::scratch_bytes(&model, max_tokens)],
        ids: vec![0; max_tokens],
        spans: vec![None; max_tokens],
        logits: Vec::new(),
    };
    let outcome = batch::run(
        std::io::stdin().lock(),
        std::io::stdout().lock(),
        args.batch,
        |_, line, out| {
            serde_json::to_writer(out, &tagger.line(line)?)?;
            Ok(())
        },
    )?;
    Ok(Finish::from(outcome))
}

/// What one line needs: the encoder, its arena and the token buffers.
struct Tagger<'e, 'm, K: Kernels> {
    encoder: &'e Encoder<'m, 'e, K>,
    tok: Tokenizer<'m>,
    model: &'e ModelView<'m>,
    all: bool,
    arena: Vec<u8>,
    ids: Vec<u32>,
    spans: Vec<Option<WordSpan>>,
    logits: Vec<i32>,
}

impl<K: Kernels> Tagger<'_, '_, K> {
    /// The output object of one input line.
    fn line(&mut self, line: &str) -> Result<Value> {
        let (text, pair) = text_of(line)?;
        if pair.is_some() {
            bail!("tag labels one text: \"text_pair\" is for classify");
        }
        let enc = self
            .tok
            .encode_spanned(&text, &mut self.ids, &mut self.spans)?;
        let n = enc.len;
        let labels = self.model.tasks.num_labels().unwrap_or(0);
        self.logits.clear();
        self.logits.resize(n * labels, 0);
        self.encoder
            .tag(&self.ids[..n], None, &mut self.arena, &mut self.logits)?;
        // Byte offset of each character of the text, and of its end.
        let bytes: Vec<usize> = text
            .char_indices()
            .map(|(at, _)| at)
            .chain([text.len()])
            .collect();
        let slice = |s: &WordSpan| {
            let at = |c: u32| bytes.get(c as usize).copied().unwrap_or(text.len());
            text.get(at(s.start)..at(s.end)).unwrap_or("")
        };
        let mut entities = Vec::new();
        let mut probs = vec![0f32; labels];
        let mut previous = None;
        for (span, logits) in self.spans[..n]
            .iter()
            .zip(self.logits.chunks_exact(labels.max(1)))
        {
            // Template tokens carry no word; later pieces of a word take the first's label.
            let Some(span) = span else { continue };
            if previous == Some(span.word) {
                continue;
            }
            previous = Some(span.word);
            let best = argmax(logits);
            let label = label_name(self.model, best);
            if label == "O" && !self.all {
                continue;
            }
            microbert::output::softmax(logits, &mut probs);
            entities.push(json!({
                "word": slice(span),
                "start": span.start,
                "end": span.end,
                "label": label,
                "score": probs[best],
            }));
        }
        Ok(json!({ "entities": entities, "truncated": enc.truncated }))
    }
}
