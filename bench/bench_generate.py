"""Generation + zip: `write_submission` against the starter notebook's way, whole process each.

The starter notebook ("I'm Something of a Painter Myself") calls the generator eagerly on
one photo at a time, saves every image with PIL into a folder, then zips the folder with
`shutil.make_archive`. `write_submission` batches, runs the model in a `tf.function`,
encodes JPEGs in the graph on a second thread and streams them into a validated zip.

Each measurement is a fresh Python process (import TensorFlow, build the generator with
fixed seeds, read and decode the same photos, generate, zip); the parent times the whole
process and the child reports its generation + zip time. Runs alternate between the two
ways; medians of --repeats.

    pip install pillow            # only the starter-way baseline needs it
    python bench/bench_generate.py --model demo --count 1000
    python bench/bench_generate.py --model small --count 1000
    python bench/bench_generate.py --model full --count 300
    taskset -c 1 python bench/bench_generate.py --model full --count 40 --upsample transpose \
        --upsample resize_old --upsample resize --upsample antialias --backend tensorflow --backend jax

--jax-cache cold/warm: JAX runs with an empty persistent compilation cache (a first run: the
child configures it as `gan-tpu` does, gan_tpu.jax_cache) and/or with one that an untimed run
filled first (any later process: the `generate` after a `train`, or a second `generate`).

--upsample / --backend: write_submission's runs (every pair; the starter's way always runs the
starter's transposed convs on TensorFlow). Each of those runs also times the same generator's
bare batched forward in its process, after the zip (what `generate` can at best reach), and
reports generate+zip's throughput as a share of it: over the whole call, after the first batch
(tracing/compiling done: `SubmissionResult.steady_images_per_second`), in CPU time per
image (the process' own, which a shared machine's load does not inflate), and projected to
Kaggle's 7,000 images (the run's first batch, then its steady rate). The bare forward's
timing is taken off the process time; each ratio is taken within one run, then the median.
Against the starter: whole-process wall time, and whole-process CPU time (the bare forward's
taken off) -- on a machine shared with other jobs the CPU time is the steadier of the two.

--model demo: the demo pipeline's generator (U-Net ngf=16 trained at 64 px, so photos are
resized 256 -> 64 -> 256 around it); small: the same U-Net width at 256 px; full: the
starter notebook's U-Net (ngf=64) at 256 px. Photos: --photos DIR of 256x256 JPEGs (default: the shared
monet2photo photos when present, else synthetic photos written once to a temp folder).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_PHOTOS = [os.path.join(ROOT, "..", "shared", "realdata", "monet2photo", d)
                 for d in ("trainB_first1200", "testB")]
# name: (U-Net width, the size it runs at; photos are resized to it and back to 256)
MODELS = {"demo": (16, 64), "small": (16, 256), "full": (64, 256)}
KAGGLE_COUNT = 7000


def build_generator(model: str, upsample: str = "transpose"):
    import keras

    from gan_tpu.models.networks import unet_generator

    if upsample == "resize_old":  # nearest x2 + 3x3 conv at full size, as before PhaseResizeConv2D
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_upsample import use_old_resize

        use_old_resize()
        upsample = "resize"
    ngf, size = MODELS[model]
    keras.utils.set_random_seed(0)
    net = unet_generator(size, ngf=ngf, name="g_monet", upsample=upsample)
    if size == 256:
        return net
    inputs = keras.Input((256, 256, 3))
    x = keras.layers.Resizing(size, size, name="to_model_size")(inputs)
    x = keras.layers.Resizing(256, 256, name="to_256")(net(x))
    return keras.Model(inputs, x, name="g_monet_256")


def _photo_files(photos: str | None, count: int) -> list[str]:
    if photos:
        files = sorted(glob.glob(os.path.join(photos, "*.jpg")))
    else:
        files = [f for d in SHARED_PHOTOS for f in sorted(glob.glob(os.path.join(d, "*.jpg")))]
    if len(files) >= count:
        return files[:count]
    # synthetic photos, written once (not timed)
    import numpy as np

    sys.path.insert(0, ROOT)
    from gan_tpu.sample_data import photo_image
    import tensorflow as tf

    folder = os.path.join(tempfile.gettempdir(), f"gan_tpu_bench_photos_{count}")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        path = os.path.join(folder, f"{i:05d}.jpg")
        image = photo_image(rng, 256)
        if not os.path.exists(path):
            tf.io.write_file(path, tf.io.encode_jpeg(image, quality=95))
        out.append(path)
    return out


# ----------------------------------------------------------------------------- child


def _child(args) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    if os.environ.get("KERAS_BACKEND") == "jax":  # as `gan-tpu` does (keras_backend.choose)
        from gan_tpu import jax_cache

        jax_cache.configure()
    import keras
    import numpy as np
    import tensorflow as tf

    import resource

    def cpu_s() -> float:  # this process' CPU time: under a shared machine's load, wall time is not all ours
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    gen = build_generator(args.model, "transpose" if args.child == "starter" else args.upsample)
    files = json.loads(open(args.files).read())
    out_dir = args.out
    start, cpu0 = time.perf_counter(), cpu_s()
    forward = {}
    if args.child == "ours":
        from gan_tpu.submission.generate import write_submission

        ds = tf.data.Dataset.from_tensor_slices(files).map(
            lambda f: tf.io.decode_jpeg(tf.io.read_file(f), channels=3),
            num_parallel_calls=tf.data.AUTOTUNE)
        result = write_submission(gen, ds, os.path.join(out_dir, "images.zip"), count=len(files),
                                  allow_any_count=True, progress=False, batch_size=args.batch)
        count = result.count
        seconds, cpu = time.perf_counter() - start, cpu_s() - cpu0
        forward = {"steady_img_per_s": result.steady_images_per_second, "first_batch_s": result.first_seconds,
                   "first_count": result.first_count}
        if keras.backend.backend() == "jax":  # write_submission's compilations of its inference
            cache = gen.__dict__.get("_gan_tpu_inference", {})
            forward["inference_compilations"] = sum(run.jitted._cache_size() for run in cache.values())
        t0, c0 = time.perf_counter(), cpu_s()
        forward.update(_bare_forward(gen, files, args.batch or 8, cpu_s))
        forward["bare_total_s"] = time.perf_counter() - t0  # the parent takes it off the process time
        forward["bare_cpu_s"] = cpu_s() - c0
    else:
        import PIL.Image  # the starter notebook's way, line for line in spirit

        def decode_image(f):
            image = tf.io.decode_jpeg(tf.io.read_file(f), channels=3)
            image = (tf.cast(image, tf.float32) / 127.5) - 1
            return tf.reshape(image, [256, 256, 3])

        photo_ds = tf.data.Dataset.from_tensor_slices(files).map(decode_image).batch(1)
        images = os.path.join(out_dir, "images")
        os.makedirs(images)
        count = 0
        for i, img in enumerate(photo_ds, 1):
            prediction = gen(img, training=False)[0].numpy()
            prediction = (prediction * 127.5 + 127.5).astype(np.uint8)
            PIL.Image.fromarray(prediction).save(os.path.join(images, f"{i}.jpg"))
            count = i
        shutil.make_archive(os.path.join(out_dir, "images"), "zip", images)
        seconds, cpu = time.perf_counter() - start, cpu_s() - cpu0
    process_cpu = cpu_s() - forward.get("bare_cpu_s", 0.0)  # since the start, without the bare forward
    print(json.dumps({"count": count, "generate_s": seconds, "generate_cpu_s": cpu, "process_cpu_s": process_cpu,
                      **forward}))


def _bare_forward(gen, files: list[str], batch: int, cpu_s, batches: int = 4) -> dict:
    """The same generator's batched forward alone, compiled as generation compiles it
    (TensorFlow: a plain tf.function; JAX: jax.jit), on decoded photos already in memory:
    seconds (wall and CPU) per image, medians of `batches` batches after a warm-up one."""
    import keras
    import numpy as np
    import tensorflow as tf

    x = np.stack([tf.io.decode_jpeg(tf.io.read_file(f), channels=3).numpy() for f in files[:batch]])
    x = x.astype(np.float32) / 127.5 - 1
    if keras.backend.backend() == "jax":
        from gan_tpu.backends.jax import compile_inference

        infer = compile_inference(lambda v: gen(v, training=False), gen.variables)
        run = lambda: np.asarray(infer(x))  # noqa: E731
    else:
        fn = tf.function(lambda v: gen(v, training=False))
        run = lambda: fn(tf.constant(x)).numpy()  # noqa: E731
    run()
    times, cpus = [], []
    for _ in range(batches):
        t0, c0 = time.perf_counter(), cpu_s()
        run()
        times.append(time.perf_counter() - t0)
        cpus.append(cpu_s() - c0)
    return {"forward_s_per_image": statistics.median(times) / batch,
            "forward_cpu_s_per_image": statistics.median(cpus) / batch}


# ----------------------------------------------------------------------------- parent


def _run_once(way: str, model: str, files_json: str, batch: int | None, warm_cache: str) -> dict:
    """`way`: "starter", or "ours <upsample> <backend>[ warm]": on JAX, `cold` runs with an
    empty compilation cache (a first run), `warm` with `warm_cache`, filled by earlier runs."""
    child, upsample, backend, cache = (way.split() + ["transpose", "tensorflow", "cold"])[:4]
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", child, "--model", model,
               "--files", files_json, "--out", out, "--upsample", upsample]
        if batch:
            cmd += ["--batch", str(batch)]
        env = {**os.environ, "KERAS_BACKEND": backend,
               "GAN_TPU_JAX_CACHE": warm_cache if cache == "warm" else os.path.join(out, "jax_cache")}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{way} failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["process_s"] = wall - result.get("bare_total_s", 0.0)  # without the bare forward's timing
        result["load"] = os.getloadavg()[0]
        return result


def _ratios(run: dict, starter: dict) -> None:
    """Add to one run its speed against the starter's way (whole process, same round) and,
    for write_submission's runs, generation's throughput as a share of the bare forward's:
    over the whole call, after the first batch (tracing/compiling done), and in CPU time."""
    run["vs_starter"] = starter["process_s"] / run["process_s"]
    run["vs_starter_cpu"] = starter["process_cpu_s"] / run["process_cpu_s"]
    if "forward_s_per_image" in run:
        run["whole_of_bare"] = run["count"] / run["generate_s"] * run["forward_s_per_image"]
        run["steady_of_bare"] = run["steady_img_per_s"] * run["forward_s_per_image"]
        run["cpu_of_bare"] = run["forward_cpu_s_per_image"] * run["count"] / run["generate_cpu_s"]
        # the same first batch and steady rate over Kaggle's 7,000 images
        rest = (KAGGLE_COUNT - run["first_count"]) / run["steady_img_per_s"]
        run["kaggle_of_bare"] = KAGGLE_COUNT * run["forward_s_per_image"] / (run["first_batch_s"] + rest)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=(*MODELS, "all"), default="demo")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=None, help="write_submission's global batch (default its own)")
    p.add_argument("--photos", default=None)
    p.add_argument("--upsample", action="append", choices=("transpose", "resize", "resize_old", "antialias"),
                   help="the U-Net's up blocks for write_submission's runs (repeatable; default transpose); "
                        "the starter's way always runs its transposed convs")
    p.add_argument("--backend", action="append", choices=("tensorflow", "jax"),
                   help="Keras backend of write_submission's runs (repeatable; default tensorflow)")
    p.add_argument("--jax-cache", action="append", choices=("cold", "warm"),
                   help="JAX runs: with an empty persistent compilation cache (a first run) and/or one "
                        "filled by an untimed run first (repeatable; default cold)")
    p.add_argument("--json", help="write the runs and medians here")
    p.add_argument("--child", choices=("ours", "starter"), help=argparse.SUPPRESS)
    p.add_argument("--files", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.upsample = args.upsample[0] if args.upsample else "transpose"
        return _child(args)
    args.upsample = args.upsample or ["transpose"]
    args.backend = args.backend or ["tensorflow"]

    files = _photo_files(args.photos, args.count)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(files, f)
    models = tuple(MODELS) if args.model == "all" else (args.model,)
    print(f"{len(files)} photos, {os.cpu_count()} CPUs, medians of {args.repeats}")
    caches = args.jax_cache or ["cold"]
    ways = ["starter"] + [f"ours {u} {b}" + (" warm" if c == "warm" else "")
                          for b in args.backend for u in args.upsample
                          for c in (caches if b == "jax" else ["cold"])]
    warm_cache = tempfile.mkdtemp(prefix="gan_tpu_bench_jax_cache_")
    load_before = os.getloadavg()
    print(f"load average {load_before[0]:.1f} before")
    for model in models:
        runs = {way: [] for way in ways}
        for way in ways:  # fill the warm cache (untimed)
            if way.endswith(" warm"):
                _run_once(way, model, f.name, args.batch, warm_cache)
        for _ in range(args.repeats):
            for way in ways:  # round-robin: every way sees the same load
                r = _run_once(way, model, f.name, args.batch, warm_cache)
                runs[way].append(r)
                if args.json:  # so far, in case the run is cut short
                    with open(args.json, "w") as fh:
                        json.dump({"count": len(files), "runs": runs, "load_before": load_before}, fh, indent=1)
                print(f"  {model:5s} {way:26s} process {r['process_s']:7.1f} s  generate+zip "
                      f"{r['generate_s']:7.1f} s  ({r['count']} images, load {r['load']:.1f})", flush=True)
        for rnd in range(args.repeats):  # per run, so each ratio is taken under one load
            for w in ways:
                _ratios(runs[w][rnd], runs["starter"][rnd])
        med = {w: {k: statistics.median(r[k] for r in rs) for k in rs[0] if isinstance(rs[0][k], (int, float))}
               for w, rs in runs.items()}
        n = len(files)
        for w in ways:
            m = med[w]
            line = (f"{model:5s} {w:26s}: process {m['process_s']:.1f} s ({m['vs_starter']:.2f}x the starter's), "
                    f"generate+zip {m['generate_s']:.1f} s ({n / m['generate_s']:.2f} img/s)")
            if "forward_s_per_image" in m:
                line += (f"; bare forward {1 / m['forward_s_per_image']:.2f} img/s; generate at "
                         f"{100 * m['whole_of_bare']:.0f} % of it (whole call), {100 * m['steady_of_bare']:.0f} % "
                         f"(after the first batch), {100 * m['cpu_of_bare']:.0f} % (CPU time per image), "
                         f"{100 * m['kaggle_of_bare']:.0f} % (this first batch and steady rate at {KAGGLE_COUNT:,} images)")
            line += f"; process CPU time {m['process_cpu_s']:.1f} s ({m['vs_starter_cpu']:.2f}x the starter's)"
            print(line, flush=True)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"count": n, "runs": runs, "medians": med, "load_before": load_before,
                           "load_after": os.getloadavg()}, fh, indent=1)
    print(f"load average {os.getloadavg()[0]:.1f} after")
    os.unlink(f.name)
    shutil.rmtree(warm_cache, ignore_errors=True)


if __name__ == "__main__":
    main()
