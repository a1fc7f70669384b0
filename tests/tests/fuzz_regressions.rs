//! Regression tests for what the fuzz targets (`fuzz/`, `cargo xtask fuzz`) found, each
//! minimised to the smallest input that showed it and run on stable in `cargo test`. The
//! reproducer files the fuzzer saved are in the targets' committed corpora, which
//! `cargo xtask fuzz --replay` runs again.

use microbert::{Encoder, RunError, Scalar, scratch_bytes};

fn fixture() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/fixtures/tiny/model.blob"
    );
    std::fs::read(path).expect("fixture blob (cargo xtask gen-fixture)")
}

/// Found by the `encoder` target (`crash-686c4442...`): an arena that starts `k` bytes
/// before a 4-byte boundary and ends before reaching it was reported as needing
/// `scratch_bytes + len` bytes instead of `scratch_bytes + k`, so an arena of the size the
/// error named failed again. `ScratchTooSmall::needed` must be a size that works, from the
/// same start, and the smallest one.
#[test]
fn scratch_too_small_names_a_size_that_works_for_arenas_shorter_than_their_misalignment() {
    let bytes = fixture();
    let model = microbert::parse(&bytes).expect("fixture parses");
    let encoder = Encoder::new(&model, Scalar);
    let ids = [47u32, 155];
    let need = scratch_bytes(&model, ids.len());
    let mut pooled = vec![0i32; model.config.hidden_size as usize];
    let mut words = vec![0u32; need.div_ceil(4) + 2];
    for offset in 1..4usize {
        let misalignment = 4 - offset;
        for len in 0..misalignment {
            let arena = &mut microbert::arena(&mut words)[offset..offset + len];
            assert_eq!(
                encoder.embed(&ids, arena, &mut pooled),
                Err(RunError::ScratchTooSmall {
                    given: len,
                    needed: need + misalignment
                }),
                "arena of {len} bytes at offset {offset}"
            );
        }
        let exact = &mut microbert::arena(&mut words)[offset..offset + need + misalignment];
        encoder
            .embed(&ids, exact, &mut pooled)
            .expect("an arena of the size ScratchTooSmall names");
        let short = &mut microbert::arena(&mut words)[offset..offset + need + misalignment - 1];
        assert_eq!(
            encoder.embed(&ids, short, &mut pooled),
            Err(RunError::ScratchTooSmall {
                given: need + misalignment - 1,
                needed: need + misalignment
            })
        );
    }
}
