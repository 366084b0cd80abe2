"""The shipped U-Net generator's forward at 256 px with `PhaseResizeConv2D`'s lowerings side by
side ("phases", "dots"): both compiled in one process (TensorFlow: the plain `tf.function`
that generation runs; JAX: `jax.jit`), outputs compared, then timed round-robin; medians.

    KERAS_BACKEND=tensorflow taskset -c 0 python bench/bench_resize_forward.py --rounds 7
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import keras
import numpy as np

from gan_tpu import layers as gl
from gan_tpu.models import networks


def compiled_forward(g, x):
    if keras.backend.backend() == "jax":
        import jax

        p = [v.value for v in g.trainable_variables]
        n = [v.value for v in g.non_trainable_variables]
        f = jax.jit(lambda p, n, x: g.stateless_call(p, n, x, training=False)[0])
        return lambda: np.asarray(f(p, n, x))
    import tensorflow as tf

    # training unset: inference behaviour, but not `training=False`, with which TensorFlow
    # always runs the phase convs (the faster on its kernels, as this bench measures)
    f = tf.function(lambda x: g(x))
    return lambda: f(x).numpy()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--ngf", type=int, default=64)
    args = p.parse_args(argv)
    keras.utils.set_random_seed(0)
    g = networks.unet_generator(256, ngf=args.ngf, upsample="resize")
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, 256, 256, 3)).astype(np.float32)
    fns, outs = {}, {}
    for lowering in ("phases", "dots"):  # each traced (and compiled) under its own lowering
        gl.PhaseResizeConv2D.lowering = lowering
        fns[lowering] = compiled_forward(g, x)
        outs[lowering] = fns[lowering]()
    times = {k: [] for k in fns}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for k, f in fns.items():
            start = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - start)
    print(f"{keras.backend.backend()}, load {load:.1f} -> {os.getloadavg()[0]:.1f}, max |phases - dots| "
          f"{float(np.max(np.abs(outs['phases'] - outs['dots']))):.2e}")
    for k, v in times.items():
        print(f"{k}: median {statistics.median(v):.3f} s; runs {', '.join(f'{t:.2f}' for t in v)}")


if __name__ == "__main__":
    main()
