//! A model blob read from a file: mapped read-only (`mmap`), so that only the pages
//! inference touches stay resident.
//!
//! Parsing reads every byte once (the checksum), and the prepared copies of the dense
//! weights ([`crate::HostKernels::prepare_model`]) make the blob's own copies dead on
//! the tiers that prepare them. [`BlobFile::release_pages`] hands all mapped pages back
//! to the kernel after that: what inference reads afterwards (the embedding rows of the
//! tokens seen, the biases and norms, the weights a tier reads in place) comes back from
//! the page cache on first touch, and the rest (most of the vocabulary's rows, the
//! prepared matrices) no longer counts in the resident set. Files that cannot be mapped
//! (pipes, `/dev/stdin`) are read into memory instead.

use core::ops::Deref;
use memmap2::{Mmap, UncheckedAdvice};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The bytes of a blob file, mapped or read.
#[derive(Debug)]
pub struct BlobFile {
    storage: Storage,
}

#[derive(Debug)]
enum Storage {
    Mapped(Mmap),
    Read(Vec<u8>),
}

impl BlobFile {
    /// Maps `path` read-only (a regular file), or reads it whole (anything else).
    ///
    /// # Errors
    /// The file cannot be opened or read.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        if file.metadata()?.is_file() {
            // SAFETY: the mapping is private and read-only, and nothing in this process
            // writes the file; another process truncating or rewriting a model file while
            // it is in use is outside this command's contract (the bytes would change under
            // the parsed view, as with any mapped input).
            if let Ok(map) = unsafe { Mmap::map(&file) } {
                return Ok(Self {
                    storage: Storage::Mapped(map),
                });
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(Self {
            storage: Storage::Read(bytes),
        })
    }

    /// Whether the bytes are mapped from the file (else read into memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }

    /// Drops the mapped pages from the resident set (nothing for bytes read into memory).
    /// The bytes stay readable and unchanged: a later read of a dropped page maps the
    /// file's page again. Call it once the model is parsed and its weights prepared.
    pub fn release_pages(&self) {
        if let Storage::Mapped(map) = &self.storage
            && !map.is_empty()
        {
            // SAFETY: `MADV_DONTNEED` on a private mapping discards the process's own
            // modifications of its pages; this mapping is read-only and never written, so
            // there are none, and every later read sees the file's bytes again, the same
            // bytes the borrowed views of it were made from (the file is not modified:
            // see `open`). Failure (an old kernel) only keeps the pages resident.
            let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, 0, map.len()) };
        }
    }
}

impl Deref for BlobFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped(map) => map,
            Storage::Read(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BlobFile;

    #[test]
    fn released_pages_read_back_the_same_bytes() {
        let dir = std::env::temp_dir().join(format!("microbert-blob-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("blob.bin");
        let bytes: Vec<u8> = (0..3 * 4096 + 17).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let blob = BlobFile::open(&path).unwrap();
        assert!(blob.is_mapped());
        assert_eq!(&*blob, &bytes[..]);
        blob.release_pages();
        assert_eq!(&*blob, &bytes[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pipe_is_read_whole() {
        let blob = BlobFile::open(std::path::Path::new("/dev/null")).unwrap();
        assert!(!blob.is_mapped());
        assert!(blob.is_empty());
        blob.release_pages();
    }
}
