//! Shared by the backend crates' `tests/minilm.rs` (included with `#[path]`).
//!
//! End to end: MiniLM sentence embeddings computed with this backend must hash exactly as
//! the host's scalar reference computed them (`cargo xtask cross` runs it under qemu).
//!
//! Inputs come from the environment: `MICROBERT_BLOB` (the MiniLM blob), `MICROBERT_TEXTS`
//! (a file, one text per line), `MICROBERT_EXPECT` (the host's `microbert::output::hash` of
//! each pooled Q.16 vector, hex, comma-separated) and `MICROBERT_MAX_TOKENS` (truncation,
//! default 128). Without `MICROBERT_BLOB` the test has nothing to compare and passes.

use microbert::{Encoder, Kernels, Tokenizer};

/// Runs the comparison with `kernels`; call it from a `#[test]` of each backend crate.
pub(crate) fn run<K: Kernels + Copy>(kernels: K) {
    let Some(blob_path) = std::env::var_os("MICROBERT_BLOB") else {
        println!("minilm: MICROBERT_BLOB not set, skipped");
        return;
    };
    let blob = std::fs::read(&blob_path).expect("cannot read MICROBERT_BLOB");
    let model = microbert::parse(&blob).expect("invalid blob");
    let texts_path = std::env::var_os("MICROBERT_TEXTS").expect("MICROBERT_TEXTS not set");
    let texts = std::fs::read_to_string(texts_path).expect("cannot read MICROBERT_TEXTS");
    let expect: Vec<u64> = std::env::var("MICROBERT_EXPECT")
        .expect("MICROBERT_EXPECT not set")
        .split(',')
        .map(|h| u64::from_str_radix(h.trim(), 16).expect("MICROBERT_EXPECT: hex hashes"))
        .collect();
    let max_tokens = std::env::var("MICROBERT_MAX_TOKENS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(128usize);

    let encoder = Encoder::new(&model, kernels);
    let tokenizer = Tokenizer::new(&model);
    let mut got = Vec::new();
    for text in texts.lines() {
        let mut ids = vec![0u32; max_tokens];
        let enc = tokenizer.encode(text, &mut ids).expect("tokenize");
        let mut arena = vec![0u8; microbert::scratch_bytes(&model, enc.len)];
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
        got.push(hash);
    }
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
