//! XLM-R conversion on the tiny fixture made an XLM-R checkpoint (keys under `roberta.`, a
//! Unigram tokenizer.json, `pad_token_id` 1): the positions offset, the Unigram section,
//! and the refusals of the rest of the RoBERTa family. Kept out of `convert.rs` so that the
//! converter's sources name no test-only module.

use crate::checkpoint::Checkpoint;
use crate::checkpoint::Files;
use crate::convert::{Options, convert};
use std::collections::BTreeMap;

/// The tiny fixture as an XLM-R checkpoint: keys under `roberta.`, no MLM head,
/// `pad_token_id` 1, and a Unigram tokenizer.json of 13 pieces.
fn xlmr_files(model_type: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files = crate::fixture::checkpoint_files().unwrap();
    let ck = Checkpoint::load(&Files::Memory(files.clone())).unwrap();
    let st = ck.tensors().unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n.starts_with("bert."))
        .map(|(n, v)| (n.replacen("bert.", "roberta.", 1), v))
        .collect();
    files.insert(
        "model.safetensors".into(),
        safetensors::serialize(kept, None).unwrap(),
    );
    let mut config: serde_json::Value = serde_json::from_slice(&files["config.json"]).unwrap();
    config["model_type"] = model_type.into();
    config["architectures"] = serde_json::json!(["XLMRobertaModel"]);
    config["pad_token_id"] = 1.into();
    files.insert("config.json".into(), config.to_string().into_bytes());
    let mut pieces: Vec<(String, f64)> = ["<s>", "<pad>", "</s>", "<unk>"]
        .iter()
        .map(|p| (p.to_string(), 0.0))
        .collect();
    for (i, w) in ["a", "b", "ab", "c"].iter().enumerate() {
        pieces.push((format!("▁{w}"), -1.0 - i as f64));
        pieces.push((w.to_string(), -2.0 - i as f64));
    }
    pieces.push(("<mask>".into(), 0.0));
    let map = crate::charsmap::build(&[("Ａ".into(), "A".into())]).unwrap();
    let metaspace = serde_json::json!({"type": "Metaspace", "replacement": "▁",
        "prepend_scheme": "always", "split": true});
    let tokenizer = serde_json::json!({
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Precompiled", "precompiled_charsmap": crate::e5s1::base64(&map)},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": metaspace,
        "model": {"type": "Unigram", "unk_id": 3, "byte_fallback": false,
            "vocab": pieces.iter().map(|(p, s)| serde_json::json!([p, s])).collect::<Vec<_>>()}
    });
    files.insert("tokenizer.json".into(), tokenizer.to_string().into_bytes());
    files.remove("vocab.txt");
    files
}

#[test]
fn xlm_roberta_checkpoints_convert_with_offset_positions() {
    let bert =
        Checkpoint::load(&Files::Memory(crate::fixture::checkpoint_files().unwrap())).unwrap();
    let bert_blob = convert(&bert, &Options::default()).unwrap().blob;
    let bert_view = microbert::parse(&bert_blob).unwrap();
    let ck = Checkpoint::load(&Files::Memory(xlmr_files("xlm-roberta"))).unwrap();
    assert!(ck.unigram.is_some());
    let out = convert(&ck, &Options::default()).unwrap();
    let view = microbert::parse(&out.blob).unwrap();
    assert!(view.tokenizer.is_none(), "no WordPiece section");
    let u = microbert::UnigramTokenizer::new(&view).expect("a Unigram section");
    let mut scratch = vec![0u8; u.scratch_bytes("ab c")];
    let mut ids = [0u32; 8];
    let enc = u.encode("ab c", &mut scratch, &mut ids).unwrap();
    assert_eq!(&ids[..enc.len], &[0, 8, 10, 2]);
    // The trained rows 2.. become rows 0..: per-row quantisation keeps them identical.
    let (p, q) = (&view.embeddings.position, &bert_view.embeddings.position);
    assert_eq!(
        view.config.max_position_embeddings + 2,
        bert_view.config.max_position_embeddings
    );
    let row = view.config.hidden_size as usize;
    assert_eq!(p.weight.data, &q.weight.data[2 * row..]);
    assert_eq!(p.row_multiplier.data, &q.row_multiplier.data[2 * 4..]);
    assert!(
        out.provenance
            .lines()
            .any(|l| l.trim().starts_with("position_offset") && l.trim().ends_with(" 2")),
        "{}",
        out.provenance
    );
    // The word table and the layers are the BERT conversion's.
    assert_eq!(
        view.embeddings.word.weight.data,
        bert_view.embeddings.word.weight.data
    );
}

#[test]
fn other_roberta_family_models_are_refused_by_name() {
    let ck = Checkpoint::load(&Files::Memory(xlmr_files("roberta"))).unwrap();
    let e = convert(&ck, &Options::default()).unwrap_err().to_string();
    assert!(e.contains("byte-level BPE"), "{e}");
    let mut files = crate::fixture::checkpoint_files().unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&files["config.json"]).unwrap();
    config["model_type"] = "xlm-roberta".into();
    files.insert("config.json".into(), config.to_string().into_bytes());
    let ck = Checkpoint::load(&Files::Memory(files)).unwrap();
    let e = convert(&ck, &Options::default()).unwrap_err().to_string();
    assert!(e.contains("SentencePiece Unigram"), "{e}");
    let mut files = xlmr_files("xlm-roberta");
    let t = String::from_utf8(files["tokenizer.json"].clone()).unwrap();
    let t = t.replace("\"byte_fallback\":false", "\"byte_fallback\":true");
    files.insert("tokenizer.json".into(), t.into_bytes());
    let e = Checkpoint::load(&Files::Memory(files))
        .err()
        .expect("refused");
    assert!(format!("{e:#}").contains("byte_fallback"), "{e:#}");
}
