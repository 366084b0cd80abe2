"""Small real-file builders shared by the tests."""
from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from gan_tpu.data import example_bytes

REALDATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "realdata")


def smooth_images(n: int, size: int = 256, seed: int = 0) -> np.ndarray:
    """Smooth gradient images (JPEG keeps them within a few levels)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        img = np.stack([a * x, b * y, c * (1 - x) * y + 0.2], -1) * 255
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    return tf.io.encode_jpeg(image, quality=quality).numpy()


def write_records(path: str, payloads: list[bytes]) -> str:
    with tf.io.TFRecordWriter(path) as writer:
        for payload in payloads:
            writer.write(payload)
    return path


def write_domain_records(folder: str, images: np.ndarray, domain: str = "monet",
                         name: str | None = None) -> str:
    """Images as one Kaggle-style record file `<domain>00-N.tfrec` in `folder`."""
    os.makedirs(folder, exist_ok=True)
    name = name or f"{domain}00-{len(images)}.tfrec"
    return write_records(os.path.join(folder, name),
                         [example_bytes(f"{i:010x}", jpeg(img), domain) for i, img in enumerate(images)])


def two_replicas() -> tf.distribute.MirroredStrategy:
    """A real two-replica MirroredStrategy over the two logical CPUs of conftest.py.

    Reduction goes through one device: several strategies with the default collective
    all-reduce in one test process collide on collective instance keys.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


def trainable_weights(model) -> list[np.ndarray]:
    """Every network's trainable weights, as NumPy arrays."""
    return [v.numpy() for net in model.networks.values() for v in net.trainable_variables]


def assert_saved_translator_gives_identical_outputs(model, images, folder) -> None:
    """`model.translator` saved as `.keras` and loaded back paints `images` bit for bit alike."""
    path = os.path.join(str(folder), "translator.keras")
    model.translator.save(path)
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_array_equal(model.translator(images).numpy(), loaded(images).numpy())


def overfit(model, batch, steps: int = 50) -> dict:
    """`steps` XLA-compiled train steps on one batch: the step, the weights before and after
    the first, the first step's logs, the later steps' logs and each player's optimizer
    iterations right after them (later tests may step a shared model again)."""
    step = tf.function(model.train_step, jit_compile=True, autograph=False)
    before = trainable_weights(model)
    first = {k: float(v) for k, v in step(batch).items()}
    after = trainable_weights(model)
    history = []
    for _ in range(steps - 1):
        model.reset_metrics()
        history.append({k: float(v) for k, v in step(batch).items()})
    iterations = [int(p.optimizer.iterations.numpy()) for p in model.players]
    return dict(step=step, before=before, after=after, first=first, history=history, iterations=iterations)


REPLICA_SEED = 7  # the models' initial weights in the one- vs two-replica comparisons


def one_eager_step(strategy, build, batch, seed: int | None = None):
    """A model from `build()` made under `strategy`, after one eager `fit` step on `batch`
    (the one- vs two-replica comparisons)."""
    tf.keras.utils.set_random_seed(REPLICA_SEED if seed is None else seed)
    with strategy.scope():
        model = build()
        model.compile(jit_compile=False, run_eagerly=True)
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, steps_per_epoch=1, verbose=0)
    return model


def first_moments(model) -> dict[str, np.ndarray]:
    """Each player's Adam first moments m (flattened, in variable order): a running sum of
    its gradients, so unlike Adam's weight update (about lr·sign(g)) proportional to them.
    After one step m = (1 − β1)·g; after a critic's n updates, a weighted sum of its n gradients."""
    out = {}
    for player in model.players:
        opt = player.optimizer
        out[player.name] = np.concatenate(
            [np.asarray(opt._momentums[opt._get_variable_index(v)].numpy()).ravel() for v in player.variables])
    return out


def moment_errors(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """||b − a|| / ||a|| per player of two `first_moments`: the gradients' relative error
    (1.0 for a player whose gradients were not applied, or were twice too large)."""
    assert a.keys() == b.keys(), (a.keys(), b.keys())
    return {k: float(np.linalg.norm(b[k] - a[k]) / np.linalg.norm(a[k])) for k in a}


def gradient_errors(one, two) -> dict[str, float]:
    """`moment_errors` of two models (see `first_moments`)."""
    return moment_errors(first_moments(one), first_moments(two))


def assert_gradients_agree(errors: dict[str, float], tolerance: float) -> None:
    print("relative errors of m:", errors)
    assert max(errors.values()) < tolerance, f"gradients differ beyond {tolerance}: {errors}"


# One vs two replicas, one eager step (REPLICA_SEED 7), the largest relative error of m over
# a model's players, measured at TF_NUM_INTRAOP_THREADS 1 / 2: CycleGAN 1.9e-6 / 1.9e-6,
# SN-CycleGAN 1.5e-6 / 1.4e-6, CUT 4.0e-7 / 4.0e-7, BigGAN 3.0e-6 / 2.1e-6, U-GAT-IT light
# 1.3e-6 / 1.0e-6, StarGAN 6.7e-7 / 3.9e-7, MUNIT 2.0e-6 / 2.0e-6, DRIT++ 1.7e-6 / 1.7e-6,
# Bayesian CycleGAN 3.2e-6 / 2.9e-6 -> REPLICA_TOLERANCE 1e-4, 31x the largest (UNIT:
# 5.0e-4 / 5.0e-4, its own bound in tests/test_unit.py).
# Planted in the TensorFlow trainer, measured once: no division by the replica count (two
# replicas), every player 1.0 (0.99999-1.002 on CycleGAN, SN-CycleGAN, StarGAN, DRIT++,
# BigGAN, MUNIT); the last player's gradients applied as zeros (two replicas), 1.0 (its m
# stays 0); noise from a replica-seeded stream added to the Monet batch (both runs), the
# worst player 0.24-0.55 on StarGAN, DRIT++, BigGAN, MUNIT. The smallest, 0.24, is 2,400x
# REPLICA_TOLERANCE. tests/test_replicas.py keeps these faults as tests (on CycleGAN).
REPLICA_TOLERANCE = 1e-4


def assert_two_replicas_equal_one(build, batch, tolerance: float | None = None, one_strategy=None):
    """`build()` after one eager step on `batch` on one replica and on two (the same global
    batch, half each) took the same gradients: each player's first moments agree within
    `tolerance` (relative). Returns both models, for tests that compare their state too."""
    one = one_eager_step(one_strategy or tf.distribute.get_strategy(), build, batch)
    two = one_eager_step(two_replicas(), build, batch)
    for a, b in zip(one.players, two.players):
        assert int(a.optimizer.iterations.numpy()) == int(b.optimizer.iterations.numpy()), a.name
    assert_gradients_agree(gradient_errors(one, two), REPLICA_TOLERANCE if tolerance is None else tolerance)
    return one, two


def assert_trains_in_mixed_bfloat16(build, bfloat16_layer, images):
    """Under mixed_bfloat16, `build()`'s layer `bfloat16_layer(model)` computes in bfloat16, an
    eager train step on (images[:2], images[2:4]) logs finite float32 losses and the
    translator paints float32. Returns the model and the step's logs."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build()
        model.compile(jit_compile=False, run_eagerly=True)
        assert bfloat16_layer(model).compute_dtype == "bfloat16"
        logs = model.train_step((images[:2], images[2:4]))
        assert set(logs) == set(model.loss_names)
        assert all(v.dtype == tf.float32 and np.isfinite(float(v)) for v in logs.values()), logs
        assert model.translator(images[:1]).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model, logs


def images_at(size: int, n: int = 8, seed: int = 2):
    """`n` smooth test images in [-1, 1], resized to `size` px (float32 tensor)."""
    images = smooth_images(n, seed=seed).astype(np.float32) / 127.5 - 1.0
    return tf.image.resize(images, [size, size])


def train_and_generate_with_the_cli(tmp_path, pipeline: str, sets: list[str], generate_args=(),
                                    photos: int = 4) -> tuple[str, str]:
    """`gan-tpu train PIPELINE` for two steps at 32 px on sample data, then `gan-tpu generate`
    into a zip; checks the zip holds one 256 px JPEG per photo. Returns (run dir, zip path)."""
    import zipfile

    from gan_tpu import cli
    from gan_tpu.sample_data import write_sample_data

    data, out = str(tmp_path / "data"), str(tmp_path / "run")
    if not os.path.isdir(data):
        write_sample_data(data, monet=4, photo=photos, seed=3)
    sets = ["data.image_size=32", "train.epochs=1", "train.steps_per_epoch=2", "train.samples=2",
            f'data.monet="{data}"', f'data.photo="{data}"', *sets]
    if not os.path.isdir(out):
        args = ["train", pipeline, "--out", out] + [a for s in sets for a in ("--set", s)]
        assert cli.main(args) == 0
    assert os.path.isfile(os.path.join(out, "generator.keras"))
    zip_path = str(tmp_path / f"images{len(os.listdir(tmp_path))}.zip")
    assert cli.main(["generate", "--run", out, "--out", zip_path, "--allow-any-count", "--no-progress",
                     *generate_args]) == 0
    with zipfile.ZipFile(zip_path) as zf:
        assert len(zf.namelist()) == photos
        assert tf.io.decode_jpeg(zf.read(zf.namelist()[0])).shape == (256, 256, 3)
    return out, zip_path


def valid_submission_zip(path) -> str:
    """A valid images.zip: 7,000 distinct 256x256 JPEGs (one image, a different comment each)."""
    import zipfile

    image = np.add.outer(np.arange(256), np.arange(256)).astype(np.uint8) // 2
    base = jpeg(np.stack([image] * 3, axis=-1), quality=80)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(1, 7001):
            comment = f"{i}".encode()
            zf.writestr(f"{i}.jpg", base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:])
    return str(path)
