//! The C contract from Rust: every function against the runtime called directly (the
//! oracle), and every documented error. The C programs (`examples/embed.c`, the Cortex-M
//! firmware) test the same through the header; `cargo xtask capi` runs them.

use super::*;
use core::ffi::CStr;
use core::ptr::{null, null_mut};

const TEXT: &str = "Integer-only inference runs BERT encoders on microcontrollers.";

fn fixture() -> &'static [u8] {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/fixtures/tiny/model.blob"
    );
    let bytes = std::fs::read(path).expect("the committed tiny fixture");
    Box::leak(bytes.into_boxed_slice())
}

fn storage() -> microbert_model {
    microbert_model {
        opaque: [0; MICROBERT_MODEL_BYTES],
    }
}

fn open(blob: &[u8]) -> (i32, microbert_model) {
    let mut m = storage();
    // SAFETY: a live slice and a local storage.
    let s = unsafe { microbert_open(blob.as_ptr(), blob.len(), &mut m) };
    (s, m)
}

fn tokenize(m: &microbert_model, text: &[u8], cap: usize) -> (i32, Vec<u32>) {
    let mut ids = vec![0u32; cap];
    let mut n = usize::MAX;
    // SAFETY: live buffers of the lengths given.
    let s = unsafe {
        microbert_tokenize(
            m,
            text.as_ptr().cast(),
            text.len(),
            ids.as_mut_ptr(),
            cap,
            &mut n,
        )
    };
    ids.truncate(n);
    (s, ids)
}

/// Scratch as `u32` words (4-byte aligned), `bytes` long.
fn scratch(bytes: usize) -> Vec<u32> {
    vec![0u32; bytes.div_ceil(4) + 1]
}

fn embed_q16(
    m: &microbert_model,
    ids: &[u32],
    scratch: &mut [u32],
    bytes: usize,
) -> (i32, Vec<i32>) {
    // SAFETY: a live storage.
    let d = unsafe { microbert_hidden_size(m) };
    let mut out = vec![0i32; d];
    // SAFETY: live buffers; `bytes` is within `scratch`.
    let s = unsafe {
        microbert_embed_q16(
            m,
            ids.as_ptr(),
            ids.len(),
            scratch.as_mut_ptr().cast(),
            bytes,
            out.as_mut_ptr(),
            d,
        )
    };
    (s, out)
}

fn embed(m: &microbert_model, ids: &[u32], scratch: &mut [u32], bytes: usize) -> (i32, Vec<f32>) {
    // SAFETY: a live storage.
    let d = unsafe { microbert_hidden_size(m) };
    let mut out = vec![0f32; d];
    // SAFETY: live buffers; `bytes` is within `scratch`.
    let s = unsafe {
        microbert_embed(
            m,
            ids.as_ptr(),
            ids.len(),
            scratch.as_mut_ptr().cast(),
            bytes,
            out.as_mut_ptr(),
            d,
        )
    };
    (s, out)
}

#[test]
fn every_status_has_a_distinct_sentence() {
    let unknown = message(-9999);
    assert_eq!(unknown, c"unknown microbert status");
    let mut seen = std::collections::HashSet::new();
    for s in ALL {
        assert!(seen.insert(s), "status {s} twice");
        let m = message(s);
        assert_ne!(m, unknown, "status {s} has no sentence");
        // SAFETY: the function returns a static NUL-terminated string.
        let via_c = unsafe { CStr::from_ptr(microbert_status_message(s)) };
        assert_eq!(via_c, m);
        assert!(s <= 0 && s > -400);
    }
    assert!(!microbert_status_message(1).is_null());
}

#[test]
fn embeddings_equal_the_runtime_called_directly() {
    let blob = fixture();
    let (s, m) = open(blob);
    assert_eq!(s, MICROBERT_OK);
    let model = microbert::parse(blob).expect("fixture parses");
    let d = model.config.hidden_size as usize;
    // SAFETY: an opened storage.
    unsafe {
        assert_eq!(microbert_hidden_size(&m), d);
        assert_eq!(
            microbert_max_tokens(&m),
            microbert::Encoder::new(&model, microbert::Scalar).max_tokens()
        );
    }

    let (s, ids) = tokenize(&m, TEXT.as_bytes(), 64);
    assert_eq!(s, MICROBERT_OK);
    let mut want_ids = [0u32; 64];
    let enc = microbert::Tokenizer::new(&model)
        .encode(TEXT, &mut want_ids)
        .expect("tokenizes");
    assert_eq!(ids, &want_ids[..enc.len]);

    // The oracle: the scalar kernels through the runtime's own API.
    let mut arena = vec![0u8; microbert::scratch_bytes(&model, ids.len())];
    let mut want = vec![0i32; d];
    microbert::Encoder::new(&model, microbert::Scalar)
        .embed(&ids, &mut arena, &mut want)
        .expect("embeds");
    let mut want_f32 = vec![0f32; d];
    microbert::output::normalize(&want, &mut want_f32);

    // SAFETY: an opened storage.
    let bytes = unsafe { microbert_scratch_bytes(&m, ids.len()) };
    // The runtime's arena, the pooled vector, 3 bytes to align it.
    assert_eq!(
        bytes,
        microbert::scratch_bytes(&model, ids.len()) + 4 * d + 3
    );
    let mut buf = scratch(bytes);
    let (s, q16) = embed_q16(&m, &ids, &mut buf, bytes);
    assert_eq!(s, MICROBERT_OK);
    assert_eq!(q16, want);
    let (s, f) = embed(&m, &ids, &mut buf, bytes);
    assert_eq!(s, MICROBERT_OK);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&f), bits(&want_f32));

    // A copy of an opened model is an opened model.
    let copy = m;
    let (s, again) = embed_q16(&copy, &ids, &mut buf, bytes);
    assert_eq!((s, again), (MICROBERT_OK, want));
}

#[test]
fn null_pointers_are_errors() {
    let blob = fixture();
    let (_, m) = open(blob);
    let mut store = storage();
    let mut ids = [0u32; 8];
    let mut n = 7usize;
    let mut buf = scratch(1 << 16);
    let mut out = [0f32; 1024];
    let mut q = [0i32; 1024];
    let sp = buf.as_mut_ptr().cast::<c_void>();
    // SAFETY: null pointers, or live buffers of the lengths given.
    unsafe {
        assert_eq!(microbert_open(null(), 10, &mut store), MICROBERT_ERR_NULL);
        assert_eq!(
            microbert_open(blob.as_ptr(), blob.len(), null_mut()),
            MICROBERT_ERR_NULL
        );
        assert_eq!(microbert_hidden_size(null()), 0);
        assert_eq!(microbert_max_tokens(null()), 0);
        assert_eq!(microbert_scratch_bytes(null(), 4), 0);
        let t = c"hi".as_ptr();
        assert_eq!(
            microbert_tokenize(null(), t, 2, ids.as_mut_ptr(), 8, &mut n),
            MICROBERT_ERR_NULL
        );
        assert_eq!(n, 0, "n_ids is zeroed on error");
        assert_eq!(
            microbert_tokenize(&m, null(), 2, ids.as_mut_ptr(), 8, &mut n),
            MICROBERT_ERR_NULL
        );
        assert_eq!(
            microbert_tokenize(&m, t, 2, null_mut(), 8, &mut n),
            MICROBERT_ERR_NULL
        );
        assert_eq!(
            microbert_tokenize(&m, t, 2, ids.as_mut_ptr(), 8, null_mut()),
            MICROBERT_ERR_NULL
        );
        // An empty text may be null.
        assert_eq!(
            microbert_tokenize(&m, null(), 0, ids.as_mut_ptr(), 8, &mut n),
            MICROBERT_OK
        );
        assert_eq!(n, 2);
        let id = ids.as_ptr();
        assert_eq!(
            microbert_embed(null(), id, 2, sp, 1 << 16, out.as_mut_ptr(), 1024),
            MICROBERT_ERR_NULL
        );
        assert_eq!(
            microbert_embed(&m, null(), 2, sp, 1 << 16, out.as_mut_ptr(), 1024),
            MICROBERT_ERR_NULL
        );
        assert_eq!(
            microbert_embed(&m, id, 2, null_mut(), 1 << 16, out.as_mut_ptr(), 1024),
            MICROBERT_ERR_NULL
        );
        assert_eq!(
            microbert_embed(&m, id, 2, sp, 1 << 16, null_mut(), 1024),
            MICROBERT_ERR_NULL
        );
        assert_eq!(
            microbert_embed_q16(&m, id, 2, sp, 1 << 16, null_mut(), 1024),
            MICROBERT_ERR_NULL
        );
        assert_eq!(
            microbert_embed_q16(&m, id, 2, sp, 1 << 16, q.as_mut_ptr(), 1024),
            MICROBERT_OK
        );
    }
}

#[test]
fn unopened_and_failed_storage_is_not_open() {
    let blob = fixture();
    let zeroed = storage();
    let (_, ids) = tokenize(&open(blob).1, b"hello", 8);
    let mut buf = scratch(1 << 16);
    assert_eq!(
        embed(&zeroed, &ids, &mut buf, 1 << 16).0,
        MICROBERT_ERR_NOT_OPEN
    );
    assert_eq!(tokenize(&zeroed, b"hello", 8).0, MICROBERT_ERR_NOT_OPEN);
    // SAFETY: a live storage.
    assert_eq!(unsafe { microbert_hidden_size(&zeroed) }, 0);

    // A failed open over an opened storage leaves it not opened.
    let (s, mut m) = open(blob);
    assert_eq!(s, MICROBERT_OK);
    let bad = &blob[..blob.len() - 1];
    // SAFETY: a live slice and storage.
    let s = unsafe { microbert_open(bad.as_ptr(), bad.len(), &mut m) };
    assert_eq!(s, MICROBERT_ERR_BLOB_LENGTH);
    assert_eq!(
        embed_q16(&m, &ids, &mut buf, 1 << 16).0,
        MICROBERT_ERR_NOT_OPEN
    );
}

#[test]
fn bad_blobs_get_their_status() {
    let blob = fixture();
    assert_eq!(open(&blob[..10]).0, MICROBERT_ERR_BLOB_TOO_SHORT);
    assert_eq!(open(&blob[..blob.len() - 1]).0, MICROBERT_ERR_BLOB_LENGTH);
    let mut magic = blob.to_vec();
    magic[0] ^= 1;
    assert_eq!(open(&magic).0, MICROBERT_ERR_BLOB_MAGIC);
    let mut corrupt = blob.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40;
    assert_eq!(open(&corrupt).0, MICROBERT_ERR_BLOB_CHECKSUM);
    assert_eq!(open(&[]).0, MICROBERT_ERR_BLOB_TOO_SHORT);
    // The runtime's own verdicts go through the one match.
    for e in [
        microbert::BlobError::BadMagic,
        microbert::BlobError::Decode { section: "config" },
        microbert::BlobError::BadVocab { reason: "r" },
    ] {
        let s = glue::status(e.into());
        assert!((-199..=-101).contains(&s), "{e:?} -> {s}");
    }
}

#[test]
fn tokenize_truncates_keeps_specials_and_rejects_bad_utf8() {
    let (_, m) = open(fixture());
    let (s, full) = tokenize(&m, TEXT.as_bytes(), 64);
    assert_eq!(s, MICROBERT_OK);
    assert!(full.len() > 4);
    let (s, short) = tokenize(&m, TEXT.as_bytes(), 4);
    assert_eq!(s, MICROBERT_OK);
    assert_eq!(short.len(), 4);
    assert_eq!(short[..3], full[..3]);
    assert_eq!(short[3], *full.last().expect("[SEP]"));
    assert_eq!(
        tokenize(&m, TEXT.as_bytes(), 1).0,
        MICROBERT_ERR_IDS_TOO_SMALL
    );
    assert_eq!(tokenize(&m, b"caf\xc3", 8).0, MICROBERT_ERR_UTF8);
    assert_eq!(tokenize(&m, b"\xff ok", 8).0, MICROBERT_ERR_UTF8);
    // Capped at the model's limit whatever the capacity.
    // SAFETY: an opened storage.
    let max = unsafe { microbert_max_tokens(&m) };
    let long = "word ".repeat(max + 10);
    let (s, ids) = tokenize(&m, long.as_bytes(), max + 10);
    assert_eq!((s, ids.len()), (MICROBERT_OK, max));
}

#[test]
fn scratch_and_output_are_checked() {
    let (_, m) = open(fixture());
    let (_, ids) = tokenize(&m, TEXT.as_bytes(), 64);
    // SAFETY: an opened storage.
    let bytes = unsafe { microbert_scratch_bytes(&m, ids.len()) };
    // SAFETY: an opened storage.
    let d = unsafe { microbert_hidden_size(&m) };
    let mut buf = scratch(bytes);
    assert_eq!(embed(&m, &ids, &mut buf, bytes).0, MICROBERT_OK);
    // One byte short fails wherever the buffer starts (the alignment bytes are reserved).
    assert_eq!(
        embed(&m, &ids, &mut buf, bytes - 1).0,
        MICROBERT_ERR_SCRATCH_TOO_SMALL
    );
    for offset in 1..4 {
        assert_eq!(
            embed_at(&m, &ids, &mut buf, offset, bytes - 1).0,
            MICROBERT_ERR_SCRATCH_TOO_SMALL,
            "offset {offset}"
        );
    }
    assert_eq!(
        embed(&m, &ids, &mut buf, 3).0,
        MICROBERT_ERR_SCRATCH_TOO_SMALL
    );
    assert_eq!(
        embed_q16(&m, &ids, &mut buf, 3).0,
        MICROBERT_ERR_SCRATCH_TOO_SMALL
    );
    assert_eq!(embed(&m, &[], &mut buf, bytes).0, MICROBERT_ERR_EMPTY_INPUT);
    assert_eq!(
        embed(&m, &[u32::MAX, 1], &mut buf, bytes).0,
        MICROBERT_ERR_TOKEN_OUT_OF_VOCAB
    );
    // SAFETY: an opened storage.
    let max = unsafe { microbert_max_tokens(&m) };
    let too_many = vec![ids[0]; max + 1];
    assert_eq!(
        embed(&m, &too_many, &mut buf, bytes).0,
        MICROBERT_ERR_TOO_MANY_TOKENS
    );
    // SAFETY: an opened storage.
    let huge = unsafe { microbert_scratch_bytes(&m, usize::MAX) };
    assert_eq!(huge, 0, "overflow gives 0");

    let mut out = vec![0f32; d];
    // SAFETY: live buffers of the lengths given.
    unsafe {
        let sp = buf.as_mut_ptr().cast::<c_void>();
        assert_eq!(
            microbert_embed(
                &m,
                ids.as_ptr(),
                ids.len(),
                sp,
                bytes,
                out.as_mut_ptr(),
                d - 1
            ),
            MICROBERT_ERR_OUTPUT_SIZE
        );
        assert_eq!(
            microbert_embed(
                &m,
                ids.as_ptr(),
                ids.len(),
                sp,
                usize::MAX,
                out.as_mut_ptr(),
                d
            ),
            MICROBERT_ERR_LENGTH
        );
        let mut store = storage();
        let odd = (&raw mut store)
            .cast::<u8>()
            .wrapping_add(4)
            .cast::<microbert_model>();
        let blob = fixture();
        assert_eq!(
            microbert_open(blob.as_ptr(), blob.len(), odd),
            MICROBERT_ERR_ALIGN
        );
    }
}

/// `microbert_embed` with the scratch starting `offset` bytes into `buf`.
fn embed_at(
    m: &microbert_model,
    ids: &[u32],
    buf: &mut [u32],
    offset: usize,
    bytes: usize,
) -> (i32, Vec<f32>) {
    assert!(offset + bytes <= buf.len() * 4);
    // SAFETY: a live storage.
    let d = unsafe { microbert_hidden_size(m) };
    let mut out = vec![0f32; d];
    let scratch = buf.as_mut_ptr().cast::<u8>().wrapping_add(offset).cast();
    // SAFETY: live buffers; `offset + bytes` is within `buf` (asserted).
    let s = unsafe {
        microbert_embed(
            m,
            ids.as_ptr(),
            ids.len(),
            scratch,
            bytes,
            out.as_mut_ptr(),
            d,
        )
    };
    (s, out)
}

/// Bits of floats, for exact comparisons.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn scratch_may_have_any_alignment() {
    let (_, m) = open(fixture());
    let (_, ids) = tokenize(&m, TEXT.as_bytes(), 64);
    // SAFETY: an opened storage.
    let bytes = unsafe { microbert_scratch_bytes(&m, ids.len()) };
    let mut buf = scratch(bytes + 4);
    let (s, want) = embed_at(&m, &ids, &mut buf, 0, bytes);
    assert_eq!(s, MICROBERT_OK);
    for offset in 1..8 {
        let (s, got) = embed_at(&m, &ids, &mut buf, offset, bytes);
        assert_eq!(s, MICROBERT_OK, "offset {offset}");
        assert_eq!(bits(&got), bits(&want), "offset {offset}");
    }
}

/// Storage for prepared weights, `offset` bytes into an allocation (any alignment works).
fn prepared_storage(len: usize, offset: usize) -> Vec<u8> {
    vec![0u8; len + offset]
}

fn prepare(m: &mut microbert_model, buf: &mut [u8], offset: usize, len: usize) -> i32 {
    assert!(offset + len <= buf.len());
    // SAFETY: a live storage; `offset + len` is within `buf` (asserted).
    unsafe { microbert_prepare(m, buf.as_mut_ptr().wrapping_add(offset).cast(), len) }
}

#[test]
fn prepared_weights_give_the_same_bits() {
    let blob = fixture();
    let (_, mut m) = open(blob);
    let model = microbert::parse(blob).expect("fixture parses");
    let kernels = microbert_host::HostKernels::detect();
    // SAFETY: an opened storage.
    let need = unsafe { microbert_prepared_bytes(&m) };
    assert_eq!(need, microbert::prepared_bytes(&kernels, &model));
    // SAFETY: a static NUL-terminated string.
    let name = unsafe { CStr::from_ptr(microbert_kernels()) };
    assert_eq!(
        need > 0,
        name != c"scalar",
        "the SIMD tiers prepare panels, scalar nothing ({name:?})"
    );

    let (_, ids) = tokenize(&m, TEXT.as_bytes(), 64);
    // SAFETY: an opened storage.
    let bytes = unsafe { microbert_scratch_bytes(&m, ids.len()) };
    let mut buf = scratch(bytes);
    let (s, want_q16) = embed_q16(&m, &ids, &mut buf, bytes);
    assert_eq!(s, MICROBERT_OK);
    let (_, want) = embed(&m, &ids, &mut buf, bytes);

    if need == 0 {
        // Nothing to prepare: succeeds, even with no buffer.
        // SAFETY: a live storage.
        let s = unsafe { microbert_prepare(&mut m, null_mut(), 0) };
        assert_eq!(s, MICROBERT_OK);
        return;
    }
    // Errors leave the model as it was.
    let mut weights = prepared_storage(need, 3);
    assert_eq!(
        prepare(&mut m, &mut weights, 3, need - 1),
        MICROBERT_ERR_PREPARED_TOO_SMALL
    );
    // SAFETY: null pointers and live storages.
    unsafe {
        assert_eq!(
            microbert_prepare(&mut m, null_mut(), need),
            MICROBERT_ERR_NULL
        );
        assert_eq!(
            microbert_prepare(null_mut(), weights.as_mut_ptr().cast(), need),
            MICROBERT_ERR_NULL
        );
        let mut unopened = storage();
        assert_eq!(
            microbert_prepare(&mut unopened, weights.as_mut_ptr().cast(), need),
            MICROBERT_ERR_NOT_OPEN
        );
        assert_eq!(microbert_prepared_bytes(&unopened), 0);
        assert_eq!(microbert_prepared_bytes(null()), 0);
    }
    assert!(weights.iter().all(|&b| b == 0), "nothing written on error");

    // Prepared at an odd address: the same bits, q16 and f32, on the model and on a copy.
    assert_eq!(prepare(&mut m, &mut weights, 3, need), MICROBERT_OK);
    assert!(weights.iter().any(|&b| b != 0), "the weights were written");
    let (s, q16) = embed_q16(&m, &ids, &mut buf, bytes);
    assert_eq!((s, q16), (MICROBERT_OK, want_q16.clone()));
    // SAFETY: a bitwise copy (C's assignment) of plain bytes; the original stays valid.
    let copy: microbert_model = unsafe { core::ptr::read(&m) };
    let (s, f) = embed(&copy, &ids, &mut buf, bytes);
    assert_eq!((s, bits(&f)), (MICROBERT_OK, bits(&want)));

    // The embed calls read the caller's buffer: other bytes there change the result (the
    // runtime checks only the length, so this is wrong numbers, never undefined behaviour).
    for b in weights.iter_mut().skip(3) {
        *b = b.wrapping_add(1);
    }
    let (s, changed) = embed_q16(&m, &ids, &mut buf, bytes);
    assert_eq!(s, MICROBERT_OK);
    assert_ne!(changed, want_q16, "the prepared buffer is what embed reads");
    // A fresh open forgets the buffer.
    // SAFETY: a live slice and storage.
    let s = unsafe { microbert_open(blob.as_ptr(), blob.len(), &mut m) };
    assert_eq!(s, MICROBERT_OK);
    let (_, again) = embed_q16(&m, &ids, &mut buf, bytes);
    assert_eq!(again, want_q16);
}

#[test]
fn kernels_have_a_name() {
    // SAFETY: a static NUL-terminated string.
    let name = unsafe { CStr::from_ptr(microbert_kernels()) };
    let name = name.to_str().expect("ASCII");
    assert!(
        microbert_host::Tier::ALL.iter().any(|t| t.name() == name),
        "{name} is not a host tier"
    );
}

/// A blob `cargo xtask prepare` makes, leaked like the fixture (`None`: skipped outside CI).
fn prepared_blob(name: &str) -> Option<&'static [u8]> {
    let path = microbert_tests::corpus::cache_dir()
        .join("blobs")
        .join(format!("{name}.blob"));
    let bytes = microbert_tests::require::require(
        std::fs::read(&path),
        path.display(),
        "cargo xtask prepare",
    )?;
    Some(Box::leak(bytes.into_boxed_slice()))
}

/// `microbert_classify` with `types` (null or not) and `microbert_tag`: status and logits.
fn head_call(
    m: &microbert_model,
    ids: &[u32],
    types: Option<&[u32]>,
    tag: bool,
    out_len: usize,
) -> (i32, Vec<i32>) {
    // SAFETY: a live storage.
    let bytes = unsafe { microbert_scratch_bytes(m, ids.len()) };
    let mut s = scratch(bytes);
    let mut out = vec![0i32; out_len];
    // SAFETY: live buffers of the lengths given.
    let status = unsafe {
        if tag {
            microbert_tag(
                m,
                ids.as_ptr(),
                ids.len(),
                s.as_mut_ptr().cast(),
                bytes,
                out.as_mut_ptr(),
                out_len,
            )
        } else {
            microbert_classify(
                m,
                ids.as_ptr(),
                types.map_or(null(), <[u32]>::as_ptr),
                ids.len(),
                s.as_mut_ptr().cast(),
                bytes,
                out.as_mut_ptr(),
                out_len,
            )
        }
    };
    (status, out)
}

fn label_of(m: &microbert_model, i: usize) -> Option<String> {
    let mut len = usize::MAX;
    // SAFETY: a live storage and a local length.
    let p = unsafe { microbert_label(m, i, &mut len) };
    if p.is_null() {
        assert_eq!(len, 0);
        return None;
    }
    // SAFETY: the library returned `len` bytes inside the live blob.
    let bytes = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) };
    Some(String::from_utf8(bytes.to_vec()).expect("UTF-8 label"))
}

/// The heads through the C functions against the runtime called directly: the trained
/// sentiment classifier (single texts and a pair with token types) and the segmentation
/// tagger, their labels, and the errors a wrong head or a short output gives.
#[test]
fn heads_equal_the_runtime_called_directly() {
    let (Some(sentiment), Some(segment)) = (
        prepared_blob("minilm-sentiment"),
        prepared_blob("minilm-segment"),
    ) else {
        return;
    };
    let (status, m) = open(sentiment);
    assert_eq!(status, MICROBERT_OK);
    // SAFETY: a live storage.
    assert_eq!(unsafe { microbert_num_labels(&m) }, 2);
    // SAFETY: as above.
    assert_eq!(unsafe { microbert_tags_tokens(&m) }, 0);
    assert_eq!(label_of(&m, 0).as_deref(), Some("negative"));
    assert_eq!(label_of(&m, 1).as_deref(), Some("positive"));
    assert_eq!(label_of(&m, 2), None);
    let model = microbert::parse(sentiment).expect("parses");
    let enc = microbert::Encoder::new(&model, microbert::Scalar);
    let tok = microbert::Tokenizer::new(&model);
    let direct = |ids: &[u32], types: Option<&[u32]>, labels: usize, tag: bool| {
        let mut arena = vec![0u8; microbert::scratch_bytes(enc.model(), ids.len())];
        let mut out = vec![0i32; labels];
        if tag {
            enc.tag(ids, None, &mut arena, &mut out).expect("tags");
        } else {
            enc.classify(ids, types, &mut arena, &mut out)
                .expect("classifies");
        }
        out
    };
    let (_, ids) = tokenize(&m, b"a gorgeous, witty, seductive movie.", 128);
    assert_eq!(
        head_call(&m, &ids, None, false, 2),
        (MICROBERT_OK, direct(&ids, None, 2, false))
    );
    let (mut pair, mut types) = (vec![0u32; 128], vec![0u32; 128]);
    let n = tok
        .encode_pair("great acting", "awful script", &mut pair, &mut types)
        .expect("pair")
        .len;
    let (pair, types) = (&pair[..n], &types[..n]);
    let (status, with_types) = head_call(&m, pair, Some(types), false, 2);
    assert_eq!(
        (status, &with_types),
        (MICROBERT_OK, &direct(pair, Some(types), 2, false))
    );
    assert_ne!(
        with_types,
        head_call(&m, pair, None, false, 2).1,
        "the token types count"
    );
    assert_eq!(
        head_call(&m, &ids, None, false, 1).0,
        MICROBERT_ERR_OUTPUT_SIZE
    );
    assert_eq!(
        head_call(&m, &ids, None, true, 2 * ids.len()).0,
        MICROBERT_ERR_NO_SUCH_HEAD
    );
    let bad_types = vec![7u32; ids.len()];
    assert_eq!(
        head_call(&m, &ids, Some(&bad_types), false, 2).0,
        MICROBERT_ERR_TOKEN_TYPE
    );

    let (status, t) = open(segment);
    assert_eq!(status, MICROBERT_OK);
    // SAFETY: a live storage.
    let counts = unsafe { (microbert_num_labels(&t), microbert_tags_tokens(&t)) };
    assert_eq!(counts, (2, 1));
    assert_eq!(label_of(&t, 0).as_deref(), Some("B"));
    let model = microbert::parse(segment).expect("parses");
    let enc_t = microbert::Encoder::new(&model, microbert::Scalar);
    let (_, ids) = tokenize(&t, "江泽民发表新年讲话。".as_bytes(), 128);
    let n = ids.len();
    let mut arena = vec![0u8; microbert::scratch_bytes(&model, n)];
    let mut want = vec![0i32; 2 * n];
    enc_t.tag(&ids, None, &mut arena, &mut want).expect("tags");
    assert_eq!(head_call(&t, &ids, None, true, 2 * n), (MICROBERT_OK, want));
    assert_eq!(
        head_call(&t, &ids, None, true, 2 * n - 1).0,
        MICROBERT_ERR_OUTPUT_SIZE
    );
    assert_eq!(
        head_call(&t, &ids, None, false, 2).0,
        MICROBERT_ERR_NO_SUCH_HEAD
    );

    // The fixture has no head.
    let (_, f) = open(fixture());
    // SAFETY: a live storage; a null length is allowed.
    let none = unsafe { (microbert_num_labels(&f), microbert_label(&f, 0, null_mut())) };
    assert_eq!(none, (0, null()));
    let (_, ids) = tokenize(&f, TEXT.as_bytes(), 64);
    assert_eq!(
        head_call(&f, &ids, None, false, 0).0,
        MICROBERT_ERR_NO_SUCH_HEAD
    );
}

/// `microbert_tokenize_with_scratch`: `(status, ids)`, the scratch `offset` bytes into a
/// buffer (any alignment), `None` for a null scratch pointer.
fn tokenize_scratch(
    m: &microbert_model,
    text: &[u8],
    scratch: Option<(usize, usize)>,
    cap: usize,
) -> (i32, Vec<u32>) {
    let (len, offset) = scratch.unwrap_or((0, 0));
    let mut buf = vec![0u8; len + offset];
    let ptr = match scratch {
        // SAFETY: `offset` is within the buffer.
        Some(_) => unsafe { buf.as_mut_ptr().add(offset) }.cast(),
        None => null_mut(),
    };
    let mut ids = vec![0u32; cap];
    let mut n = usize::MAX;
    // SAFETY: live buffers of the lengths given.
    let s = unsafe {
        microbert_tokenize_with_scratch(
            m,
            text.as_ptr().cast(),
            text.len(),
            ptr,
            len,
            ids.as_mut_ptr(),
            cap,
            &mut n,
        )
    };
    ids.truncate(n);
    (s, ids)
}

fn tokenize_scratch_bytes(m: &microbert_model, text: &[u8]) -> usize {
    // SAFETY: a live text of that length.
    unsafe { microbert_tokenize_scratch_bytes(m, text.as_ptr().cast(), text.len()) }
}

/// WordPiece models need no tokenizer scratch: the scratch variant gives
/// `microbert_tokenize`'s ids with none, and its size is 0.
#[test]
fn wordpiece_tokenizes_the_same_with_or_without_scratch() {
    let (_, m) = open(fixture());
    let (s, plain) = tokenize(&m, TEXT.as_bytes(), 64);
    assert_eq!(s, MICROBERT_OK);
    assert_eq!(tokenize_scratch_bytes(&m, TEXT.as_bytes()), 0);
    assert_eq!(
        tokenize_scratch(&m, TEXT.as_bytes(), None, 64),
        (MICROBERT_OK, plain.clone())
    );
    assert_eq!(
        tokenize_scratch(&m, TEXT.as_bytes(), Some((5, 1)), 64),
        (MICROBERT_OK, plain)
    );
    assert_eq!(tokenize_scratch_bytes(&storage(), TEXT.as_bytes()), 0);
    assert_eq!(
        tokenize_scratch(&storage(), TEXT.as_bytes(), None, 64).0,
        MICROBERT_ERR_NOT_OPEN
    );
    // A null scratch with a length is a null pointer; `n_ids` is still zeroed.
    let mut ids = [0u32; 8];
    let mut n = usize::MAX;
    // SAFETY: live buffers; the null scratch is the point.
    let s = unsafe {
        microbert_tokenize_with_scratch(
            &m,
            TEXT.as_ptr().cast(),
            TEXT.len(),
            null_mut(),
            16,
            ids.as_mut_ptr(),
            8,
            &mut n,
        )
    };
    assert_eq!((s, n), (MICROBERT_ERR_NULL, 0));
}

/// A SentencePiece Unigram model (multilingual-e5-small) tokenizes from C only with scratch,
/// and then exactly as the runtime's `UnigramTokenizer` (itself checked against Hugging
/// Face `tokenizers`); too little scratch is its own status.
#[test]
fn unigram_tokenizes_with_scratch_as_the_runtime() {
    let Some(blob) = prepared_blob("e5-small") else {
        return;
    };
    let (status, m) = open(blob);
    assert_eq!(status, MICROBERT_OK);
    let model = microbert::parse(blob).expect("parses");
    let unigram = microbert::UnigramTokenizer::new(&model).expect("a Unigram tokenizer");
    // SAFETY: an opened storage.
    let max = unsafe { microbert_max_tokens(&m) };
    let direct = |text: &str, cap: usize| {
        let mut scratch = vec![0u8; unigram.scratch_bytes(text)];
        let mut ids = vec![0u32; cap.min(max)];
        let n = unigram
            .encode(text, &mut scratch, &mut ids)
            .expect("encodes")
            .len;
        ids.truncate(n);
        ids
    };
    let texts = [
        "passage: 今天天气很好，我们去公园散步吧。",
        "query: how much protein should a female eat",
        "Zürich ist eine Stadt. Москва — столица России. 🙂",
        "",
    ];
    for text in texts {
        let bytes = text.as_bytes();
        let need = tokenize_scratch_bytes(&m, bytes);
        assert_eq!(need, unigram.scratch_bytes(text), "{text}");
        assert_eq!(
            tokenize(&m, bytes, 64),
            (MICROBERT_ERR_TOKENIZE_NEEDS_SCRATCH, vec![]),
            "{text}"
        );
        for offset in [0, 1, 3] {
            assert_eq!(
                tokenize_scratch(&m, bytes, Some((need, offset)), 64),
                (MICROBERT_OK, direct(text, 64)),
                "{text}, scratch at offset {offset}"
            );
        }
        if need > 0 {
            assert_eq!(
                tokenize_scratch(&m, bytes, Some((need - 1, 1)), 64),
                (MICROBERT_ERR_TOKENIZE_SCRATCH_TOO_SMALL, vec![]),
                "{text}"
            );
        }
    }
    // Truncated to the capacity and to the model's limit, `<s>` and `</s>` kept.
    let text = texts[0];
    let need = tokenize_scratch_bytes(&m, text.as_bytes());
    let full = direct(text, 64);
    let (s, short) = tokenize_scratch(&m, text.as_bytes(), Some((need, 0)), 4);
    assert_eq!((s, short.len()), (MICROBERT_OK, 4));
    assert_eq!(short[..3], full[..3]);
    assert_eq!(short.last(), full.last());
    let long = "词".repeat(max * 2);
    let need = tokenize_scratch_bytes(&m, long.as_bytes());
    let (s, ids) = tokenize_scratch(&m, long.as_bytes(), Some((need, 0)), max + 10);
    assert_eq!((s, ids.len()), (MICROBERT_OK, max));
    assert_eq!(ids, direct(&long, max + 10));
    assert_eq!(tokenize_scratch_bytes(&m, b"\xff ok"), 0);
    assert_eq!(
        tokenize_scratch(&m, b"\xff ok", Some((64, 0)), 8).0,
        MICROBERT_ERR_UTF8
    );
}
