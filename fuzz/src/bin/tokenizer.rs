//! Fuzz target `tokenizer`: the WordPiece tokenizer on arbitrary UTF-8 (the input as lossy
//! UTF-8, so no input is wasted), over three kinds of vocabulary chosen by the first byte:
//! - `% 4 == 0`: the fixture model's tokenizer, as the blob has it;
//! - `% 4 == 1`: the harness vocabulary ([`microbert_fuzz::tokens::harness_tokens`]: cased
//!   and uncased words, accents, CJK, Hangul, emoji, three continuation prefixes) with every
//!   setting (lower-casing, accent stripping, text cleaning, CJK splitting, the word length
//!   limit, the prefix, the special ids) taken from the next bytes;
//! - `% 4 == 2`: a vocabulary read from the input itself (up to 48 tokens separated by
//!   `\n`, before a `\0`), with the same settings;
//! - `% 4 == 3`: an inconsistent section built from raw input bytes (offsets, sorted index
//!   and token bytes that do not agree): `Tokenizer::from_section` promises wrong ids at
//!   worst, never a panic.
//!
//! [`microbert_fuzz::tokens::check`] asserts the invariants (determinism, ids in the
//! vocabulary, `encode` truncation and buffer rules, splitting at a space).
#![no_main]

use microbert::Tokenizer;
use microbert::blob::TokenizerSection;
use microbert_fuzz::tokens::{self, Vocab};
use microbert_fuzz::{Input, fixture, text};
use std::sync::OnceLock;

fn harness_vocab() -> &'static Vocab {
    static VOCAB: OnceLock<Vocab> = OnceLock::new();
    VOCAB.get_or_init(|| Vocab::new(tokens::harness_tokens()))
}

/// Settings of a section from the input.
fn configure(input: &mut Input<'_>, s: &mut TokenizerSection<'_>, vocab_size: u32) {
    let flags = input.byte();
    s.lowercase = flags & 1 != 0;
    s.strip_accents = flags & 2 != 0;
    s.clean_text = flags & 4 != 0;
    s.handle_chinese_chars = flags & 8 != 0;
    s.max_input_chars_per_word = match flags >> 4 {
        0..=9 => 100,
        10..=14 => 1 + u32::from(input.byte() % 12),
        _ => input.u32().max(1),
    };
    s.continuing_subword_prefix = input.pick(&["##", "", "@@", "▁", "#"]);
    if input.chance(1, 4) {
        for id in [
            &mut s.unk_id,
            &mut s.cls_id,
            &mut s.sep_id,
            &mut s.pad_id,
            &mut s.mask_id,
        ] {
            *id = input.below(u64::from(vocab_size)) as u32;
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let seed = u64::from(input.byte());
    match mode % 4 {
        0 => {
            let model = fixture::model();
            let tok = Tokenizer::new(model);
            let text = text(input.rest());
            tokens::check(
                &tok,
                model.tokenizer.as_ref(),
                model.config.vocab_size,
                &text,
                seed,
            );
        }
        1 => {
            let vocab = harness_vocab();
            let mut section = vocab.section();
            configure(&mut input, &mut section, vocab.len());
            let text = text(input.rest());
            tokens::check(
                &Tokenizer::from_section(section),
                Some(&section),
                vocab.len(),
                &text,
                seed,
            );
        }
        2 => {
            let rest = input.rest();
            let (list, body) = match rest.iter().position(|&b| b == 0) {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (&rest[..0], rest),
            };
            // Tokens hold no whitespace (a special token never spans a space).
            let list = text(list);
            let vocab = Vocab::new(
                list.split('\n')
                    .take(48)
                    .map(|t| t.split_whitespace().collect::<String>()),
            );
            if vocab.is_empty() {
                return;
            }
            let mut input = Input::new(body);
            let mut section = vocab.section();
            configure(&mut input, &mut section, vocab.len());
            let text = text(input.rest());
            tokens::check(
                &Tokenizer::from_section(section),
                Some(&section),
                vocab.len(),
                &text,
                seed,
            );
        }
        _ => {
            let vocab = harness_vocab();
            let mut section = vocab.section();
            configure(&mut input, &mut section, vocab.len());
            let lens = [input.byte(), input.byte(), input.byte()].map(usize::from);
            let tokens_raw = input.take(lens[0]);
            let offsets = input.take(lens[1]);
            let sorted = input.take(lens[2]);
            section.offsets = offsets;
            section.sorted_ids = sorted;
            // Raw token bytes (not necessarily UTF-8), or the harness vocabulary's.
            if !tokens_raw.is_empty() {
                section.tokens = tokens_raw;
            }
            section.unk_id = input.u32();
            section.cls_id = input.u32();
            section.sep_id = input.u32();
            let text = text(input.rest());
            tokens::check(&Tokenizer::from_section(section), None, 0, &text, seed);
        }
    }
});
