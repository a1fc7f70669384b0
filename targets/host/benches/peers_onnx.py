#!/usr/bin/env python3
"""The ONNX Runtime half of `cargo xtask bench-peers`: one model, one thread, the token ids
the Rust half reads (`--ids`, JSON with ids128, ids512, reviews).

Two engines from the same f32 weights:
- ONNX Runtime f32: the model as shipped, with constant weight expressions folded first
  (int8 initializers dequantised in the graph, `Cast` + `Mul`, become f32 initializers, as
  ONNX Runtime's own constant folding would make them);
- ONNX Runtime dynamic int8: that f32 model through
  `onnxruntime.quantization.quantize_dynamic(per_channel=True, weight_type=QInt8)`
  (int8 weights per output channel, activations quantised per tensor at run time). Without
  the folding it would find no MatMul weight initializer and quantise nothing.

Per engine: ms per text at 128 and 512 tokens (batch 1, median and fastest) and texts per
second over the reviews at batch 32, each batch padded to its longest text (attention mask
0 on the padding). Mean pooling over the mask is part of every timed run (microbert's
times include its pooling). The model's inputs are read from the session, so a model
without token_type_ids (paraphrase-MiniLM-L3) needs no change here.

Writes one JSON line per engine to --out.
"""
import argparse
import json
import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

BATCH = 32


def fold_constants(model: onnx.ModelProto) -> int:
    """Replaces Cast and Mul nodes whose inputs are all initializers by an initializer of
    their result; returns how many were folded."""
    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    folded, keep = 0, []
    for node in graph.node:
        if node.op_type in ("Cast", "Mul") and all(i in consts for i in node.input):
            if node.op_type == "Cast":
                to = next(a.i for a in node.attribute if a.name == "to")
                value = consts[node.input[0]].astype(onnx.helper.tensor_dtype_to_np_dtype(to))
            else:
                value = consts[node.input[0]] * consts[node.input[1]]
            consts[node.output[0]] = value
            graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
            folded += 1
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    # Initializers nothing reads any more (the int8 originals, the scales).
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    live = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live)
    return folded


def session(path: str, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


class Engine:
    def __init__(self, name: str, path: str, threads: int):
        self.name = name
        self.sess = session(path, threads)
        self.inputs = [i.name for i in self.sess.get_inputs()]
        # The last hidden state: the first output of rank 3 (batch, tokens, hidden); some
        # exports (paraphrase-MiniLM-L3-v2's) list other outputs before it.
        hidden = [o for o in self.sess.get_outputs() if len(o.shape) == 3]
        if not hidden:
            raise SystemExit(f"{name}: no output of rank 3 (the hidden states)")
        self.output = hidden[0].name

    def embed(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {}
        for name in self.inputs:
            if name == "input_ids":
                feed[name] = ids
            elif name == "attention_mask":
                feed[name] = mask
            elif name == "token_type_ids":
                feed[name] = np.zeros_like(ids)
            else:
                raise SystemExit(f"{self.name}: unknown model input {name!r}")
        hidden = self.sess.run([self.output], feed)[0]
        m = mask[:, :, None].astype(np.float32)
        return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)


def times(f, runs: int, min_s: float):
    """Wall and process CPU milliseconds per run (median, fastest): CPU time leaves out the
    time spent waiting for a core on a loaded machine."""
    f()
    wall, cpu, start = [], [], time.perf_counter()
    while len(wall) < runs or time.perf_counter() - start < min_s:
        t, c = time.perf_counter(), time.process_time()
        f()
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    return {
        "median": statistics.median(wall),
        "fastest": min(wall),
        "cpu_median": statistics.median(cpu),
        "cpu_fastest": min(cpu),
    }


def one(ids):
    a = np.array([ids], dtype=np.int64)
    return a, np.ones_like(a)


def batches(reviews):
    for i in range(0, len(reviews), BATCH):
        chunk = reviews[i : i + BATCH]
        width = max(len(r) for r in chunk)
        ids = np.zeros((len(chunk), width), dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for j, r in enumerate(chunk):
            ids[j, : len(r)] = r
            mask[j, : len(r)] = 1
        yield ids, mask


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="the ONNX file as shipped")
    ap.add_argument("--work", required=True, help="where the f32 and int8 models go")
    ap.add_argument("--ids", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1, help="also run with this many intra-op threads")
    args = ap.parse_args()
    data = json.load(open(args.ids))
    model = onnx.load(args.model)
    folded = fold_constants(model)
    f32 = f"{args.work}/model-f32.onnx"
    int8 = f"{args.work}/model-int8-dynamic.onnx"
    onnx.save(model, f32)
    quantize_dynamic(f32, int8, per_channel=True, weight_type=QuantType.QInt8)
    q = onnx.load(int8)
    integer_ops = sum(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in q.graph.node)
    print(f"peers_onnx: folded {folded} constant nodes; int8 model has {integer_ops} integer MatMuls")
    if integer_ops == 0:
        raise SystemExit("quantize_dynamic quantised no MatMul: the int8 row would be f32")
    ids128, ids512 = one(data["ids128"]), one(data["ids512"])
    with open(args.out, "w") as out:
        runs = [
            (f"onnxruntime {ort.__version__} f32", f32, 1),
            (f"onnxruntime {ort.__version__} dynamic int8", int8, 1),
        ]
        if args.threads > 1:
            t = args.threads
            runs += [
                (f"onnxruntime {ort.__version__} {t} threads f32", f32, t),
                (f"onnxruntime {ort.__version__} {t} threads dynamic int8", int8, t),
            ]
        for name, path, threads in runs:
            e = Engine(name, path, threads)
            t128 = times(lambda: e.embed(*ids128), 50, 1.0)
            t512 = times(lambda: e.embed(*ids512), 10, 1.0)
            start, cpu = time.perf_counter(), time.process_time()
            n = 0
            for ids, mask in batches(data["reviews"]):
                e.embed(ids, mask)
                n += ids.shape[0]
            per_s = {
                "wall": n / (time.perf_counter() - start),
                "cpu": n / (time.process_time() - cpu),
            }
            line = {
                "kind": "engine",
                "engine": name,
                "ms128": t128,
                "ms512": t512,
                "reviews_per_s": per_s,
                "reviews_batch": BATCH,
                "threads": threads,
            }
            print(f"peers_onnx: {json.dumps(line)}", flush=True)
            out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
