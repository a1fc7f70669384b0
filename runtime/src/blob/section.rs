//! The section layer of format 2: walking the body's tagged sections and checking their
//! structure before any payload is decoded.
//!
//! [`sections`] iterates over the raw sections of a blob (bounds-checked, never panics).
//! [`Layout::read`] walks all of them once and applies the structural rules of
//! `docs/blob-format.md`, in this order for each section: a whole header is present, the
//! payload lies inside the blob, no reserved flag bit is set, kinds do not decrease, an
//! unknown kind is not required (else [`BlobError::UnknownRequiredSection`]: the blob needs a
//! newer runtime) and is otherwise skipped unread, a known kind carries the required bit its
//! definition says, and a kind that is not repeatable does not repeat. Then the kinds every
//! model needs must be present, exactly one tokenizer among them. Payloads are decoded
//! afterwards, by the caller, with [`decode`], which also refuses bytes left inside a
//! section.

use super::format::{DEFINED_FLAGS, HEADER_LEN, SECTION_HEADER_LEN, SectionHeader, SectionKind};
use crate::error::BlobError;

/// One section as stored: its header, its payload, and where it starts in the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    /// Offset of the section header from the start of the blob.
    pub offset: usize,
    /// The section header.
    pub header: SectionHeader,
    /// The payload (`header.len` bytes).
    pub payload: &'a [u8],
}

impl Section<'_> {
    /// The known kind of this section, if this runtime knows it.
    pub fn kind(&self) -> Option<SectionKind> {
        SectionKind::from_code(self.header.kind)
    }

    /// Offset just past the payload, from the start of the blob.
    pub fn end(&self) -> usize {
        self.offset
            .saturating_add(SECTION_HEADER_LEN)
            .saturating_add(self.payload.len())
    }
}

/// The raw sections of a format-2 blob, in storage order, from the byte after the fixed
/// header to the end of `blob`. Yields an error (and then stops) at a truncated header or a
/// payload that runs past the end. Checks nothing else: [`crate::parse`] applies the
/// structural rules (see the module docs).
pub fn sections(blob: &[u8]) -> Sections<'_> {
    Sections {
        rest: blob.get(HEADER_LEN..).unwrap_or_default(),
        offset: HEADER_LEN.min(blob.len()),
    }
}

/// Iterator returned by [`sections`].
#[derive(Debug, Clone)]
pub struct Sections<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Sections<'a> {
    /// The sections of a body that starts `offset` bytes into its blob.
    pub(super) fn of_body(body: &'a [u8], offset: usize) -> Self {
        Self { rest: body, offset }
    }
}

impl<'a> Iterator for Sections<'a> {
    type Item = Result<Section<'a>, BlobError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let offset = self.offset;
        let Some((head, rest)) = self.rest.split_first_chunk::<SECTION_HEADER_LEN>() else {
            let available = self.rest.len();
            self.rest = &[];
            return Some(Err(BlobError::SectionHeaderTruncated { offset, available }));
        };
        let header = SectionHeader::from_bytes(*head);
        let payload = usize::try_from(header.len)
            .ok()
            .and_then(|len| rest.split_at_checked(len));
        let Some((payload, rest)) = payload else {
            self.rest = &[];
            return Some(Err(BlobError::SectionOutOfBounds {
                kind: header.kind,
                offset,
                len: header.len,
                available: rest.len(),
            }));
        };
        self.rest = rest;
        self.offset = offset
            .saturating_add(SECTION_HEADER_LEN)
            .saturating_add(payload.len());
        Some(Ok(Section {
            offset,
            header,
            payload,
        }))
    }
}

/// The payloads of the known sections of a structurally valid body (not yet decoded).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Layout<'a> {
    pub(super) config: &'a [u8],
    /// The WordPiece tokenizer; a blob carries it or [`Self::unigram`], never both.
    pub(super) tokenizer: Option<&'a [u8]>,
    pub(super) embeddings: &'a [u8],
    /// Every encoder-layer section, headers included (they are consecutive).
    pub(super) layers: &'a [u8],
    /// How many encoder-layer sections there are.
    pub(super) layer_count: u32,
    pub(super) mlm: Option<&'a [u8]>,
    pub(super) provenance: Option<&'a [u8]>,
    pub(super) numerics: Option<&'a [u8]>,
    pub(super) unigram: Option<&'a [u8]>,
    pub(super) pooler: Option<&'a [u8]>,
    pub(super) sequence: Option<&'a [u8]>,
    pub(super) token: Option<&'a [u8]>,
    pub(super) labels: Option<&'a [u8]>,
    pub(super) template: Option<&'a [u8]>,
}

impl<'a> Layout<'a> {
    /// Walks every section of `body` (which starts `HEADER_LEN` bytes into its blob) and
    /// applies the structural rules listed in the module docs.
    pub(super) fn read(body: &'a [u8]) -> Result<Self, BlobError> {
        let mut found = Found::default();
        let mut layers: Option<(usize, usize)> = None;
        let mut layer_count = 0u32;
        let mut previous: Option<u16> = None;
        for section in Sections::of_body(body, HEADER_LEN) {
            let s = section?;
            let (kind, flags, offset) = (s.header.kind, s.header.flags, s.offset);
            if flags & !DEFINED_FLAGS != 0 {
                return Err(BlobError::BadSectionFlags {
                    kind,
                    flags,
                    offset,
                });
            }
            if let Some(previous) = previous.filter(|&p| kind < p) {
                return Err(BlobError::SectionOrder {
                    kind,
                    previous,
                    offset,
                });
            }
            let repeated = previous == Some(kind);
            previous = Some(kind);
            let Some(known) = s.kind() else {
                if s.header.required() {
                    return Err(BlobError::UnknownRequiredSection { kind, offset });
                }
                // An ancillary section of a later format: skipped unread (a kind this
                // runtime does not know may be repeatable, so repeats are not checked).
                continue;
            };
            if s.header.required() != known.required() {
                return Err(BlobError::BadSectionFlags {
                    kind,
                    flags,
                    offset,
                });
            }
            if repeated && !known.repeatable() {
                return Err(BlobError::DuplicateSection {
                    section: known.name(),
                    offset,
                });
            }
            let start = offset.saturating_sub(HEADER_LEN);
            let end = s.end().saturating_sub(HEADER_LEN);
            match known {
                SectionKind::EncoderLayer => {
                    layers = Some((layers.map_or(start, |(a, _)| a), end));
                    layer_count = layer_count.saturating_add(1);
                }
                SectionKind::Config => found.config = Some(s.payload),
                SectionKind::WordPieceTokenizer => found.tokenizer = Some(s.payload),
                SectionKind::Embeddings => found.embeddings = Some(s.payload),
                SectionKind::MlmHead => found.mlm = Some(s.payload),
                SectionKind::Provenance => found.provenance = Some(s.payload),
                SectionKind::Numerics => found.numerics = Some(s.payload),
                SectionKind::UnigramTokenizer => found.unigram = Some(s.payload),
                SectionKind::Pooler => found.pooler = Some(s.payload),
                SectionKind::SequenceClassifier => found.sequence = Some(s.payload),
                SectionKind::TokenClassifier => found.token = Some(s.payload),
                SectionKind::Labels => found.labels = Some(s.payload),
                SectionKind::PairTemplate => found.template = Some(s.payload),
            }
        }
        let need = |payload: Option<&'a [u8]>, kind: SectionKind| {
            payload.ok_or(BlobError::MissingSection {
                section: kind.name(),
            })
        };
        let (layers_start, layers_end) = layers.unwrap_or((0, 0));
        let config = need(found.config, SectionKind::Config)?;
        match (found.tokenizer, found.unigram) {
            // Either tokenizer will do; the message names the usual one.
            (None, None) => need(None, SectionKind::WordPieceTokenizer).map(drop)?,
            (Some(_), Some(_)) => return Err(BlobError::TwoTokenizers),
            _ => {}
        }
        Ok(Self {
            config,
            tokenizer: found.tokenizer,
            embeddings: need(found.embeddings, SectionKind::Embeddings)?,
            layers: body.get(layers_start..layers_end).unwrap_or_default(),
            layer_count,
            mlm: found.mlm,
            provenance: found.provenance,
            numerics: found.numerics,
            unigram: found.unigram,
            pooler: found.pooler,
            sequence: found.sequence,
            token: found.token,
            labels: found.labels,
            template: found.template,
        })
    }
}

/// Payloads seen so far by [`Layout::read`].
#[derive(Default)]
struct Found<'a> {
    config: Option<&'a [u8]>,
    tokenizer: Option<&'a [u8]>,
    embeddings: Option<&'a [u8]>,
    mlm: Option<&'a [u8]>,
    provenance: Option<&'a [u8]>,
    numerics: Option<&'a [u8]>,
    unigram: Option<&'a [u8]>,
    pooler: Option<&'a [u8]>,
    sequence: Option<&'a [u8]>,
    token: Option<&'a [u8]>,
    labels: Option<&'a [u8]>,
    template: Option<&'a [u8]>,
}

/// Decodes a section payload that must hold exactly one `T`: a decoding failure is
/// [`BlobError::Decode`], bytes left after it [`BlobError::SectionTrailingBytes`].
pub(super) fn decode<'a, T: serde::Deserialize<'a>>(
    payload: &'a [u8],
    kind: SectionKind,
) -> Result<T, BlobError> {
    let (value, rest) = postcard::take_from_bytes::<T>(payload).map_err(|_| BlobError::Decode {
        section: kind.name(),
    })?;
    if !rest.is_empty() {
        return Err(BlobError::SectionTrailingBytes {
            section: kind.name(),
            count: rest.len(),
        });
    }
    Ok(value)
}
