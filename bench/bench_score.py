"""Benchmark: in-graph scoring vs the NumPy/SciPy transcription of Kaggle's scorer, and extractor speed.

    PYTHONPATH=. python bench/bench_score.py [--repeats 3] [--skip-precision] [--skip-extractors]

1. Time of statistics + FID + memorization distance + MiFID for 10,000 × 2,048
   generated vs 300 reference features (float64 both sides), median of --repeats.
2. Precision (issue 4 §3): relative FID error and absolute distance error of the
   in-graph float64 and float32 paths against the SciPy transcription, D = 2,048,
   on random and structured sets (reported, not asserted).
3. Features/s of each extractor on 256×256 uint8 images (batch 32). The real Kaggle
   graph is not available here; InceptionV3 (random weights, same architecture and
   299×299 input) stands in for its cost.
A benchmark, never a test: numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gan_tpu import metrics  # noqa: E402
from gan_tpu.metrics import extractors  # noqa: E402
from gan_tpu.metrics import kaggle_numpy as kn  # noqa: E402

D = 2048


def feats(n, seed, scale=0.3, shift=0.0, rank=None, d=D):
    rng = np.random.default_rng(seed)
    if rank:
        x = np.abs(rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) / np.sqrt(rank))
    else:
        x = np.abs(rng.standard_normal((n, d)))
    return (x * scale + shift).astype(np.float32)


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def bench_speed(repeats):
    gen, ref = feats(10_000, 0), feats(300, 1, 0.35, 0.01)
    metrics.mifid(gen[:2000], ref)  # trace the functions once
    t_tf, got = timed(lambda: metrics.mifid(gen, ref), repeats)
    t_np, want = timed(lambda: kn.mifid(gen, ref), repeats)
    print("\n## Scoring 10,000 x 2,048 generated vs 300 reference features (float64)")
    print("| implementation | median s | FID | distance |")
    print("|---|---|---|---|")
    print(f"| SciPy transcription (np.cov, sqrtm) | {t_np:.2f} | {want['fid']:.6f} | {want['distance']:.6f} |")
    print(f"| gan_tpu.metrics (in-graph, streaming) | {t_tf:.2f} | {got['fid']:.6f} | {got['distance']:.6f} |")
    print(f"speed-up: {t_np / t_tf:.1f}x; FID rel. diff {abs(got['fid'] - want['fid']) / want['fid']:.1e}")


def bench_precision():
    ref300 = feats(300, 11, 0.35, 0.01)
    rng = np.random.default_rng(5)
    dup = np.concatenate([ref300[rng.integers(0, 300, 900)] * 1.3, feats(100, 6)])
    # near-duplicates of the 300: rescaled copies plus a little noise (a memorizing model)
    near = ref300[rng.integers(0, 300, 1000)] * rng.uniform(0.9, 1.1, (1000, 1))
    near = (near + 0.05 * np.abs(rng.standard_normal((1000, D)))).astype(np.float32)
    zeros = feats(1000, 7)
    zeros[::10] = 0
    ref_z = ref300.copy()
    ref_z[::15] = 0
    cases = [
        ("random, N=300 vs 300 (both rank-deficient)", feats(300, 2), ref300),
        ("random, N=2,000 vs 300 (N < D)", feats(2000, 3), ref300),
        ("random, N=10,000 vs 300", feats(10_000, 4), ref300),
        ("random, N=10,000 vs 3,000 (both full rank)", feats(10_000, 8), feats(3000, 9, 0.32)),
        ("structured rank-64, N=5,000 vs 300", feats(5000, 10, rank=64), feats(300, 12, rank=48)),
        ("duplicated features (memorization penalty), N=1,000", dup, ref300),
        ("near-duplicates of the 300 (rank-deficient, FID from cancelling traces), N=1,000", near, ref300),
        ("zero rows, N=1,000 vs 300", zeros, ref_z),
    ]
    print("\n## Precision against the SciPy transcription (D = 2,048)")
    print("| set | Kaggle FID | Kaggle d | float64 FID rel. err | float64 d abs. err | "
          "float32 FID rel. err | float32 d abs. err |")
    print("|---|---|---|---|---|---|---|")
    for name, gen, ref in cases:
        want = kn.mifid(gen, ref)
        f64 = metrics.mifid(gen, ref)
        f32 = metrics.mifid(gen, ref, dtype=tf.float32)

        def err(got):
            return abs(got["fid"] - want["fid"]) / abs(want["fid"]), abs(got["distance"] - want["distance"])

        e64, e32 = err(f64), err(f32)
        print(f"| {name} | {want['fid']:.4f} | {want['distance']:.4f} | {e64[0]:.1e} | {e64[1]:.1e} | "
              f"{e32[0]:.1e} | {e32[1]:.1e} |", flush=True)


def bench_extractors(repeats, n=64):
    images = np.random.RandomState(0).randint(0, 256, (n, 256, 256, 3)).astype(np.uint8)
    print("\n## Extractor throughput (256x256 uint8 input, batch 32, this machine)")
    print("| extractor | features/s |")
    print("|---|---|")
    for label, make in [("tiny (64 px)", lambda: extractors.get_extractor("tiny")),
                        ("inception_v3, 299 px (random weights; cost stand-in for kaggle)",
                         lambda: extractors.KerasInceptionV3(weights=None))]:
        ex = make()
        ex.features(images[:32], 32)  # warm up / trace
        t, _ = timed(lambda: ex.features(images, 32), repeats)
        print(f"| {label} | {n / t:.1f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-precision", action="store_true")
    parser.add_argument("--skip-extractors", action="store_true")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, devices: "
          f"{[d.name for d in tf.config.list_logical_devices()]}")
    bench_speed(args.repeats)
    if not args.skip_precision:
        bench_precision()
    if not args.skip_extractors:
        bench_extractors(args.repeats)


if __name__ == "__main__":
    main()
