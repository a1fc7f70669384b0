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

/// `--keep-vocab` on a Unigram vocabulary: the specials, single characters and the lowest
/// score stay, the pieces' scores and embedding rows travel with them, the specials get their
/// new ids, and a text whose best segmentation used only kept pieces keeps it.
#[test]
fn unigram_vocabularies_reduce_by_a_piece_list() {
    // The fixture's word table has the BERT fixture's rows; keep one per piece.
    let mut files = xlmr_files("xlm-roberta");
    let ck = Checkpoint::load(&Files::Memory(files.clone())).unwrap();
    let n = ck.vocab.len();
    let st = ck.tensors().unwrap();
    let word = "roberta.embeddings.word_embeddings.weight";
    let table = st.tensor(word).unwrap();
    let row = table.data().len() / table.shape()[0];
    let rows = table.data()[..n * row].to_vec();
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != word)
        .collect();
    let shape = vec![n, table.shape()[1]];
    let view = safetensors::tensor::TensorView::new(table.dtype(), shape, &rows).unwrap();
    tensors.push((word.to_owned(), view));
    let bytes = safetensors::serialize(tensors, None).unwrap();
    files.insert("model.safetensors".into(), bytes);
    let mut config: serde_json::Value = serde_json::from_slice(&files["config.json"]).unwrap();
    config["vocab_size"] = n.into();
    files.insert("config.json".into(), config.to_string().into_bytes());
    let ck = Checkpoint::load(&Files::Memory(files)).unwrap();
    let full_vocab = ck.vocab.clone();
    let full_scores = ck.unigram.as_ref().unwrap().scores.clone();
    let full_blob = convert(&ck, &Options::default()).unwrap().blob;
    let full_word = ck.f32(word).unwrap();
    let list = std::env::temp_dir().join(format!("microbert-keep-u-{}.txt", std::process::id()));
    std::fs::write(&list, "ab\nnot-a-piece\n").unwrap();
    let r = crate::vocab::reduce(ck, list.to_str().unwrap(), &|_| {
        anyhow::bail!("a list spec counts no corpus")
    })
    .unwrap();
    std::fs::remove_file(&list).ok();
    let ck = r.checkpoint;
    // Everything but `▁ab` (two characters after the `▁`, not listed).
    let want: Vec<&String> = full_vocab.iter().filter(|p| *p != "▁ab").collect();
    assert_eq!(ck.vocab.iter().collect::<Vec<_>>(), want);
    assert_eq!(ck.config.vocab_size, ck.vocab.len());
    assert!(
        r.notes[0].contains("1 lines are not tokens"),
        "{:?}",
        r.notes
    );
    let u = ck.unigram.as_ref().unwrap();
    let hidden = full_word.shape[1];
    let reduced_word = ck.f32(word).unwrap();
    for (new, piece) in ck.vocab.iter().enumerate() {
        let old = full_vocab.iter().position(|p| p == piece).unwrap();
        assert_eq!(u.scores[new], full_scores[old], "{piece}");
        assert_eq!(
            reduced_word.data[new * hidden..(new + 1) * hidden],
            full_word.data[old * hidden..(old + 1) * hidden]
        );
    }
    // `<unk> <s> </s> <pad>` keep 3 0 2 1; `<mask>` moves from 12 to 11.
    assert_eq!(u.ids, [3, 0, 2, 1, 11]);
    let blob = convert(&ck, &Options::default()).unwrap().blob;
    let pieces = |blob: &[u8], vocab: &[String], text: &str| -> Vec<String> {
        let view = microbert::parse(blob).unwrap();
        let t = microbert::UnigramTokenizer::new(&view).unwrap();
        let mut scratch = vec![0u8; t.scratch_bytes(text)];
        let mut ids = [0u32; 16];
        let n = t.encode(text, &mut scratch, &mut ids).unwrap().len;
        ids[1..n - 1]
            .iter()
            .map(|&i| vocab[i as usize].clone())
            .collect()
    };
    // Best paths over kept pieces only stay; `▁ab` falls back to `▁a b`.
    for text in ["cab", "a b c", "ba"] {
        assert_eq!(
            pieces(&blob, &ck.vocab, text),
            pieces(&full_blob, &full_vocab, text),
            "{text}"
        );
    }
    assert_eq!(pieces(&full_blob, &full_vocab, "ab c"), ["▁ab", "▁c"]);
    assert_eq!(pieces(&blob, &ck.vocab, "ab c"), ["▁a", "b", "▁c"]);
}
