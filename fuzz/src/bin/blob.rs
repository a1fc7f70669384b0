//! Fuzz target `blob`: `microbert::parse` on arbitrary bytes, then the model invariants on
//! whatever parses.
//!
//! The first input byte picks how the rest becomes a blob (random bytes almost never
//! carry the right FNV checksum, so most modes re-seal):
//! - `% 4 == 0` raw: the rest is the blob as it is (header checks);
//! - `% 4 == 1` re-sealed: the rest is a body behind a freshly sealed header (section
//!   walker, decoders and validators on arbitrary bytes), of format 2, or of the legacy
//!   format 1 with bit 2 of the first byte set;
//! - `% 4 == 2` patched fixture: the rest is a list of edits of the fixture's sections
//!   (overwrite, insert, delete, set a u32, truncate, drop, repeat, swap or replace a
//!   section, set a section header's kind, flags or length), re-sealed; with bit 2 of the first byte set, one header field is edited
//!   after sealing (version, length or checksum);
//! - `% 4 == 3` synthesised: a blob of arbitrary shape built from the input with at most
//!   one known defect ([`microbert_fuzz::synth`]); the parse must give what it expects.
//!
//! Raw blobs and edited headers are checked against the independent header oracle, freshly
//! sealed ones must get past the header checks; every blob that parses
//! goes through [`microbert_fuzz::check::model`] (inference on a few tokens with each
//! entry point, twice, scalar == AVX2, scratch sizes).
#![no_main]

use microbert_fuzz::{Input, check, fixture, header, seal, seal_version, synth};

/// Applies up to 16 edits from `input` to the fixture's sections; returns the body.
fn patched_body(input: &mut Input<'_>) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = fixture::sections()
        .iter()
        .map(|r| fixture::BLOB[r.clone()].to_vec())
        .collect();
    for _ in 0..16 {
        if input.is_empty() || parts.is_empty() {
            break;
        }
        let op = input.byte() % 11;
        let k = input.below(parts.len() as u64) as usize;
        let len = parts[k].len();
        let at = input.below(len as u64 + 1) as usize;
        match op {
            0 => {
                let n = 1 + input.byte() as usize % 8;
                let bytes = input.take(n);
                for (i, &b) in bytes.iter().enumerate() {
                    if let Some(x) = parts[k].get_mut(at + i) {
                        *x = b;
                    }
                }
            }
            1 => {
                let n = 1 + input.byte() as usize % 16;
                let bytes = input.take(n).to_vec();
                parts[k].splice(at..at, bytes);
            }
            2 => {
                let n = 1 + input.byte() as usize;
                parts[k].drain(at..(at + n).min(len));
            }
            3 => {
                const VALUES: [u32; 8] =
                    [0, 1, 0x7f, 0x80, 0xff, 0x7fff_ffff, 0x8000_0000, u32::MAX];
                let value = match input.below(9) as usize {
                    i @ 0..=7 => VALUES[i],
                    _ => input.u32(),
                };
                for (i, b) in value.to_le_bytes().into_iter().enumerate() {
                    if let Some(x) = parts[k].get_mut(at + i) {
                        *x = b;
                    }
                }
            }
            4 => parts[k].truncate(at),
            5 => {
                parts.remove(k);
            }
            6 => {
                let copy = parts[k].clone();
                parts.insert(k, copy);
            }
            7 => {
                let j = input.below(parts.len() as u64) as usize;
                parts.swap(k, j);
            }
            8 => {
                let n = input.byte() as usize;
                parts[k] = input.take(n).to_vec();
            }
            10 => {
                // A section header field: kind, flags or payload length.
                let (field, width) = input.pick(&[(0usize, 2usize), (2, 2), (4, 4)]);
                let value = match input.below(4) {
                    0 => 0,
                    1 => u32::MAX,
                    2 => u32::from(input.byte()),
                    _ => input.u32(),
                };
                let bytes = value.to_le_bytes();
                for (i, &b) in bytes[..width].iter().enumerate() {
                    if let Some(x) = parts[k].get_mut(field + i) {
                        *x = b;
                    }
                }
            }
            _ => {
                // A postcard varint: a small length or count becomes a huge one.
                let varint = input.pick(&[
                    &[0xff, 0xff, 0xff, 0xff, 0x0f][..],
                    &[0x80, 0x80, 0x80, 0x80, 0x10],
                    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                    &[0x80, 0x01],
                ]);
                let end = (at + 1).min(len);
                parts[k].splice(at..end, varint.iter().copied());
            }
        }
    }
    parts.concat()
}

/// Edits one header field of a sealed blob.
fn edit_header(input: &mut Input<'_>, blob: &mut [u8]) {
    let (at, width) = input.pick(&[(8usize, 4usize), (12, 8), (20, 8), (0, 1)]);
    let delta = input.byte().max(1);
    if let Some(field) = blob.get_mut(at..at + width) {
        field[input.below(width as u64) as usize] ^= delta;
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    // Varies the checks' choices; the first bytes and the length are enough.
    let seed = header::fnv1a64(&data[..data.len().min(64)]) ^ data.len() as u64;
    match mode % 4 {
        // Raw bytes and edited headers go through the header oracle (a second FNV pass).
        0 => {
            if let Ok(model) = header::parse_checked(input.rest()) {
                check::model(&model, seed);
            }
        }
        // Bit 2: the legacy format 1 (a body without sections).
        1 if mode & 4 != 0 => check_sealed(&seal_version(1, input.rest()), seed),
        1 => check_sealed(&seal(input.rest()), seed),
        2 => {
            let mut blob = seal(&patched_body(&mut input));
            if mode & 4 != 0 {
                edit_header(&mut input, &mut blob);
                if let Ok(model) = header::parse_checked(&blob) {
                    check::model(&model, seed);
                }
            } else {
                check_sealed(&blob, seed);
            }
        }
        _ => {
            let built = synth::build(&mut input);
            let result = header::parse_sealed(&built.blob);
            synth::check(&built, &result);
            if let Ok(model) = result {
                check::model(&model, seed);
            }
        }
    }
});

/// Parses a freshly sealed blob and checks the model if it parses.
fn check_sealed(blob: &[u8], seed: u64) {
    if let Ok(model) = header::parse_sealed(blob) {
        check::model(&model, seed);
    }
}
