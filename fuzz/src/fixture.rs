//! The tiny committed fixture model (`cargo xtask gen-fixture`), compiled into every
//! target so that no target reads a file or the model cache at run time.

use core::ops::Range;
use microbert::ModelView;
use microbert::blob::{
    Config, EmbeddingsSection, HEADER_LEN, HeadSection, LayerSection, TokenizerSection,
};
use microbert_host::HostKernels;
use std::sync::OnceLock;

/// The fixture blob's bytes.
pub static BLOB: &[u8] = include_bytes!("../../models/fixtures/tiny/model.blob");

/// The parsed fixture.
pub fn model() -> &'static ModelView<'static> {
    static MODEL: OnceLock<ModelView<'static>> = OnceLock::new();
    MODEL.get_or_init(|| microbert::parse(BLOB).expect("the fixture blob parses"))
}

/// The host kernels (AVX2 when the CPU has it) with the fixture's weights packed.
pub fn host_kernels() -> &'static HostKernels<'static> {
    static HOST: OnceLock<HostKernels<'static>> = OnceLock::new();
    HOST.get_or_init(|| {
        let k = HostKernels::detect();
        eprintln!(
            "microbert-fuzz: host kernels {} (differential check against scalar)",
            microbert::Kernels::name(&k)
        );
        k.pack_model(model())
    })
}

/// Byte ranges of the fixture's body sections, in order: config, tokenizer, embeddings,
/// each encoder layer, head. Together they cover `BLOB[HEADER_LEN..]`.
pub fn sections() -> &'static [Range<usize>] {
    static SECTIONS: OnceLock<Vec<Range<usize>>> = OnceLock::new();
    SECTIONS.get_or_init(|| section_ranges(BLOB).expect("the fixture's sections decode"))
}

/// Section ranges of a valid blob (see [`sections`]), `None` if a section does not decode.
pub fn section_ranges(blob: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut ends = Vec::new();
    let body = blob.get(HEADER_LEN..)?;
    let at = |rest: &[u8]| blob.len() - rest.len();
    let (config, rest) = postcard::take_from_bytes::<Config>(body).ok()?;
    ends.push(at(rest));
    let (_, rest) = postcard::take_from_bytes::<TokenizerSection<'_>>(rest).ok()?;
    ends.push(at(rest));
    let (_, mut rest) = postcard::take_from_bytes::<EmbeddingsSection<'_>>(rest).ok()?;
    ends.push(at(rest));
    for _ in 0..config.num_hidden_layers {
        let (_, r) = postcard::take_from_bytes::<LayerSection<'_>>(rest).ok()?;
        rest = r;
        ends.push(at(rest));
    }
    let (_, rest) = postcard::take_from_bytes::<HeadSection<'_>>(rest).ok()?;
    ends.push(at(rest));
    let mut start = HEADER_LEN;
    Some(
        ends.into_iter()
            .map(|end| {
                let r = start..end;
                start = end;
                r
            })
            .collect(),
    )
}
