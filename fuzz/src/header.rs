//! An independent oracle of the header checks of `microbert::parse`: what a blob's first
//! 28 bytes make of it, written from `docs/blob-format.md` (magic, version, total length,
//! FNV-1a 64 of the body, checked in that order).

use microbert::BlobError;

const MAGIC: &[u8; 8] = b"uBERTq8\0";
const HEADER_LEN: usize = 28;
/// The format versions the runtime reads: 1 (legacy, no sections) to 2 (tagged sections).
const VERSIONS: core::ops::RangeInclusive<u32> = 1..=2;

/// FNV-1a, 64-bit, as specified (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn le<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().expect("inside the header")
}

/// The error the header of `blob` must give, or `None` if the header holds and parsing
/// must go on to the sections.
pub fn expected_error(blob: &[u8]) -> Option<BlobError> {
    if blob.len() < HEADER_LEN {
        return Some(BlobError::TooShort {
            len: blob.len(),
            needed: HEADER_LEN,
        });
    }
    if &blob[..8] != MAGIC {
        return Some(BlobError::BadMagic);
    }
    let version = u32::from_le_bytes(le(blob, 8));
    if !VERSIONS.contains(&version) {
        return Some(BlobError::UnsupportedVersion {
            found: version,
            supported: *VERSIONS.end(),
        });
    }
    let total = u64::from_le_bytes(le(blob, 12));
    if total != blob.len() as u64 {
        return Some(BlobError::LengthMismatch {
            header: total,
            actual: blob.len(),
        });
    }
    let expected = u64::from_le_bytes(le(blob, 20));
    let actual = fnv1a64(&blob[HEADER_LEN..]);
    if expected != actual {
        return Some(BlobError::ChecksumMismatch { expected, actual });
    }
    None
}

/// Whether `e` is one of the header's errors.
pub fn is_header_error(e: &BlobError) -> bool {
    matches!(
        e,
        BlobError::TooShort { .. }
            | BlobError::BadMagic
            | BlobError::UnsupportedVersion { .. }
            | BlobError::LengthMismatch { .. }
            | BlobError::ChecksumMismatch { .. }
    )
}

/// Parses `blob` and checks the outcome against the header oracle: a bad header gives
/// exactly its error, a good one never gives a header error.
pub fn parse_checked(blob: &[u8]) -> Result<microbert::ModelView<'_>, BlobError> {
    let result = microbert::parse(blob);
    match (expected_error(blob), &result) {
        (Some(want), got) => assert_eq!(got.as_ref().err(), Some(&want), "header oracle"),
        (None, Err(e)) => assert!(!is_header_error(e), "a valid header gave {e:?}"),
        (None, Ok(_)) => {}
    }
    result
}

/// Parses a blob whose header was just sealed (so it holds by construction): the outcome
/// must not be a header error. Skips the oracle's second pass over the body.
pub fn parse_sealed(blob: &[u8]) -> Result<microbert::ModelView<'_>, BlobError> {
    let result = microbert::parse(blob);
    if let Err(e) = &result {
        assert!(!is_header_error(e), "a freshly sealed header gave {e:?}");
    }
    result
}
