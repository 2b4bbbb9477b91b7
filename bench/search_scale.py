"""Neighbour search at scale on generated, clustered unit embeddings: exact vs FAISS.

    python bench/search_scale.py --sizes 100000 1000000 [--dim 512] [--nprobe 8 16 32 64]
                                 [--hnsw]

Embeddings are clustered like real photo embeddings (uniform noise in 512-D has no
neighbours worth finding): topics, clusters of photos around each topic with a spread that
varies per cluster, and cluster sizes that vary. Queries are held-out draws from the same
clusters. For each size it prints one JSON line per method: build seconds, memory the index
added (resident set size), latency of one query at a time (median) and per query in
batches of 64, and recall@10 against exact search.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.atlas.search import NeighborIndex  # noqa: E402

K = 10


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def clustered_embeddings(n: int, dim: int, seed: int, queries: int, labels: bool = False
                         ) -> tuple[np.ndarray, ...]:
    """(n, dim) index rows and (queries, dim) held-out query rows, float32 unit vectors,
    and with ``labels`` each index row's cluster."""
    rng = np.random.default_rng(seed)
    topics = _unit_rows(rng.standard_normal((64, dim), dtype=np.float32))
    n_clusters = max(1, n // 200)
    topic_of = rng.integers(0, len(topics), n_clusters)
    centres = _unit_rows(topics[topic_of] + _unit_rows(
        rng.standard_normal((n_clusters, dim), dtype=np.float32)))
    spread = rng.uniform(0.5, 1.3, n_clusters).astype(np.float32)
    weights = rng.lognormal(0.0, 1.0, n_clusters)
    weights /= weights.sum()

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((count, dim), np.float32)
        cluster = np.empty(count, np.int64)
        for start in range(0, count, 100_000):
            stop = min(count, start + 100_000)
            which = rng.choice(n_clusters, stop - start, p=weights)
            noise = _unit_rows(rng.standard_normal((stop - start, dim), dtype=np.float32))
            out[start:stop] = _unit_rows(centres[which] + spread[which, None] * noise)
            cluster[start:stop] = which
        return out, cluster

    (rows, cluster), (held_out, _) = draw(n), draw(queries)
    return (rows, held_out, cluster) if labels else (rows, held_out)


def exact_top(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return NeighborIndex(data, exact_limit=None).query(queries, K, chunk=100)[0]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def latencies(index: NeighborIndex, queries: np.ndarray) -> dict:
    singles = []
    for row in queries[:200]:
        t0 = time.perf_counter()
        index.query(row[None], K)
        singles.append(time.perf_counter() - t0)
    batched = queries[:640]
    t0 = time.perf_counter()
    for start in range(0, len(batched), 64):
        index.query(batched[start:start + 64], K)
    per_query = (time.perf_counter() - t0) / len(batched)
    return {"ms_single_median": round(1e3 * float(np.median(singles)), 3),
            "ms_single_p90": round(1e3 * float(np.percentile(singles, 90)), 3),
            "ms_per_query_batch64": round(1e3 * per_query, 3)}


def hnsw_row(data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> list[dict]:
    import faiss

    before, t0 = rss_bytes(), time.perf_counter()
    index = faiss.IndexHNSWFlat(data.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 40
    index.add(data)
    build = time.perf_counter() - t0
    rows = []
    for ef in (32, 64, 128):
        index.hnsw.efSearch = ef
        times = []
        for row in queries[:200]:
            t1 = time.perf_counter()
            index.search(row[None], K)
            times.append(time.perf_counter() - t1)
        found = index.search(queries, K)[1]
        rows.append({"method": f"faiss HNSW32 ef{ef}", "build_s": round(build, 1),
                     "index_mib": round((rss_bytes() - before) / 2**20),
                     "ms_single_median": round(1e3 * float(np.median(times)), 3),
                     "recall10": round(recall(found, truth), 4)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--hnsw", action="store_true", help="also time FAISS HNSW (slow build)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps({"torch_threads": torch.get_num_threads()}))
    for n in args.sizes:
        data, queries = clustered_embeddings(n, args.dim, args.seed, args.queries)
        truth = exact_top(data, queries)
        base = {"n": n, "dim": args.dim, "data_mib": round(data.nbytes / 2**20)}
        exact = NeighborIndex(data, exact_limit=None)
        print(json.dumps({**base, "method": "exact (torch matmul)", "build_s": 0.0,
                          "index_mib": 0, **latencies(exact, queries), "recall10": 1.0}),
              flush=True)
        before, t0 = rss_bytes(), time.perf_counter()
        ivf = NeighborIndex(data, exact_limit=0)
        build = time.perf_counter() - t0
        added = round((rss_bytes() - before) / 2**20)
        for nprobe in args.nprobe:
            ivf.ann.nprobe = nprobe
            found = ivf.query(queries, K)[0]
            print(json.dumps({**base, "method": f"faiss IVF{ivf.ann.nlist},Flat nprobe{nprobe}",
                              "build_s": round(build, 1), "index_mib": added,
                              **latencies(ivf, queries), "recall10": round(recall(found, truth),
                                                                           4)}), flush=True)
        del ivf
        if args.hnsw:
            for row in hnsw_row(data, queries, truth):
                print(json.dumps({**base, **row}), flush=True)
        del data, exact


if __name__ == "__main__":
    main()
