"""Nearest-neighbour retrieval over 256-d embeddings: exact (faiss IndexFlatIP) against HNSW, built and queried in
the same run, on clustered vectors shaped like video embeddings (topics plus noise).

    python scripts/bench_neighbors.py --n 100000 --queries 10000
"""
import argparse, json, os, time
from pathlib import Path
import numpy as np
from mmvsim.evaluation.neighbors import build_index, search


def clustered(n, dim=256, topics=2000, seed=0):
    """`n` unit vectors: a random topic each, plus noise of the same size as the topics' spread."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((topics, dim)).astype(np.float32)
    x = centers[rng.integers(0, topics, n)] + 0.8 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=100_000)
    p.add_argument('--queries', type=int, default=10_000)
    p.add_argument('--k', type=int, default=10)
    p.add_argument('--out', default='benchmarks/neighbors.json')
    a = p.parse_args()
    x = clustered(a.n)
    ids, q = np.arange(a.n).astype(str), x[:a.queries]
    res, truth = {}, None
    for kind in ('exact', 'hnsw'):
        nx, build = timed(lambda: build_index(ids, x, kind))
        (cos, pos), query = timed(lambda: search(nx, q, a.k))
        if truth is None: truth = pos
        recall = float(np.mean([len(set(r) & set(t)) / a.k for r, t in zip(pos, truth)]))
        res[kind] = dict(build_s=round(build, 2), query_s=round(query, 2), queries_per_s=round(a.queries / query),
                         all_n_s=round(build + query * a.n / a.queries, 1), recall_at_k=round(recall, 4))
        print(f"{kind:5s}  build {build:6.2f} s   {a.queries} queries {query:6.2f} s ({a.queries / query:8.0f}/s)   "
              f"all {a.n} vectors' top {a.k}: {res[kind]['all_n_s']:7.1f} s   recall@{a.k} {recall:.4f}")
    ratio = res['exact']['all_n_s'] / res['hnsw']['all_n_s']
    print(f'every vector\'s top {a.k} of {a.n}: exact / HNSW time = {ratio:.1f}x')
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(dict(n=a.n, queries=a.queries, k=a.k, dim=256, cores=os.cpu_count(),
                                           results=res, exact_over_hnsw_all=round(ratio, 2),
                                           date=time.strftime('%Y-%m-%d')), indent=1))


if __name__ == '__main__':
    main()
