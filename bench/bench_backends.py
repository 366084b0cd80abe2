"""Train step and generation on Keras' JAX backend vs TensorFlow + XLA: time, compiled FLOPs,
the analytic FLOPs, and the fraction of this CPU's peak each achieves.

    python bench/bench_backends.py --size 64 --set ngf=32 --set ndf=32        # CycleGAN, 64 px
    python bench/bench_backends.py --model ugatit_light --size 64 --set ngf=16 --set ndf=16
    python bench/bench_backends.py --size 128 --markdown BENCHMARKS-backends.md

One worker process per backend (the Keras backend is fixed at import), both alive at once:
each compiles the model's whole train step with XLA (TensorFlow: `tf.function(jit_compile=True)`;
JAX: `jax.jit(train_step, donate_argnums=0)`, what Keras' JAX `fit` runs), then the steps
are timed alternately, TF-XLA then JAX, so both see the same machine load; medians.
Compiled FLOPs: XLA's cost analysis of each backend's optimized HLO (TensorFlow's HLO is
analysed by the same XLA cost model, in the JAX worker). Analytic FLOPs: 2 x MACs of every
convolution and dense layer (textbook: 2 k^2 Cin Cout per output pixel of a conv, per input
pixel of a transposed conv), per network use in the step, x3 for a use whose weights are
trained (forward + input and weight gradients), x2 for one that passes gradients only to
its input, x1 without gradients; norms and activations are not counted. Peak: the best of a
jitted 2048^2 float32 matmul on each backend, measured in the same run. Generation:
`write_submission` of `--gen-count` random 256x256 photos with the model's translator at
256 px (the same widths), on both backends, warm-up run first; and one batch of 8 through
the compiled translator alone (JAX: `jax.jit`; TensorFlow: the plain `tf.function` that
generation runs), the per-batch cost once compiled.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "@@bench@@ "
VARIANTS = ("tensorflow-xla", "jax")


# ------------------------------------------------------------------ analytic FLOPs


def forward_flops(net) -> int:
    """2 x multiply-adds of one image through `net`'s convolutions and dense layers."""
    import keras
    import numpy as np

    total = 0
    for layer in net._flatten_layers(include_self=False, recursive=True):
        inner = getattr(layer, "layer", layer)  # SpectralNormalization wraps its conv
        try:
            x, y = layer.input.shape, layer.output.shape
        except (AttributeError, ValueError):
            continue
        if isinstance(inner, keras.layers.Conv2DTranspose):
            total += 2 * int(np.prod(x[1:-1])) * int(np.prod(inner.kernel.shape))
        elif isinstance(inner, keras.layers.Conv2D):
            total += 2 * int(np.prod(y[1:-1])) * int(np.prod(inner.kernel.shape))
        elif isinstance(inner, keras.layers.Dense):
            total += 2 * int(np.prod(y[1:-1] or (1,))) * int(np.prod(inner.kernel.shape))
    return total


def step_uses(model) -> dict[str, float]:
    """{network attribute: forward-pass equivalents per step} (uses x 3, 2 or 1, see above)."""
    name = type(model).__name__
    if name == "CycleGAN":
        g = (3 if model.identity_weight else 2) * 3
        d = 1 * 2 + 2 * 3 * model.n_critic
        return {"g_monet": g, "g_photo": g, "d_monet": d, "d_photo": d}
    if name in ("UGATIT", "UGATITLight"):  # D player: each G once without gradients, each D on real + fake;
        # G player: each G 3 times (translate, cycle, identity), each D once on the fakes
        uses = {"g_monet": 1 + 3 * 3, "g_photo": 1 + 3 * 3}
        uses.update({d: 2 * 3 + 1 * 2 for d in ("d_monet_global", "d_monet_local", "d_photo_global", "d_photo_local")})
        return uses
    if name == "CUT":  # G player: G on the photos (and paintings, nce_identity), D once on the fakes,
        # the encoder (G's layers up to the last NCE tap) on fakes and reals, the heads on each
        # group's queries (trained) and keys (no gradient); D player: D on real + fake
        groups = 2 if model.nce_identity else 1
        return {"generator": groups * 3, "discriminator": 1 * 2 + 2 * 3, "_encoder": 2 * groups * 3,
                "patch_heads": groups * model.num_patches * (3 + 1)}
    raise SystemExit(f"bench_backends: no pass count for {name} (add it to step_uses)")


# ------------------------------------------------------------------ worker (one backend)


def _reply(obj) -> None:
    sys.stdout.write(TAG + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _hlo_flops(text: str) -> float:
    import jax
    import jaxlib._hlo as hlo
    from jax._src.lib import xla_client

    module = hlo.hlo_module_from_text(text)
    return float(xla_client._xla.hlo_module_cost_analysis(jax.devices()[0].client, module)["flops"])


def _cost(compiled) -> float:
    cost = compiled.cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


class Worker:
    def __init__(self, variant: str, args):
        import keras
        import numpy as np

        from gan_tpu import models

        self.jax = keras.backend.backend() == "jax"
        self.args = args
        self.options = options(args.set)
        if self.options.get("upsample") == "resize_old":  # nearest x2 + 3x3 conv at full size, as before
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from bench_upsample import use_old_resize

            use_old_resize()
            self.options["upsample"] = "resize"
        lowering = {"resize_phases": "phases", "resize_transposed": "transposed"}.get(self.options.get("upsample"))
        if lowering:  # `PhaseResizeConv2D`'s other lowerings (a bench switch)
            from gan_tpu.layers import PhaseResizeConv2D

            PhaseResizeConv2D.lowering = lowering
            self.options["upsample"] = "resize"
        keras.utils.set_random_seed(0)
        self.model = models.build(args.model, image_size=args.size, **self.options)
        self.model.compile(jit_compile=True)
        rng = np.random.default_rng(0)
        self.data = tuple(rng.uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype(np.float32)
                          for _ in range(2))

    def setup(self, _):
        import numpy as np

        start = time.perf_counter()
        if self.jax:
            import jax

            m = self.model
            self.state = ([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables],
                          [v.value for v in m.optimizer.variables], [v.value for v in m.metrics_variables])
            self.step_fn = jax.jit(m.train_step, donate_argnums=0).lower(self.state, self.data).compile()
            flops, hlo = _cost(self.step_fn), None
        else:
            import tensorflow as tf

            self.data = tuple(tf.constant(d) for d in self.data)
            self.step_fn = tf.function(self.model.train_step, jit_compile=True)
            hlo = self.step_fn.experimental_get_compiler_ir(self.data)(stage="optimized_hlo")
            flops = None
        self.step({})  # the first run (TF compiles here)
        uses = step_uses(self.model)
        analytic = sum(n * forward_flops(getattr(self.model, k)) * self.args.batch for k, n in uses.items())
        params = sum(int(np.prod(v.shape)) for v in self.model.trainable_variables)
        return {"compile_s": time.perf_counter() - start, "flops": flops, "hlo": hlo, "analytic": analytic,
                "params": params}

    def step(self, _):
        start = time.perf_counter()
        if self.jax:
            logs, self.state = self.step_fn(self.state, self.data)
        else:
            logs = self.step_fn(self.data)
        float(logs["g_total"])  # on the host: the step is done
        return {"s": time.perf_counter() - start}

    def hlo_flops(self, cmd):
        with open(cmd["path"]) as fh:
            return {"flops": _hlo_flops(fh.read())}

    def peak(self, _, n=2048, repeats=5):
        import numpy as np

        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        if self.jax:
            import jax

            mm = jax.jit(lambda x: x @ x)
            run = lambda: mm(a).block_until_ready()  # noqa: E731
        else:
            import tensorflow as tf

            x = tf.constant(a)
            mm = tf.function(lambda x: tf.matmul(x, x), jit_compile=True)
            run = lambda: mm(x).numpy()  # noqa: E731
        run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return {"flops_per_s": 2 * n ** 3 / min(times)}

    def gen_setup(self, cmd):
        """The translator at 256 px; its compiled forward FLOPs on a batch of 8; a warm-up run."""
        import keras
        import numpy as np
        import tensorflow as tf

        from gan_tpu import models

        keras.utils.set_random_seed(0)
        model = self.model if self.args.size == 256 else models.build(self.args.model, image_size=256, **self.options)
        self.translator = model.translator
        x = np.zeros((8, 256, 256, 3), np.float32)
        if self.jax:
            import jax

            tv = self.translator.trainable_variables + self.translator.non_trainable_variables

            def forward(values, x):
                with keras.StatelessScope(state_mapping=list(zip(tv, values))):
                    return self.translator(x, training=False)
            compiled = jax.jit(forward).lower([v.value for v in tv], x).compile()
            flops, hlo = _cost(compiled), None
            values = [v.value for v in tv]
            run_forward = lambda: compiled(values, x).block_until_ready()  # noqa: E731
        else:
            fn = tf.function(lambda x: self.translator(x, training=False), jit_compile=True)
            hlo, flops = fn.experimental_get_compiler_ir(tf.constant(x))(stage="optimized_hlo"), None
            graph = tf.function(lambda x: self.translator(x, training=False))  # as write_submission runs it
            run_forward = lambda: graph(tf.constant(x)).numpy()  # noqa: E731
        run_forward()
        forward_s = []
        for _ in range(3):
            start = time.perf_counter()
            run_forward()
            forward_s.append(time.perf_counter() - start)
        self.photos = np.random.default_rng(0).integers(0, 256, (cmd["count"], 256, 256, 3), dtype=np.uint8)
        self.gen({})
        return {"flops": flops, "hlo": hlo, "analytic": forward_flops(self.translator), "batch": len(x),
                "forward_s": statistics.median(forward_s)}

    def gen(self, _):
        import tensorflow as tf

        from gan_tpu.submission.generate import write_submission

        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_submission(self.translator, tf.data.Dataset.from_tensor_slices(self.photos),
                             os.path.join(tmp, "images.zip"), count=len(self.photos), allow_any_count=True,
                             progress=False)
            return {"s": time.perf_counter() - start}


def options(pairs: list[str]) -> dict:
    """`key=value` model options (registered defaults otherwise), values as Python literals."""
    import ast

    out = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def worker_main(variant: str, args) -> int:
    worker = Worker(variant, args)
    _reply({"ready": True})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        _reply(getattr(worker, cmd["cmd"])(cmd))
    return 0


# ------------------------------------------------------------------ coordinator


class Remote:
    def __init__(self, variant: str, argv: list[str]):
        backend = "jax" if variant == "jax" else "tensorflow"
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.variant = variant
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", variant, *argv],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.read()

    def read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG):])
        raise RuntimeError(f"{self.variant} worker exited ({self.proc.wait()})")

    def __call__(self, cmd: str, **kw) -> dict:
        print(f"[{time.strftime('%H:%M:%S')}] {self.variant}: {cmd}", file=sys.stderr, flush=True)  # progress
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        try:
            self.proc.stdin.write('{"cmd": "quit"}\n')
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()


def _compiled_flops(result: dict, jax_worker: Remote) -> float:
    if result["flops"] is not None:
        return result["flops"]
    with tempfile.NamedTemporaryFile("w", suffix=".hlo", delete=False) as fh:
        fh.write(result.pop("hlo"))
    try:
        return jax_worker("hlo_flops", path=fh.name)["flops"]
    finally:
        os.unlink(fh.name)


def run(args, argv) -> dict:
    workers = {v: Remote(v, argv) for v in VARIANTS}
    try:
        out = {"model": args.model, "size": args.size, "batch": args.batch, "set": args.set,
               "load_before": os.getloadavg()[0]}
        setup = {v: w("setup") for v, w in workers.items()}  # one after the other
        for v in VARIANTS:
            setup[v]["flops"] = _compiled_flops(setup[v], workers["jax"])
            setup[v].pop("hlo", None)
        times = {v: [] for v in VARIANTS}
        for _ in range(args.steps):  # interleaved: both backends see the same load
            for v in VARIANTS:
                times[v].append(workers[v]("step")["s"])
        peak = max(w("peak")["flops_per_s"] for w in workers.values())
        gen = {}
        if args.gen_count:
            for v in VARIANTS:
                gen[v] = workers[v]("gen_setup", count=args.gen_count)
                gen[v]["flops"] = _compiled_flops(gen[v], workers["jax"]) / gen[v].pop("batch") * args.gen_count
                gen[v]["analytic"] *= args.gen_count
                gen[v].pop("hlo", None)
                gen[v]["runs_s"] = []
            for _ in range(args.gen_repeats):
                for v in VARIANTS:
                    gen[v]["runs_s"].append(workers[v]("gen")["s"])
        out.update(peak_flops_per_s=peak, load_after=os.getloadavg()[0], gen_count=args.gen_count, rows={})
        for v in VARIANTS:
            med = statistics.median(times[v])
            out["rows"][v] = {**setup[v], "runs_s": times[v], "median_s": med,
                              "fraction_of_peak": setup[v]["flops"] / med / peak}
            if v in gen:
                g = gen[v]
                g["median_s"] = statistics.median(g["runs_s"])
                g["fraction_of_peak"] = g["flops"] / g["median_s"] / peak
                out["rows"][v]["gen"] = g
        return out
    finally:
        for w in workers.values():
            w.close()


LABELS = {"tensorflow-xla": "TensorFlow + XLA", "jax": "JAX (XLA)"}


def markdown(results: list[dict]) -> list[str]:
    """Tables for a list of `run` results (one per size/model)."""
    lines = ["| model | size | backend | step s (median) | runs s | vs TF-XLA | compiled GFLOP/step | "
             "analytic GFLOP/step | compiled / analytic | % of peak |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        tf_row = r["rows"]["tensorflow-xla"]
        for v, row in r["rows"].items():
            lines.append(f"| {r['model']} {' '.join(r['set'])} | {r['size']} | {LABELS[v]} | {row['median_s']:.3f} | "
                         f"{', '.join(f'{t:.2f}' for t in row['runs_s'])} | {row['median_s'] / tf_row['median_s']:.2f}x | "
                         f"{row['flops'] / 1e9:.2f} | {row['analytic'] / 1e9:.2f} | {row['flops'] / row['analytic']:.2f} | "
                         f"{100 * row['fraction_of_peak']:.1f} |")
    lines += ["", "Generation (`write_submission`, 256 px, translator with the same widths; each call sets up "
              "its pipeline and compiles its inference anew, so at a few photos that is most of it; "
              "last column: one batch of 8 through the compiled translator alone, what a long generation "
              "pays per 8 photos before JPEG):", "",
              "| model | backend | photos | s (median) | runs s | vs TF | compiled GFLOP | analytic GFLOP | % of peak "
              "| forward s / 8 photos |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if not r.get("gen_count"):
            continue
        tf_gen = r["rows"]["tensorflow-xla"]["gen"]
        for v, row in r["rows"].items():
            g = row["gen"]
            forward = f"{g['forward_s']:.2f}" if "forward_s" in g else "-"  # results from before it was timed
            lines.append(f"| {r['model']} {' '.join(r['set'])} | {LABELS[v].replace(' + XLA', '')} | {r['gen_count']} | "
                         f"{g['median_s']:.2f} | {', '.join(f'{t:.2f}' for t in g['runs_s'])} | "
                         f"{g['median_s'] / tf_gen['median_s']:.2f}x | {g['flops'] / 1e9:.1f} | "
                         f"{g['analytic'] / 1e9:.1f} | {100 * g['fraction_of_peak']:.1f} | {forward} |")
    peaks = ", ".join(f"{r['peak_flops_per_s'] / 1e9:.0f}" for r in results)
    loads = ", ".join(f"{r['load_before']:.1f}-{r['load_after']:.1f}" for r in results)
    lines += ["", f"Peak (best 2048^2 float32 matmul of either backend, per run): {peaks} GFLOP/s. "
              f"Load average (1 min) before-after each run: {loads}."]
    return lines


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cyclegan")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="timed steps per backend (after the first)")
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", help="a model option")
    p.add_argument("--gen-count", type=int, default=16, help="photos per generation run (0: skip)")
    p.add_argument("--gen-repeats", type=int, default=3)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        return worker_main(args.worker, args)
    passed = ["--model", args.model, "--size", str(args.size), "--batch", str(args.batch),
              "--steps", str(args.steps), "--gen-count", str(args.gen_count), *[f"--set={s}" for s in args.set]]
    result = run(args, passed)
    print("\n".join(markdown([result])))
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
