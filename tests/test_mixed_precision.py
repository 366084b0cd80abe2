"""runtime.precision = "mixed_float16" (Kaggle's T4s): every player's optimizer scales its loss
(Keras's dynamic LossScaleOptimizer), a step whose gradients are not finite is skipped (weights
and slots untouched) and halves the scale, the next step uses the halved scale, and a tiny GAN
trains as float32 does within measured tolerances. All under jit_compile=True, on TensorFlow
here and on JAX in one subprocess (`python -m tests.test_mixed_precision OUT.json`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from gan_tpu.models.base import AdversarialModel, Player

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 8
INITIAL_SCALE = 2.0 ** 15  # LossScaleOptimizer's default


class ToyGAN(AdversarialModel):
    """A two-player LSGAN on 8x8 images: conv generator (photo -> painting), conv critic.
    `loss_weight` multiplies the generator's loss (tiny values make float16 gradients underflow)."""

    loss_names = ("g_loss", "d_loss")

    def __init__(self, loss_weight=1.0, optimizer="adam", **kwargs):
        super().__init__(**kwargs)
        self.loss_weight = loss_weight
        self.generator = keras.Sequential([
            keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(3, 3, padding="same"), keras.layers.Activation("tanh", dtype="float32")],
            name="generator")
        self.discriminator = keras.Sequential([
            keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(8, 3, strides=2, padding="same"),
            keras.layers.LeakyReLU(0.2), keras.layers.Conv2D(1, 3, padding="same", dtype="float32")],
            name="discriminator")
        if optimizer == "sgd":  # updates proportional to the gradient: a mis-scaled gradient shows
            self.g_opt, self.d_opt = keras.optimizers.SGD(0.1, name="g_sgd"), keras.optimizers.SGD(0.1, name="d_sgd")
        else:
            self.g_opt = keras.optimizers.Adam(1e-3, beta_1=0.5, name="g_adam")
            self.d_opt = keras.optimizers.Adam(1e-3, beta_1=0.5, name="d_adam")

    def make_players(self):
        return [Player("generator", [self.generator], self.g_opt, self.g_loss),
                Player("discriminator", [self.discriminator], self.d_opt, self.d_loss)]

    @property
    def translator(self):
        return self.generator

    def g_loss(self, data, context, training):
        photo, _ = data
        fake = self.generator(photo, training=training)
        context["fake"] = fake
        loss = ops.mean(ops.square(ops.cast(self.discriminator(fake), "float32") - 1.0)) * self.loss_weight
        return loss, {"g_loss": loss}

    def d_loss(self, data, context, training):
        _, monet = data
        real = ops.cast(self.discriminator(monet, training=training), "float32")
        fake = ops.cast(self.discriminator(ops.stop_gradient(context["fake"]), training=training), "float32")
        loss = 0.5 * (ops.mean(ops.square(real - 1.0)) + ops.mean(ops.square(fake)))
        return loss, {"d_loss": loss}


def batches(n_steps: int, batch: int = 4, seed: int = 0, poison_first: bool = False):
    rng = np.random.default_rng(seed)
    photo = rng.uniform(-1, 1, (n_steps * batch, SIZE, SIZE, 3)).astype(np.float32)
    monet = rng.uniform(-1, 1, (n_steps * batch, SIZE, SIZE, 3)).astype(np.float32)
    if poison_first:
        photo[0, 0, 0, 0] = np.inf  # the first step's generator loss (and the critic's) not finite
    return photo, monet


def build(policy: str, loss_weight: float = 1.0, seed: int = 3, optimizer: str = "adam") -> ToyGAN:
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(seed)
    model = ToyGAN(loss_weight, optimizer)
    model.compile(jit_compile=True)
    return model


def fit(model, photo, monet, batch: int = 4):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((photo, monet)).batch(batch, drop_remainder=True)
    model.fit(data, epochs=1, verbose=0, shuffle=False)


def weights(model) -> list[np.ndarray]:
    return [np.asarray(v) for net in (model.generator, model.discriminator) for v in net.trainable_variables]


@pytest.fixture(autouse=True)
def _float32_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_every_player_gets_a_loss_scale_optimizer_only_under_mixed_float16():
    model = build("mixed_float16")
    opts = [p.optimizer for p in model.players]
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in opts)
    assert [o.inner_optimizer for o in opts] == [model.g_opt, model.d_opt]
    assert float(ops.convert_to_numpy(opts[0].scale_loss(1.0))) == INITIAL_SCALE
    model.compile(jit_compile=True)  # compiling again does not wrap twice
    assert [p.optimizer for p in model.players] == opts
    for policy in ("float32", "mixed_bfloat16"):
        plain = build(policy)
        assert [p.optimizer for p in plain.players] == [plain.g_opt, plain.d_opt]


def generator_moves(policy: str, loss_weight: float) -> list[float]:
    model = build(policy, loss_weight=loss_weight)
    before = [np.asarray(v) for v in model.generator.trainable_variables]
    fit(model, *batches(1))
    assert int(ops.convert_to_numpy(model.g_opt.iterations)) == 1
    return [float(np.abs(np.asarray(v) - b).max()) for v, b in zip(model.generator.trainable_variables, before)]


def test_the_loss_is_scaled_so_tiny_float16_gradients_still_train():
    """A generator loss weighted 1e-9: its gradients at the float16 activations are below
    float16's smallest subnormal (6e-8) and round to 0 unless the loss is scaled by 2^15.
    Measured: one Adam step moves each generator variable by 1.5e-8..1.3e-7 in float32 and
    by the same to within 4% in mixed_float16; with the plant (scale_loss returning the loss
    unscaled) every move was exactly 0."""
    mixed, full = generator_moves("mixed_float16", 1e-9), generator_moves("float32", 1e-9)
    assert all(m > 0 for m in mixed), mixed
    assert np.allclose(mixed, full, rtol=0.1), (mixed, full)


# Measured on this machine (TF 2.21, Keras 3.15.1, CPU, XLA), the toy GAN after 6 steps from
# the same seed and data: mixed_float16 against float32 differs by at most 4.5e-5 in a weight
# and 4.6e-4 in a generator output (float32 against itself: exactly 0; float32 from another
# seed: 0.49 and 1.1). Tolerances are about 4x the measurement.
WEIGHT_ATOL, OUTPUT_ATOL = 2e-4, 2e-3


def one_step_on(strategy, poison_index=None):
    """The SGD toy GAN after one step on one batch of 4 under `strategy` (graph mode: Keras
    turns XLA off under tf.distribute), an inf at photo `poison_index` if given."""
    import tensorflow as tf

    keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = ToyGAN(1.0, "sgd")
        model.compile(jit_compile=False)
    photo, monet = batches(1)
    if poison_index is not None:
        photo[poison_index, 0, 0, 0] = np.inf
    before = weights(model)
    model.fit(tf.data.Dataset.from_tensors((photo, monet)), epochs=1, steps_per_epoch=1, verbose=0)
    return before, weights(model), [float(ops.convert_to_numpy(p.optimizer.dynamic_scale)) for p in model.players]


def test_two_replicas_equal_one_and_skip_together_under_mixed_float16():
    """Measured: one SGD step on two replicas is within 2.7e-5 of one replica's (steps of ~0.1).
    Keras's LossScaleOptimizer alone decides from the first replica's gradients: an inf in the
    second replica's half (photo 3 of 4) put NaN into every weight (seen; the plant: the
    TensorFlow trainer without _skip_together); both replicas now skip it."""
    import tensorflow as tf

    from tests.helpers import two_replicas

    _, one, _ = one_step_on(tf.distribute.get_strategy())
    _, two, _ = one_step_on(two_replicas())
    assert max(float(np.abs(a - b).max()) for a, b in zip(one, two)) < 2e-4
    for index in (0, 3):  # in the first replica's half, then in the second's
        before, after, scales = one_step_on(two_replicas(), index)
        assert all(np.array_equal(a, b) for a, b in zip(before, after)), index
        assert scales == [INITIAL_SCALE / 2] * 2, (index, scales)


def measure() -> dict:
    """The mechanics on the current Keras backend, as numbers (this process's, or JAX's in a
    subprocess): a skipped inf step, the step after it (SGD, whose update is proportional to
    the unscaled gradient: scaling by one scale and unscaling by another shows), and 6 Adam
    steps, each against float32."""
    photo, monet = batches(2, poison_first=True)
    model = build("mixed_float16", optimizer="sgd")
    before = weights(model)
    fit(model, photo[:4], monet[:4])
    skipped = max(float(np.abs(a - b).max()) for a, b in zip(weights(model), before))
    scales = [float(ops.convert_to_numpy(p.optimizer.dynamic_scale)) for p in model.players]
    updates = [int(ops.convert_to_numpy(p.optimizer.inner_optimizer.iterations)) for p in model.players]
    fit(model, photo[4:], monet[4:])  # under the halved scale
    reference = build("float32", optimizer="sgd")
    fit(reference, photo[4:], monet[4:])
    sgd = max(float(np.abs(a - b).max()) for a, b in zip(weights(model), weights(reference)))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(weights(reference), before))
    photo, monet = batches(6)
    runs, outputs = [], []
    for policy in ("float32", "mixed_float16"):
        model = build(policy)
        fit(model, photo, monet)
        runs.append(weights(model))
        outputs.append(np.asarray(model.generator(photo[:4], training=False), dtype=np.float32))
    adam = max(float(np.abs(a - b).max()) for a, b in zip(*runs))
    keras.mixed_precision.set_global_policy("float32")
    return dict(backend=keras.backend.backend(), skipped_change=skipped, scales=scales, updates_after_skip=updates,
                sgd_after_skip=sgd, sgd_step=moved, adam_6_steps=adam,
                adam_outputs=float(np.abs(outputs[0] - outputs[1]).max()))


# Measured (Keras 3.15.1, CPU, XLA; TF 2.21 / JAX): the SGD step after a skipped one differs
# from float32's by at most 2.0e-4 (TF) / 9.4e-5 (JAX) while the step moves weights by
# 0.11 / 0.074; 6 Adam steps: weights 4.5e-5 (TF) / 2.6e-4 (JAX), generator outputs 4.6e-4 /
# 4.1e-4. Tolerances about 4-5x the larger.
# The plant (the JAX step without the optimizer's state in the loss scope) fails loudly:
# scale_loss cannot read the scale there (TypeError), so the JAX run below fails.
SGD_ATOL = 1e-3
ADAM_ATOL = {"tensorflow": WEIGHT_ATOL, "jax": 1e-3}


@pytest.fixture(scope="module")
def jax_numbers(tmp_path_factory):
    out = tmp_path_factory.mktemp("jax") / "numbers.json"
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-m", "tests.test_mixed_precision", str(out)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def check(numbers: dict) -> None:
    assert numbers["skipped_change"] == 0.0 and numbers["scales"] == [INITIAL_SCALE / 2] * 2, numbers
    assert numbers["updates_after_skip"] == [0, 0], numbers  # the optimizers' slots untouched too
    assert numbers["sgd_step"] > 10 * SGD_ATOL and numbers["sgd_after_skip"] < SGD_ATOL, numbers
    assert 0 < numbers["adam_6_steps"] < ADAM_ATOL[numbers["backend"]], numbers
    assert numbers["adam_outputs"] < OUTPUT_ATOL, numbers


def test_mixed_float16_mechanics_on_tensorflow():
    numbers = measure()
    assert numbers["backend"] == "tensorflow"
    check(numbers)


def test_mixed_float16_mechanics_on_jax(jax_numbers):
    assert jax_numbers["backend"] == "jax"
    check(jax_numbers)


if __name__ == "__main__":  # the JAX run: python -m tests.test_mixed_precision OUT.json
    Path = __import__("pathlib").Path
    Path(sys.argv[1]).write_text(json.dumps(measure()))
