"""
Exact l2 kNN selection side by side: ours, a plain matrix product of the
same shapes, fiftyone-brain's sklearn backend and faiss, plus our
approximate IVF mode with its recall against exact.

Each method runs in its own subprocess, so that its peak memory (VmHWM,
reset after the pool is loaded) is its own::

    python bench/selection_bench.py                  # 1M x 384, 1000 q
    python bench/selection_bench.py --n 100000 --queries 200   # quick try

The pool is a mixture of Gaussian clusters (real embeddings cluster by
class and appearance; random Gaussian vectors would be the worst case for
an approximate index and change nothing for the exact methods).
"""

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

METHODS = (
    "ours",
    "matmul",
    "matmul_blocked",
    "sklearn",
    "faiss",
    "faiss_tuned",
    "ivf",
    "faiss_diag",
)


def make_data(folder, n, num_queries, dim, clusters, seed):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim), dtype=np.float32)
    pool = np.lib.format.open_memmap(
        os.path.join(folder, "pool.npy"), "w+", np.float32, (n, dim)
    )
    step = 100_000
    for start in range(0, n, step):
        stop = min(n, start + step)
        c = rng.integers(0, clusters, stop - start)
        x = rng.standard_normal((stop - start, dim), dtype=np.float32)
        x *= 0.6
        x += centers[c]
        pool[start:stop] = x

    pool.flush()
    del pool
    c = rng.integers(0, clusters, num_queries)
    queries = rng.standard_normal((num_queries, dim), dtype=np.float32)
    queries = queries * 0.6 + centers[c]
    np.save(os.path.join(folder, "queries.npy"), queries)


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    return 0


def _reset_peak():
    # writing 5 resets VmHWM (Linux >= 4.0), so the peak is this method's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def run_child(method, folder, k, out_path, repeat):
    """Runs one method on the saved data; writes its time, peak memory
    above the loaded pool, and its indices."""
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    import faiss
    import torch

    from fiftyone_dcd.selection import knn

    pool = np.load(os.path.join(folder, "pool.npy"))
    queries = np.load(os.path.join(folder, "queries.npy"))
    info = {}

    def warm(fn):
        # loads libraries and starts thread pools on a small slice
        fn(queries[:8], pool[:4096])

    if method == "ours":

        def fn(q, p):
            return knn(q, p, k)[1]

    elif method == "matmul":

        def fn(q, p):
            q @ p.T

    elif method == "matmul_blocked":
        # torch mm into one reused buffer: the matrix product without the
        # cost of page-faulting a (Q, N) result
        def fn(q, p):
            rows = 16384
            qt = torch.from_numpy(q)
            buf = torch.empty(len(q) * rows)
            for s in range(0, len(p), rows):
                b = torch.from_numpy(p[s : s + rows])
                torch.mm(qt, b.T, out=buf[: len(q) * len(b)].view(len(q), -1))

    elif method == "sklearn":
        # what fiftyone-brain's SklearnSimilarityIndex does with
        # metric="euclidean" and a query that is not in the index:
        # NearestNeighbors(metric="euclidean").fit(embeddings).kneighbors
        # (its centring of the embeddings is left out: a copy, no search)
        import sklearn.neighbors as skn

        def fn(q, p):
            nn = skn.NearestNeighbors(metric="euclidean").fit(p)
            return nn.kneighbors(q, n_neighbors=min(k, len(p)))[1]

    elif method in ("faiss", "faiss_tuned"):
        if method == "faiss_tuned":
            # see docs/scale.md: always BLAS, larger database blocks
            faiss.cvar.distance_compute_blas_threshold = 0
            faiss.cvar.distance_compute_blas_database_bs = 16384

        info["faiss_blas_threshold"] = (
            faiss.cvar.distance_compute_blas_threshold
        )
        info["faiss_database_bs"] = (
            faiss.cvar.distance_compute_blas_database_bs
        )

        def fn(q, p):
            index = faiss.IndexFlatL2(p.shape[1])
            index.add(p)
            t0 = time.perf_counter()
            idx = index.search(q, min(k, len(p)))[1]
            t = time.perf_counter() - t0
            info["search_s"] = min(t, info.get("search_s", t))

            return idx

    elif method == "faiss_diag":
        # why IndexFlatL2.search is slow: 200 queries on 200k rows (as in
        # the issue), faiss's settings one at a time, beside numpy
        def fn(q, p):
            q, p = q[:200], p[:200_000]
            index = faiss.IndexFlatL2(p.shape[1])
            index.add(p)
            cv = faiss.cvar
            default = (
                cv.distance_compute_blas_threshold,
                cv.distance_compute_blas_database_bs,
            )
            grid = [
                ("default", default, None),
                ("threshold=0", (0, default[1]), None),
                ("threshold=0,db_bs=16384", (0, 16384), None),
                ("default,1 thread", default, 1),
            ]
            for name, (th, bs), threads in grid:
                cv.distance_compute_blas_threshold = th
                cv.distance_compute_blas_database_bs = bs
                nt = faiss.omp_get_max_threads()
                if threads:
                    faiss.omp_set_num_threads(threads)
                t0 = time.perf_counter()
                index.search(q, min(k, len(p)))
                info["faiss " + name] = time.perf_counter() - t0
                faiss.omp_set_num_threads(nt)

            t0 = time.perf_counter()
            q @ p.T
            info["numpy matmul"] = time.perf_counter() - t0
            (
                cv.distance_compute_blas_threshold,
                cv.distance_compute_blas_database_bs,
            ) = default

    elif method == "ivf":
        from fiftyone_dcd.ann import build_index

        def fn(q, p):
            t0 = time.perf_counter()
            index = build_index(p, "ivf")
            info["build_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = knn(q, p, k, method="ivf", index=index)[1]
            info["search_s"] = time.perf_counter() - t0
            info["nlist"] = index.nlist
            info["nprobe"] = index.nprobe
            # a narrower probe: the speed that recall allows on this data
            fast = max(1, index.nlist // 128)
            t0 = time.perf_counter()
            np.save(
                out_path + ".fast.npy",
                knn(q, p, k, method="ivf", index=index, nprobe=fast)[1],
            )
            info["search_s_fast"] = time.perf_counter() - t0
            info["nprobe_fast"] = fast

            return out

    else:
        raise ValueError("unknown method %r" % method)

    # the warm-up's tiny IVF index finds too few candidates; that is no news
    logging.getLogger("fiftyone_dcd.ann").setLevel(logging.ERROR)
    warm(fn)
    info.pop("search_s", None)  # the warm-up's
    logging.getLogger("fiftyone_dcd.ann").setLevel(logging.WARNING)
    rss = _status("VmRSS")
    _reset_peak()
    # the fastest of `repeat` runs: other jobs share this machine
    seconds = np.inf
    for _ in range(1 if method in ("ivf", "faiss_diag") else repeat):
        t0 = time.perf_counter()
        idx = fn(queries, pool)
        seconds = min(seconds, time.perf_counter() - t0)

    peak = _status("VmHWM")
    info.update(
        method=method,
        seconds=seconds,
        extra_bytes=max(0, peak - rss),
        pool_bytes=pool.nbytes,
    )
    if idx is not None:
        np.save(out_path + ".npy", np.asarray(idx, dtype=np.int64))

    with open(out_path, "w") as f:
        json.dump(info, f)


def brute_force(queries, pool, rows=4096):
    """Exact float64 distances of a few queries to the whole pool."""
    d = np.empty((len(queries), len(pool)))
    q = queries.astype(np.float64)
    for s in range(0, len(pool), rows):
        diff = pool[s : s + rows].astype(np.float64)[None] - q[:, None]
        d[:, s : s + rows] = np.sqrt(np.einsum("qnd,qnd->qn", diff, diff))

    return d


def check(idx, d_all, k):
    """Whether each row of ``idx`` holds the k nearest up to distance
    ties: its distances equal the brute-force k smallest."""
    want = np.sort(d_all, axis=1)[:, :k]
    got = np.take_along_axis(d_all, idx[: len(d_all)], axis=1)
    got = np.sort(got, axis=1)

    return bool(np.allclose(got, want, rtol=1e-6, atol=0))


def recall(idx, exact_idx):
    hits = [len(np.intersect1d(a[a >= 0], b)) for a, b in zip(idx, exact_idx)]

    return float(np.sum(hits) / exact_idx.size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--check-queries", type=int, default=20)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs per exact method; " "the fastest counts",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.folder, args.k, args.out, args.repeat)
        return

    import torch

    methods = args.methods.split(",")
    print(
        "machine: %s, %d CPUs (%s), torch %s threads=%d"
        % (
            platform.processor() or platform.machine(),
            os.cpu_count(),
            _cpu_model(),
            torch.__version__,
            torch.get_num_threads(),
        )
    )
    print(
        "pool %d x %d float32 (%.0f MB), %d queries, k=%d, %d clusters"
        % (
            args.n,
            args.dim,
            args.n * args.dim * 4 / 2**20,
            args.queries,
            args.k,
            args.clusters,
        )
    )
    with tempfile.TemporaryDirectory(prefix="dcd-selbench-") as folder:
        t0 = time.perf_counter()
        make_data(
            folder, args.n, args.queries, args.dim, args.clusters, args.seed
        )
        # written pages still on their way to disk would slow the first
        # method down
        os.sync()
        print("data written in %.1f s" % (time.perf_counter() - t0))
        results = {}
        for method in methods:
            out = os.path.join(folder, method + ".json")
            subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child",
                    method,
                    "--folder",
                    folder,
                    "--out",
                    out,
                    "-k",
                    str(args.k),
                    "--repeat",
                    str(args.repeat),
                ],
                check=True,
            )
            with open(out) as f:
                results[method] = json.load(f)

            if os.path.exists(out + ".npy"):
                results[method]["idx"] = np.load(out + ".npy")

            if os.path.exists(out + ".fast.npy"):
                results[method]["idx_fast"] = np.load(out + ".fast.npy")

            r = results[method]
            if method == "faiss_diag":
                print("faiss_diag: 200 queries x 200k rows, k=%d" % args.k)
                for key, v in r.items():
                    if key.startswith(("faiss ", "numpy")):
                        print("    %-32s %.2f s" % (key, v))
                continue

            extra = " ".join(
                "%s=%s" % (key, _fmt(r[key]))
                for key in ("search_s", "build_s", "nlist", "nprobe")
                + ("faiss_blas_threshold", "faiss_database_bs")
                if key in r
            )
            print(
                "%-15s %8.2f s   peak %.2fx the pool  load %.1f  %s"
                % (
                    method,
                    r["seconds"],
                    1 + r["extra_bytes"] / r["pool_bytes"],
                    os.getloadavg()[0],
                    extra,
                ),
                flush=True,
            )

        pool = np.load(os.path.join(folder, "pool.npy"), mmap_mode="r")
        queries = np.load(os.path.join(folder, "queries.npy"))
        d_all = brute_force(queries[: args.check_queries], pool)

    k = min(args.k, args.n)
    print()
    for method, r in results.items():
        if "idx" in r and method != "ivf":
            print(
                "%-15s equals brute force up to ties on %d queries: %s"
                % (method, len(d_all), check(r["idx"], d_all, k))
            )

    t = {m: r["seconds"] for m, r in results.items()}
    if "faiss" in results:
        t["faiss"] = results["faiss"]["search_s"]
    if "faiss_tuned" in results:
        t["faiss_tuned"] = results["faiss_tuned"]["search_s"]

    print()
    if "ours" in t:
        ours = t["ours"]
        mm = [t[m] for m in ("matmul", "matmul_blocked") if m in t]
        if mm:
            print(
                "ours / matmul (fastest)   %.2f  (goal <= 1.5)"
                % (ours / min(mm))
            )
        if "sklearn" in t:
            print(
                "sklearn / ours            %.2f  (goal >= 3)"
                % (t["sklearn"] / ours)
            )
        for m in ("faiss", "faiss_tuned"):
            if m in t:
                print(
                    "%-25s %.2f  (search only)" % (m + " / ours", t[m] / ours)
                )
        print(
            "ours peak / pool          %.2f  (goal <= 1.3)"
            % (
                1
                + results["ours"]["extra_bytes"]
                / results["ours"]["pool_bytes"]
            )
        )
    if "ivf" in results and "ours" in results:
        r = results["ivf"]
        print(
            "ivf recall@%d vs exact    %.4f  (goal >= 0.95) at nprobe %d "
            "(default); search %.2f s = ours / %.2f = sklearn / %.2f; "
            "build %.1f s"
            % (
                k,
                recall(r["idx"], results["ours"]["idx"]),
                r["nprobe"],
                r["search_s"],
                t["ours"] / r["search_s"],
                t.get("sklearn", np.nan) / r["search_s"],
                r["build_s"],
            )
        )
        print(
            "ivf recall@%d vs exact    %.4f  at nprobe %d; search %.2f s = "
            "ours / %.2f = sklearn / %.2f"
            % (
                k,
                recall(r["idx_fast"], results["ours"]["idx"]),
                r["nprobe_fast"],
                r["search_s_fast"],
                t["ours"] / r["search_s_fast"],
                t.get("sklearn", np.nan) / r["search_s_fast"],
            )
        )


def _fmt(v):
    return "%.2f" % v if isinstance(v, float) else str(v)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass

    return "unknown CPU"


if __name__ == "__main__":
    main()
