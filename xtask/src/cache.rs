//! The cache outside git (`$MICROBERT_CACHE`, else `$XDG_CACHE_HOME/microbert`, else
//! `$HOME/.cache/microbert`) and its derived artefacts, keyed by the hash of their inputs.
//!
//! ```text
//! $CACHE/downloads/, models/, data/      fetched archives and arranged directories (fetch.rs)
//! $CACHE/derived/<label>/<key>.<ext>     derived artefacts (converted blobs, ...)
//! $CACHE/blobs/<model>.blob              the converted blob the tests read (a copy)
//! $CACHE/cross-target/<config>/          cargo target directories of the cross builds
//! ```
//!
//! A derived artefact is a pure function of its inputs: [`Key`] hashes them (the input files'
//! hashes, the settings, the identity of the code that makes it) and [`derived`] returns the
//! file stored under that key when it exists and passes its check, else makes it, checks what
//! was written and stores it (written to a temporary name, then renamed, so a concurrent
//! reader never sees half a file). The [`KEEP`] most recently used entries of each label are
//! kept.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Entries kept per label (most recently used first); older ones are removed.
pub const KEEP: usize = 3;

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

/// Cargo target directory of a cross build (`no_std`, `cross/...`, `firmware/...`), kept in
/// the cache rather than in the checkout: building `core`/`std` from source for a target
/// takes minutes and depends only on the toolchain and the flags, so every clone on this
/// machine (CI's included) reuses it. Falls back to `target/` without a cache dir.
pub fn cross_target_dir(root: &Path, sub: &str) -> PathBuf {
    cache_dir()
        .map(|c| c.join("cross-target").join(sub))
        .unwrap_or_else(|_| root.join("target").join(sub))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
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
    Ok(hex(&h.finalize()))
}

/// The key of a derived artefact: SHA-256 over a domain string and named fields, each
/// length-prefixed (so `("ab", "c")` and `("a", "bc")` differ). Field order matters.
#[derive(Clone)]
pub struct Key(Sha256);

impl Key {
    /// A key for artefacts of one kind (`"blob v1"`): bump the string to invalidate them all.
    pub fn new(domain: &str) -> Self {
        Self(Sha256::new()).field("domain", domain)
    }

    /// Adds a named input.
    pub fn field(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        for part in [name.as_bytes(), value.as_ref()] {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
        self
    }

    /// The key as 64 hex digits.
    pub fn hex(&self) -> String {
        hex(&self.0.clone().finalize())
    }
}

/// Whether [`derived`] found the artefact or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An entry with this key existed and passed the check.
    Reused,
    /// Made (no entry, or the entry failed the check).
    Made,
}

/// The artefact `<label>` for `key`: the cached file when it exists and `check` accepts its
/// bytes, else `make()`'s bytes, written, read back, checked and stored. Returns the path of
/// the stored file (under `$CACHE/derived/<label>/`).
pub fn derived(
    label: &str,
    ext: &str,
    key: &Key,
    check: impl Fn(&[u8]) -> Result<()>,
    make: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<(PathBuf, Outcome)> {
    derived_in(&cache_dir()?.join("derived"), label, ext, key, check, make)
}

/// [`derived`] under an explicit root (tests use a temporary one).
pub fn derived_in(
    root: &Path,
    label: &str,
    ext: &str,
    key: &Key,
    check: impl Fn(&[u8]) -> Result<()>,
    make: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<(PathBuf, Outcome)> {
    let dir = root.join(label);
    let path = dir.join(format!("{}.{ext}", key.hex()));
    if let Ok(bytes) = std::fs::read(&path) {
        match check(&bytes) {
            Ok(()) => {
                touch(&path);
                return Ok((path, Outcome::Reused));
            }
            Err(e) => eprintln!(
                "==> {} fails its check ({e:#}): making it again",
                path.display()
            ),
        }
    }
    let bytes = make()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", key.hex(), std::process::id()));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    let written = std::fs::read(&tmp)?;
    if let Err(e) = check(&written) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("the new {label} fails its check")));
    }
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("moving {} to {}", tmp.display(), path.display()))?;
    prune(&dir, ext, KEEP)?;
    Ok((path, Outcome::Made))
}

/// Marks an entry as just used (its modification time orders [`prune`]).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Removes all but the `keep` most recently used `*.ext` entries of a label directory.
fn prune(dir: &Path, ext: &str, keep: usize) -> Result<()> {
    let mut entries: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    entries.sort_by_key(|e| core::cmp::Reverse(e.0));
    for (_, old) in entries.into_iter().skip(keep) {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

/// Copies `from` to `to` unless `to` already holds the same bytes (through a temporary file
/// and a rename: a reader of `to` sees the old or the new file, never a mix). Returns
/// whether it copied.
pub fn publish(from: &Path, to: &Path) -> Result<bool> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if std::fs::read(to).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = to.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, to)
        .with_context(|| format!("moving {} to {}", tmp.display(), to.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("microbert-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn sha256_of_a_known_file() {
        let dir = temp("sha");
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("abc");
        std::fs::write(&f, b"abc").unwrap();
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&f).unwrap(), want);
        assert_eq!(sha256_hex(b"abc"), want);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The key is SHA-256 of the length-prefixed fields, computed here independently.
    #[test]
    fn key_is_sha256_of_length_prefixed_fields() {
        let mut raw = Vec::new();
        for part in [&b"domain"[..], b"blob v1", b"settings", b"alpha=0.4"] {
            raw.extend_from_slice(&(part.len() as u64).to_le_bytes());
            raw.extend_from_slice(part);
        }
        let key = Key::new("blob v1").field("settings", "alpha=0.4");
        assert_eq!(key.hex(), sha256_hex(&raw));
    }

    #[test]
    fn key_changes_with_every_input() {
        let base = || Key::new("blob v1").field("a", "x").field("b", "y");
        let k = base().hex();
        assert_eq!(k, base().hex(), "deterministic");
        assert_ne!(k, Key::new("blob v2").field("a", "x").field("b", "y").hex());
        assert_ne!(k, Key::new("blob v1").field("a", "X").field("b", "y").hex());
        assert_ne!(k, Key::new("blob v1").field("b", "y").field("a", "x").hex());
        assert_ne!(
            k,
            base().field("c", "").hex(),
            "an empty field still counts"
        );
        // Field boundaries are part of the key.
        assert_ne!(
            Key::new("d").field("f", "ab").field("g", "c").hex(),
            Key::new("d").field("f", "a").field("g", "bc").hex()
        );
    }

    #[test]
    fn derived_reuses_a_valid_entry_and_remakes_a_bad_one() {
        let root = temp("derived");
        let key = Key::new("test").field("input", "1");
        let check = |b: &[u8]| -> Result<()> {
            anyhow::ensure!(b.starts_with(b"ok"), "not ok");
            Ok(())
        };
        let made = Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            Ok(b"ok 1".to_vec())
        };
        let (p1, o1) = derived_in(&root, "thing", "bin", &key, check, make).unwrap();
        assert_eq!((o1, made.get()), (Outcome::Made, 1));
        let (p2, o2) = derived_in(&root, "thing", "bin", &key, check, make).unwrap();
        assert_eq!((o2, made.get(), &p2), (Outcome::Reused, 1, &p1));
        // A damaged entry fails its check and is made again.
        std::fs::write(&p1, b"garbage").unwrap();
        let (_, o3) = derived_in(&root, "thing", "bin", &key, check, make).unwrap();
        assert_eq!((o3, made.get()), (Outcome::Made, 2));
        assert_eq!(std::fs::read(&p1).unwrap(), b"ok 1");
        // Another key is another entry.
        let other = Key::new("test").field("input", "2");
        let (p4, o4) = derived_in(&root, "thing", "bin", &other, check, make).unwrap();
        assert_ne!(p4, p1);
        assert_eq!(o4, Outcome::Made);
        // What `make` returns is checked before it is stored.
        let bad = Key::new("test").field("input", "3");
        let err = derived_in(&root, "thing", "bin", &bad, check, || Ok(b"bad".to_vec()));
        assert!(err.is_err());
        assert!(
            !root
                .join("thing")
                .join(format!("{}.bin", bad.hex()))
                .exists()
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn prune_keeps_the_most_recent_entries() {
        let root = temp("prune");
        let check = |_: &[u8]| Ok(());
        for i in 0..KEEP + 2 {
            let key = Key::new("test").field("i", i.to_string());
            derived_in(&root, "thing", "bin", &key, check, || Ok(vec![1])).unwrap();
            // Distinct modification times.
            std::thread::sleep(core::time::Duration::from_millis(20));
        }
        let left: Vec<_> = std::fs::read_dir(root.join("thing")).unwrap().collect();
        assert_eq!(left.len(), KEEP);
        let newest = Key::new("test").field("i", (KEEP + 1).to_string());
        assert!(
            root.join("thing")
                .join(format!("{}.bin", newest.hex()))
                .exists()
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn publish_copies_only_changed_bytes() {
        let root = temp("publish");
        std::fs::create_dir_all(&root).unwrap();
        let (a, b) = (root.join("a"), root.join("out/b"));
        std::fs::write(&a, b"one").unwrap();
        assert!(publish(&a, &b).unwrap());
        assert!(!publish(&a, &b).unwrap());
        std::fs::write(&a, b"two").unwrap();
        assert!(publish(&a, &b).unwrap());
        assert_eq!(std::fs::read(&b).unwrap(), b"two");
        std::fs::remove_dir_all(root).unwrap();
    }
}
