//! The ONNX Runtime reference of the ONNX route (`minilm-l3`, made by `cargo xtask
//! prepare`): for a fixed slice of real texts, the token ids (the blob's own tokenizer),
//! ONNX Runtime's f32 mean-pooled embedding of the same ONNX file the blob was converted
//! from, and that of ONNX Runtime's dynamic int8 quantisation of it
//! (`quantize_dynamic`, per channel), as one JSON file:
//!
//! ```text
//! {"texts": [...], "ids": [[...]], "f32": [[...]], "int8_dynamic": [[...]], "onnxruntime": "1.32.0"}
//! ```
//!
//! `tests/tests/onnx_minilm_l3.rs` compares the runtime on the blob with it. The texts: the
//! first [`TEXTS`]` / 2` of the Wikipedia test split and of the movie-review test split
//! (the slice `minilm_accuracy` runs in CI), cut at [`MAX_TOKENS`]. The Python half,
//! `xtask/ort_reference.py`, runs in the venv of `bench-peers` ([`crate::peers::venv`]). The
//! file is cached under `$CACHE/derived/minilm-l3.ort/` by the hash of its inputs (the
//! blob's bytes, the ONNX package's fetch stamp, the texts, the script and the pinned Python
//! packages) and copied to `$CACHE/reference/minilm-l3-ort.json`, where the test reads it.

use crate::cache::{Key, Outcome, sha256_hex};
use crate::exec::run;
use anyhow::{Context, Result, anyhow, ensure};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// The recipe whose blob and ONNX file are compared.
pub const RECIPE: &str = "minilm-l3";
/// Texts: half Wikipedia leads, half movie reviews.
pub const TEXTS: usize = 200;
/// Tokens per text at most ([CLS] and [SEP] included).
pub const MAX_TOKENS: usize = 256;

const SCRIPT: &[u8] = include_bytes!("../ort_reference.py");

/// Makes (or finds) the reference; returns the published path.
pub fn prepare() -> Result<PathBuf> {
    let start = Instant::now();
    let blob_path = crate::blobs::blob(RECIPE)?;
    let blob = std::fs::read(&blob_path)?;
    let recipe = crate::recipe::load(RECIPE)?;
    let onnx_name = recipe
        .fetch
        .onnx
        .clone()
        .ok_or_else(|| anyhow!("{}: no fetch.onnx", recipe.path.display()))?;
    let fetched = crate::fetch::model(&recipe)?;
    let onnx = fetched.path.join(onnx_name);
    let wiki = microbert_tests::corpus::try_wiki_split()?.test;
    let reviews = microbert_tests::corpus::try_review_split()?.test;
    let texts: Vec<String> = wiki
        .into_iter()
        .take(TEXTS / 2)
        .chain(reviews.into_iter().take(TEXTS / 2))
        .collect();
    ensure!(texts.len() == TEXTS, "only {} test texts", texts.len());
    let key = Key::new("ort reference v1")
        .field("blob", sha256_hex(&blob))
        .field("onnx", &fetched.stamp)
        .field("texts", texts.join("\n"))
        .field("script", SCRIPT)
        .field("python", crate::peers::PYTHON_PACKAGES.join(" "));
    let label = format!("{RECIPE}.ort");
    let (path, outcome) = crate::cache::derived(
        &label,
        "json",
        &key,
        |bytes| check(bytes).map(|_| ()),
        || make(&blob, &onnx, &texts),
    )?;
    let published = crate::cache::cache_dir()?
        .join("reference")
        .join(format!("{RECIPE}-ort.json"));
    crate::cache::publish(&path, &published)?;
    eprintln!(
        "==> {label}: {} ONNX Runtime reference ({TEXTS} texts, {:.1?}): {}",
        match outcome {
            Outcome::Reused => "reused",
            Outcome::Made => "made",
        },
        start.elapsed(),
        published.display()
    );
    Ok(published)
}

/// The reference's shape: every list has [`TEXTS`] entries.
fn check(bytes: &[u8]) -> Result<Value> {
    let v: Value = serde_json::from_slice(bytes)?;
    for k in ["texts", "ids", "f32", "int8_dynamic"] {
        let n = v[k].as_array().map_or(0, Vec::len);
        ensure!(n == TEXTS, "`{k}` has {n} entries, not {TEXTS}");
    }
    Ok(v)
}

fn make(blob: &[u8], onnx: &std::path::Path, texts: &[String]) -> Result<Vec<u8>> {
    let model = microbert::parse(blob).map_err(|e| anyhow!("the {RECIPE} blob: {e}"))?;
    let tokenizer = microbert::Tokenizer::new(&model);
    let mut buf = vec![0u32; MAX_TOKENS];
    let ids = texts
        .iter()
        .map(|t| {
            let enc = tokenizer
                .encode(t, &mut buf)
                .map_err(|e| anyhow!("tokenizing {t:?}: {e}"))?;
            Ok(buf[..enc.len].to_vec())
        })
        .collect::<Result<Vec<Vec<u32>>>>()?;
    let python = crate::peers::venv()?;
    let work = crate::cache::cache_dir()?
        .join("tmp")
        .join(format!("{RECIPE}-ort"));
    std::fs::create_dir_all(&work)?;
    let (ids_path, out_path, script) = (
        work.join("ids.json"),
        work.join("out.json"),
        work.join("ort_reference.py"),
    );
    std::fs::write(&ids_path, serde_json::json!({ "ids": ids }).to_string())?;
    std::fs::write(&script, SCRIPT)?;
    run(
        Command::new(&python)
            .arg(&script)
            .arg("--model")
            .arg(onnx)
            .arg("--ids")
            .arg(&ids_path)
            .arg("--out")
            .arg(&out_path),
        "ort_reference.py (onnxruntime f32 and dynamic int8)",
    )?;
    let out: Value = serde_json::from_slice(
        &std::fs::read(&out_path).with_context(|| format!("reading {}", out_path.display()))?,
    )?;
    let _ = std::fs::remove_dir_all(&work);
    let v = serde_json::json!({
        "texts": texts,
        "ids": ids,
        "f32": out["f32"],
        "int8_dynamic": out["int8_dynamic"],
        "onnxruntime": out["onnxruntime"],
    });
    let bytes = serde_json::to_vec(&v)?;
    check(&bytes)?;
    Ok(bytes)
}
