#!/usr/bin/python3
"""FAISS side of `ragkv bench retrieval`, on the same synthetic data.

    ragkv bench retrieval ... --dump DIR          # writes base.f32, queries.f32, truth.f32
    /usr/bin/python3 faiss_anchor.py DIR [factory] [threads] [train_rows]

Needs Debian's python3-faiss (1.7.3, generic build). The trained index is cached as
DIR/<factory>.faiss, so timing can be rerun when the machine is quiet. Prints one line
per nprobe: recall@10 against the exact top 10 over the full vectors, after exact
rescoring of the top 100 (IndexRefineFlat, k_factor 10), and throughput with one query
per call (as a service answers them) and batched.
"""
import os, sys, time
import numpy as np
import faiss

d = sys.argv[1]
factory = sys.argv[2] if len(sys.argv) > 2 else "OPQ16_64,IVF4096,PQ16"
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
train_rows = int(sys.argv[4]) if len(sys.argv) > 4 else 262144
dim = 100
xb = np.fromfile(os.path.join(d, "base.f32"), dtype=np.float32).reshape(-1, dim)
xq = np.fromfile(os.path.join(d, "queries.f32"), dtype=np.float32).reshape(-1, dim)
gt = np.fromfile(os.path.join(d, "truth.f32"), dtype=np.float32).reshape(len(xq), -1).astype(np.int64)[:, :10]
cache = os.path.join(d, factory.replace(",", "_") + ".faiss")
faiss.omp_set_num_threads(2)
if os.path.exists(cache):
    index = faiss.read_index(cache)
    print(f"{factory}: loaded {cache}", flush=True)
else:
    t0 = time.time()
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    index.train(xb[: min(len(xb), train_rows)])
    index.add(xb)
    print(f"{factory}: build {time.time() - t0:.1f}s on 2 threads, {train_rows} training rows", flush=True)
    faiss.write_index(index, cache)
ref = faiss.IndexRefineFlat(index, faiss.swig_ptr(xb))
ref.k_factor = 10  # rescore the top 100 exactly
faiss.omp_set_num_threads(threads)
try:
    params = faiss.extract_index_ivf(index)
except Exception:
    params = None
for nprobe in ((4, 8, 16, 24, 32, 48, 64) if params is not None else (0,)):
    if params is not None:
        params.nprobe = nprobe
    t0 = time.time()
    found = np.empty((len(xq), 10), dtype=np.int64)
    for i in range(len(xq)):
        _, I = ref.search(xq[i : i + 1], 10)
        found[i] = I[0]
    el = time.time() - t0
    t0 = time.time()
    ref.search(xq, 10)
    elb = time.time() - t0
    rec = np.mean([len(set(found[i]) & set(gt[i])) / 10 for i in range(len(xq))])
    print(f"nprobe {nprobe}: recall@10 {rec:.4f}  {len(xq)/el:.0f} q/s one query per call, {len(xq)/elb:.0f} q/s batched, threads={threads}", flush=True)
