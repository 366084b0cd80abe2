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


def build_generator(model: str):
    import keras

    from gan_tpu.models.networks import unet_generator

    ngf, size = MODELS[model]
    keras.utils.set_random_seed(0)
    net = unet_generator(size, ngf=ngf, name="g_monet")
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
    import keras
    import numpy as np
    import tensorflow as tf

    gen = build_generator(args.model)
    files = json.loads(open(args.files).read())
    out_dir = args.out
    start = time.perf_counter()
    if args.child == "ours":
        from gan_tpu.submission.generate import write_submission

        ds = tf.data.Dataset.from_tensor_slices(files).map(
            lambda f: tf.io.decode_jpeg(tf.io.read_file(f), channels=3),
            num_parallel_calls=tf.data.AUTOTUNE)
        result = write_submission(gen, ds, os.path.join(out_dir, "images.zip"), count=len(files),
                                  allow_any_count=True, progress=False, batch_size=args.batch)
        count = result.count
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
    seconds = time.perf_counter() - start
    print(json.dumps({"count": count, "generate_s": seconds}))


# ----------------------------------------------------------------------------- parent


def _run_once(way: str, model: str, files_json: str, batch: int | None) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", way, "--model", model,
               "--files", files_json, "--out", out]
        if batch:
            cmd += ["--batch", str(batch)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{way} failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["process_s"] = wall
        return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=(*MODELS, "all"), default="demo")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=None, help="write_submission's global batch (default its own)")
    p.add_argument("--photos", default=None)
    p.add_argument("--child", choices=("ours", "starter"), help=argparse.SUPPRESS)
    p.add_argument("--files", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)

    files = _photo_files(args.photos, args.count)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(files, f)
    models = tuple(MODELS) if args.model == "all" else (args.model,)
    print(f"{len(files)} photos, {os.cpu_count()} CPUs, medians of {args.repeats}")
    for model in models:
        runs = {"starter": [], "ours": []}
        for _ in range(args.repeats):
            for way in ("starter", "ours"):
                r = _run_once(way, model, f.name, args.batch)
                runs[way].append(r)
                print(f"  {model:5s} {way:7s} process {r['process_s']:7.1f} s  "
                      f"generate+zip {r['generate_s']:7.1f} s  ({r['count']} images)", flush=True)
        med = {w: {k: statistics.median(r[k] for r in rs) for k in ("process_s", "generate_s")}
               for w, rs in runs.items()}
        n = len(files)
        for w in ("starter", "ours"):
            print(f"{model:5s} {w:7s}: process {med[w]['process_s']:.1f} s ({n / med[w]['process_s']:.1f} img/s), "
                  f"generate+zip {med[w]['generate_s']:.1f} s ({n / med[w]['generate_s']:.1f} img/s)")
        print(f"{model:5s} ratio: process {med['starter']['process_s'] / med['ours']['process_s']:.2f}x, "
              f"generate+zip {med['starter']['generate_s'] / med['ours']['generate_s']:.2f}x", flush=True)
    os.unlink(f.name)


if __name__ == "__main__":
    main()
