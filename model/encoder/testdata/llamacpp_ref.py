#!/usr/bin/env python3
"""Writes llamacpp.json: llama.cpp's llama-embedding output on ragkv's synthetic models.

Run from the repository root after building llama.cpp's llama-embedding (see the
package doc of model/encoder and README):

    python3 model/encoder/testdata/llamacpp_ref.py /path/to/llama.cpp/build/bin/llama-embedding

It writes the synthetic GGUF files with `go run ./cmd/ragkv model synth` into a temporary
directory, runs llama-embedding (2 threads, --embd-normalize 2, --verbose-prompt) on each
for the texts below with the pooling given, and records the file's SHA-256, the token ids
llama.cpp used and the vectors (printed with 7 decimals).
"""
import hashlib, json, os, re, subprocess, sys, tempfile

TEXTS = [
    "Tom went to the park with his dog.",
    "In the park Tom found a big red ball!",
    "Dense retrieval: sentence embeddings, cached tokens & vectors (BERT-style).",
    "\u00dcn\u00efc\u00f6d\u00e9 caf\u00e9, na\u00efve r\u00e9sum\u00e9 \u2014 \u4e2d\u6587 text 42",
    "the the the the the",
    "A protein expression study of human cancer cells in mice, with increased levels.",
]

RUNS = [  # shape, dtype, pooling, extra llama-embedding arguments
    ("tiny-bert", "f32", "mean", []),
    ("tiny-bert", "f32", "cls", ["--pooling", "cls"]),
    ("tiny-bert", "f16", "mean", []),
    ("tiny-bert", "q8_0", "mean", []),
    ("tiny-bert", "f32>q4_0", "mean", []),     # f32 synth, then `ragkv model quantize --type q4_0`
    ("tiny-bert", "f32>q4_K_M", "cls", ["--pooling", "cls"]),
    ("tiny-bert-256", "f32", "mean", []),
    ("tiny-bert-256", "f32>q4_K_M", "mean", []),
    ("tiny-bert-256", "f32>q6_K", "mean", []),
    ("tiny-llama3", "f32", "last", ["--pooling", "last"]),
    ("tiny-llama3", "f32", "mean", ["--pooling", "mean"]),
    ("tiny-qwen2", "f32", "last", ["--pooling", "last"]),
    ("tiny-llama3", "q8_0", "last", ["--pooling", "last"]),
]

def main():
    exe = sys.argv[1]
    commit = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(exe)), "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    out = {"llama_cpp_commit": commit, "llama_embedding_args": "-t 2 -c 512 -b 512 --embd-normalize 2 --embd-output-format array",
           "texts": TEXTS, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for shape, dtype, pooling, extra in RUNS:
            base, _, qtype = dtype.partition(">")
            path = os.path.join(tmp, f"{shape}-{base}.gguf")
            if not os.path.exists(path):
                subprocess.run(["go", "run", "./cmd/ragkv", "model", "synth", "--shape", shape, "--dtype", base,
                                "--seed", "1", "--out", path], check=True, capture_output=True)
            if qtype:
                qpath = os.path.join(tmp, f"{shape}-{base}-{qtype}.gguf")
                subprocess.run(["go", "run", "./cmd/ragkv", "model", "quantize", "--in", path, "--out", qpath,
                                "--type", qtype], check=True, capture_output=True)
                path = qpath
            sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
            ctx = "128" if shape.startswith("tiny-bert") else "512"
            cmd = [exe, "-m", path, "-t", "2", "-c", ctx, "-b", ctx, "--embd-normalize", "2", "--embd-output-format", "array",
                   "--verbose-prompt", "-p", "\n".join(TEXTS)] + extra
            r = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", check=True)
            log = r.stdout + r.stderr
            # The token lines go to stdout, one group per prompt ended by blank lines.
            tokens, cur = [], None
            for line in r.stdout.splitlines():
                m = re.match(r"^\s*(\d+) -> '", line)
                if m:
                    if cur is None:
                        cur = []
                        tokens.append(cur)
                    cur.append(int(m.group(1)))
                elif line.strip() == "" or line.startswith("["):
                    cur = None
            arr = [l for l in log.splitlines() if l.startswith("[[")]
            vecs = json.loads(arr[-1])
            assert len(vecs) == len(TEXTS) and len(tokens) == len(TEXTS), (len(vecs), len(tokens))
            out["runs"].append({"shape": shape, "dtype": dtype, "seed": 1, "sha256": sha, "pooling": pooling,
                                "tokens": tokens, "embeddings": vecs})
            print(shape, dtype, pooling, "ok", file=sys.stderr)
    with open(os.path.join(os.path.dirname(__file__), "llamacpp.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")

main()
