"""Per-op profile of one backend's compiled train step: XLA:CPU op time by kind, per step.

    KERAS_BACKEND=jax python bench/profile_step.py --size 64 --set ngf=32 --set ndf=32
    KERAS_BACKEND=tensorflow python bench/profile_step.py --size 64 --set ngf=32 --set ndf=32

Compiles the model's whole train step with XLA as bench/bench_backends.py does (TensorFlow:
`tf.function(jit_compile=True)`; JAX: `jax.jit(train_step, donate_argnums=0)`), runs it
`--warmup` times, then traces `--steps` steps with the backend's profiler. XLA:CPU records
each executed op (a fusion, a convolution, a copy) on its thread pool; this sums their
durations per kind (the op name without its `.N` suffix: `multiply_add_fusion`,
`convolution-base-dilated`, ...) and divides by the steps. Shares are load-independent
where wall times are not; `--hlo` writes the optimized HLO, to see what an op computes.
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_backends import options  # noqa: E402


def compiled_step(model, data):
    """(step(), profiler start(dir), stop(), optimized HLO text) for this backend."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        state = [([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
                  [v.value for v in model.optimizer.variables], [v.value for v in model.metrics_variables])]
        fn = jax.jit(model.train_step, donate_argnums=0).lower(state[0], data).compile()

        def step():
            logs, state[0] = fn(state[0], data)
            float(logs[model.loss_names[0]])
        return step, jax.profiler.start_trace, jax.profiler.stop_trace, fn.as_text()
    import tensorflow as tf

    data = tuple(tf.constant(d) for d in data)
    fn = tf.function(model.train_step, jit_compile=True)

    def step():
        float(fn(data)[model.loss_names[0]])
    hlo = fn.experimental_get_compiler_ir(data)(stage="optimized_hlo")
    return step, tf.profiler.experimental.start, tf.profiler.experimental.stop, hlo


def op_times(trace_dir: str, steps: int) -> dict[str, tuple[float, int]]:
    """{op kind: (seconds per step, ops of that kind per step)} from the XLA:CPU threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))[-1], "rb") as fh:
        space.ParseFromString(fh.read())
    seconds, count = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if "Eigen" not in line.name:  # XLA:CPU's intra-op thread pool: where compiled ops run
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                if name.startswith("ThunkExecutor") or name.startswith("end: "):
                    continue
                kind = re.sub(r"\.\d+$", "", name)
                seconds[kind] += event.duration_ps / 1e12 / steps
                count[kind] += 1
    return {k: (v, count[k] // steps) for k, v in seconds.most_common()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cyclegan")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", help="a model option")
    p.add_argument("--warmup", type=int, default=3, help="timed steps before the trace (after the first)")
    p.add_argument("--steps", type=int, default=3, help="traced steps")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--hlo", help="write the optimized HLO here")
    args = p.parse_args(argv)

    import keras
    import numpy as np

    from gan_tpu import models

    keras.utils.set_random_seed(0)
    model = models.build(args.model, image_size=args.size, **options(args.set))
    model.compile(jit_compile=True)
    rng = np.random.default_rng(0)
    data = tuple(rng.uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype(np.float32) for _ in range(2))
    start = time.perf_counter()
    step, trace_start, trace_stop, hlo = compiled_step(model, data)
    step()
    compile_s = time.perf_counter() - start
    warm = []
    for _ in range(args.warmup):
        start = time.perf_counter()
        step()
        warm.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as trace_dir:
        trace_start(trace_dir)
        for _ in range(args.steps):
            step()
        trace_stop()
        ops = op_times(trace_dir, args.steps)
    total = sum(s for s, _ in ops.values())
    print(f"{keras.backend.backend()} {args.model} {args.size} px {' '.join(args.set)}: compile {compile_s:.0f} s, "
          f"steps {', '.join(f'{t:.2f}' for t in warm)} s, load {os.getloadavg()[0]:.1f}; "
          f"op time {1e3 * total:.0f} ms/step")
    print("| op kind | ms/step | share | ops/step |\n|---|---|---|---|")
    for kind, (s, n) in list(ops.items())[:args.top]:
        print(f"| {kind} | {1e3 * s:.1f} | {100 * s / total:.1f} % | {n} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"backend": keras.backend.backend(), "args": vars(args), "compile_s": compile_s,
                       "steps_s": warm, "op_ms_per_step": {k: 1e3 * s for k, (s, _) in ops.items()}}, fh)
    if args.hlo:
        with open(args.hlo, "w") as fh:
            fh.write(hlo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
