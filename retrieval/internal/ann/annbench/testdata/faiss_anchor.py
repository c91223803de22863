#!/usr/bin/python3
"""FAISS side of `ragkv bench retrieval` on the same synthetic data.

Usage: ragkv bench retrieval ... --dump DIR   (writes base.f32, queries.f32, truth.f32)
       /usr/bin/python3 faiss_anchor.py DIR [factory] [threads]
Needs Debian's python3-faiss (1.7.3, generic build). Prints one line per nprobe:
recall@10 against the exact top 10 (full vectors) and single-query-loop throughput.
"""
import sys, time
import numpy as np
import faiss

d = sys.argv[1]
factory = sys.argv[2] if len(sys.argv) > 2 else "OPQ16_64,IVF4096,PQ16"
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
dim = 100
xb = np.fromfile(d + "/base.f32", dtype=np.float32).reshape(-1, dim)
xq = np.fromfile(d + "/queries.f32", dtype=np.float32).reshape(-1, dim)
gt = np.fromfile(d + "/truth.f32", dtype=np.float32).reshape(len(xq), -1).astype(np.int64)[:, :10]
faiss.omp_set_num_threads(2)
t0 = time.time()
index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
index.train(xb[: min(len(xb), 262144)])
index.add(xb)
ref = faiss.IndexRefineFlat(index)
ref.k_factor = 10  # rescore the top 100 exactly
build = time.time() - t0
print(f"{factory}: build {build:.1f}s (2 threads)", flush=True)
faiss.omp_set_num_threads(threads)
ivf = faiss.extract_index_ivf(index)
for nprobe in (4, 8, 16, 24, 32, 48, 64):
    ivf.nprobe = nprobe
    # one query per call, as a service answers them
    t0 = time.time()
    found = np.empty((len(xq), 10), dtype=np.int64)
    for i in range(len(xq)):
        _, I = ref.search(xq[i : i + 1], 10)
        found[i] = I[0]
    el = time.time() - t0
    # batched (FAISS parallelizes over the batch with `threads` threads)
    t0 = time.time()
    _, I = ref.search(xq, 10)
    elb = time.time() - t0
    rec = np.mean([len(set(found[i]) & set(gt[i])) / 10 for i in range(len(xq))])
    print(f"nprobe {nprobe}: recall@10 {rec:.4f}  {len(xq)/el:.0f} q/s one-by-one, {len(xq)/elb:.0f} q/s batched, threads={threads}", flush=True)
