//! Shared by the backend crates' `tests/minilm.rs` (included with `#[path]`).
//!
//! End to end: MiniLM sentence embeddings computed with this backend must hash exactly as
//! the scalar reference computes them.
//!
//! Under `cargo xtask cross` (qemu) the inputs come from the environment: `MICROBERT_BLOB`
//! (the MiniLM blob), `MICROBERT_TEXTS` (a file, one text per line), `MICROBERT_EXPECT`
//! (the host's `microbert::output::hash` of each pooled Q.16 vector, hex, comma-separated)
//! and `MICROBERT_MAX_TOKENS` (truncation, default 128); with `MICROBERT_BLOB` set the
//! other two must be set as well.
//!
//! Without `MICROBERT_BLOB` (a plain `cargo test` on the build machine, where the backend
//! is its portable fallback) the test embeds [`LOCAL_TEXTS`] with the blob that
//! `cargo xtask prepare` converts into the cache and compares with `microbert::Scalar` in
//! the same process. When that blob is missing, the rule of `microbert_tests::require`
//! applies (`tests/src/require.rs`, included below): a failure under `CI=true`, a one-line
//! skip elsewhere.

#[path = "../../tests/src/require.rs"]
#[allow(dead_code, unreachable_pub)]
mod require;

use microbert::{Encoder, Kernels, ModelView, Tokenizer};

/// Texts of the local run (without `MICROBERT_TEXTS`): short, accented and CJK, a longer
/// sentence, and the empty text.
pub(crate) const LOCAL_TEXTS: [&str; 4] = [
    "Hello world.",
    "Ça coûte 12,50 € — naïve café déjà vu? 東京は日本の首都です。",
    "Attention streams by query rows: keys and values for the whole sequence are kept as \
     int8, so memory grows with n and never with n squared.",
    "",
];

/// Runs the comparison with `kernels`; call it from a `#[test]` of each backend crate.
pub(crate) fn run<K: Kernels + Copy>(kernels: K) {
    let max_tokens = std::env::var("MICROBERT_MAX_TOKENS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(128usize);
    let (blob, texts, expect) = match std::env::var_os("MICROBERT_BLOB") {
        Some(blob_path) => {
            let blob = std::fs::read(&blob_path).expect("cannot read MICROBERT_BLOB");
            let texts_path = std::env::var_os("MICROBERT_TEXTS").expect("MICROBERT_TEXTS not set");
            let texts = std::fs::read_to_string(texts_path).expect("cannot read MICROBERT_TEXTS");
            let texts: Vec<String> = texts.lines().map(str::to_owned).collect();
            let expect: Vec<u64> = std::env::var("MICROBERT_EXPECT")
                .expect("MICROBERT_EXPECT not set")
                .split(',')
                .map(|h| u64::from_str_radix(h.trim(), 16).expect("MICROBERT_EXPECT: hex hashes"))
                .collect();
            (blob, texts, Some(expect))
        }
        None => {
            let path = require::cache_dir().join("blobs").join("minilm.blob");
            let Some(blob) = require::require(
                std::fs::read(&path),
                format!(
                    "MICROBERT_BLOB is not set (`cargo xtask cross` sets it) and {}",
                    path.display()
                ),
                "cargo xtask prepare",
            ) else {
                return;
            };
            let texts = LOCAL_TEXTS.map(str::to_owned).to_vec();
            (blob, texts, None)
        }
    };
    let model = microbert::parse(&blob).expect("invalid blob");
    let got = hashes(&model, kernels, &texts, max_tokens);
    let expect = expect.unwrap_or_else(|| hashes(&model, microbert::Scalar, &texts, max_tokens));
    assert_eq!(expect.len(), texts.len(), "one expected hash per text");
    let matching = got.iter().zip(&expect).filter(|(g, e)| g == e).count();
    println!(
        "minilm {}: {matching}/{} texts match the host scalar hashes",
        kernels.name(),
        expect.len()
    );
    assert_eq!(
        got, expect,
        "pooled vectors differ from the host scalar reference"
    );
}

/// `microbert::output::hash` of each text's pooled vector, at most `max_tokens` tokens.
fn hashes<K: Kernels + Copy>(
    model: &ModelView<'_>,
    kernels: K,
    texts: &[String],
    max_tokens: usize,
) -> Vec<u64> {
    // A backend that prepares its weights (e.g. `neon-i8mm`) runs with them prepared, as a
    // firmware or the host CLI would.
    let mut storage = vec![0u8; microbert::prepared_bytes(&kernels, model)];
    let mut encoder = Encoder::new(model, kernels);
    if !storage.is_empty() {
        let prepared =
            microbert::prepare_weights(&kernels, model, &mut storage).expect("prepare weights");
        encoder = encoder.with_prepared(prepared).expect("prepared weights");
    }
    let tokenizer = Tokenizer::new(model);
    let mut out = Vec::new();
    for text in texts {
        let mut ids = vec![0u32; max_tokens];
        let enc = tokenizer.encode(text, &mut ids).expect("tokenize");
        let mut arena = vec![0u8; microbert::scratch_bytes(model, enc.len)];
        let mut pooled = vec![0i32; model.config.hidden_size as usize];
        encoder
            .embed(&ids[..enc.len], &mut arena, &mut pooled)
            .expect("embed");
        let hash = microbert::output::hash(&pooled);
        println!(
            "minilm {}: {:3} tokens, hash {hash:016x}",
            kernels.name(),
            enc.len
        );
        out.push(hash);
    }
    out
}
