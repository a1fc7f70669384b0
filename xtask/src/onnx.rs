//! ONNX checkpoints (`cargo xtask convert --onnx FILE.onnx --tokenizer DIR`): a BERT encoder
//! exported to ONNX becomes the same in-memory Hugging Face checkpoint that
//! [`crate::checkpoint::Checkpoint`] reads from a directory (a `config.json`, a
//! `model.safetensors` with Hugging Face tensor names, the tokenizer files, and a
//! `1_Pooling/config.json` when the graph pools), so the converter, its calibration and its
//! quantisation run unchanged.
//!
//! What the graph says and how it is read:
//! - Weights are the graph's float initializers. Those that keep their Hugging Face name
//!   (`model.0.auto_model.encoder.layer.0.attention.self.query.bias`, with whatever prefix
//!   the word table's name shows) keep it, without the prefix. A `MatMul` weight is usually
//!   renamed by the exporter (`onnx::MatMul_470`) and stored `[in, out]`: its role comes from
//!   the bias `Add` that follows it (the bias's own name, else the node's path, e.g.
//!   `/encoder/layer.0/attention/self/query/Add`), and it is transposed to the `[out, in]` of
//!   a Hugging Face `Linear`. Gathered tables and `LayerNormalization` parameters without a
//!   Hugging Face name take the path of the node that reads them.
//! - The config comes from the shapes (vocabulary, hidden width, positions, token types,
//!   FFN width, layers), the attention's head split (the constant `[heads, head_dim]` its
//!   `Reshape` targets, else the `Div` by `sqrt(head_dim)` of the scores), and the
//!   `LayerNormalization` epsilon (all must agree).
//! - Checked, each refusal naming the node: every operator is one a BERT encoder export
//!   uses (no fused contrib operators, no `Gemm`, no tanh or sigmoid activation outside the
//!   pooler); the FFN activation is erf GELU; the position ids are `0..n` (a constant
//!   `arange` or a graph input; RoBERTa's computed offsets are not); every float initializer
//!   gets exactly one Hugging Face name; a `MatMul` weight is followed by its bias `Add`.
//! - Mean pooling (a `ReduceSum` of the masked last hidden state) is recorded as a
//!   sentence-transformers pooling config; otherwise the converter's default applies.
//!
//! The ONNX messages are decoded with `prost`: [`proto`] declares the fields read here, with
//! the tags of the official `onnx/onnx.proto` (IR version 10), as `prost-build` would
//! generate them; fields not declared are skipped. The ONNX crates on crates.io were no
//! better choice: `onnx-pb` and `onnx-extractor` run `protoc` at build time,
//! `onnx-protobuf` is MPL-2.0, `tract-onnx`, `onnx-ir` and `runnx` bring an inference
//! engine.

use crate::checkpoint::{Checkpoint, Files};
use anyhow::{Context, Result, anyhow, bail, ensure};
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The ONNX protobuf messages, the fields this module reads (tags of `onnx/onnx.proto`).
#[allow(missing_docs)]
pub mod proto {
    /// `ModelProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(string, tag = "2")]
        pub producer_name: String,
        #[prost(string, tag = "3")]
        pub producer_version: String,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
    }

    /// `OperatorSetIdProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    /// `GraphProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    /// `NodeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        #[prost(string, tag = "7")]
        pub domain: String,
    }

    /// `AttributeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(float, tag = "2")]
        pub f: f32,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        #[prost(float, repeated, tag = "7")]
        pub floats: Vec<f32>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
    }

    /// `ValueInfoProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    /// `TensorProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
        #[prost(int32, tag = "14")]
        pub data_location: i32,
    }

    /// `TensorProto.DataType` values read here.
    pub const FLOAT: i32 = 1;
    /// `INT32`.
    pub const INT32: i32 = 6;
    /// `INT64`.
    pub const INT64: i32 = 7;
    /// `FLOAT16`.
    pub const FLOAT16: i32 = 10;
    /// `DOUBLE`.
    pub const DOUBLE: i32 = 11;
    /// `BFLOAT16`.
    pub const BFLOAT16: i32 = 16;
}

use proto::{GraphProto, ModelProto, NodeProto, TensorProto};

/// Operators of a BERT encoder export (embeddings, attention with its mask arithmetic,
/// erf GELU, LayerNorm fused or decomposed, mean pooling) and of its shape bookkeeping.
const OPERATORS: &[&str] = &[
    "Add",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Div",
    "Equal",
    "Erf",
    "Expand",
    "Gather",
    "Identity",
    "LayerNormalization",
    "MatMul",
    "Mul",
    "Not",
    "Pow",
    "Range",
    "ReduceMean",
    "ReduceSum",
    "Reshape",
    "Shape",
    "Slice",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Transpose",
    "Unsqueeze",
    "Where",
];

/// What [`map_graph`] recovers: a Hugging Face checkpoint's tensors and config.
#[derive(Debug, Clone)]
pub struct Mapped {
    /// Hugging Face name (no prefix) to `(shape, row-major f32 values)`.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// The `config.json` written for the converter.
    pub config: serde_json::Value,
    /// Whether the graph mean-pools its last hidden state.
    pub mean_pooling: bool,
    /// What the mapping did, one line each, for the report.
    pub notes: Vec<String>,
}

/// A node's name for messages: its name, else its op type and first output.
fn node_label(n: &NodeProto) -> String {
    if n.name.is_empty() {
        format!(
            "{} node producing `{}`",
            n.op_type,
            n.output.first().map_or("", String::as_str)
        )
    } else {
        format!("node `{}` ({})", n.name, n.op_type)
    }
}

/// The Hugging Face module path of a node's name: `/model/m.0/encoder/layer.0/attention/
/// self/query/Add` -> `encoder.layer.0.attention.self.query` (from the first `embeddings`,
/// `encoder` or `pooler` segment, the last segment, the operator, dropped).
fn module_of_node(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    let start = parts
        .iter()
        .position(|p| matches!(*p, "embeddings" | "encoder" | "pooler"))?;
    let end = parts.len().checked_sub(1)?;
    (end > start).then(|| parts[start..end].join("."))
}

/// Values of a tensor as f64 (float types) or i64 (integer types) for constants; the f32
/// data for weights.
fn tensor_f32(t: &TensorProto) -> Result<Vec<f32>> {
    let n: usize = dims(t)?.iter().product();
    ensure!(
        t.data_location == 0,
        "initializer `{}` is stored outside the ONNX file (external data); only embedded weights are read",
        t.name
    );
    let raw = &t.raw_data;
    let data: Vec<f32> = match t.data_type {
        proto::FLOAT if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        proto::FLOAT => t.float_data.clone(),
        proto::FLOAT16 | proto::BFLOAT16 if !raw.is_empty() => raw
            .chunks_exact(2)
            .map(|c| {
                if t.data_type == proto::FLOAT16 {
                    half::f16::from_le_bytes([c[0], c[1]]).to_f32()
                } else {
                    half::bf16::from_le_bytes([c[0], c[1]]).to_f32()
                }
            })
            .collect(),
        // 16-bit floats outside raw_data travel as their bits in int32_data.
        proto::FLOAT16 | proto::BFLOAT16 => t
            .int32_data
            .iter()
            .map(|&b| {
                let bits = (b & 0xffff) as u16;
                if t.data_type == proto::FLOAT16 {
                    half::f16::from_bits(bits).to_f32()
                } else {
                    half::bf16::from_bits(bits).to_f32()
                }
            })
            .collect(),
        proto::DOUBLE if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        proto::DOUBLE => t.double_data.iter().map(|&x| x as f32).collect(),
        other => bail!(
            "tensor `{}` has ONNX data type {other}; weights are read from FLOAT, FLOAT16, BFLOAT16 or DOUBLE",
            t.name
        ),
    };
    ensure!(
        data.len() == n,
        "tensor `{}`: {} values for shape {:?}",
        t.name,
        data.len(),
        t.dims
    );
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        bail!(
            "tensor `{}` holds a non-finite value at element {i}",
            t.name
        );
    }
    Ok(data)
}

/// The integer values of a small constant tensor (INT64, INT32), or its float values
/// rounded when they are whole.
fn tensor_i64(t: &TensorProto) -> Option<Vec<i64>> {
    let raw = &t.raw_data;
    match t.data_type {
        proto::INT64 if !raw.is_empty() => Some(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        proto::INT64 => Some(t.int64_data.clone()),
        proto::INT32 if !raw.is_empty() => Some(
            raw.chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        proto::INT32 => Some(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
        _ => None,
    }
}

fn dims(t: &TensorProto) -> Result<Vec<usize>> {
    t.dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| anyhow!("tensor `{}` has dimension {d}", t.name)))
        .collect()
}

/// The graph, indexed.
struct Graph<'a> {
    g: &'a GraphProto,
    /// Value name -> the node producing it.
    producer: BTreeMap<&'a str, &'a NodeProto>,
    /// Value name -> the nodes reading it.
    consumers: BTreeMap<&'a str, Vec<&'a NodeProto>>,
    /// Float initializers by name.
    init: BTreeMap<&'a str, &'a TensorProto>,
    /// Constant tensors: `Constant` nodes' values and every initializer.
    constant: BTreeMap<&'a str, &'a TensorProto>,
    inputs: BTreeSet<&'a str>,
}

impl<'a> Graph<'a> {
    fn new(g: &'a GraphProto) -> Self {
        let mut producer = BTreeMap::new();
        let mut consumers: BTreeMap<&str, Vec<&NodeProto>> = BTreeMap::new();
        let mut constant = BTreeMap::new();
        for n in &g.node {
            for o in &n.output {
                producer.insert(o.as_str(), n);
            }
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                consumers.entry(i.as_str()).or_default().push(n);
            }
            if n.op_type == "Constant"
                && let (Some(o), Some(t)) = (
                    n.output.first(),
                    n.attribute
                        .iter()
                        .find(|a| a.name == "value")
                        .and_then(|a| a.t.as_ref()),
                )
            {
                constant.insert(o.as_str(), t);
            }
        }
        let mut init = BTreeMap::new();
        for t in &g.initializer {
            constant.insert(t.name.as_str(), t);
            if matches!(
                t.data_type,
                proto::FLOAT | proto::FLOAT16 | proto::BFLOAT16 | proto::DOUBLE
            ) {
                init.insert(t.name.as_str(), t);
            }
        }
        Self {
            g,
            producer,
            consumers,
            init,
            constant,
            inputs: g.input.iter().map(|v| v.name.as_str()).collect(),
        }
    }

    fn consumers(&self, value: &str) -> &[&'a NodeProto] {
        self.consumers.get(value).map_or(&[], Vec::as_slice)
    }

    /// A scalar float constant's value.
    fn scalar(&self, value: &str) -> Option<f64> {
        let t = self.constant.get(value)?;
        let v = tensor_f32(t).ok()?;
        (v.len() == 1).then(|| f64::from(v[0]))
    }
}

/// One Hugging Face tensor recovered from an initializer.
struct Placed {
    name: String,
    transpose: bool,
    /// The node that decided the name (for messages).
    by: String,
}

/// Maps a decoded ONNX model onto Hugging Face BERT tensor names and a config (see the
/// module docs); refuses, naming the node, what it cannot map.
pub fn map_graph(model: &ModelProto) -> Result<Mapped> {
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| anyhow!("the ONNX model has no graph"))?;
    let graph = Graph::new(g);
    let mut notes = Vec::new();

    // 1. Operators.
    for n in &g.node {
        let pooler = n.name.contains("/pooler/");
        let allowed = OPERATORS.contains(&n.op_type.as_str())
            || (pooler && matches!(n.op_type.as_str(), "Tanh" | "Gemm"));
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            bail!(
                "{}: operator domain `{}` (a fused or contrib operator); export the plain ONNX graph (no ONNX Runtime transformer optimisations)",
                node_label(n),
                n.domain
            );
        }
        if !allowed {
            let why = match n.op_type.as_str() {
                "Tanh" | "Sigmoid" | "Relu" => {
                    "an activation other than erf GELU (microbert runs BERT's exact gelu)"
                }
                "Gemm" => "a Gemm outside the pooler (dense layers are read as MatMul + bias Add)",
                _ => "not an operator of a BERT encoder export",
            };
            bail!("{}: {why}; cannot map this graph", node_label(n));
        }
    }
    ensure!(
        g.node.iter().any(|n| n.op_type == "Erf"),
        "the graph has no Erf node: its FFN activation is not erf GELU, the only one microbert runs"
    );

    // 2. The Hugging Face prefix, from the word table's name.
    let prefix = g
        .initializer
        .iter()
        .find_map(|t| t.name.strip_suffix("embeddings.word_embeddings.weight"))
        .unwrap_or("")
        .to_owned();
    let hf_name = |init: &str| -> Option<String> {
        let rest = init.strip_prefix(prefix.as_str())?;
        let looks_hf = ["embeddings.", "encoder.", "pooler."]
            .iter()
            .any(|p| rest.starts_with(p))
            && (rest.ends_with(".weight") || rest.ends_with(".bias"));
        looks_hf.then(|| rest.to_owned())
    };

    // 3. Each float initializer's Hugging Face name, from its own name or its reader.
    let mut placed: BTreeMap<String, Placed> = BTreeMap::new();
    let mut place = |init: &str, p: Placed| -> Result<()> {
        if let Some(old) = placed.get(init) {
            ensure!(
                old.name == p.name && old.transpose == p.transpose,
                "initializer `{init}` is read as `{}` by {} and as `{}` by {}",
                old.name,
                old.by,
                p.name,
                p.by
            );
            return Ok(());
        }
        placed.insert(init.to_owned(), p);
        Ok(())
    };
    for n in &g.node {
        let label = node_label(n);
        let weights: Vec<(usize, &str)> = n
            .input
            .iter()
            .enumerate()
            .filter(|(_, i)| graph.init.contains_key(i.as_str()))
            .map(|(k, i)| (k, i.as_str()))
            .collect();
        if weights.is_empty() {
            continue;
        }
        match n.op_type.as_str() {
            "MatMul" => {
                let [(1, w)] = weights.as_slice() else {
                    bail!(
                        "{label}: a MatMul whose initializer is not its second input; cannot map it to a Linear layer"
                    );
                };
                let out = n.output.first().map_or("", String::as_str);
                let [add] = graph.consumers(out) else {
                    bail!(
                        "{label}: its output is read by {} nodes, not by one bias Add; cannot map the weight `{w}`",
                        graph.consumers(out).len()
                    );
                };
                let bias = add
                    .input
                    .iter()
                    .find(|i| graph.init.contains_key(i.as_str()));
                let (true, Some(bias)) = (add.op_type == "Add", bias) else {
                    bail!(
                        "{label}: the weight `{w}` is not followed by a bias Add ({} follows); cannot map it to a Linear layer",
                        node_label(add)
                    );
                };
                let by_bias =
                    hf_name(bias).and_then(|b| b.strip_suffix(".bias").map(str::to_owned));
                let by_node = module_of_node(&add.name);
                let module = match (by_bias, by_node) {
                    (Some(a), Some(b)) if a != b => bail!(
                        "{}: its bias `{bias}` names `{a}` but the node's path names `{b}`",
                        node_label(add)
                    ),
                    (Some(a), _) | (None, Some(a)) => a,
                    (None, None) => bail!(
                        "{}: neither its bias `{bias}` nor its name tells which layer the MatMul weight `{w}` belongs to",
                        node_label(add)
                    ),
                };
                place(
                    w,
                    Placed {
                        name: format!("{module}.weight"),
                        transpose: true,
                        by: label.clone(),
                    },
                )?;
                place(
                    bias,
                    Placed {
                        name: format!("{module}.bias"),
                        transpose: false,
                        by: node_label(add),
                    },
                )?;
            }
            "Mul" | "Add" if n.name.contains("LayerNorm") => {
                // A decomposed LayerNorm: gamma (Mul) and beta (Add) by name only.
                for (_, t) in &weights {
                    let name = hf_name(t).ok_or_else(|| {
                        anyhow!("{label}: the LayerNorm parameter `{t}` has no Hugging Face name")
                    })?;
                    place(
                        t,
                        Placed {
                            name,
                            transpose: false,
                            by: label.clone(),
                        },
                    )?;
                }
            }
            "Add" if weights.len() == 1 => {
                // A bias Add after a MatMul is placed with its MatMul (above).
                let other = n
                    .input
                    .iter()
                    .find(|i| !graph.init.contains_key(i.as_str()));
                let after_matmul = other
                    .and_then(|o| graph.producer.get(o.as_str()))
                    .is_some_and(|p| p.op_type == "MatMul");
                if !after_matmul {
                    bail!(
                        "{label}: adds the initializer `{}` to something that is not a MatMul; cannot map it",
                        weights[0].1
                    );
                }
            }
            "Gather" => {
                let [(0, table)] = weights.as_slice() else {
                    bail!("{label}: a Gather whose initializer is not the table it reads");
                };
                let name = match hf_name(table) {
                    Some(h) => h,
                    None => format!(
                        "{}.weight",
                        module_of_node(&n.name).ok_or_else(|| anyhow!(
                            "{label}: neither the table `{table}` nor the node's name tells which embedding it is"
                        ))?
                    ),
                };
                place(
                    table,
                    Placed {
                        name,
                        transpose: false,
                        by: label.clone(),
                    },
                )?;
            }
            "LayerNormalization" => {
                for (k, t) in &weights {
                    let suffix = match k {
                        1 => "weight",
                        2 => "bias",
                        _ => bail!("{label}: initializer `{t}` as input {k}"),
                    };
                    let name = match hf_name(t) {
                        Some(h) => h,
                        None => format!(
                            "{}.{suffix}",
                            module_of_node(&n.name).ok_or_else(|| anyhow!(
                                "{label}: neither `{t}` nor the node's name tells which LayerNorm it is"
                            ))?
                        ),
                    };
                    place(
                        t,
                        Placed {
                            name,
                            transpose: false,
                            by: label.clone(),
                        },
                    )?;
                }
            }
            _ if n.name.contains("/pooler/") => {}
            _ => bail!(
                "{label}: reads the initializer `{}`, which no BERT layer maps to; cannot map this graph",
                weights[0].1
            ),
        }
    }
    // Initializers no node placed: kept by their Hugging Face name (the pooler, say), or
    // reported.
    for name in graph.init.keys() {
        if placed.contains_key(*name) {
            continue;
        }
        match hf_name(name) {
            Some(h) => {
                placed.insert(
                    (*name).to_owned(),
                    Placed {
                        name: h,
                        transpose: false,
                        by: "its name".to_owned(),
                    },
                );
            }
            None if graph.consumers(name).is_empty() => {
                notes.push(format!("initializer `{name}` is read by no node: dropped"));
            }
            None => bail!("initializer `{name}` could not be given a Hugging Face name"),
        }
    }

    // 4. The tensors.
    let mut tensors = BTreeMap::new();
    let mut renamed = 0;
    for (init, p) in &placed {
        let t = graph
            .init
            .get(init.as_str())
            .ok_or_else(|| anyhow!("initializer `{init}` is not a float initializer"))?;
        let shape = dims(t)?;
        let mut data = tensor_f32(t)?;
        let shape = if p.transpose {
            let [rows, cols] = shape[..] else {
                bail!("MatMul weight `{init}` has shape {shape:?}, not two dimensions");
            };
            let mut out = vec![0f32; data.len()];
            for r in 0..rows {
                for c in 0..cols {
                    out[c * rows + r] = data[r * cols + c];
                }
            }
            data = out;
            vec![cols, rows]
        } else {
            shape
        };
        if !init.ends_with(p.name.as_str()) {
            renamed += 1;
        }
        if tensors.insert(p.name.clone(), (shape, data)).is_some() {
            bail!(
                "two initializers map to `{}` (the second by {})",
                p.name,
                p.by
            );
        }
    }
    notes.push(format!(
        "{} weights mapped ({renamed} renamed from the graph, MatMul weights transposed [in, out] -> [out, in]); Hugging Face prefix `{prefix}` dropped",
        tensors.len()
    ));

    // 5. The config.
    let shape_of = |name: &str| -> Result<&Vec<usize>> {
        tensors
            .get(name)
            .map(|t| &t.0)
            .ok_or_else(|| anyhow!("the graph has no `{name}` (after mapping)"))
    };
    let &[vocab, hidden] = &shape_of("embeddings.word_embeddings.weight")?[..] else {
        bail!("embeddings.word_embeddings.weight is not two-dimensional");
    };
    let positions = shape_of("embeddings.position_embeddings.weight")?[0];
    let type_vocab = match tensors.get("embeddings.token_type_embeddings.weight") {
        Some(t) => t.0[0],
        None => bail!("the graph has no token type table (embeddings.token_type_embeddings)"),
    };
    let mut layers = 0;
    while tensors.contains_key(&format!(
        "encoder.layer.{layers}.attention.self.query.weight"
    )) {
        layers += 1;
    }
    ensure!(
        layers > 0,
        "the graph has no encoder layer (no encoder.layer.0.attention.self.query MatMul)"
    );
    let intermediate = shape_of("encoder.layer.0.intermediate.dense.weight")?[0];
    let heads = attention_heads(&graph, hidden)?;
    let eps = layer_norm_eps(&graph)?;
    check_positions(&graph, &tensors, &prefix)?;
    let mean_pooling = g.node.iter().any(|n| {
        n.op_type == "ReduceSum"
            && n.input
                .first()
                .and_then(|i| graph.producer.get(i.as_str()))
                .is_some_and(|m| {
                    m.op_type == "Mul"
                        && m.input.iter().any(|x| {
                            graph
                                .producer
                                .get(x.as_str())
                                .and_then(|p| module_of_node(&p.name))
                                == Some(format!("encoder.layer.{}.output.LayerNorm", layers - 1))
                        })
                })
    });
    notes.push(format!(
        "config from the graph: {layers} layers, hidden {hidden}, {heads} heads, FFN {intermediate}, {positions} positions, vocabulary {vocab}, {type_vocab} token types, LayerNorm eps {eps:e}, gelu (Erf); pooling: {}",
        if mean_pooling { "mean (ReduceSum of the masked last hidden state)" } else { "none in the graph" }
    ));
    let config = serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": positions,
        "type_vocab_size": type_vocab,
        "hidden_act": "gelu",
        "layer_norm_eps": eps,
        "position_embedding_type": "absolute",
        "pad_token_id": 0,
    });
    Ok(Mapped {
        tensors,
        config,
        mean_pooling,
        notes,
    })
}

/// Heads: the constant `[.., heads, head_dim]` the attention's Reshape targets (heads x
/// head_dim = hidden), else the scores' `Div` by `sqrt(head_dim)`; all layers agree.
fn attention_heads(graph: &Graph<'_>, hidden: usize) -> Result<usize> {
    let mut found: Vec<(usize, String)> = Vec::new();
    for n in graph
        .g
        .node
        .iter()
        .filter(|n| n.name.contains("/attention/self/"))
    {
        match n.op_type.as_str() {
            "Reshape" => {
                let Some(shape) = n.input.get(1) else {
                    continue;
                };
                // The target shape: a constant, or a Concat of dynamic dims and constants.
                let mut tail: Vec<i64> = Vec::new();
                if let Some(t) = graph.constant.get(shape.as_str()) {
                    tail = tensor_i64(t).unwrap_or_default();
                } else if let Some(c) = graph.producer.get(shape.as_str())
                    && c.op_type == "Concat"
                {
                    for part in &c.input {
                        match graph
                            .constant
                            .get(part.as_str())
                            .and_then(|t| tensor_i64(t))
                        {
                            Some(v) => tail.extend(v),
                            None => tail.push(-1),
                        }
                    }
                }
                if let [.., h, d] = tail[..]
                    && h > 0
                    && d > 0
                    && (h * d) as usize == hidden
                {
                    found.push((h as usize, node_label(n)));
                }
            }
            "Div" | "Mul" => {
                let Some(c) = n.input.get(1).and_then(|i| graph.scalar(i)) else {
                    continue;
                };
                let scale = if n.op_type == "Div" { c } else { 1.0 / c };
                let d = (scale * scale).round();
                if d >= 1.0 && (scale * scale - d).abs() < 1e-3 && hidden.is_multiple_of(d as usize)
                {
                    found.push((hidden / d as usize, node_label(n)));
                }
            }
            _ => {}
        }
    }
    let Some((heads, _)) = found.first().cloned() else {
        bail!(
            "cannot find the number of attention heads: no Reshape to [heads, head_dim] nor a Div by sqrt(head_dim) under /attention/self/"
        );
    };
    if let Some((h, by)) = found.iter().find(|(h, _)| *h != heads) {
        bail!("{by} implies {h} attention heads, another node {heads}");
    }
    Ok(heads)
}

/// The LayerNorm epsilon: the `epsilon` of every `LayerNormalization` (ONNX's default
/// 1e-5 when absent), else the scalar a decomposed LayerNorm adds to the variance.
fn layer_norm_eps(graph: &Graph<'_>) -> Result<f64> {
    let mut eps: Vec<(f64, String)> = Vec::new();
    for n in &graph.g.node {
        if n.op_type == "LayerNormalization" {
            let e = n
                .attribute
                .iter()
                .find(|a| a.name == "epsilon")
                .map_or(1e-5, |a| f64::from(a.f));
            eps.push((e, node_label(n)));
        } else if n.op_type == "Add"
            && n.name.contains("LayerNorm")
            && let Some(e) = n.input.iter().find_map(|i| graph.scalar(i))
        {
            eps.push((e, node_label(n)));
        }
    }
    let Some((first, _)) = eps.first().cloned() else {
        bail!("the graph has no LayerNormalization node nor a decomposed LayerNorm's epsilon Add");
    };
    if let Some((e, by)) = eps.iter().find(|(e, _)| (e - first).abs() > first * 1e-3) {
        bail!("{by} has LayerNorm epsilon {e:e}, another {first:e}: one epsilon is supported");
    }
    Ok(first)
}

/// The position ids the position table is gathered with are `0..n`: a constant `arange`
/// (through Slice, Expand, Unsqueeze, Cast, Identity) or a graph input.
fn check_positions(
    graph: &Graph<'_>,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    prefix: &str,
) -> Result<()> {
    debug_assert!(tensors.contains_key("embeddings.position_embeddings.weight"));
    let gathers = graph.g.node.iter().filter(|n| {
        n.op_type == "Gather"
            && n.input.first().is_some_and(|t| {
                t.strip_prefix(prefix) == Some("embeddings.position_embeddings.weight")
                    || module_of_node(&n.name).as_deref() == Some("embeddings.position_embeddings")
            })
    });
    for n in gathers {
        let mut value = n.input.get(1).map_or("", String::as_str);
        loop {
            if graph.inputs.contains(value) {
                break;
            }
            if let Some(t) = graph.constant.get(value) {
                let ids = tensor_i64(t).unwrap_or_default();
                ensure!(
                    !ids.is_empty() && ids.iter().enumerate().all(|(k, &v)| v == k as i64),
                    "{}: the position ids are the constant `{value}`, not 0, 1, 2, ... (offset positions are not supported)",
                    node_label(n)
                );
                break;
            }
            match graph.producer.get(value) {
                Some(p)
                    if matches!(
                        p.op_type.as_str(),
                        "Slice" | "Expand" | "Unsqueeze" | "Cast" | "Identity"
                    ) =>
                {
                    value = p.input.first().map_or("", String::as_str);
                }
                Some(p) => bail!(
                    "{}: the position ids are computed by {} (RoBERTa-style offsets?); only BERT's positions 0..n are supported",
                    node_label(n),
                    node_label(p)
                ),
                None => bail!(
                    "{}: the position ids `{value}` come from nowhere",
                    node_label(n)
                ),
            }
        }
    }
    Ok(())
}

/// Tokenizer files copied from the tokenizer directory (those present).
const TOKENIZER_FILES: &[&str] = &[
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Checkpoint files by relative name, as [`Files::Memory`] takes them.
pub type FileMap = BTreeMap<String, Vec<u8>>;

/// The in-memory checkpoint files of an ONNX model (`onnx` bytes) and a tokenizer
/// directory, and the mapping's notes.
pub fn checkpoint_files(onnx: &[u8], tokenizer_dir: &Path) -> Result<(FileMap, Vec<String>)> {
    let model = ModelProto::decode(onnx).context("decoding the ONNX protobuf")?;
    let mut mapped = map_graph(&model)?;
    mapped.notes.insert(
        0,
        format!(
            "ONNX: IR version {}, opsets {}, from {} {}",
            model.ir_version,
            model
                .opset_import
                .iter()
                .map(|o| format!(
                    "{}{}",
                    if o.domain.is_empty() { "" } else { &o.domain },
                    o.version
                ))
                .collect::<Vec<_>>()
                .join(", "),
            model.producer_name,
            model.producer_version
        ),
    );
    let mut files = BTreeMap::new();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = mapped
        .tensors
        .iter()
        .map(|(k, (shape, data))| {
            (
                k.clone(),
                shape.clone(),
                data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, shape, data)| {
            Ok((
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    files.insert(
        "model.safetensors".to_owned(),
        safetensors::serialize(views, None)?,
    );
    files.insert(
        "config.json".to_owned(),
        serde_json::to_vec_pretty(&mapped.config)?,
    );
    if mapped.mean_pooling {
        files.insert(
            "1_Pooling/config.json".to_owned(),
            br#"{"pooling_mode_mean_tokens": true}"#.to_vec(),
        );
    }
    let mut found = Vec::new();
    for name in TOKENIZER_FILES {
        let path = tokenizer_dir.join(name);
        match std::fs::read(&path) {
            Ok(b) => {
                files.insert((*name).to_owned(), b);
                found.push(*name);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    ensure!(
        found.contains(&"vocab.txt") || found.contains(&"tokenizer.json"),
        "{}: no vocab.txt and no tokenizer.json (the ONNX file holds no tokenizer)",
        tokenizer_dir.display()
    );
    mapped.notes.push(format!(
        "tokenizer from {}: {}",
        tokenizer_dir.display(),
        found.join(", ")
    ));
    Ok((files, mapped.notes))
}

/// Reads an ONNX file and a tokenizer directory as a [`Checkpoint`], with the notes.
pub fn load(onnx: &Path, tokenizer_dir: &Path) -> Result<(Checkpoint, Vec<String>)> {
    let bytes = std::fs::read(onnx).with_context(|| format!("reading {}", onnx.display()))?;
    let (files, notes) = checkpoint_files(&bytes, tokenizer_dir)
        .with_context(|| format!("mapping {}", onnx.display()))?;
    let ck = Checkpoint::load(&Files::Memory(files))?;
    Ok((ck, notes))
}

#[cfg(test)]
mod tests {
    use super::proto::{AttributeProto, ValueInfoProto};
    use super::*;

    const H: usize = 4;
    const FFN: usize = 8;
    const POS: usize = 6;

    fn init(name: &str, dims: &[usize]) -> TensorProto {
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|k| ((k * 7 + name.len()) % 13) as f32 / 13.0 - 0.4)
            .collect();
        TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: proto::FLOAT,
            name: name.to_owned(),
            raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    fn node(op: &str, name: &str, input: &[&str], output: &[&str]) -> NodeProto {
        NodeProto {
            op_type: op.to_owned(),
            name: name.to_owned(),
            input: input.iter().map(|s| (*s).to_owned()).collect(),
            output: output.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn constant(out: &str, values: &[i64]) -> NodeProto {
        let mut n = node("Constant", "", &[], &[out]);
        n.attribute.push(AttributeProto {
            name: "value".to_owned(),
            t: Some(TensorProto {
                dims: vec![values.len() as i64],
                data_type: proto::INT64,
                int64_data: values.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        });
        n
    }

    fn layer_norm(name: &str, x: &str, params: &str, out: &str) -> NodeProto {
        let mut n = node(
            "LayerNormalization",
            name,
            &[x, &format!("{params}.weight"), &format!("{params}.bias")],
            &[out],
        );
        n.attribute.push(AttributeProto {
            name: "epsilon".to_owned(),
            f: 1e-12,
            ..Default::default()
        });
        n
    }

    /// A one-layer BERT shaped as the PyTorch exporter writes it: Hugging Face names on
    /// the tables, biases and LayerNorms under the prefix `m.`, `onnx::MatMul_N` weights
    /// `[in, out]`, mean pooling.
    fn tiny(vocab: usize) -> ModelProto {
        let p = "m.";
        let mut initializer = vec![
            init(
                &format!("{p}embeddings.word_embeddings.weight"),
                &[vocab, H],
            ),
            init(
                &format!("{p}embeddings.position_embeddings.weight"),
                &[POS, H],
            ),
            init(
                &format!("{p}embeddings.token_type_embeddings.weight"),
                &[2, H],
            ),
        ];
        for ln in [
            "embeddings.LayerNorm",
            "encoder.layer.0.attention.output.LayerNorm",
            "encoder.layer.0.output.LayerNorm",
        ] {
            initializer.push(init(&format!("{p}{ln}.weight"), &[H]));
            initializer.push(init(&format!("{p}{ln}.bias"), &[H]));
        }
        let mut nodes = vec![
            node(
                "Gather",
                "/m/embeddings/word_embeddings/Gather",
                &["m.embeddings.word_embeddings.weight", "input_ids"],
                &["we"],
            ),
            constant("onnx::Slice_1", &(0..POS as i64).collect::<Vec<_>>()),
            node("Slice", "/m/embeddings/Slice", &["onnx::Slice_1"], &["pid"]),
            node(
                "Gather",
                "/m/embeddings/position_embeddings/Gather",
                &["m.embeddings.position_embeddings.weight", "pid"],
                &["pe"],
            ),
            constant("tt", &[0; POS]),
            node(
                "Gather",
                "/m/embeddings/token_type_embeddings/Gather",
                &["m.embeddings.token_type_embeddings.weight", "tt"],
                &["te"],
            ),
            node("Add", "/m/embeddings/Add", &["we", "te"], &["e1"]),
            node("Add", "/m/embeddings/Add_1", &["e1", "pe"], &["e2"]),
            layer_norm(
                "/m/embeddings/LayerNorm/LayerNormalization",
                "e2",
                "m.embeddings.LayerNorm",
                "h0",
            ),
        ];
        let linears = [
            ("attention/self/query", H, H, "h0", "q"),
            ("attention/self/key", H, H, "h0", "k"),
            ("attention/self/value", H, H, "h0", "v"),
            ("attention/output/dense", H, H, "v", "ao"),
            ("intermediate/dense", H, FFN, "h1", "i"),
            ("output/dense", FFN, H, "g", "o"),
        ];
        for (k, (path, din, dout, x, y)) in linears.iter().enumerate() {
            let w = format!("onnx::MatMul_{}", 100 + k);
            initializer.push(init(&w, &[*din, *dout]));
            let bias = format!("m.encoder.layer.0.{}.bias", path.replace('/', "."));
            initializer.push(init(&bias, &[*dout]));
            let m = format!("{y}_mm");
            nodes.push(node(
                "MatMul",
                &format!("/m/encoder/layer.0/{path}/MatMul"),
                &[x, &w],
                &[&m],
            ));
            nodes.push(node(
                "Add",
                &format!("/m/encoder/layer.0/{path}/Add"),
                &[&bias, &m],
                &[y],
            ));
        }
        nodes.extend([
            constant("heads", &[2, 2]),
            node(
                "Concat",
                "/m/encoder/layer.0/attention/self/Concat",
                &["b", "s", "heads"],
                &["shape"],
            ),
            node(
                "Reshape",
                "/m/encoder/layer.0/attention/self/Reshape",
                &["q", "shape"],
                &["q4"],
            ),
            layer_norm(
                "/m/encoder/layer.0/attention/output/LayerNorm/LayerNormalization",
                "ao",
                "m.encoder.layer.0.attention.output.LayerNorm",
                "h1",
            ),
            node(
                "Erf",
                "/m/encoder/layer.0/intermediate/intermediate_act_fn/Erf",
                &["i"],
                &["g"],
            ),
            layer_norm(
                "/m/encoder/layer.0/output/LayerNorm/LayerNormalization",
                "o",
                "m.encoder.layer.0.output.LayerNorm",
                "last",
            ),
            node("Mul", "/m1/Mul", &["last", "mask"], &["masked"]),
            node("ReduceSum", "/m1/ReduceSum", &["masked"], &["pooled"]),
        ]);
        ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                node: nodes,
                initializer,
                input: vec![
                    ValueInfoProto {
                        name: "input_ids".to_owned(),
                    },
                    ValueInfoProto {
                        name: "attention_mask".to_owned(),
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn edit(f: impl FnOnce(&mut GraphProto)) -> String {
        let mut m = tiny(5);
        if let Some(g) = m.graph.as_mut() {
            f(g);
        }
        format!("{:#}", map_graph(&m).unwrap_err())
    }

    fn find<'a>(g: &'a mut GraphProto, name: &str) -> &'a mut NodeProto {
        g.node.iter_mut().find(|n| n.name == name).unwrap()
    }

    #[test]
    fn maps_names_shapes_and_config() {
        let m = tiny(5);
        let mapped = map_graph(&m).unwrap();
        assert_eq!(mapped.tensors.len(), 3 + 6 + 12);
        let c = &mapped.config;
        assert_eq!(
            (
                c["num_hidden_layers"].as_u64(),
                c["num_attention_heads"].as_u64()
            ),
            (Some(1), Some(2))
        );
        assert_eq!(c["intermediate_size"].as_u64(), Some(FFN as u64));
        assert_eq!(c["max_position_embeddings"].as_u64(), Some(POS as u64));
        assert!((c["layer_norm_eps"].as_f64().unwrap() - 1e-12).abs() < 1e-15);
        assert!(mapped.mean_pooling);
        // [in, out] -> [out, in].
        let g = m.graph.as_ref().unwrap();
        let w = tensor_f32(
            g.initializer
                .iter()
                .find(|t| t.name == "onnx::MatMul_104")
                .unwrap(),
        )
        .unwrap();
        let (shape, hf) = &mapped.tensors["encoder.layer.0.intermediate.dense.weight"];
        assert_eq!(shape, &vec![FFN, H]);
        for o in 0..FFN {
            for i in 0..H {
                assert_eq!(hf[o * H + i], w[i * FFN + o]);
            }
        }
    }

    #[test]
    fn refuses_an_operator_it_cannot_map_naming_the_node() {
        let e = edit(|g| {
            find(g, "/m/encoder/layer.0/intermediate/intermediate_act_fn/Erf").op_type =
                "Tanh".into()
        });
        assert!(
            e.contains("/m/encoder/layer.0/intermediate/intermediate_act_fn/Erf")
                && e.contains("Tanh"),
            "{e}"
        );
        let e = edit(|g| find(g, "/m1/ReduceSum").domain = "com.microsoft".into());
        assert!(
            e.contains("/m1/ReduceSum") && e.contains("com.microsoft"),
            "{e}"
        );
    }

    #[test]
    fn refuses_a_matmul_weight_without_its_bias_add() {
        let e =
            edit(|g| find(g, "/m/encoder/layer.0/attention/self/key/Add").op_type = "Mul".into());
        assert!(
            e.contains("/m/encoder/layer.0/attention/self/key/MatMul"),
            "{e}"
        );
        assert!(e.contains("not followed by a bias Add"), "{e}");
    }

    #[test]
    fn refuses_a_bias_that_contradicts_the_node_path() {
        let e = edit(|g| {
            find(g, "/m/encoder/layer.0/attention/self/key/Add").name =
                "/m/encoder/layer.0/attention/self/query/Add".into()
        });
        assert!(
            e.contains("attention.self.key") && e.contains("attention.self.query"),
            "{e}"
        );
    }

    #[test]
    fn refuses_computed_position_ids_and_unplaced_weights() {
        let e = edit(|g| find(g, "/m/embeddings/Slice").op_type = "Sub".into());
        assert!(
            e.contains("/m/embeddings/position_embeddings/Gather")
                && e.contains("/m/embeddings/Slice"),
            "{e}"
        );
        let e = edit(|g| {
            g.initializer.push(init("onnx::Mul_9", &[H]));
            g.node.push(node(
                "Mul",
                "/m/encoder/layer.0/Mul",
                &["h1", "onnx::Mul_9"],
                &["z"],
            ));
        });
        assert!(
            e.contains("/m/encoder/layer.0/Mul") && e.contains("onnx::Mul_9"),
            "{e}"
        );
    }

    /// Bytes -> checkpoint files -> the converter -> a blob the runtime parses.
    #[test]
    fn encoded_graph_converts_to_a_valid_blob() {
        let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        vocab.extend(('a'..='z').map(String::from));
        let bytes = tiny(vocab.len()).encode_to_vec();
        let dir = std::env::temp_dir().join(format!("microbert-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
        let (files, notes) = checkpoint_files(&bytes, &dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(notes.iter().any(|n| n.contains("6 renamed")), "{notes:?}");
        let ck = Checkpoint::load(&Files::Memory(files)).unwrap();
        assert_eq!(ck.pooling, Some(microbert::blob::format::Pooling::Mean));
        let out = crate::convert::convert(&ck, &crate::convert::Options::default()).unwrap();
        microbert::parse(&out.blob).unwrap();
        let e = format!(
            "{:#}",
            checkpoint_files(b"\x0a\xff", Path::new(".")).unwrap_err()
        );
        assert!(e.contains("decoding the ONNX protobuf"), "{e}");
    }
}
