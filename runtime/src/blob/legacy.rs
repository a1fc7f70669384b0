//! Format 1, the legacy layout: the body is postcard values back to back, with no section
//! headers: `Config`, `TokenizerSection`, `EmbeddingsSection`, `num_hidden_layers` x
//! `LayerSection`, `HeadSection`, and nothing after. Each value is validated as it is
//! decoded, by the same checks as format 2 (`validate.rs`). Format 1 has no provenance.

use super::format::{
    Config, EmbeddingsSection, HeadSection, Header, LayerSection, TokenizerSection,
};
use super::{ModelView, validate};
use crate::error::BlobError;

fn take<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    section: &'static str,
) -> Result<(T, &'a [u8]), BlobError> {
    postcard::take_from_bytes(bytes).map_err(|_| BlobError::Decode { section })
}

/// Parses and validates a format-1 body.
pub(super) fn parse(body: &[u8], header: Header) -> Result<ModelView<'_>, BlobError> {
    let (config, rest) = take::<Config>(body, "config")?;
    validate::config(&config)?;
    let (tokenizer, rest) = take::<TokenizerSection<'_>>(rest, "tokenizer")?;
    validate::tokenizer(&tokenizer, &config)?;
    let (embeddings, rest) = take::<EmbeddingsSection<'_>>(rest, "embeddings")?;
    validate::embeddings(&embeddings, &config)?;
    let layers_start = rest;
    let mut rest = rest;
    for _ in 0..config.num_hidden_layers {
        let (layer, r) = take::<LayerSection<'_>>(rest, "layer")?;
        validate::layer(&layer, &config)?;
        rest = r;
    }
    let layers_len = layers_start.len().saturating_sub(rest.len());
    let layers = layers_start.get(..layers_len).unwrap_or_default();
    let (head, rest) = take::<HeadSection<'_>>(rest, "head")?;
    validate::head(&head, &config)?;
    if !rest.is_empty() {
        return Err(BlobError::TrailingBytes { count: rest.len() });
    }
    Ok(ModelView {
        config,
        tokenizer: Some(tokenizer),
        embeddings,
        head,
        provenance: None,
        numerics: None,
        unigram: None,
        tasks: super::TaskHeads::default(),
        pair_template: None,
        layers,
        framed: false,
        header,
    })
}
