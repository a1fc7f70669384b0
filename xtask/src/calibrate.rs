//! Calibration: the converter's numerics choices, measured on text.
//!
//! 1. The calibration texts (by default [`microbert_tests::corpus::calibration_texts`]: the
//!    200 calibration Wikipedia leads and 100 movie reviews, disjoint from every test set;
//!    `convert --calibration FILE` takes one text per line) are tokenized with the model's
//!    own tokenizer and cut at [`MAX_TOKENS`].
//! 2. The f32 reference forward pass (`crate::reference`) records, per layer, the largest
//!    magnitude of every channel of the query/key/value input and of the FFN1 input, and
//!    the smallest GELU output.
//! 3. SmoothQuant (Xiao et al., 2023), alpha 0.5: per input channel
//!    `m_j = sqrt(max |x_j|) / sqrt(max_c |W[c][j]|)` over the weights that read the input
//!    (Q, K and V together, so the input is still quantised once); the runtime multiplies
//!    the input by `f_j = 1 / m_j` (rounded to Q.16) inside its quantisation and the
//!    converter divides the weight columns by `f_j`.
//! 4. Formats, per layer: the GELU output (at least -0.17) is quantised as unsigned 8-bit of
//!    `x + 0.17`; the query/key/value input is int16 when the recipe allows it and the
//!    calibration error of its int8 form (relative RMS of the projected Q, K, V) is above
//!    [`INT16_THRESHOLD`]; FFN1's input is int8, smoothed.
//! 5. The report: the chosen formats with their calibration errors, then the integer runtime
//!    (with these numerics) against the f32 reference on the calibration texts: the mean
//!    per-token cosine of every layer's output, and the pooled embedding's mean and minimum
//!    cosine.

use crate::checkpoint::Checkpoint;
use crate::convert::{InputPlan, LayerNumerics, Numerics, Options};
use crate::reference::Reference;
use anyhow::{Context, Result, ensure};
use microbert::blob::{InputFormat, Pooling};
use microbert::{Encoder, Tokenizer};
use microbert_host::HostKernels;

/// Tokens per calibration text, `[CLS]` and `[SEP]` included.
pub const MAX_TOKENS: usize = 256;

/// The GELU output's offset: GELU's minimum is -0.16997 (at x = -0.7518), so `x + 0.17` is
/// never negative. Q.16.
pub const GELU_OFFSET_Q16: i32 = 11_141;

/// Texts of the calibration set (the first ones) on which the int8 errors and the report's
/// cosines are measured (the statistics use all of them).
pub const EVAL_TEXTS: usize = 100;

/// Relative RMS error of the int8 query/key/value projections above which a layer's input
/// is int16 (when the recipe allows int16 operands).
pub const INT16_THRESHOLD: f64 = 0.005;

/// Which operand formats a recipe may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NumericsRecipe {
    /// int8 inputs, no smoothing (the format of before calibration).
    None,
    /// SmoothQuant on the query/key/value and FFN1 inputs, the GELU output unsigned with an
    /// offset; every GEMM operand 8-bit (for the smallest devices).
    Int8,
    /// As `int8`, plus int16 query/key/value inputs where calibration shows they pay.
    Default,
}

impl NumericsRecipe {
    /// The name used in recipes and the provenance.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Int8 => "int8",
            Self::Default => "default",
        }
    }

    /// The recipe of a name (`none`, `int8`, `default`).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::None, Self::Int8, Self::Default]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// Calibration texts and where they came from.
#[derive(Debug, Clone)]
pub struct Texts {
    /// One text each.
    pub texts: Vec<String>,
    /// For the report and the provenance.
    pub source: String,
}

impl Texts {
    /// The default set (see the module docs).
    pub fn default_set() -> Result<Self> {
        let texts = microbert_tests::corpus::try_calibration_texts()?;
        Ok(Self {
            source: format!(
                "default: {} texts ({} Wikipedia calibration leads, {} movie reviews)",
                texts.len(),
                microbert_tests::corpus::WIKI_CALIBRATION,
                texts.len() - microbert_tests::corpus::WIKI_CALIBRATION
            ),
            texts,
        })
    }

    /// One text per non-empty line of a file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading calibration texts {}", path.display()))?;
        let texts: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        ensure!(!texts.is_empty(), "{} holds no text", path.display());
        Ok(Self {
            source: format!("{} ({} texts)", path.display(), texts.len()),
            texts,
        })
    }
}

/// Per layer, what calibration measured.
#[derive(Debug, Clone, Default)]
struct LayerStats {
    /// Largest |x| per channel of the attention input and of the FFN1 input.
    attention_amax: Vec<f64>,
    intermediate_amax: Vec<f64>,
    /// Smallest GELU output.
    gelu_min: f64,
}

/// The result of calibration: the numerics and the report lines.
pub struct Calibrated {
    /// What the converter writes.
    pub numerics: Numerics,
    /// The report (one line each).
    pub report: Vec<String>,
}

/// Token ids of the texts with the model's tokenizer (from a plain conversion).
fn token_ids(blob: &[u8], texts: &[String], max: usize) -> Result<Vec<Vec<u32>>> {
    let model = microbert::parse(blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tok = Tokenizer::new(&model);
    let mut out = Vec::new();
    let mut ids = vec![0u32; max];
    for t in texts {
        let enc = tok
            .encode(t, &mut ids)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push(ids[..enc.len].to_vec());
    }
    Ok(out)
}

/// Column maxima `max_c |w[c][j]|` over several `[out, in]` matrices with the same `in`.
fn column_amax(ws: &[(&[f32], usize)]) -> Vec<f64> {
    let input = ws.first().map_or(0, |w| w.1);
    let mut m = vec![0f64; input];
    for (w, cols) in ws {
        for row in w.chunks_exact((*cols).max(1)) {
            for (a, &x) in m.iter_mut().zip(row) {
                *a = a.max(f64::from(x).abs());
            }
        }
    }
    m
}

/// SmoothQuant factors `f_j = 1 / m_j`, rounded to Q.16 (and kept in [2^-8, 2^8]).
fn smoothing(x_amax: &[f64], w_amax: &[f64]) -> Vec<f64> {
    x_amax
        .iter()
        .zip(w_amax)
        .map(|(&x, &w)| {
            let m = if x > 0.0 && w > 0.0 {
                x.sqrt() / w.sqrt()
            } else {
                1.0
            };
            let f = (1.0 / m).clamp(1.0 / 256.0, 256.0);
            (f * 65536.0).round() / 65536.0
        })
        .collect()
}

/// Relative RMS error of `x W^T` when each row of the smoothed input `x * f` is quantised
/// symmetrically to `levels` levels (int8: 127), for the weights `ws` (divided by `f`).
fn projection_error(
    rows: &[f32],
    d: usize,
    f: &[f64],
    ws: &[(&[f32], usize)],
    levels: f64,
) -> (f64, f64) {
    let (mut noise, mut signal) = (0f64, 0f64);
    let mut err = vec![0f64; d];
    for row in rows.chunks_exact(d.max(1)) {
        let t: Vec<f64> = row
            .iter()
            .zip(f)
            .map(|(&x, &fj)| f64::from(x) * fj)
            .collect();
        let amax = t.iter().fold(0f64, |a, &x| a.max(x.abs()));
        if amax == 0.0 {
            continue;
        }
        for (e, &x) in err.iter_mut().zip(&t) {
            *e = (x * levels / amax).round() * amax / levels - x;
        }
        for (w, cols) in ws {
            for wr in w.chunks_exact((*cols).max(1)) {
                let (mut y, mut dy) = (0f64, 0f64);
                for ((&wj, &fj), (&xt, &e)) in wr.iter().zip(f).zip(t.iter().zip(&err)) {
                    let wj = f64::from(wj) / fj;
                    y += wj * xt;
                    dy += wj * e;
                }
                signal += y * y;
                noise += dy * dy;
            }
        }
    }
    (noise, signal)
}

/// Calibrates `ck` for `recipe` on `texts` (`opts` gives the other conversion settings).
pub fn calibrate(
    ck: &Checkpoint,
    opts: &Options,
    texts: &Texts,
    recipe: NumericsRecipe,
) -> Result<Calibrated> {
    let layers = ck.config.num_hidden_layers;
    let mut report = vec![format!("calibration set: {}", texts.source)];
    if recipe == NumericsRecipe::None {
        return Ok(Calibrated {
            numerics: Numerics {
                layers: vec![LayerNumerics::plain(); layers],
                description: "none: int8 inputs, no smoothing".to_owned(),
            },
            report,
        });
    }
    let plain = crate::convert::convert(
        ck,
        &Options {
            numerics: None,
            progress: false,
            ..opts.clone()
        },
    )?;
    let max = MAX_TOKENS.min(ck.config.max_position_embeddings);
    let ids = token_ids(&plain.blob, &texts.texts, max)?;
    let reference = Reference::load(ck)?;
    let d = ck.config.hidden_size;

    // Pass 1: statistics, on every text.
    let per_text = par_map(&ids, |ids| -> Result<Vec<LayerStats>> {
        let trace = reference.run(ids)?;
        Ok(trace
            .layers
            .iter()
            .map(|l| {
                let amax = |x: &[f32]| {
                    let mut m = vec![0f64; d];
                    for row in x.chunks_exact(d) {
                        for (a, &v) in m.iter_mut().zip(row) {
                            *a = a.max(f64::from(v).abs());
                        }
                    }
                    m
                };
                LayerStats {
                    attention_amax: amax(&l.attention_input),
                    intermediate_amax: amax(&l.intermediate_input),
                    gelu_min: l
                        .output_input
                        .iter()
                        .fold(0f64, |m, &v| m.min(f64::from(v))),
                }
            })
            .collect())
    })?;
    let mut stats = vec![
        LayerStats {
            attention_amax: vec![0.0; d],
            intermediate_amax: vec![0.0; d],
            gelu_min: 0.0,
        };
        layers
    ];
    for text in per_text {
        for (s, t) in stats.iter_mut().zip(text) {
            for (a, b) in [
                (&mut s.attention_amax, &t.attention_amax),
                (&mut s.intermediate_amax, &t.intermediate_amax),
            ] {
                for (x, &y) in a.iter_mut().zip(b) {
                    *x = x.max(y);
                }
            }
            s.gelu_min = s.gelu_min.min(t.gelu_min);
        }
    }

    // Smoothing factors and, per layer, the int8 error of the attention input (on the
    // first EVAL_TEXTS texts).
    let mut plans = Vec::with_capacity(layers);
    let mut factors = Vec::with_capacity(layers);
    for (i, s) in stats.iter().enumerate() {
        let w = reference.weights(i).context("layer weights")?;
        let qkv = column_amax(&w[..3]);
        let ffn1 = column_amax(&w[3..4]);
        factors.push((
            smoothing(&s.attention_amax, &qkv),
            smoothing(&s.intermediate_amax, &ffn1),
        ));
    }
    let subset = &ids[..ids.len().min(EVAL_TEXTS)];
    let per_text = par_map(subset, |ids| -> Result<Vec<(f64, f64)>> {
        let trace = reference.run(ids)?;
        trace
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let w = reference.weights(i).context("layer weights")?;
                Ok(projection_error(
                    &l.attention_input,
                    d,
                    &factors[i].0,
                    &w[..3],
                    127.0,
                ))
            })
            .collect()
    })?;
    let mut errors = vec![(0f64, 0f64); layers];
    for text in per_text {
        for (e, (n, sig)) in errors.iter_mut().zip(text) {
            e.0 += n;
            e.1 += sig;
        }
    }
    report.push(format!(
        "{:<6} {:<24} {:>14} {:>10} {:<22} {:<22}",
        "layer", "q/k/v input", "int8 rel.err", "GELU min", "FFN1 input", "FFN2 input"
    ));
    for (i, (s, (f_att, f_ffn1))) in stats.iter().zip(factors).enumerate() {
        let rel = (errors[i].0 / errors[i].1.max(f64::MIN_POSITIVE)).sqrt();
        let int16 = recipe == NumericsRecipe::Default && rel > INT16_THRESHOLD;
        ensure!(
            s.gelu_min >= -f64::from(GELU_OFFSET_Q16) / 65536.0,
            "layer {i}: a GELU output of {} is below the offset's -0.17",
            s.gelu_min
        );
        let attention = InputPlan {
            format: if int16 {
                InputFormat::Int16
            } else {
                InputFormat::Int8
            },
            smoothing: Some(f_att),
        };
        report.push(format!(
            "{i:<6} {:<24} {rel:>14.5} {:>10.4} {:<22} {:<22}",
            if int16 {
                "int16, smoothed"
            } else {
                "int8, smoothed"
            },
            s.gelu_min,
            "int8, smoothed",
            "uint8 + 0.17"
        ));
        plans.push(LayerNumerics {
            attention,
            intermediate: InputPlan {
                format: InputFormat::Int8,
                smoothing: Some(f_ffn1),
            },
            output: InputPlan {
                format: InputFormat::Uint8Offset {
                    offset_q16: GELU_OFFSET_Q16,
                },
                smoothing: None,
            },
        });
    }
    let int16_layers = plans
        .iter()
        .filter(|p| p.attention.format == InputFormat::Int16)
        .count();
    let numerics = Numerics {
        description: format!(
            "{}: SmoothQuant alpha 0.5 on the q/k/v and FFN1 inputs, GELU output uint8 + 0.17, \
             q/k/v input int16 in {int16_layers} of {layers} layers (int8 error above {INT16_THRESHOLD}); \
             calibration {}",
            recipe.name(),
            texts.source
        ),
        layers: plans,
    };
    let converted = crate::convert::convert(
        ck,
        &Options {
            numerics: Some(numerics.clone()),
            progress: false,
            ..opts.clone()
        },
    )?;
    report.extend(evaluate(&converted.blob, &reference, subset)?);
    Ok(Calibrated { numerics, report })
}

/// The integer runtime on `blob` against the f32 reference: mean per-token cosine of each
/// layer's output, and the pooled embeddings' cosine (mean and minimum).
pub fn evaluate(blob: &[u8], reference: &Reference, ids: &[Vec<u32>]) -> Result<Vec<String>> {
    let model = microbert::parse(blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let layers = model.config.num_hidden_layers as usize;
    let d = model.config.hidden_size as usize;
    let kernels = HostKernels::detect();
    let per_text = par_map(ids, |ids| -> Result<(Vec<f64>, f64)> {
        let trace = reference.run(ids)?;
        let mut layer_cos = Vec::with_capacity(layers);
        let mut pooled = 0f64;
        for l in 0..layers {
            let mut view = model;
            view.config.num_hidden_layers = l as u32 + 1;
            let mut arena = vec![0u8; microbert::scratch_bytes(&view, ids.len())];
            let ours = Encoder::new(&view, kernels)
                .hidden_states(ids, None, &mut arena)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let theirs = &trace.layers[l].output;
            let mut c = 0f64;
            for (a, b) in ours.chunks_exact(d).zip(theirs.chunks_exact(d)) {
                let a: Vec<f64> = a.iter().map(|&x| f64::from(x) / 65536.0).collect();
                let b: Vec<f64> = b.iter().map(|&x| f64::from(x)).collect();
                c += cosine(&a, &b);
            }
            layer_cos.push(c / trace.n as f64);
            if l + 1 == layers {
                let ours: Vec<f64> = ours.iter().map(|&x| f64::from(x)).collect();
                let theirs: Vec<f64> = theirs.iter().map(|&x| f64::from(x)).collect();
                pooled = cosine(
                    &pool(&ours, d, model.config.pooling),
                    &pool(&theirs, d, model.config.pooling),
                );
            }
        }
        Ok((layer_cos, pooled))
    })?;
    let mut per_layer = vec![0f64; layers];
    let mut pooled = Vec::with_capacity(ids.len());
    for (layer_cos, p) in per_text {
        for (s, c) in per_layer.iter_mut().zip(layer_cos) {
            *s += c;
        }
        pooled.push(p);
    }
    let n = ids.len().max(1) as f64;
    let mut out =
        vec!["runtime vs f32 on the calibration set, mean per-token cosine by layer:".to_owned()];
    for (l, s) in per_layer.iter().enumerate() {
        out.push(format!("  layer {l}: {:.5}", s / n));
    }
    let min = pooled.iter().copied().fold(1f64, f64::min);
    let mean = pooled.iter().sum::<f64>() / n;
    out.push(format!(
        "  pooled embedding: mean {mean:.5}, min {min:.5} ({} texts)",
        ids.len()
    ));
    Ok(out)
}

/// Mean (or `[CLS]`) pooling of `[n, d]` rows.
fn pool(rows: &[f64], d: usize, pooling: Pooling) -> Vec<f64> {
    let n = match pooling {
        Pooling::Cls => 1,
        Pooling::Mean => rows.len() / d.max(1),
    };
    let mut m = vec![0f64; d];
    for r in rows.chunks_exact(d.max(1)).take(n) {
        for (a, x) in m.iter_mut().zip(r) {
            *a += x;
        }
    }
    m.iter().map(|x| x / n.max(1) as f64).collect()
}

/// `f` over `items` on two threads (this machine's cores), results in order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    let parts: Vec<Result<Vec<R>>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Result<Vec<R>>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a calibration thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}
