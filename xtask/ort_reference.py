"""ONNX Runtime references for `cargo xtask prepare` (xtask/src/ort_reference.rs).

Reads token ids (JSON: {"ids": [[...], ...]}), runs the ONNX model in ONNX Runtime f32 and
its dynamic int8 quantisation (onnxruntime.quantization.quantize_dynamic, QInt8 weights
per channel), one text per run (batch 1, no padding), and writes for each text the
mean-pooled last hidden state (the rank-3 float output, averaged over the tokens):
{"onnxruntime": version, "f32": [[...]], "int8_dynamic": [[...]]}.
"""

import argparse
import json
import os
import tempfile

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic


def pooled(session, ids):
    names = [i.name for i in session.get_inputs()]
    x = np.array([ids], dtype=np.int64)
    feed = {"input_ids": x}
    if "attention_mask" in names:
        feed["attention_mask"] = np.ones_like(x)
    if "token_type_ids" in names:
        feed["token_type_ids"] = np.zeros_like(x)
    outs = session.run(None, feed)
    hidden = [o for o in outs if o.ndim == 3 and o.dtype == np.float32]
    if len(hidden) != 1:
        raise SystemExit(f"expected one rank-3 float output, got {len(hidden)}")
    return hidden[0][0].mean(axis=0).astype(np.float64).tolist()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    ids = json.load(open(a.ids))["ids"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    f32 = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    with tempfile.TemporaryDirectory() as tmp:
        q = os.path.join(tmp, "int8.onnx")
        quantize_dynamic(a.model, q, per_channel=True, weight_type=QuantType.QInt8)
        int8 = ort.InferenceSession(q, opts, providers=["CPUExecutionProvider"])
        out = {
            "onnxruntime": ort.__version__,
            "f32": [pooled(f32, i) for i in ids],
            "int8_dynamic": [pooled(int8, i) for i in ids],
        }
    with open(a.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
