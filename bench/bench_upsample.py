"""Upsampling modes side by side: the CycleGAN train step's compiled FLOPs and time per mode
("transpose", "resize" as today's `PhaseResizeConv2D`: shifted matmuls, "resize_old": nearest
x2 + 3x3 conv at full size as before it, "resize_phases" / "resize_transposed":
`PhaseResizeConv2D` lowered as four phase convs / one 4x4 stride-2 transposed conv,
"antialias"), on TensorFlow + XLA and JAX, at each --size.

    taskset -c 0 python bench/bench_upsample.py --size 64 --size 128 --set ngf=32 --set ndf=32

One `bench_backends.py` worker per (mode, backend), all alive at once; each compiles its step
(one after the other), then steps run round-robin over every worker, so all see the same load;
medians of --steps. Compiled FLOPs: XLA's cost analysis of each optimized HLO.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
MODES = ("transpose", "resize_old", "resize_phases", "resize_transposed", "resize", "antialias")


def old_resize_conv(x, filters, *, name, reflect=False, use_bias=False, kernel_initializer=None):
    """The "resize" block as `gan_tpu.layers.upsample_conv` built it before `PhaseResizeConv2D`."""
    import keras

    from gan_tpu import layers as gl

    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
    if reflect:
        x = gl.ReflectionPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, 3, padding="valid" if reflect else "same", use_bias=use_bias,
                               kernel_initializer=kernel_initializer or gl.weight_init(), name=f"{name}_conv")(x)


def use_old_resize() -> None:
    """Make every generator module's "resize" blocks the old full-size form (a bench switch)."""
    from gan_tpu import layers as gl
    from gan_tpu.models import bayesian_cyclegan, networks, ugatit

    today = gl.upsample_conv

    def upsample_conv(x, filters, *, mode, name, transpose_kernel=4, use_bias=False, reflect=False):
        if mode != "resize":
            return today(x, filters, mode=mode, name=name, transpose_kernel=transpose_kernel,
                         use_bias=use_bias, reflect=reflect)
        return old_resize_conv(x, filters, name=name, reflect=reflect, use_bias=use_bias)

    for module in (gl, networks, ugatit, bayesian_cyclegan):
        module.upsample_conv = upsample_conv


def run(args, size: int) -> dict:
    from bench_backends import VARIANTS, Remote, _compiled_flops

    workers = {}
    for mode in args.mode:
        for v in args.backend or VARIANTS:
            argv = ["--model", args.model, "--size", str(size), "--batch", str(args.batch), "--gen-count", "0",
                    *[f"--set={s}" for s in args.set], f"--set=upsample={mode}"]
            workers[mode, v] = Remote(v, argv)
    try:
        load_before = os.getloadavg()
        setup = {key: w("setup") for key, w in workers.items()}
        jax_worker = next((w for (_, v), w in workers.items() if v == "jax"), None)
        if jax_worker is None:  # only to run XLA's cost analysis on TensorFlow's HLO
            jax_worker = workers["cost", "jax"] = Remote("jax", ["--size", "32", "--set", "ngf=4", "--set", "ndf=4"])
        for key in setup:
            setup[key]["flops"] = _compiled_flops(setup[key], jax_worker)
            setup[key].pop("hlo", None)
        times = {key: [] for key in setup}
        for _ in range(args.steps):
            for key in setup:
                w = workers[key]
                times[key].append(w("step")["s"])
        rows = {f"{mode} {v}": {**setup[mode, v], "runs_s": times[mode, v], "median_s": statistics.median(times[mode, v])}
                for mode, v in setup}
        return {"size": size, "set": args.set, "model": args.model, "load_before": load_before,
                "load_after": os.getloadavg(), "rows": rows}
    finally:
        for w in workers.values():
            w.close()


def markdown(results: list[dict]) -> list[str]:
    lines = ["| size | backend | upsample | compiled GFLOP/step | vs transpose | step s (median) | vs transpose | runs s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for v in ("tensorflow-xla", "jax"):
            base = r["rows"].get(f"transpose {v}")
            for key, row in r["rows"].items():
                mode, backend = key.split(" ")
                if backend != v:
                    continue
                rel = (lambda k: f"{row[k] / base[k]:.2f}x") if base else (lambda k: "-")
                lines.append(f"| {r['size']} | {v} | {mode} | {row['flops'] / 1e9:.3f} | {rel('flops')} | "
                             f"{row['median_s']:.3f} | {rel('median_s')} | {', '.join(f'{t:.2f}' for t in row['runs_s'])} |")
    loads = "; ".join(f"{r['size']} px: {r['load_before'][0]:.1f} before, {r['load_after'][0]:.1f} after" for r in results)
    return lines + ["", f"Load average (1 min): {loads}."]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cyclegan")
    p.add_argument("--size", type=int, action="append")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--mode", action="append", choices=MODES)
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE")
    p.add_argument("--backend", action="append", choices=("tensorflow-xla", "jax"), help="default: both")
    p.add_argument("--json")
    args = p.parse_args(argv)
    args.mode = args.mode or list(MODES)
    results = []
    for size in args.size or [64]:
        print(f"[{time.strftime('%H:%M:%S')}] {size} px", file=sys.stderr, flush=True)
        results.append(run(args, size))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh)
        print("\n".join(markdown(results)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
