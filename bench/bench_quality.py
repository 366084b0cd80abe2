"""Quality you can measure here: a paired-truth style benchmark, a real Monet run, noise models.

    python bench/bench_quality.py paired [--minutes 2] [--size 64] [--seeds 1] [--model-seeds 1] [--models ...]
    python bench/bench_quality.py monet  [--minutes 10] [--size 128]
    python bench/bench_quality.py noise  [--minutes 2] [--size 32] [--models biggan dcgan wgan_gp sngan]
    python bench/bench_quality.py grid   [--grid bench/results/monet_grid.png]

Each writes its section of BENCHMARKS.md (`--section NAME` for another one, e.g. a rerun on
other hardware beside the old table) and, when the process is pinned to fewer cores than the
machine has (`taskset`), says so in the machine line and the reproduce command.

`paired`: domain A = half of the real photos in monet2photo/trainB_first1200, domain B = the
other half passed through bench/painterly.py's fixed filter (the halves share no photo, so
training is unpaired). Each model trains A -> B for the same wall-clock budget, then
translates held-out photos (testB); since the filter's output for those photos exists, the
translations get paired scores (L1, PSNR, SSIM at the training size) as well as FID/KID
against the filtered set with the `tiny` extractor, and the checkerboard index
(`gan_tpu.metrics.checkerboard`; not a Kaggle figure) whose baseline is the identity row's photos.

`monet`: the default translation pipeline on Monet paintings (trainA) vs photos
(trainB_first1200); writes a grid of held-out photos beside their translations and scores the
translations against the held-out paintings (testA) with the `tiny` extractor.

`noise`: each noise model trains on the Monet paintings of trainA (1,072 in monet2photo; Kaggle's
300 are not in ../shared) for the same budget, paints as many images, scored against the
paintings (`tiny` FID/KID, checkerboard), and one combined grid.

`grid`: the checkerboard index of a `monet` grid's photo tiles and translation tiles (for an
old run whose translations only the committed grid keeps).

Real images come from ../shared/realdata (or --realdata DIR: a folder holding the CycleGAN
monet2photo layout trainA/, trainB*/, testA/, testB/).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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
BASE = "cyclegan reference"
# The cyclegan rows change one thing each from a fixed reference recipe, spelled out here so
# that a rerun measures the same thing whatever pipelines/cyclegan.toml says today: the U-Net
# with bce, one-sided label smoothing 0.1, DiffAugment translation+cutout, random
# resize-crop/flip, no image pool and transposed-conv upsampling (the shipped pipeline until
# the 2-core table; see README).
REFERENCE = ['model.adversarial="bce"', "model.label_smoothing=0.1", 'model.diff_augment="translation,cutout"',
             "data.augment=true", "model.pool_size=0", 'model.upsample="transpose"']
# name -> (pipeline, overrides); the other models run their own pipelines.
VARIANTS = {
    BASE: ("cyclegan", REFERENCE),
    "reference, no label smoothing": ("cyclegan", [*REFERENCE, "model.label_smoothing=0.0"]),
    "reference, no DiffAugment": ("cyclegan", [*REFERENCE, 'model.diff_augment=""']),
    "reference, no data augmentation": ("cyclegan", [*REFERENCE, "data.augment=false"]),
    "reference, lsgan loss": ("cyclegan", [*REFERENCE, 'model.adversarial="lsgan"']),
    "reference, image pool 50": ("cyclegan", [*REFERENCE, "model.pool_size=50"]),
    # a wall-clock run has no known length, so no other row decays its LR; this one runs
    # for the steps the reference reached in the same budget, decaying over their second half
    "reference, LR decay": ("cyclegan", [*REFERENCE, "model.decay_start=0.5", "train.epochs={base_epochs}"]),
    "reference, upsample resize": ("cyclegan", [*REFERENCE, 'model.upsample="resize"']),
    "reference, upsample antialias": ("cyclegan", [*REFERENCE, 'model.upsample="antialias"']),
    "cyclegan_resnet": ("cyclegan_resnet", []),
    "cyclegan_resnet, upsample resize": ("cyclegan_resnet", ['model.upsample="resize"']),
    "cyclegan_resnet, upsample antialias": ("cyclegan_resnet", ['model.upsample="antialias"']),
    "cyclegan_wgangp": ("cyclegan_wgangp", []),
    "sn_cyclegan": ("sn_cyclegan", []),
    # the 7-layer global discriminator needs 96 px or more; 5 layers at the CPU's 64 px
    "ugatit_light": ("ugatit_light", ["model.global_layers=5"]),
    "ugatit": ("ugatit", ["model.global_layers=5"]),
    "bayesian_cyclegan": ("bayesian_cyclegan", []),
    "cut": ("cut", []),
    "fastcut": ("fastcut", []),
    "stargan": ("stargan", []),  # its 6-layer D needs a multiple of 64 px: 64 px gives 1x1 scores
    "unit": ("unit", []),
    "munit": ("munit", []),  # its pipeline's style_seed 0: one fixed style for every photo
    # its 3 content-discriminator layers need images of 212 px or more (64 px: 16 px codes): 1 here
    "drit": ("drit", ["model.content_d_layers=1"]),
}
# rows whose spread decides a pipeline default, and CUT/FastCUT compared with them: they
# get --seeds, the others --model-seeds
DECIDING = {name for name, (pipeline, _) in VARIANTS.items() if pipeline == "cyclegan"} | {
    "cyclegan_resnet", "cyclegan_resnet, upsample resize", "cyclegan_resnet, upsample antialias",
    "cut", "fastcut"}
STEPS_PER_EPOCH = 50
WIDTH_KEYS = ("ngf", "ndf", "dim")  # dim: UNIT/MUNIT/DRIT++ generator width


class TimeLimit(keras.callbacks.Callback):
    """Stop training after `seconds` of wall time: compilation included, or with
    `after_first_step` counted from the end of the first step (which compiles), whose
    seconds `first_step` keeps."""

    def __init__(self, seconds: float, after_first_step: bool = False):
        super().__init__()
        self.seconds, self.after_first_step = seconds, after_first_step
        self.start = None
        self.steps = 0
        self.first_step = None

    def on_train_begin(self, logs=None):
        self.start = self.start or time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == 1:
            self.first_step = time.monotonic() - self.start
            if self.after_first_step:
                self.start = time.monotonic()
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


def set_scores(fake: np.ndarray, real: np.ndarray, extractor) -> dict:
    """FID and KID (`extractor`) of images in [0, 1] against a set; their checkerboard index."""
    from gan_tpu import metrics
    from gan_tpu.metrics.checkerboard import checkerboard_index

    feats_fake, _ = extractor.features(tf.constant(fake, tf.float32) * 2.0 - 1.0)
    feats_real, _ = extractor.features(tf.constant(real, tf.float32) * 2.0 - 1.0)
    kid = metrics.kid(feats_fake, feats_real, subsets=20, subset_size=min(50, len(fake), len(real)))
    return {"fid": float(metrics.fid(feats_fake, feats_real)), "kid": float(kid["kid"]),
            "checkerboard": checkerboard_index(np.round(np.asarray(fake) * 255.0))}


def paired_scores(fake: np.ndarray, truth: np.ndarray, extractor) -> dict:
    """L1, PSNR, SSIM against the paired truth; FID and KID (tiny extractor) against the set;
    the checkerboard index of the translations."""
    fake_t, truth_t = tf.constant(fake, tf.float32), tf.constant(truth, tf.float32)
    return {
        "l1": float(tf.reduce_mean(tf.abs(fake_t - truth_t))),
        "psnr": float(tf.reduce_mean(tf.image.psnr(fake_t, truth_t, max_val=1.0))),
        "ssim": float(tf.reduce_mean(tf.image.ssim(fake_t, truth_t, max_val=1.0))),
        **set_scores(fake, truth, extractor),
    }


def _model_overrides(pipeline: str, width: int) -> list[str]:
    """Widths for every model; LR decay off (see VARIANTS) where the model has it."""
    options = models.defaults(config.load(pipeline)["model"]["name"])
    return ([f"model.{k}={width}" for k in WIDTH_KEYS if k in options]
            + (["model.decay_start=1.0"] if "decay_start" in options else []))


def _row_key(name: str, seed: int, args) -> str:
    """What makes a row: its recipe as well as its name, so an edited recipe runs again."""
    return json.dumps([name, VARIANTS[name], seed, args.minutes, args.size, args.batch, args.width, args.test_count])


def _train_variant(name: str, seed: int, root: str, test_photos, truth_small, extractor, args,
                   base_steps: int | None) -> dict:
    pipeline, overrides = VARIANTS[name]
    epochs = -(-base_steps // STEPS_PER_EPOCH) if base_steps else 100000
    out = os.path.join(args.work, "runs", f"{pipeline}-{seed}")
    cfg = config.load(pipeline, [
        f'data.monet="{root}"', f'data.photo="{root}"', f"data.image_size={args.size}",
        f"train.batch_size={args.batch}", "train.epochs=100000", f"train.steps_per_epoch={STEPS_PER_EPOCH}",
        "train.samples=4", f"train.seed={seed}", f'output.dir="{out}"',
        *_model_overrides(pipeline, args.width), *(o.format(base_epochs=epochs) for o in overrides)])
    if os.path.isdir(out):
        shutil.rmtree(out)  # a fresh run each time: never resume another variant's checkpoint
    limit = TimeLimit(args.minutes * 60)
    print(f"training {name} (seed {seed}) for {args.minutes} min at {args.size} px…", flush=True)
    started = time.monotonic()
    run = train.train(cfg, callbacks=[limit], verbose=0, use_budget=False)
    seconds = time.monotonic() - started
    fake = translate(run.model.translator, test_photos, args.size)
    shutil.rmtree(out, ignore_errors=True)
    return {"model": name, "seed": seed, "steps": int(run.step.numpy()), "seconds": round(seconds, 1),
            **paired_scores(fake, truth_small, extractor)}


def run_paired(args) -> list[dict]:
    """One row per (variant, seed), plus the identity baseline; finished rows are kept in
    `--work`/paired/rows.jsonl, so an interrupted run picks up where it stopped."""
    from gan_tpu.metrics import get_extractor

    realdata = _realdata(args.realdata)
    root, test_photos, truth = prepare_paired(realdata, args.work, args.test_count)
    truth_small = _small(truth, args.size).numpy()
    extractor = get_extractor("tiny")
    done_file = os.path.join(root, "rows.jsonl")
    done = {}
    if os.path.isfile(done_file):
        for line in open(done_file):
            entry = json.loads(line)
            done[entry["key"]] = entry["row"]
    rows = [{"model": "identity (photo unchanged)", "seed": 0, "steps": 0, "seconds": 0.0,
             **paired_scores(_small(test_photos, args.size).numpy(), truth_small, extractor)}]
    names = list(args.models)
    if "reference, LR decay" in names and BASE not in names:
        names.insert(0, BASE)  # the decay row's length is the base row's
    for name in names:
        for seed in range(args.seeds if name in DECIDING else args.model_seeds):
            key = _row_key(name, seed, args)
            if key in done:
                print(f"{name} (seed {seed}): kept from {done_file}", flush=True)
                rows.append(done[key])
                continue
            base = next((r["steps"] for r in rows if r["model"] == BASE and r["seed"] == seed), None)
            try:
                row = _train_variant(name, seed, root, test_photos, truth_small, extractor, args,
                                     base if "{base_epochs}" in " ".join(VARIANTS[name][1]) else None)
            except Exception as err:  # one model's failure must not cost the others' half hour
                print(f"{name} (seed {seed}) failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
                rows.append({"model": name, "seed": seed, "error": f"{type(err).__name__}: {err}".splitlines()[0]})
                continue
            rows.append(row)
            with open(done_file, "a") as fh:
                fh.write(json.dumps({"key": key, "row": row}) + "\n")
            print(json.dumps(row), flush=True)
    return rows


def paired_command(args) -> str:
    models = "" if set(args.models) == set(VARIANTS) else " --models " + " ".join(repr(m) for m in args.models)
    return (f"python bench/bench_quality.py paired --minutes {args.minutes} --size {args.size} "
            f"--seeds {args.seeds} --model-seeds {args.model_seeds} --width {args.width} --batch {args.batch} --test-count {args.test_count}"
            f"{section_flag(args)}{models}")


def section_flag(args) -> str:
    return f" --section {args.section}" if args.section else ""


def paired_table(rows: list[dict], args) -> list[str]:
    lines = [
        f"{args.minutes} min of training per model and seed (compilation included) at "
        f"{args.size} px, batch {args.batch}, widths ngf = ndf = {args.width}; {args.test_count} "
        f"held-out photos (testB). Domain A: half of monet2photo/trainB_first1200; domain B: the "
        f"other half through `bench/painterly.py`. L1, PSNR and SSIM against the filter's output "
        f"for the same held-out photos (lower L1, higher PSNR/SSIM are better); FID/KID with the "
        f"`tiny` extractor against the filtered set (not comparable with Kaggle's scores). LR "
        f"decay is off in every row but \"reference, LR decay\", which runs for the reference's "
        f"steps and decays over their second half. Checkerboard: the period-2 spectral peak over "
        f"its neighbourhood (`gan_tpu.metrics.checkerboard`; ~1 without a grid, the identity row is "
        f"the photos' own; not a Kaggle figure). With several seeds: median ± standard deviation.",
        "",
        "| model | seeds | steps | L1 | PSNR (dB) | SSIM | FID (tiny) | KID (tiny) | checkerboard |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    for model, group in by_model.items():
        failed = [r["error"] for r in group if "error" in r]
        group = [r for r in group if "error" not in r]
        if not group:
            lines.append(f"| {model} | failed: {failed[0]} | | | | | | | |")
            continue

        def cell(key, fmt):
            values = np.array([r[key] for r in group if key in r])  # rows kept from before a column
            if not len(values):
                return "-"
            return fmt.format(np.median(values)) + (f" ± {fmt.format(np.std(values))}" if len(values) > 1 else "")
        lines.append(f"| {model} | {len(group)} | {int(np.median([r['steps'] for r in group]))} | "
                     f"{cell('l1', '{:.4f}')} | {cell('psnr', '{:.2f}')} | {cell('ssim', '{:.3f}')} | "
                     f"{cell('fid', '{:.2f}')} | {cell('kid', '{:.4f}')} | {cell('checkerboard', '{:.2f}')} |")
    return lines


def run_monet(args) -> dict:
    from gan_tpu.metrics.score import format_scores, score_paths

    realdata = _realdata(args.realdata)
    out = os.path.join(args.work, "monet")
    grid_path = os.path.join(args.results, f"{args.section or 'monet'}_grid.png")
    cfg = config.load("cyclegan", [
        f'data.monet="{os.path.join(realdata, "trainA")}"',
        f'data.photo="{os.path.join(realdata, "trainB_first1200")}"',
        f"data.image_size={args.size}", f"train.batch_size={args.batch}", "train.epochs=100000",
        "train.steps_per_epoch=100", f'output.dir="{out}"', *_model_overrides("cyclegan", args.width)])
    if os.path.isdir(out):
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
                         kid_subset_size=min(50, len(fakes)), log=lambda m: None, cache_dir=args.work,
                         photos=os.path.join(realdata, "testB"))
    result = {"steps": int(run.step.numpy()), "minutes": args.minutes, "size": args.size,
              "width": args.width, "grid": os.path.relpath(grid_path, os.path.dirname(HERE)),
              "table": format_scores(scores, 0.1)}
    print("\n".join(result["table"]))
    return result


def grid_checkerboard(path: str, rows: int = 6) -> dict:
    """The checkerboard index of a `monet` grid's tiles: its left column (photos) and its right
    column (their translations), `rows` tiles each, as the PNG holds them (halved)."""
    from gan_tpu.metrics.checkerboard import checkerboard_index

    grid = tf.io.decode_png(tf.io.read_file(path), channels=3).numpy()
    side = grid.shape[0] // rows
    if grid.shape[0] != rows * side or grid.shape[1] != 2 * side or side % 2:
        raise UserError(f"{path}: a {grid.shape[0]}x{grid.shape[1]} image is not {rows} rows of "
                        f"photo | translation tiles of an even side")
    tiles = grid.reshape(rows, side, 2, side, 3).transpose(2, 0, 1, 3, 4)
    return {"photos": checkerboard_index(tiles[0]), "translations": checkerboard_index(tiles[1]),
            "tiles": rows, "side": side}


def pinning() -> str:
    """`taskset -c CPUS` when this process may run on fewer CPUs than the machine has, else ""."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cpus or len(cpus) >= (os.cpu_count() or 0):
        return ""
    return "taskset -c " + ",".join(str(c) for c in cpus)


NOISE_MODELS = ("biggan", "dcgan", "wgan_gp", "sngan")
NOISE_CHOICES = ("artgan", *NOISE_MODELS)
GRID_SAMPLES = 8  # per model: one row of the combined grid


def sample_paintings(model, count: int, batch: int = 50) -> np.ndarray:
    """`count` paintings in [0, 1] from a noise model's painting (EMA where on) weights."""
    out = []
    with model.painting_weights():
        for index in range(-(-count // batch)):
            out.append((np.asarray(model.sample(index, batch)) + 1.0) / 2.0)
    return np.clip(np.concatenate(out)[:count], 0.0, 1.0)


def run_noise(args) -> tuple[list[dict], str]:
    """Each noise model trains on the Monet paintings (trainA) for the same wall-clock budget,
    then paints as many images as there are paintings, scored (tiny extractor) against them at
    the training size; one combined grid, a row of samples per model, top to bottom."""
    from gan_tpu.metrics import get_extractor

    realdata = _realdata(args.realdata)
    paintings = _small(_load(os.path.join(realdata, "trainA")), args.size).numpy()
    extractor = get_extractor("tiny")
    rows, grid_rows = [], []
    for name in args.models:
        out = os.path.join(args.work, "noise", name)
        cfg = config.load(name, [
            f'data.monet="{os.path.join(realdata, "trainA")}"',
            f'data.photo="{os.path.join(realdata, "trainB_first1200")}"', f"data.image_size={args.size}",
            f"train.batch_size={args.batch}", "train.epochs=100000", f"train.steps_per_epoch={STEPS_PER_EPOCH}",
            "train.samples=0", "train.seed=0", f'output.dir="{out}"', *_model_overrides(name, args.width)])
        if os.path.isdir(out):
            shutil.rmtree(out)
        print(f"training {name} for {args.minutes} min at {args.size} px…", flush=True)
        started = time.monotonic()
        limit = TimeLimit(args.minutes * 60, after_first_step=True)  # BigGAN's compile alone is minutes here
        try:
            run = train.train(cfg, callbacks=[limit], verbose=0, use_budget=False)
        except Exception as err:  # one model's failure must not cost the others' runs
            print(f"{name} failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            rows.append({"model": name, "error": f"{type(err).__name__}: {err}".splitlines()[0]})
            continue
        seconds = time.monotonic() - started
        fake = sample_paintings(run.model, len(paintings))
        shutil.rmtree(out, ignore_errors=True)
        row = {"model": name, "paintings": len(paintings), "steps": int(run.step.numpy()), "seconds": round(seconds, 1),
               "first_step": round(limit.first_step or 0.0, 1), **set_scores(fake, paintings, extractor)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        grid_rows.append(np.concatenate(list(fake[:GRID_SAMPLES]), axis=1))
    grid_path = os.path.join(args.results, f"{args.section or 'noise'}_grid.png")
    if grid_rows:
        grid = np.round(np.concatenate(grid_rows, axis=0) * 255.0).astype(np.uint8)
        grid = np.repeat(np.repeat(grid, max(1, 96 // args.size), axis=0), max(1, 96 // args.size), axis=1)
        os.makedirs(args.results, exist_ok=True)
        tf.io.write_file(grid_path + ".tmp", tf.io.encode_png(grid))
        os.replace(grid_path + ".tmp", grid_path)
    return rows, os.path.relpath(grid_path, os.path.dirname(HERE))


def noise_table(rows: list[dict], grid: str, args) -> list[str]:
    models_in_grid = [r["model"] for r in rows if "error" not in r]
    count = next((r["paintings"] for r in rows if "error" not in r), 0)
    lines = [
        f"{args.minutes} min of training per model after its first step (which compiles: its "
        f"seconds are a column) at {args.size} px, batch "
        f"{args.batch}, widths ngf = ndf = {args.width}, each model's own pipeline otherwise (BigGAN: "
        f"its EMA generator, which copies the trained weights until step `ema_start`, and DiffAugment); "
        f"data: the Monet paintings of monet2photo/trainA. Each model then paints {count} images, "
        f"scored against the {count} paintings at {args.size} px: FID/KID with the `tiny` extractor (not "
        f"comparable with Kaggle's scores; the paintings are the training set, so this measures fit, "
        f"not generalisation) and the checkerboard index (~1 without a grid; not a Kaggle figure). One "
        f"seed each. Grid: `{grid}`, {GRID_SAMPLES} samples per row, rows top to bottom: "
        f"{', '.join(models_in_grid)}.",
        "",
        "| model | first step (s) | steps | FID (tiny) | KID (tiny) | checkerboard |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error']} | | | | |")
        else:
            lines.append(f"| {r['model']} | {r['first_step']:.0f} | {r['steps']} | {r['fid']:.2f} | "
                         f"{r['kid']:.4f} | {r['checkerboard']:.2f} |")
    return lines


def publish(name: str, body: list[str], command: str, seconds: float, args) -> None:
    """The section to `--results`/NAME.md and, unless `--benchmarks ""`, into BENCHMARKS.md; a
    run pinned to some cores says so in the machine line and its reproduce command."""
    from bench_suite import machine, merge, render

    pin = pinning()
    where = machine() + (f"; pinned to {len(os.sched_getaffinity(0))} of them (`{pin}`)" if pin else "")
    section = render(name, body, f"{pin} {command}" if pin else command, seconds, where)
    print(section, flush=True)
    targets = [os.path.join(args.results, f"{name}.md")]
    if args.benchmarks:
        targets.append(args.benchmarks)
    os.makedirs(args.results, exist_ok=True)
    for path in targets:
        text = section + "\n"
        if path == args.benchmarks:
            text = merge(open(path).read() if os.path.isfile(path) else "", {name: section})
        with open(path + ".tmp", "w") as fh:
            fh.write(text)
        os.replace(path + ".tmp", path)
        print(f"wrote {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["paired", "monet", "noise", "grid"])
    parser.add_argument("--realdata", default=os.environ.get("GAN_TPU_REALDATA", os.path.join(DEFAULT_REALDATA, "monet2photo")))
    parser.add_argument("--work", default=os.path.join(os.path.dirname(HERE), ".bench_work"))
    parser.add_argument("--results", default=RESULTS, help="where the tables and the grid go")
    parser.add_argument("--benchmarks", default=os.path.join(os.path.dirname(HERE), "BENCHMARKS.md"),
                        help='the section is merged into this file too ("" for none)')
    parser.add_argument("--minutes", type=float, default=None, help="training per model and seed")
    parser.add_argument("--size", type=int, default=None, help="training resolution")
    parser.add_argument("--batch", type=int, default=None, help="per step (default 4; noise: 8)")
    parser.add_argument("--width", type=int, default=32, help="ngf = ndf for every model")
    parser.add_argument("--seeds", type=int, default=1,
                        help="seeds per row whose spread decides a default (the `cyclegan` variants, "
                             "`cyclegan_resnet`'s upsample rows) and per `cut`/`fastcut` row")
    parser.add_argument("--model-seeds", type=int, default=1, help="seeds per row of every other model")
    parser.add_argument("--test-count", type=int, default=120)
    parser.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                        help=f"paired: rows of {list(VARIANTS)} (default all); noise: of "
                             f"{list(NOISE_CHOICES)} (default {' '.join(NOISE_MODELS)})")
    parser.add_argument("--grid", default=os.path.join(RESULTS, "monet_grid.png"),
                        help="grid: the `monet` grid PNG whose tiles' checkerboard index to print")
    parser.add_argument("--section", default=None,
                        help="the BENCHMARKS.md section (and results file) to write: default the "
                             "subcommand's own (quality, monet, noise)")
    args = parser.parse_args(argv)
    choices = NOISE_CHOICES if args.what == "noise" else VARIANTS
    args.models = args.models or list(NOISE_MODELS if args.what == "noise" else VARIANTS)
    unknown = [m for m in args.models if m not in choices]
    if unknown:
        parser.error(f"--models: {unknown[0]!r} is not one of {list(choices)}")
    started = time.monotonic()
    try:
        if args.what == "grid":
            print(json.dumps(grid_checkerboard(args.grid)))
            return 0
        if args.what == "noise":
            args.minutes = 2.0 if args.minutes is None else args.minutes
            args.size = 32 if args.size is None else args.size
            args.batch = 8 if args.batch is None else args.batch
            rows, grid = run_noise(args)
            models = "" if args.models == list(NOISE_MODELS) else " --models " + " ".join(args.models)
            command = (f"python bench/bench_quality.py noise --minutes {args.minutes} --size {args.size} "
                       f"--width {args.width} --batch {args.batch}{section_flag(args)}{models}")
            trained = sum(r.get("seconds", 0.0) for r in rows)
            publish(args.section or "noise", noise_table(rows, grid, args), command,
                    max(trained, time.monotonic() - started), args)
            return 0
        args.batch = 4 if args.batch is None else args.batch
        if args.what == "paired":
            args.minutes = 2.0 if args.minutes is None else args.minutes
            args.size = 64 if args.size is None else args.size
            rows = run_paired(args)
            body = paired_table(rows, args)
            trained = sum(r.get("seconds", 0.0) for r in rows)  # rows kept from an earlier run included
            body += ["", f"Training time over the rows: {trained / 60:.1f} min (finished rows are kept in "
                         f"`.bench_work/paired/rows.jsonl` and reused by a rerun with the same settings)."]
            publish(args.section or "quality", body, paired_command(args),
                    max(trained, time.monotonic() - started), args)
        else:
            args.minutes = 10.0 if args.minutes is None else args.minutes
            args.size = 128 if args.size is None else args.size
            result = run_monet(args)
            body = [f"`cyclegan` (U-Net, widths {result['width']}) trained {result['minutes']} min "
                    f"({result['steps']} steps) at {result['size']} px on monet2photo trainA vs "
                    f"trainB_first1200; held-out photos (testB) translated and scored against testA "
                    f"with the `tiny` extractor (not comparable with Kaggle's scores). Grid: "
                    f"`{result['grid']}`.", "", "```", *result["table"], "```"]
            command = (f"python bench/bench_quality.py monet --minutes {result['minutes']} "
                       f"--size {result['size']} --width {args.width} --batch {args.batch} "
                       f"--test-count {args.test_count}")
            publish(args.section or "monet", body, command + section_flag(args), time.monotonic() - started, args)
    except UserError as err:
        print(f"bench_quality: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
