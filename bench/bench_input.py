"""Input pipeline images/s: gan_tpu's reader against the competition starter notebook's.

The starter notebook reads each domain with `TFRecordDataset(files).map(read_tfrecord,
num_parallel_calls=AUTOTUNE).batch(1)`: one file at a time, a map that decodes and scales,
batch 1, no prefetch, no augmentation; the two domains are zipped. gan_tpu's
`data.unpaired_dataset` interleaves record files, shuffles the encoded bytes, decodes and
augments in parallel (resize to 286, random crop 256, flip), batches with static shapes
and prefetches. Rows:

* starter: the notebook's reading, as published (decode + scale, batch 1) - the anchor;
* starter + augment: the same map-only batch-1 reading doing gan_tpu's augmentation, i.e.
  the same work per image as gan_tpu;
* gan_tpu at batch 1, 8 and 32 (global batch; decode + augment + batch + prefetch).

Images/s counts both domains ((monet, photo) pairs x 2). Real JPEGs: Kaggle record files
are written once (not timed) from ../shared/realdata (the genuine monet00-60.tfrec plus
the CycleGAN monet2photo images, in Kaggle's layout: -N in the names, up to 352 per file).
Without that folder the benchmark stops with a message (exit 3). Median of --repeats runs
of --images images each, runs alternating between the ways, after one warm-up run each.

    PYTHONPATH=. python bench/bench_input.py [--images 2000] [--repeats 3] [--json OUT]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
REALDATA = os.path.join(ROOT, "..", "shared", "realdata")
CACHE = os.path.join(os.environ.get("TMPDIR", "/tmp"), "gan_tpu_bench_input")
BATCHES = (1, 8, 32)


def realdata_files() -> tuple[list[str], list[str], list[str]] | None:
    """(genuine Monet record files, Monet JPEGs, photo JPEGs) from ../shared/realdata, or None."""
    records = sorted(glob.glob(os.path.join(REALDATA, "monet_tfrec", "*.tfrec")))
    monet = sorted(glob.glob(os.path.join(REALDATA, "monet2photo", "trainA", "*.jpg")))
    photo = sorted(glob.glob(os.path.join(REALDATA, "monet2photo", "trainB_first1200", "*.jpg")))
    photo += sorted(glob.glob(os.path.join(REALDATA, "monet2photo", "testB", "*.jpg")))
    if not (records or monet) or not photo:
        return None
    return records, monet, photo


def write_dataset(out: str = CACHE) -> str:
    """Kaggle's layout from the real JPEGs (written once; reused while complete)."""
    import tensorflow as tf

    from gan_tpu.data import example_bytes

    found = realdata_files()
    if found is None:
        raise SystemExit(f"bench_input: no real images at {os.path.normpath(REALDATA)} "
                         f"(see its README); nothing measured")
    records, monet, photo = found
    done = os.path.join(out, "COMPLETE")
    if os.path.exists(done):
        return out
    for domain, files, per_file in (("monet", monet, 60), ("photo", photo, 352)):
        folder = os.path.join(out, f"{domain}_tfrec")
        os.makedirs(folder, exist_ok=True)
        chunks = [files[i:i + per_file] for i in range(0, len(files), per_file)]
        offset = 1 if domain == "monet" and records else 0  # monet00 is the genuine file
        for k, chunk in enumerate(chunks):
            path = os.path.join(folder, f"{domain}{(k + offset) * 4:02d}-{len(chunk)}.tfrec")
            with tf.io.TFRecordWriter(path) as writer:
                for f in chunk:
                    name = os.path.splitext(os.path.basename(f))[0].replace(" ", "_")
                    writer.write(example_bytes(name, tf.io.read_file(f).numpy(), domain))
    for rec in records:
        tf.io.gfile.copy(rec, os.path.join(out, "monet_tfrec", os.path.basename(rec)), overwrite=True)
    open(done, "w").close()
    return out


# ----------------------------------------------------------------------------- the two ways


def starter_dataset(monet_files, photo_files, augment: bool = False):
    """The starter notebook's reading, line for line in spirit (plus gan_tpu's augment if asked)."""
    import tensorflow as tf

    from gan_tpu import data

    fmt = {"image_name": tf.io.FixedLenFeature([], tf.string),
           "image": tf.io.FixedLenFeature([], tf.string),
           "target": tf.io.FixedLenFeature([], tf.string)}

    def decode_image(image):
        image = tf.image.decode_jpeg(image, channels=3)
        image = (tf.cast(image, tf.float32) / 127.5) - 1
        return tf.reshape(image, [256, 256, 3])

    def read_tfrecord(example):
        example = tf.io.parse_single_example(example, fmt)
        image = decode_image(example["image"])
        if augment:
            image = data.augment(image, tf.constant([0, 0], tf.int64), size=256)
        return image

    def load_dataset(filenames):
        return tf.data.TFRecordDataset(filenames).map(read_tfrecord, num_parallel_calls=tf.data.AUTOTUNE)

    monet_ds = load_dataset(monet_files).repeat().batch(1)
    photo_ds = load_dataset(photo_files).repeat().batch(1)
    return tf.data.Dataset.zip((monet_ds, photo_ds))


def ours_dataset(root: str, batch: int):
    from gan_tpu import data

    monet, photo = data.resolve(root, "monet"), data.resolve(root, "photo")
    return data.unpaired_dataset(monet, photo, global_batch=batch, image_size=256, seed=0).prefetch(
        data.AUTOTUNE)


def images_per_second(ds, batch: int, images: int) -> float:
    """Pull `images` images (both domains) through `ds`; the first batch is not timed."""
    pairs = max(1, images // 2)
    steps = max(1, pairs // batch)
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(steps):
        next(it)
    return 2 * steps * batch / (time.perf_counter() - start)


def measure(images: int, repeats: int, log=print) -> dict:
    import tensorflow as tf

    root = write_dataset()
    monet_files = sorted(glob.glob(os.path.join(root, "monet_tfrec", "*.tfrec")))
    photo_files = sorted(glob.glob(os.path.join(root, "photo_tfrec", "*.tfrec")))
    ways = {
        "starter": (lambda: starter_dataset(monet_files, photo_files), 1),
        "starter + augment": (lambda: starter_dataset(monet_files, photo_files, augment=True), 1),
        **{f"gan_tpu, batch {b}": ((lambda b=b: ours_dataset(root, b)), b) for b in BATCHES},
    }
    for name, (make, batch) in ways.items():  # warm-up: traces, file cache
        images_per_second(make(), batch, min(images, 256))
    runs = {name: [] for name in ways}
    for r in range(repeats):
        for name, (make, batch) in ways.items():
            runs[name].append(images_per_second(make(), batch, images))
            log(f"  run {r + 1}: {name:22s} {runs[name][-1]:8.1f} images/s", flush=True)
    anchor = statistics.median(runs["starter"])
    rows = [{"way": name, "batch": ways[name][1], "median": statistics.median(v), "runs": v,
             "ratio": statistics.median(v) / anchor} for name, v in runs.items()]
    counts = {d: sum(int(os.path.basename(f).rsplit("-", 1)[1].split(".")[0]) for f in fs)
              for d, fs in (("monet", monet_files), ("photo", photo_files))}
    return {"rows": rows, "images": images, "repeats": repeats, "data": counts,
            "tensorflow": tf.__version__, "cpus": os.cpu_count()}


def markdown(result: dict) -> list[str]:
    same = next(r["median"] for r in result["rows"] if r["way"] == "starter + augment")
    lines = ["| reader | batch | images/s (median) | runs | vs starter | vs starter + augment (same work) |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        runs = ", ".join(f"{v:.0f}" for v in row["runs"])
        lines.append(f"| {row['way']} | {row['batch']} | {row['median']:.1f} | {runs} | {row['ratio']:.2f}x | "
                     f"{row['median'] / same:.2f}x |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000, help="images per run, both domains (default 2000)")
    p.add_argument("--repeats", type=int, default=3, help="runs per way; the median is reported (default 3)")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    if realdata_files() is None:
        print(f"bench_input: skipped: no real images at {os.path.normpath(REALDATA)} (see its README)")
        return 3
    result = measure(args.images, max(1, args.repeats))
    print(f"\n{result['images']} images per run (Monet {result['data']['monet']}, photos "
          f"{result['data']['photo']}, real 256x256 JPEGs), {result['cpus']} CPUs, "
          f"TensorFlow {result['tensorflow']}, medians of {result['repeats']}")
    print("\n".join(markdown(result)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
