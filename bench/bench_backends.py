"""CycleGAN train-step time: Keras' JAX backend vs TensorFlow (graph, and XLA), same model.

    python bench/bench_backends.py                 # 128 px, the cyclegan pipeline's model
    python bench/bench_backends.py --size 64 --set ngf=16 --set ndf=16 --steps 3

Each backend runs in its own process (the Keras backend is fixed at import) on whatever
devices it finds (here: the CPU). One warm-up step (which compiles), then `--steps` timed
steps; each step is timed to its losses being on the host, and the median is reported.
The first step's time is reported as the compile time. Prints a table and a JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {"tensorflow": ("tensorflow", False), "tensorflow-xla": ("tensorflow", True), "jax": ("jax", True)}


def _measure(size: int, steps: int, batch: int, options: dict, jit: bool) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from gan_tpu import config, models

    cfg = config.load("cyclegan", [f"model.{k}={v}" for k, v in options.items()])
    keras.utils.set_random_seed(0)
    model = models.build("cyclegan", image_size=size, **config.model_options(cfg))
    model.compile(jit_compile=jit)
    rng = np.random.default_rng(0)
    data = tuple(rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32) for _ in range(2))
    ends = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            float(logs["g_total"])  # wait for the step (JAX dispatches asynchronously)
            ends.append(time.perf_counter())

    start = time.perf_counter()
    model.fit(tf.data.Dataset.from_tensors(data).repeat(), epochs=1, steps_per_epoch=steps + 1,
              callbacks=[Clock()], verbose=0)
    times = [b - a for a, b in zip([start] + ends[:-1], ends)]
    params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return {"backend": keras.backend.backend(), "jit": jit, "first_step_s": times[0],
            "median_step_s": statistics.median(times[1:]), "steps_s": times[1:], "params": params}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a [model] option of the cyclegan pipeline, e.g. generator=\"resnet\"")
    parser.add_argument("--variants", default="tensorflow,tensorflow-xla,jax")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    options = dict(s.split("=", 1) for s in args.set)
    if args.worker:
        backend, jit = VARIANTS[args.worker]
        print(json.dumps(_measure(args.size, args.steps, args.batch, options, jit)))
        return 0
    results = []
    for variant in args.variants.split(","):
        backend, _ = VARIANTS[variant]
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--size", str(args.size),
               "--steps", str(args.steps), "--batch", str(args.batch), *[f"--set={s}" for s in args.set]]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode:
            print(f"{variant}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["variant"] = variant
        results.append(result)
        print(f"{variant:15s} median step {result['median_step_s']:.3f} s  (first step, with compile: "
              f"{result['first_step_s']:.1f} s; steps {', '.join(f'{t:.3f}' for t in result['steps_s'])})",
              flush=True)
    print(json.dumps({"size": args.size, "batch": args.batch, "options": options, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
