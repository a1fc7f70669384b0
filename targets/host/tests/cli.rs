//! The `microbert` command run as a user runs it (the built binary, the committed fixture
//! blob): batch verbs lose nothing.
//!
//! - 10,000 input lines with 100 corrupt ones spread through them (invalid UTF-8 of several
//!   kinds, two lines over the 16 MiB limit, the last line corrupt and without `\n`) give
//!   10,000 output lines: the 9,900 good ones byte-identical to a run without the corrupt
//!   lines (`--hash` included), each corrupt one `{"line": N, "error": ...}` with its N, a
//!   non-zero status and one summary line on stderr. For `embed` and `tokenize`.
//! - `--fail-fast`, a closed stdout (`| head -1`), empty stdin, CRLF, empty lines, a final
//!   line without `\n`, the truncation note, whole-run errors and `--help`.
//! - The same 10,000-line case with the real MiniLM blob and movie reviews
//!   (`MICROBERT_CLI_LINES` lines, 1,000 unless set; needs `cargo xtask prepare`).
//! - `embed --prefix`, and `embed` on a Unigram-only blob (multilingual-e5-small, needs
//!   `cargo xtask prepare-e5`) against the library's tokens and hashes.

use microbert_host::lines::MAX_LINE_BYTES;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_microbert");

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures/tiny/model.blob")
}

/// Runs `microbert ARGS` with `stdin` fed from a thread.
fn run(args: &[&str], stdin: Vec<u8>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("microbert starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    let feeder = std::thread::spawn(move || {
        // The child may stop reading early (--fail-fast): a broken pipe is fine.
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().expect("microbert runs");
    feeder.join().expect("feeder thread");
    out
}

fn text(bytes: &[u8]) -> &str {
    core::str::from_utf8(bytes).expect("UTF-8 output")
}

/// Output lines (each ends with `\n`; no text after the last).
fn lines(stdout: &[u8]) -> Vec<&str> {
    let s = text(stdout);
    assert!(s.is_empty() || s.ends_with('\n'), "output ends mid-line");
    s.lines().collect()
}

/// A verb with its model: `embed --hash` or `tokenize`.
fn verb_args<'a>(verb: &'a str, blob: &'a str) -> Vec<&'a str> {
    match verb {
        "embed" => vec!["embed", "--model", blob, "--hash"],
        _ => vec![verb, "--model", blob],
    }
}

/// Short seeded texts over the fixture's vocabulary (and beyond it), a few of them empty
/// or CRLF-terminated, none long enough to be truncated.
fn fixture_texts(count: usize) -> Vec<Vec<u8>> {
    const WORDS: &[&str] = &[
        "the",
        "model",
        "reads",
        "a",
        "long",
        "sentence",
        "about",
        "paris",
        "and",
        "london",
        "café",
        "naive",
        "über",
        "中国",
        "人",
        "river",
        "music",
        "film",
        "xylophone",
        "!",
        "?",
        "42",
        "(book)",
        "water,",
        "night.",
        "don't",
    ];
    let mut state = 0x5EED_1234_ABCD_0001u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|i| {
            let n = (next() % 12) as usize + usize::from(i % 97 != 0);
            let mut line = (0..n)
                .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
                .into_bytes();
            if i % 13 == 5 {
                line.push(b'\r');
            }
            line
        })
        .collect()
}

/// The corrupt lines' numbers (from 1) among `n` lines: line 2, the last line, and one in
/// each block of 100 lines between.
fn corrupt_numbers(n: usize) -> Vec<usize> {
    assert!(
        n >= 300 && n.is_multiple_of(100),
        "{n} lines: a multiple of 100, at least 300"
    );
    let count = n / 100;
    let mut numbers = vec![2];
    numbers.extend((1..count - 1).map(|k| k * 100 + (k * 37) % 97 + 1));
    numbers.push(n);
    numbers
}

/// The `i`-th corrupt line and the fragment its error must contain.
fn corrupt_line(i: usize) -> (Vec<u8>, &'static str) {
    const UTF8: &str = "not valid UTF-8";
    const LONG: &str = "longer than the 16777216-byte limit";
    if i % 50 == 49 {
        // Over the limit (valid UTF-8 otherwise): read to its end and dropped.
        return (vec![b'a'; MAX_LINE_BYTES + 1 + i], LONG);
    }
    let line: Vec<u8> = match i % 10 {
        0 => b"\x80".to_vec(),
        1 => b"caf\xc3".to_vec(),
        2 => b"\xe2\x82 euro sign cut short".to_vec(),
        3 => b"\xc0\xaf overlong slash".to_vec(),
        4 => b"\xed\xa0\x80 a surrogate".to_vec(),
        5 => b"\xf4\x90\x80\x80 past U+10FFFF".to_vec(),
        6 => b"\xff\xfe utf-16 byte order mark".to_vec(),
        7 => b"latin-1 caf\xe9 in a good sentence".to_vec(),
        8 => b"cut emoji \xf0\x9f\x98\r".to_vec(),
        _ => b"\xf8\x88\x80\x80\x80 five-byte form".to_vec(),
    };
    (line, UTF8)
}

/// Figures of one lose-nothing run.
struct Figures {
    lines: usize,
    failed: usize,
    seconds: f64,
}

/// The 10,000-line case for `verb` on `blob`: `good` texts with `n - good.len()` corrupt
/// lines spread through them, against a run on the good texts alone.
fn lose_nothing(verb: &str, blob: &Path, good: &[Vec<u8>], n: usize) -> Figures {
    let blob = blob.to_str().expect("UTF-8 path");
    let corrupt = corrupt_numbers(n);
    assert_eq!(good.len() + corrupt.len(), n);

    let mut clean = Vec::new();
    for line in good {
        clean.extend_from_slice(line);
        clean.push(b'\n');
    }
    let mut mixed = Vec::new();
    let mut expected_errors = Vec::new();
    let (mut g, mut c) = (0, 0);
    for number in 1..=n {
        if corrupt.get(c) == Some(&number) {
            let (line, fragment) = corrupt_line(c);
            mixed.extend_from_slice(&line);
            expected_errors.push((number, fragment));
            c += 1;
        } else {
            mixed.extend_from_slice(&good[g]);
            g += 1;
        }
        // The last line (a corrupt one) has no `\n`.
        if number < n {
            mixed.push(b'\n');
        }
    }

    let reference = run(&verb_args(verb, blob), clean);
    assert!(
        reference.status.success(),
        "{verb} on the good lines failed: {}",
        text(&reference.stderr)
    );
    assert_eq!(
        text(&reference.stderr),
        "",
        "{verb}: stderr of the good lines"
    );
    let want = lines(&reference.stdout);
    assert_eq!(want.len(), good.len());

    let start = Instant::now();
    let got = run(&verb_args(verb, blob), mixed);
    let seconds = start.elapsed().as_secs_f64();
    let got_lines = lines(&got.stdout);
    assert_eq!(got_lines.len(), n, "{verb}: one output line per input line");
    let mut want = want.into_iter();
    let mut errors = expected_errors.iter();
    let mut next_error = errors.next();
    for (i, line) in got_lines.iter().enumerate() {
        let number = i + 1;
        match next_error {
            Some(&(bad, fragment)) if bad == number => {
                let prefix = format!("{{\"line\":{number},\"error\":\"");
                assert!(line.starts_with(&prefix), "line {number}: {line}");
                let json: serde_json::Value = serde_json::from_str(line).expect("JSON");
                let fields = json.as_object().expect("an object");
                assert_eq!(fields.len(), 2, "line {number}: {line}");
                let msg = json["error"].as_str().expect("error is a string");
                assert!(msg.contains(fragment), "line {number}: {msg}");
                next_error = errors.next();
            }
            _ => assert_eq!(
                Some(*line),
                want.next(),
                "{verb}: output line {number} differs from the run without corrupt lines"
            ),
        }
    }
    assert_eq!(want.next(), None);
    assert!(next_error.is_none());
    assert_eq!(
        got.status.code(),
        Some(1),
        "{verb}: status with failed lines"
    );
    assert_eq!(
        text(&got.stderr),
        format!(
            "microbert: {} of {n} lines failed (first: line 2: the line is not valid UTF-8 \
             (first invalid byte at offset 0))\n",
            corrupt.len()
        ),
        "{verb}: stderr"
    );
    Figures {
        lines: n,
        failed: corrupt.len(),
        seconds,
    }
}

#[test]
fn embed_loses_no_line() {
    let good = fixture_texts(9_900);
    let f = lose_nothing("embed", &fixture(), &good, 10_000);
    println!(
        "embed (fixture): {} lines, {} failed, {:.2} s",
        f.lines, f.failed, f.seconds
    );
}

#[test]
fn tokenize_loses_no_line() {
    let good = fixture_texts(9_900);
    let f = lose_nothing("tokenize", &fixture(), &good, 10_000);
    println!(
        "tokenize (fixture): {} lines, {} failed, {:.2} s",
        f.lines, f.failed, f.seconds
    );
}

/// The lose-nothing case with all-MiniLM-L6-v2 and movie-review sentences.
#[test]
fn embed_loses_no_line_with_minilm() {
    let blob = microbert_tests::corpus::cache_dir()
        .join("blobs")
        .join("minilm.blob");
    use microbert_tests::require::require;
    let Some(_) = require(
        std::fs::metadata(&blob),
        blob.display(),
        "cargo xtask prepare",
    ) else {
        return;
    };
    let Some(reviews) = require(
        microbert_tests::corpus::try_movie_reviews(),
        "movie reviews",
        "cargo xtask prepare",
    ) else {
        return;
    };
    let n: usize = match std::env::var("MICROBERT_CLI_LINES") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().expect("MICROBERT_CLI_LINES: a number"),
        _ => 1_000,
    };
    let good: Vec<Vec<u8>> = reviews
        .iter()
        .take(n - n / 100)
        .map(|r| r.clone().into_bytes())
        .collect();
    assert_eq!(good.len(), n - n / 100, "not enough reviews for {n} lines");
    let f = lose_nothing("embed", &blob, &good, n);
    println!(
        "embed (MiniLM, movie reviews): {} lines ({} corrupt, all reported), {:.1} s, {:.0} lines/s",
        f.lines,
        f.failed,
        f.seconds,
        f.lines as f64 / f.seconds
    );
}

#[test]
fn fail_fast_stops_at_the_first_bad_line() {
    let blob = fixture();
    let blob = blob.to_str().expect("UTF-8 path");
    for verb in ["embed", "tokenize"] {
        let mut args = verb_args(verb, blob);
        args.push("--fail-fast");
        let out = run(&args, b"the model\n\xff\nparis\n".to_vec());
        assert_eq!(out.status.code(), Some(1), "{verb}");
        assert_eq!(lines(&out.stdout).len(), 1, "{verb}: only the line before");
        assert_eq!(
            text(&out.stderr),
            "microbert: error: line 2: the line is not valid UTF-8 (first invalid byte at offset 0)\n",
            "{verb}"
        );
        // Without bad lines, --fail-fast changes nothing.
        let with = run(&args, b"the model\nparis\n".to_vec());
        let without = run(&verb_args(verb, blob), b"the model\nparis\n".to_vec());
        assert!(with.status.success(), "{verb}");
        assert_eq!(with.stdout, without.stdout, "{verb}");
    }
}

#[test]
fn closed_stdout_ends_quietly() {
    let blob = fixture();
    let blob = blob.to_str().expect("UTF-8 path");
    // Far more output than a pipe holds, so the verb must meet the closed pipe.
    let input: Vec<u8> = fixture_texts(10_000).join(&b'\n');
    for verb in ["embed", "tokenize"] {
        let mut child = Command::new(BIN)
            .args(verb_args(verb, blob))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("microbert starts");
        let mut stdin = child.stdin.take().expect("piped");
        let feed = input.clone();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&feed);
        });
        let mut stderr = child.stderr.take().expect("piped");
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            stderr.read_to_string(&mut s).map(|_| s)
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("one line");
        assert!(first.starts_with('{') && first.ends_with("}\n"), "{first}");
        drop(stdout); // `| head -1`
        let status = child.wait().expect("microbert exits");
        feeder.join().expect("feeder");
        let stderr = errors.join().expect("stderr thread").expect("stderr");
        assert!(status.success(), "{verb}: {status}, stderr {stderr:?}");
        assert_eq!(stderr, "", "{verb}: stderr");
    }
}

#[test]
fn empty_stdin_gives_nothing() {
    let blob = fixture();
    let blob = blob.to_str().expect("UTF-8 path");
    for verb in ["embed", "tokenize"] {
        let out = run(&verb_args(verb, blob), Vec::new());
        assert!(out.status.success(), "{verb}");
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{verb}");
    }
}

#[test]
fn crlf_empty_lines_and_a_final_line_without_newline() {
    let blob = fixture();
    let blob = blob.to_str().expect("UTF-8 path");
    for verb in ["embed", "tokenize"] {
        let args = verb_args(verb, blob);
        let one = |t: &str| {
            let out = run(&args, format!("{t}\n").into_bytes());
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{verb} {t:?}"
            );
            String::from_utf8(out.stdout).expect("UTF-8")
        };
        let out = run(&args, b"the model\r\n\r\n\nparis".to_vec());
        assert!(out.status.success(), "{verb}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "");
        let want = [one("the model"), one(""), one(""), one("paris")].concat();
        assert_eq!(text(&out.stdout), want, "{verb}");
        // The empty text is [CLS] [SEP].
        let empty = one("");
        if verb == "tokenize" {
            assert_eq!(empty, "{\"ids\":[2,3]}\n");
        } else {
            assert!(
                empty.starts_with("{\"tokens\":2,\"truncated\":false,"),
                "{empty}"
            );
        }
    }
}

#[test]
fn truncation_is_one_note_on_stderr() {
    let blob = fixture();
    let blob = blob.to_str().expect("UTF-8 path");
    let long = "the model reads a long sentence ".repeat(20);
    let input = format!("{long}\nparis\n{long}\n");
    let out = run(
        &["embed", "--model", blob, "--max-tokens", "16"],
        input.into_bytes(),
    );
    assert!(out.status.success());
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 3);
    assert!(got[0].contains("\"truncated\":true") && got[1].contains("\"truncated\":false"));
    assert_eq!(
        text(&out.stderr),
        "microbert: note: 2 texts truncated to the token limit (--max-tokens; first: line 1, \
         142 tokens cut to 16)\n"
    );
}

#[test]
fn whole_run_errors_stop_at_once() {
    let blob = fixture();
    let blob = blob.to_str().expect("UTF-8 path");
    let missing = run(
        &["embed", "--model", "/nonexistent/model.blob"],
        b"a\n".to_vec(),
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    assert!(
        text(&missing.stderr)
            .starts_with("microbert: error: cannot read blob /nonexistent/model.blob"),
        "{}",
        text(&missing.stderr)
    );
    let garbage = std::env::temp_dir().join(format!("microbert-cli-{}.blob", std::process::id()));
    std::fs::write(&garbage, b"not a blob at all, just some bytes").expect("temp file");
    let bad = run(
        &["tokenize", "--model", garbage.to_str().expect("UTF-8")],
        b"a\n".to_vec(),
    );
    std::fs::remove_file(&garbage).ok();
    assert_eq!(bad.status.code(), Some(1));
    assert!(bad.stdout.is_empty());
    assert!(
        text(&bad.stderr).contains("is not a valid model blob"),
        "{}",
        text(&bad.stderr)
    );
    let flag = run(
        &["embed", "--model", blob, "--max-tokens", "1"],
        b"a\n".to_vec(),
    );
    assert_eq!(flag.status.code(), Some(1));
    assert_eq!(
        text(&flag.stderr),
        "microbert: error: --max-tokens must be at least 2 ([CLS] and [SEP])\n"
    );
    let unknown = run(&["embed", "--model", blob, "--no-such-flag"], Vec::new());
    assert_eq!(unknown.status.code(), Some(2), "clap's usage error");
}

#[test]
fn help_says_how_lines_and_errors_work() {
    for verb in ["embed", "tokenize"] {
        let out = run(&[verb, "--help"], Vec::new());
        assert!(out.status.success());
        let help = text(&out.stdout);
        for needle in [
            "--fail-fast",
            "{\"line\": N, \"error\": \"...\"}",
            "exits 1 with a count on stderr",
        ] {
            assert!(
                help.contains(needle),
                "{verb} --help lacks {needle:?}:\n{help}"
            );
        }
    }
}

/// `--kernels` runs every tier by name; each tier this CPU has gives the scalar
/// reference's hashes, and one it lacks is an error naming the CPU (not a silent fallback).
#[test]
fn every_kernel_tier_gives_the_same_hashes() {
    let blob = fixture();
    let blob = blob.to_str().expect("UTF-8 path");
    let input = b"the cat sat on the mat\nhello world\n".to_vec();
    let reference = run(
        &["embed", "--model", blob, "--hash", "--kernels", "scalar"],
        input.clone(),
    );
    assert!(reference.status.success(), "{}", text(&reference.stderr));
    for tier in microbert_host::Tier::ALL {
        let out = run(
            &["embed", "--model", blob, "--hash", "--kernels", tier.name()],
            input.clone(),
        );
        if tier.supported() {
            assert!(out.status.success(), "{tier}: {}", text(&out.stderr));
            assert_eq!(
                text(&out.stdout),
                text(&reference.stdout),
                "--kernels {tier}"
            );
        } else {
            assert!(
                !out.status.success(),
                "--kernels {tier} on a CPU without it"
            );
            assert!(text(&out.stderr).contains("lacks"), "{}", text(&out.stderr));
            eprintln!(
                "cli: --kernels {tier} not run here: {}",
                text(&out.stderr).trim()
            );
        }
    }
    let auto = run(
        &["embed", "--model", blob, "--hash", "--kernels", "auto"],
        input,
    );
    assert_eq!(
        text(&auto.stdout),
        text(&reference.stdout),
        "--kernels auto"
    );
}

/// Packing lines (`--batch-lines`) and threads (`--threads`) change no output byte: 200
/// fixture texts of mixed lengths with corrupt lines among them, a text past the packing
/// limit and `--max-tokens` truncation, line by line on one thread against groups of 7 and
/// 32 lines on 1 and 3 threads.
#[test]
fn batches_and_threads_give_the_same_lines() {
    let blob = fixture();
    let blob = blob.to_str().expect("UTF-8 path");
    let mut input = Vec::new();
    for (i, t) in fixture_texts(200).into_iter().enumerate() {
        if i % 37 == 5 {
            input.extend_from_slice(b"bad \xff line\n");
        }
        if i == 50 {
            input.extend_from_slice("word ".repeat(300).as_bytes());
            input.push(b'\n');
        }
        input.extend_from_slice(&t);
        input.push(b'\n');
    }
    for cut in [None, Some("20")] {
        let args = |batch: &'static str, threads: &'static str| {
            let mut a = vec![
                "embed",
                "--model",
                blob,
                "--hash",
                "--positions",
                "hierarchical",
            ];
            a.extend(["--batch-lines", batch, "--threads", threads]);
            if let Some(n) = cut {
                a.extend(["--max-tokens", n]);
            }
            a
        };
        let reference = run(&args("1", "1"), input.clone());
        assert_eq!(reference.status.code(), Some(1), "the corrupt lines fail");
        for (batch, threads) in [("7", "1"), ("32", "3"), ("32", "1")] {
            let out = run(&args(batch, threads), input.clone());
            assert_eq!(out.status.code(), Some(1));
            assert!(
                text(&out.stdout) == text(&reference.stdout),
                "--batch-lines {batch} --threads {threads} --max-tokens {cut:?}"
            );
            assert_eq!(text(&out.stderr), text(&reference.stderr));
        }
    }
}

/// `inspect --cpu` names the CPU, its features, every tier and the one chosen.
#[test]
fn inspect_cpu_names_the_chosen_tier() {
    let out = run(&["inspect", "--cpu"], Vec::new());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.starts_with("cpu: "), "{s}");
    assert!(s.contains("\nfeatures: "), "{s}");
    for tier in microbert_host::Tier::ALL {
        assert!(
            s.contains(&format!("  {:<12} ", tier.name())),
            "{tier} missing: {s}"
        );
    }
    let chosen = microbert_host::HostKernels::detect().tier();
    assert!(
        s.contains(&format!("chosen (--kernels auto): {chosen}\n")),
        "{s}"
    );
    // With a blob, the blob's description follows.
    let blob = fixture();
    let out = run(
        &["inspect", "--cpu", blob.to_str().expect("UTF-8 path")],
        Vec::new(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\nconfig:\n"));
    // Without either, a usage error.
    assert!(!run(&["inspect"], Vec::new()).status.success());
}

/// `inspect --fit` sizes this host's arena as `embed` allocates it: the detected tier and
/// every available thread (`Encoder::plan`, packed keys and values included), beside the
/// one-thread `scratch_bytes`.
#[test]
fn inspect_fit_sizes_the_host_arena_as_embed_allocates_it() {
    use microbert::model::parallel::Parallel as _;
    let blob = fixture();
    let bytes = std::fs::read(&blob).expect("fixture");
    let model = microbert::parse(&bytes).expect("fixture parses");
    let n = 64.min(model.max_tokens());
    let out = run(
        &[
            "inspect",
            blob.to_str().expect("UTF-8 path"),
            "--fit",
            "--tokens",
            &n.to_string(),
        ],
        Vec::new(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let host = microbert_host::HostKernels::detect();
    let threads = microbert_host::Threads::available();
    let row = |what: &str| -> usize {
        let line = s
            .lines()
            .find(|l| l.trim_start().starts_with(what))
            .unwrap_or_else(|| panic!("no `{what}` row: {s}"));
        line[what.len() + 2..]
            .split_whitespace()
            .next()
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("no byte count: {line}"))
    };
    let label = format!(
        "RAM: arena, this host ({}, {} threads)",
        host.tier(),
        threads.workers()
    );
    let arena = microbert::Encoder::new(&model, host)
        .with_parallel(threads)
        .plan(n)
        .arena_bytes();
    assert_eq!(row(&label), arena, "{s}");
    assert_eq!(
        row("RAM: scratch arena, embed, one thread"),
        microbert::scratch_bytes(&model, n)
    );
    assert_eq!(
        row("RAM: total, this host"),
        arena + microbert::prepared_bytes(&host, &model)
    );
}

/// `classify` with the trained sentiment head (`cargo xtask prepare` makes it): each line's
/// label, probabilities and `--logits` are the library's (`Encoder::classify` and
/// `microbert::output::softmax`), a pair line is a pair, and bad lines are error lines in
/// place; a blob without a classifier is one clear error.
#[test]
fn classify_gives_the_library_labels_line_by_line() {
    use microbert_tests::require::require;
    let blob = microbert_tests::corpus::cache_dir()
        .join("blobs")
        .join("minilm-sentiment.blob");
    let Some(bytes) = require(std::fs::read(&blob), blob.display(), "cargo xtask prepare") else {
        return;
    };
    let model = microbert::parse(&bytes).expect("blob parses");
    let enc = microbert::Encoder::new(&model, microbert::Scalar);
    let tok = microbert::Tokenizer::new(&model);
    let texts = [
        "a gorgeous, witty, seductive movie.",
        "the plot is a dull, tedious mess.",
        "",
    ];
    let mut input = Vec::new();
    for t in texts {
        input.extend_from_slice(t.as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(b"{\"text\": \"great acting\", \"text_pair\": \"awful script\"}\n");
    input.extend_from_slice(b"{\"text\": 5}\n");
    input.extend_from_slice(b"bad \xff byte\n");
    let blob_arg = blob.to_str().expect("UTF-8 path");
    let out = run(&["classify", "--logits", "--model", blob_arg], input);
    assert_eq!(out.status.code(), Some(1), "two lines fail");
    assert!(
        text(&out.stderr).contains("2 of 6 lines failed"),
        "{}",
        text(&out.stderr)
    );
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 6);
    let library = |ids: &[u32], types: &[u32]| {
        let mut arena = vec![0u8; microbert::scratch_bytes(&model, ids.len())];
        let mut logits = [0i32; 2];
        enc.classify(ids, Some(types), &mut arena, &mut logits)
            .expect("classifies");
        let mut p = [0f32; 2];
        microbert::output::softmax(&logits, &mut p);
        (p, logits)
    };
    let (mut ids, mut types) = (vec![0u32; 512], vec![0u32; 512]);
    let mut expected = Vec::new();
    for t in texts {
        let n = tok.encode(t, &mut ids).expect("encodes").len;
        expected.push(library(&ids[..n], &vec![0; n]));
    }
    let n = tok
        .encode_pair("great acting", "awful script", &mut ids, &mut types)
        .expect("encodes")
        .len;
    assert!(types[..n].contains(&1), "the pair has segment B");
    expected.push(library(&ids[..n], &types[..n]));
    for (line, (p, logits)) in got.iter().zip(&expected) {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(
            v["logits"],
            serde_json::json!(logits),
            "--logits: the Q.16 logits"
        );
        let label = if p[1] > p[0] { "positive" } else { "negative" };
        assert_eq!(v["label"], label, "{line}");
        for (i, name) in ["negative", "positive"].iter().enumerate() {
            // serde_json parses without exact round-trip: compare as the f32 printed.
            let got = v["scores"][name].as_f64().map(|x| x as f32);
            assert_eq!(got, Some(p[i]), "{line}");
        }
    }
    let first: serde_json::Value = serde_json::from_str(got[0]).expect("JSON");
    assert_eq!(first["label"], "positive", "a clearly positive review");
    let second: serde_json::Value = serde_json::from_str(got[1]).expect("JSON");
    assert_eq!(second["label"], "negative", "a clearly negative review");
    assert!(got[4].starts_with("{\"line\":5,\"error\":"), "{}", got[4]);
    assert!(got[4].contains("\\\"text\\\""), "{}", got[4]);
    assert!(got[5].starts_with("{\"line\":6,\"error\":"), "{}", got[5]);

    // The fixture has no classifier: one error, no output.
    let fixture = fixture();
    let out = run(
        &["classify", "--model", fixture.to_str().expect("UTF-8")],
        b"text\n".to_vec(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("has no sequence classifier"),
        "{}",
        text(&out.stderr)
    );
}

/// `embed --tokens`: each line's token embeddings are the library's last hidden states
/// (`Encoder::embed_tokens`), and the sentence embeddings are those of a run without the
/// flag (which packs the lines into one pass).
#[test]
fn embed_tokens_gives_the_library_hidden_states() {
    let blob = fixture();
    let blob_arg = blob.to_str().expect("UTF-8 path");
    let input = b"the model\nparis is a city\n\nhello world\n".to_vec();
    let with = run(&["embed", "--model", blob_arg, "--tokens"], input.clone());
    let without = run(&["embed", "--model", blob_arg, "--batch-lines", "4"], input);
    assert!(with.status.success() && without.status.success());
    let bytes = std::fs::read(&blob).expect("fixture");
    let model = microbert::parse(&bytes).expect("parses");
    let enc = microbert::Encoder::new(&model, microbert::Scalar);
    let tok = microbert::Tokenizer::new(&model);
    let d = model.config.hidden_size as usize;
    let texts = ["the model", "paris is a city", "", "hello world"];
    let (a, b) = (lines(&with.stdout), lines(&without.stdout));
    assert_eq!((a.len(), b.len()), (4, 4));
    for ((line, plain), text) in a.iter().zip(&b).zip(texts) {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        let w: serde_json::Value = serde_json::from_str(plain).expect("JSON");
        assert_eq!(v["embedding"], w["embedding"], "{text:?}");
        assert!(w.get("token_embeddings").is_none());
        let mut ids = vec![0u32; 64];
        let n = tok.encode(text, &mut ids).expect("encodes").len;
        let mut arena = vec![0u8; microbert::scratch_bytes(&model, n)];
        let mut pooled = vec![0i32; d];
        let states = enc
            .embed_tokens(
                &ids[..n],
                microbert::EmbedOptions::default(),
                &mut arena,
                &mut pooled,
            )
            .expect("embeds");
        let rows = v["token_embeddings"].as_array().expect("token_embeddings");
        assert_eq!(rows.len(), n, "{text:?}");
        assert_eq!(v["tokens"], n);
        for (row, want) in rows.iter().zip(states.chunks_exact(d)) {
            let got: Vec<f32> = row
                .as_array()
                .expect("a row")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect();
            let want: Vec<f32> = want.iter().map(|&q| q as f32 / 65536.0).collect();
            assert_eq!(got, want, "{text:?}");
        }
    }
}

/// `tag` with the trained segmentation tagger (`cargo xtask prepare` makes it): each word
/// of a line is the slice `start..end` (in characters) of the line, words come in order
/// without overlap, and each word's label and score are the library's (`Encoder::tag`'s
/// row of the word's first piece, `microbert::output::softmax`); `--all` keeps the words
/// labelled `O` (this tagger has none, so the lines are the same), `--max-tokens` cuts
/// the words after the limit, and bad lines are error lines in place; a blob without a
/// token classifier is one clear error.
#[test]
fn tag_gives_the_library_labels_per_word() {
    use microbert_tests::require::require;
    let blob = microbert_tests::corpus::cache_dir()
        .join("blobs")
        .join("minilm-segment.blob");
    let Some(bytes) = require(std::fs::read(&blob), blob.display(), "cargo xtask prepare") else {
        return;
    };
    let model = microbert::parse(&bytes).expect("blob parses");
    let enc = microbert::Encoder::new(&model, microbert::Scalar);
    let tok = microbert::Tokenizer::new(&model);
    let texts = [
        "中共中央总书记、国家主席江泽民发表新年讲话。",
        "Café au lait,  naïve   résumé!",
        "",
        "“１９９８年” 新年好",
    ];
    let mut input = Vec::new();
    for t in texts {
        input.extend_from_slice(t.as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(b"{\"text\": \"a\", \"text_pair\": \"b\"}\n");
    input.extend_from_slice(b"bad \xff byte\n");
    let blob_arg = blob.to_str().expect("UTF-8 path");
    let out = run(&["tag", "--model", blob_arg], input.clone());
    assert_eq!(out.status.code(), Some(1), "two lines fail");
    assert!(
        text(&out.stderr).contains("2 of 6 lines failed"),
        "{}",
        text(&out.stderr)
    );
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 6);
    let all = run(&["tag", "--model", blob_arg, "--all"], input);
    assert_eq!(lines(&all.stdout), got, "no word of this tagger is O");
    let labels = ["B", "I"];
    for (t, line) in texts.iter().zip(&got) {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(v["truncated"], false, "{line}");
        let mut ids = vec![0u32; 128];
        let mut spans = vec![None; 128];
        let n = tok
            .encode_spanned(t, &mut ids, &mut spans)
            .expect("encodes")
            .len;
        let mut logits = vec![0i32; n * 2];
        let mut arena = vec![0u8; microbert::scratch_bytes(&model, n)];
        enc.tag(&ids[..n], None, &mut arena, &mut logits)
            .expect("tags");
        // The library's first piece of each word.
        let mut expected = Vec::new();
        let mut previous = None;
        for (span, row) in spans[..n].iter().zip(logits.chunks_exact(2)) {
            if let Some(s) = span
                && previous != Some(s.word)
            {
                previous = Some(s.word);
                let mut p = [0f32; 2];
                microbert::output::softmax(row, &mut p);
                let best = usize::from(row[1] > row[0]);
                expected.push((s.start, s.end, labels[best], p[best]));
            }
        }
        let entities = v["entities"].as_array().expect("entities");
        assert_eq!(entities.len(), expected.len(), "{t:?}: {line}");
        let chars: Vec<char> = t.chars().collect();
        let mut end_before = 0;
        for (e, &(start, end, label, score)) in entities.iter().zip(&expected) {
            let (s, en) = (e["start"].as_u64(), e["end"].as_u64());
            assert_eq!((s, en), (Some(start.into()), Some(end.into())), "{line}");
            let (s, en) = (start as usize, end as usize);
            assert!(end_before <= s && s < en && en <= chars.len(), "{line}");
            end_before = en;
            let word: String = chars[s..en].iter().collect();
            assert_eq!(e["word"], word.as_str(), "{line}");
            assert_eq!(e["label"], label, "{line}");
            assert_eq!(e["score"].as_f64().map(|x| x as f32), Some(score), "{line}");
        }
    }
    let first: serde_json::Value = serde_json::from_str(got[0]).expect("JSON");
    assert_eq!(
        first["entities"].as_array().map(Vec::len),
        Some(texts[0].chars().count()),
        "one word per CJK character and punctuation mark"
    );
    let accented: serde_json::Value = serde_json::from_str(got[1]).expect("JSON");
    let words: Vec<&str> = accented["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .filter_map(|e| e["word"].as_str())
        .collect();
    assert_eq!(words, ["Café", "au", "lait", ",", "naïve", "résumé", "!"]);
    assert_eq!(got[2], "{\"entities\":[],\"truncated\":false}");
    assert!(got[4].starts_with("{\"line\":5,\"error\":"), "{}", got[4]);
    assert!(got[4].contains("text_pair"), "{}", got[4]);
    assert!(got[5].starts_with("{\"line\":6,\"error\":"), "{}", got[5]);

    // Cut at 8 tokens: [CLS], six characters, [SEP].
    let out = run(
        &["tag", "--model", blob_arg, "--max-tokens", "8"],
        format!("{}\n", texts[0]).into_bytes(),
    );
    let v: serde_json::Value = serde_json::from_str(lines(&out.stdout)[0]).expect("JSON");
    assert_eq!(v["truncated"], true);
    assert_eq!(v["entities"].as_array().map(Vec::len), Some(6));

    // The fixture has no classifier: one error, no output.
    let fixture = fixture();
    let out = run(
        &["tag", "--model", fixture.to_str().expect("UTF-8")],
        b"text\n".to_vec(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("has no token classifier"),
        "{}",
        text(&out.stderr)
    );
}

/// `embed --prefix P` on a line is `embed` on `P` + the line: same tokens, same hash, for
/// every line; the prefix is counted in the tokens; `--help` documents it.
#[test]
fn embed_prefix_is_prepended_to_every_text() {
    let blob = fixture();
    let blob = blob.to_str().expect("UTF-8 path");
    let texts = ["hello world", "the tiny fixture", ""];
    let input: String = texts.iter().map(|t| format!("{t}\n")).collect();
    let prefixed: String = texts.iter().map(|t| format!("query: {t}\n")).collect();
    let with = run(
        &["embed", "--model", blob, "--hash", "--prefix", "query: "],
        input.clone().into_bytes(),
    );
    let by_hand = run(&["embed", "--model", blob, "--hash"], prefixed.into_bytes());
    let without = run(&["embed", "--model", blob, "--hash"], input.into_bytes());
    for out in [&with, &by_hand, &without] {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let (with, by_hand, without) = (
        lines(&with.stdout),
        lines(&by_hand.stdout),
        lines(&without.stdout),
    );
    assert_eq!(with.len(), texts.len());
    assert_eq!(with, by_hand, "--prefix differs from prepending by hand");
    let tokens = |l: &str| -> u64 {
        let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
        v["tokens"].as_u64().expect("tokens")
    };
    for (w, o) in with.iter().zip(&without) {
        assert!(tokens(w) > tokens(o), "the prefix adds tokens: {w} vs {o}");
    }
    let help = run(&["embed", "--help"], Vec::new());
    let help = text(&help.stdout);
    assert!(
        help.contains("--prefix") && help.contains("query: "),
        "{help}"
    );
}

/// `embed` on a Unigram-only blob (multilingual-e5-small) tokenizes with the blob's
/// `UnigramTokenizer`: each line's tokens and hash are the library's on `query: ` + the
/// line (Chinese, English, Russian). Needs `cargo xtask prepare-e5`.
#[test]
fn embed_reads_a_unigram_blob_with_its_prefix() {
    use microbert_tests::require::require;
    let path = microbert_tests::corpus::cache_dir()
        .join("blobs")
        .join("e5-small.blob");
    let Some(bytes) = require(
        std::fs::read(&path),
        path.display(),
        "cargo xtask prepare-e5",
    ) else {
        return;
    };
    let model = microbert::parse(&bytes).expect("parses");
    assert!(model.tokenizer.is_none(), "no WordPiece vocabulary");
    let tok = microbert::UnigramTokenizer::new(&model).expect("a Unigram tokenizer");
    let texts = [
        "南瓜的家常做法",
        "how much protein should a female eat",
        "Привет, мир",
    ];
    let input: String = texts.iter().map(|t| format!("{t}\n")).collect();
    let arg = path.to_str().expect("UTF-8 path");
    let out = run(
        &["embed", "--model", arg, "--hash", "--prefix", "query: "],
        input.into_bytes(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), texts.len());
    let d = model.config.hidden_size as usize;
    for (line, t) in got.iter().zip(texts) {
        let text = format!("query: {t}");
        let mut scratch = vec![0u8; tok.scratch_bytes(&text)];
        let mut ids = vec![0u32; 512];
        let n = tok
            .encode(&text, &mut scratch, &mut ids)
            .expect("encodes")
            .len;
        let mut arena = vec![0u8; microbert::scratch_bytes(&model, n)];
        let mut pooled = vec![0i32; d];
        microbert::Encoder::new(&model, microbert_host::HostKernels::detect())
            .embed(&ids[..n], &mut arena, &mut pooled)
            .expect("embeds");
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(v["tokens"].as_u64(), Some(n as u64), "{text}");
        let want = format!("{:016x}", microbert::output::hash(&pooled));
        assert_eq!(v["hash"].as_str(), Some(want.as_str()), "{text}");
    }
}
