//! The `microbert` command: sentence embeddings, classification, tokenization and blob
//! inspection on the host, with the integer-only runtime.
//!
//! ```text
//! microbert embed --model minilm.blob < texts.txt      # one JSON object per input line
//! microbert tokenize --model minilm.blob < texts.txt   # {"ids": [...]} per line
//! microbert classify --model head.blob < texts.txt    # {"label", "score", "scores"}
//! microbert tag --model tagger.blob < texts.txt       # {"entities": [{"word", "start", ...}]}
//! microbert inspect minilm.blob                        # config, tensors, checksum
//! microbert inspect minilm.blob --fit --tokens 128      # flash and RAM a device needs
//! microbert inspect --cpu                               # CPU features and kernel tier
//! ```
//!
//! The verbs that read lines share one driver ([`batch`]): every input line gives one
//! output line, a bad line gives `{"line": N, "error": "..."}` and the run goes on (exit
//! status 1 at the end, with a count on stderr), `--fail-fast` stops at the first, and a
//! closed stdout ends the run quietly.

// The verbs live in `src/bin/microbert/` (a `.rs` file directly in `src/bin/` would be a
// binary of its own).
#[path = "microbert/batch.rs"]
mod batch;
#[path = "microbert/classify.rs"]
mod classify;
#[path = "microbert/embed.rs"]
mod embed;
#[path = "microbert/inspect.rs"]
mod inspect;
#[path = "microbert/tag.rs"]
mod tag;
#[path = "microbert/tokenize.rs"]
mod tokenize;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use microbert::blob::{self, ModelView};
use microbert_host::BlobFile;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "microbert",
    version,
    about = "Integer-only int8 BERT inference: embeddings, classification, tagging, tokenization, blob inspection"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts: reads UTF-8 texts, one per line, on stdin (or one document with
    /// --file) and prints one JSON object per text: tokens, truncated, embedding.
    Embed(embed::EmbedArgs),
    /// Tokenize texts (one per line on stdin) and print {"ids": [...]} per line, with
    /// [CLS] and [SEP], never truncated.
    Tokenize(tokenize::TokenizeArgs),
    /// Classify texts or sentence pairs (one per line on stdin: plain text, or
    /// {"text": ..., "text_pair": ...}) with a blob's sequence classifier and print
    /// {"label", "score", "scores": {label: p}} per line ({"score": s} for a one-label
    /// head, such as a cross-encoder's).
    Classify(classify::ClassifyArgs),
    /// Label each word of texts (one per line on stdin: plain text, or {"text": ...}) with
    /// a blob's token classifier (its first piece's label) and print
    /// {"entities": [{"word", "start", "end", "label", "score"}], "truncated": bool} per
    /// line, offsets in Unicode characters; words labelled O only with --all.
    Tag(tag::TagArgs),
    /// Print a blob's config, its tensor table with sizes, and whether its checksum holds.
    Inspect {
        /// The model blob (optional with --cpu).
        #[arg(required_unless_present = "cpu")]
        blob: Option<PathBuf>,
        /// Print the CPU model, the x86 features the kernel tiers are selected by, each
        /// tier with whether this CPU runs it, and the tier `--kernels auto` chooses.
        #[arg(long)]
        cpu: bool,
        /// Also print what a device needs to run this blob at --tokens N: flash for the
        /// blob, RAM for the scratch arena (embeddings, and MLM logits when the blob has an
        /// MLM head) and for the prepared weights of each backend.
        #[arg(long, requires = "tokens")]
        fit: bool,
        /// The sequence length --fit sizes the arena for ([CLS] and [SEP] included).
        #[arg(long, value_name = "N", requires = "fit")]
        tokens: Option<usize>,
    },
}

/// How a verb ended, short of an error that concerns the whole run.
enum Finish {
    /// Every input was processed. `failures` is the summary of the lines that failed
    /// (the run's status is then 1); `notes` go to stderr.
    Done {
        failures: Option<String>,
        notes: Vec<String>,
    },
    /// stdout was closed by its reader: status 0, nothing on stderr.
    Closed,
}

impl From<batch::Outcome> for Finish {
    fn from(outcome: batch::Outcome) -> Self {
        match outcome {
            batch::Outcome::Done(report) => Self::Done {
                failures: report.failure_summary(),
                notes: Vec::new(),
            },
            batch::Outcome::Closed => Self::Closed,
        }
    }
}

/// One line on stderr; a closed stderr is not worth a panic.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "microbert: {msg}");
}

/// The blob file, mapped (see [`BlobFile::release_pages`], which each verb calls once its
/// weights are prepared).
fn read_blob(path: &Path) -> Result<BlobFile> {
    BlobFile::open(path).with_context(|| format!("cannot read blob {}", path.display()))
}

fn parse_model<'a>(path: &Path, bytes: &'a [u8]) -> Result<ModelView<'a>> {
    blob::parse(bytes).with_context(|| format!("{} is not a valid model blob", path.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Embed(args) => embed::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Tag(args) => tag::run(args),
        Command::Inspect {
            blob,
            cpu,
            fit,
            tokens,
        } => inspect::run(blob.as_deref(), *cpu, tokens.filter(|_| *fit)),
    };
    match result {
        Ok(Finish::Closed) => ExitCode::SUCCESS,
        Ok(Finish::Done { failures, notes }) => {
            for note in &notes {
                say(note);
            }
            match failures {
                Some(summary) => {
                    say(&summary);
                    ExitCode::FAILURE
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            say(&format!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
