"""Quality you can measure here: a paired-truth style benchmark, and a real Monet run.

    python bench/bench_quality.py paired [--minutes 3] [--size 64] [--seeds 1] [--models ...]
    python bench/bench_quality.py monet  [--minutes 10] [--size 128]

`paired`: domain A = half of the real photos in monet2photo/trainB_first1200, domain B = the
other half passed through bench/painterly.py's fixed filter (the halves share no photo, so
training is unpaired). Each model trains A -> B for the same wall-clock budget, then
translates held-out photos (testB); since the filter's output for those photos exists, the
translations get paired scores (L1, PSNR, SSIM at the training size) as well as FID/KID
against the filtered set with the `tiny` extractor.

`monet`: the default translation pipeline on Monet paintings (trainA) vs photos
(trainB_first1200); writes a grid of held-out photos beside their translations and scores the
translations against the held-out paintings (testA) with the `tiny` extractor.

Real images come from ../shared/realdata (or --realdata DIR: a folder holding the CycleGAN
monet2photo layout trainA/, trainB*/, testA/, testB/).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gan_tpu import config, data, models, train, translator  # noqa: E402
from gan_tpu.errors import UserError  # noqa: E402
from painterly import painterly  # noqa: E402

DEFAULT_REALDATA = os.path.join(os.path.dirname(HERE), "..", "shared", "realdata")
RESULTS = os.path.join(HERE, "results")
# name -> (pipeline, overrides): the variants whose effect the table should show
VARIANTS = {
    "cyclegan (U-Net, bce)": ("cyclegan", []),
    "cyclegan lsgan": ("cyclegan", ['model.adversarial="lsgan"']),
    "cyclegan no augmentation": ("cyclegan", ["data.augment=false"]),
    "cyclegan_resnet": ("cyclegan_resnet", []),
    "cyclegan_wgangp": ("cyclegan_wgangp", []),
    "sn_cyclegan": ("sn_cyclegan", []),
    # the 7-layer global discriminator needs 96 px or more; 5 layers at the CPU's 64 px
    "ugatit_light": ("ugatit_light", ["model.global_layers=5"]),
    "ugatit": ("ugatit", ["model.global_layers=5"]),
    "bayesian_cyclegan": ("bayesian_cyclegan", []),
}
WIDTH_KEYS = ("ngf", "ndf")


class TimeLimit(keras.callbacks.Callback):
    """Stop training after `seconds` of wall time (compilation included)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.start = None
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = self.start or time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.monotonic() - self.start > self.seconds:
            self.model.stop_training = True


def _realdata(path: str) -> str:
    if not os.path.isdir(os.path.join(path, "testB")):
        raise UserError(f"{path}: no monet2photo images (trainA/, trainB*/, testA/, testB/); pass "
                        f"--realdata DIR, e.g. an unpacked CycleGAN monet2photo set")
    return path


def _load(folder: str, limit: int | None = None) -> np.ndarray:
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpg", ".jpeg")))[:limit]
    return np.stack([tf.io.decode_jpeg(tf.io.read_file(os.path.join(folder, f)), channels=3).numpy()
                     for f in files])


def _filtered(images: np.ndarray, batch: int = 16) -> np.ndarray:
    return np.concatenate([painterly(tf.constant(images[i:i + batch])).numpy()
                           for i in range(0, len(images), batch)])


def _write_records(images: np.ndarray, folder: str, domain: str) -> None:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{domain}00-{len(images)}.tfrec")
    with tf.io.TFRecordWriter(path) as writer:
        for i, image in enumerate(images):
            writer.write(data.example_bytes(f"{i:010x}", tf.io.encode_jpeg(image, quality=95).numpy(), domain))


def prepare_paired(realdata: str, work: str, test_count: int):
    """(photos A dir, paintings B dir, test photos, their filtered truth), cached in `work`."""
    root = os.path.join(work, "paired")
    truth_file = os.path.join(root, "test.npz")
    if not os.path.isfile(truth_file):
        photos = _load(os.path.join(realdata, "trainB_first1200"))
        print(f"filtering {len(photos) // 2} training photos and {test_count} test photos…", flush=True)
        _write_records(photos[0::2], os.path.join(root, "photo_tfrec"), "photo")
        _write_records(_filtered(photos[1::2]), os.path.join(root, "monet_tfrec"), "monet")
        test = _load(os.path.join(realdata, "testB"), test_count)
        np.savez(truth_file, photos=test, truth=_filtered(test))
    arrays = np.load(truth_file)
    return root, arrays["photos"], arrays["truth"]


def _small(images: np.ndarray, size: int) -> tf.Tensor:
    return tf.image.resize(tf.cast(images, tf.float32) / 255.0, [size, size], method="area")


def translate(generator, photos: np.ndarray, size: int, batch: int = 16) -> np.ndarray:
    """Photos (uint8, 256) -> translations in [0, 1] at the training size."""
    out = []
    for i in range(0, len(photos), batch):
        x = _small(photos[i:i + batch], size) * 2.0 - 1.0
        out.append((generator(x, training=False).numpy() + 1.0) / 2.0)
    return np.clip(np.concatenate(out), 0.0, 1.0)


def paired_scores(fake: np.ndarray, truth: np.ndarray, extractor) -> dict:
    """L1, PSNR, SSIM against the paired truth; FID and KID (tiny extractor) against the set."""
    from gan_tpu import metrics

    fake_t, truth_t = tf.constant(fake, tf.float32), tf.constant(truth, tf.float32)
    feats_fake, _ = extractor.features(fake_t * 2.0 - 1.0)
    feats_truth, _ = extractor.features(truth_t * 2.0 - 1.0)
    kid = metrics.kid(feats_fake, feats_truth, subsets=20, subset_size=min(50, len(fake)))
    return {
        "l1": float(tf.reduce_mean(tf.abs(fake_t - truth_t))),
        "psnr": float(tf.reduce_mean(tf.image.psnr(fake_t, truth_t, max_val=1.0))),
        "ssim": float(tf.reduce_mean(tf.image.ssim(fake_t, truth_t, max_val=1.0))),
        "fid": float(metrics.fid(feats_fake, feats_truth)),
        "kid": float(kid["kid"]),
    }


def _model_overrides(pipeline: str, width: int) -> list[str]:
    name = config.load(pipeline)["model"]["name"]
    return [f"model.{k}={width}" for k in WIDTH_KEYS if k in models.defaults(name)]


def run_paired(args) -> list[dict]:
    from gan_tpu.metrics import get_extractor

    realdata = _realdata(args.realdata)
    root, test_photos, truth = prepare_paired(realdata, args.work, args.test_count)
    truth_small = _small(truth, args.size).numpy()
    extractor = get_extractor("tiny")
    rows = [{"model": "identity (photo unchanged)", "seed": 0, "steps": 0,
             **paired_scores(_small(test_photos, args.size).numpy(), truth_small, extractor)}]
    for name in args.models:
        pipeline, overrides = VARIANTS[name]
        if not os.path.isfile(os.path.join(config.PIPELINES_DIR, f"{pipeline}.toml")):
            print(f"skipping {name}: no pipelines/{pipeline}.toml yet")
            continue
        for seed in range(args.seeds):
            out = os.path.join(args.work, "runs", f"{pipeline}-{len(rows)}-{seed}")
            cfg = config.load(pipeline, [
                f'data.monet="{root}"', f'data.photo="{root}"', f"data.image_size={args.size}",
                f"train.batch_size={args.batch}", "train.epochs=100000", "train.steps_per_epoch=50",
                "train.samples=4", f"train.seed={seed}", f'output.dir="{out}"',
                *_model_overrides(pipeline, args.width), *overrides])
            if os.path.isdir(out):
                import shutil

                shutil.rmtree(out)
            limit = TimeLimit(args.minutes * 60)
            print(f"training {name} (seed {seed}) for {args.minutes} min at {args.size} px…", flush=True)
            run = train.train(cfg, callbacks=[limit], verbose=0, use_budget=False)
            fake = translate(run.model.translator, test_photos, args.size)
            rows.append({"model": name, "seed": seed, "steps": int(run.step.numpy()),
                         **paired_scores(fake, truth_small, extractor)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def paired_table(rows: list[dict], args) -> str:
    lines = [
        f"Paired-truth style benchmark: {args.minutes} min of training per model and seed at "
        f"{args.size} px, batch {args.batch}, widths ngf = ndf = {args.width}, on {_machine()}; "
        f"{args.test_count} held-out photos (testB). L1, PSNR and SSIM against the painterly "
        f"filter's output for the same photos (lower L1, higher PSNR/SSIM are better); FID/KID "
        f"with the `tiny` extractor against the filtered set (not comparable with Kaggle's scores).",
        "",
        f"Command: `python bench/bench_quality.py paired --minutes {args.minutes} --size {args.size} "
        f"--seeds {args.seeds}`",
        "",
        "| model | seeds | steps | L1 | PSNR (dB) | SSIM | FID (tiny) | KID (tiny) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    for model, group in by_model.items():
        def cell(key, fmt):
            values = np.array([r[key] for r in group])
            text = fmt.format(np.median(values))
            return text + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")
        lines.append(f"| {model} | {len(group)} | {int(np.median([r['steps'] for r in group]))} | "
                     f"{cell('l1', '{:.4f}')} | {cell('psnr', '{:.2f}')} | {cell('ssim', '{:.3f}')} | "
                     f"{cell('fid', '{:.2f}')} | {cell('kid', '{:.4f}')} |")
    return "\n".join(lines)


def _machine() -> str:
    import platform

    gpus = tf.config.list_physical_devices("GPU")
    return f"{os.cpu_count()}-core {platform.machine()} CPU" + (f" + {len(gpus)} GPU" if gpus else "")


def run_monet(args) -> dict:
    from gan_tpu.metrics.score import format_scores, score_paths

    realdata = _realdata(args.realdata)
    out = os.path.join(args.work, "monet")
    grid_path = os.path.join(args.results, "monet_grid.png")
    cfg = config.load("cyclegan", [
        f'data.monet="{os.path.join(realdata, "trainA")}"',
        f'data.photo="{os.path.join(realdata, "trainB_first1200")}"',
        f"data.image_size={args.size}", f"train.batch_size={args.batch}", "train.epochs=100000",
        "train.steps_per_epoch=100", f'output.dir="{out}"', *_model_overrides("cyclegan", args.width)])
    if os.path.isdir(out):
        import shutil

        shutil.rmtree(out)
    print(f"training cyclegan on Monet vs photos for {args.minutes} min at {args.size} px…", flush=True)
    limit = TimeLimit(args.minutes * 60)
    run = train.train(cfg, callbacks=[limit], verbose=0, use_budget=False)
    test = _load(os.path.join(realdata, "testB"), args.test_count)
    generator = translator.at_size(run.model.translator)
    fakes = []
    for i in range(0, len(test), 16):
        x = tf.cast(test[i:i + 16], tf.float32) / 127.5 - 1.0
        fakes.append(data.to_uint8(generator(x)).numpy())
    fakes = np.concatenate(fakes)
    os.makedirs(args.results, exist_ok=True)
    pick = [0, 1, 2, 3, 4, 5]
    grid = np.concatenate([np.concatenate([test[i], fakes[i]], axis=1) for i in pick], axis=0)
    small = tf.image.resize(grid, [grid.shape[0] // 2, grid.shape[1] // 2], method="area")
    tf.io.write_file(grid_path, tf.io.encode_png(tf.cast(tf.round(small), tf.uint8)))
    zip_dir = os.path.join(out, "translated_jpg")
    os.makedirs(zip_dir, exist_ok=True)
    for i, image in enumerate(fakes):
        tf.io.write_file(os.path.join(zip_dir, f"{i + 1}.jpg"), tf.io.encode_jpeg(image, quality=95))
    scores = score_paths(zip_dir, os.path.join(realdata, "testA"), "tiny", kid_subsets=20,
                         kid_subset_size=min(50, len(fakes)), log=lambda m: None, cache_dir=args.work)
    result = {"steps": int(run.step.numpy()), "minutes": args.minutes, "size": args.size,
              "width": args.width, "grid": os.path.relpath(grid_path, os.path.dirname(HERE)),
              "table": format_scores(scores, 0.1), "machine": _machine()}
    print("\n".join(result["table"]))
    return result


def _write_section(results: str, name: str, text: str) -> str:
    os.makedirs(results, exist_ok=True)
    path = os.path.join(results, f"{name}.md")
    with open(path + ".tmp", "w") as fh:
        fh.write(text + "\n")
    os.replace(path + ".tmp", path)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["paired", "monet"])
    parser.add_argument("--realdata", default=os.environ.get("GAN_TPU_REALDATA", os.path.join(DEFAULT_REALDATA, "monet2photo")))
    parser.add_argument("--work", default=os.path.join(os.path.dirname(HERE), ".bench_work"))
    parser.add_argument("--results", default=RESULTS, help="where the tables and the grid go")
    parser.add_argument("--minutes", type=float, default=None, help="training per model and seed")
    parser.add_argument("--size", type=int, default=None, help="training resolution")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--width", type=int, default=32, help="ngf = ndf for every model")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--test-count", type=int, default=120)
    parser.add_argument("--models", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="MODEL")
    args = parser.parse_args(argv)
    try:
        if args.what == "paired":
            args.minutes = 3.0 if args.minutes is None else args.minutes
            args.size = 64 if args.size is None else args.size
            table = paired_table(run_paired(args), args)
            print(table)
            print(f"wrote {_write_section(args.results, 'quality', table)}")
        else:
            args.minutes = 10.0 if args.minutes is None else args.minutes
            args.size = 128 if args.size is None else args.size
            result = run_monet(args)
            text = (f"A real Monet run: `cyclegan` (U-Net, widths {result['width']}) trained "
                    f"{result['minutes']} min ({result['steps']} steps) at {result['size']} px on "
                    f"{result['machine']} on monet2photo trainA vs trainB_first1200; held-out photos "
                    f"(testB) translated and scored against testA with the `tiny` extractor (not "
                    f"comparable with Kaggle's scores). Grid: `{result['grid']}`.\n\n"
                    f"Command: `python bench/bench_quality.py monet --minutes {result['minutes']} "
                    f"--size {result['size']} --test-count {args.test_count}`\n\n```\n" + "\n".join(result["table"]) + "\n```")
            print(f"wrote {_write_section(args.results, 'monet', text)}")
    except UserError as err:
        print(f"bench_quality: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
