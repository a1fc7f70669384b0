//! The tiny committed fixture model (`cargo xtask gen-fixture`), compiled into every
//! target so that no target reads a file or the model cache at run time.

use core::ops::Range;
use microbert::ModelView;
use microbert_host::{HostKernels, PreparedModel};
use std::sync::OnceLock;

/// The fixture blob's bytes.
pub static BLOB: &[u8] = include_bytes!("../../models/fixtures/tiny/model.blob");

/// The parsed fixture.
pub fn model() -> &'static ModelView<'static> {
    static MODEL: OnceLock<ModelView<'static>> = OnceLock::new();
    MODEL.get_or_init(|| microbert::parse(BLOB).expect("the fixture blob parses"))
}

/// The host kernels (AVX2 when the CPU has it) with the fixture's weights prepared.
pub fn prepared() -> &'static PreparedModel {
    static HOST: OnceLock<PreparedModel> = OnceLock::new();
    HOST.get_or_init(|| {
        let k = HostKernels::detect();
        eprintln!(
            "microbert-fuzz: host kernels {} (differential check against scalar)",
            microbert::Kernels::name(&k)
        );
        k.prepare_model(model())
    })
}

/// Byte ranges of the fixture's sections (format 2: each section header and its payload),
/// in storage order. Together they cover `BLOB[HEADER_LEN..]`.
pub fn sections() -> &'static [Range<usize>] {
    static SECTIONS: OnceLock<Vec<Range<usize>>> = OnceLock::new();
    SECTIONS.get_or_init(|| section_ranges(BLOB).expect("the fixture's sections are whole"))
}

/// Section ranges of a format-2 blob (see [`sections`]), `None` if one is cut short.
pub fn section_ranges(blob: &[u8]) -> Option<Vec<Range<usize>>> {
    microbert::blob::sections(blob)
        .map(|s| s.ok().map(|s| s.offset..s.end()))
        .collect()
}
