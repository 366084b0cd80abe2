"""The path accelerators run: `train.train` through Keras `fit` with `train.jit_compile = true`
under a two-replica MirroredStrategy (conftest's two logical CPUs) against one replica on the
same global batch, and planted faults this comparison must catch; on Keras' JAX backend,
DataParallel over two host devices against one device (in a subprocess).

What the accelerators run: one replica (one GPU, and each TPU replica) compiles the whole
`fit` step with XLA; a MirroredStrategy over two devices (Kaggle's 2x T4) cannot (Keras
compiles strategy.run and its all-reduce as one XLA program, which fails at the first step
reaching the other device's variables), so gan_tpu.runs turns XLA off there and the step runs
as a tf.function graph. Both are compared here: the one-replica run is XLA-compiled, the
two-replica run is what two GPUs run.

What is compared: Adam's first moments m of every trained variable after a few steps, not
the weights. Adam's update is about lr·sign(g) whatever the gradient's scale, so weights
cannot show a gradient twice too large (a missing division by the replica count) and agree
within 2·lr whatever happens; m is a running sum of the gradients themselves, so
||m_two − m_one|| / ||m_one|| (per player) is the gradients' relative error. A player whose
gradients are not applied keeps m = 0 (error 1); a gradient twice too large gives error 1.
"""
from __future__ import annotations

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import config, train
from gan_tpu.backends import tensorflow as tf_backend
from gan_tpu.sample_data import write_sample_data
from tests import helpers
from tests.helpers import two_replicas

STEPS = 2
GLOBAL_BATCH = 4
TINY = ['model.generator="resnet"', "model.ngf=4", "model.ndf=4", "model.n_blocks=1",  # resnet: no dropout
        "model.lr=1e-6"]  # weights barely move: see LR below
# A weight whose gradient is below float noise gets Adam's ±lr with either sign, and that
# difference then changes every later gradient: at the demo's lr of 8e-4, 3 steps of XLA vs
# graph differed by 0.32 in m (measured). At lr 1e-6 a flip moves a weight by 2e-6, too little
# to matter, and m still sums the gradients of every step and every critic update.
#
# Measured (train.seed 1, 2 steps; relative error of m per player, generator / discriminator):
#   two replicas (graph) vs one (graph), CycleGAN:         4.0e-7 / 2.5e-7
#   the same, WGAN-GP CycleGAN with n_critic 2:            1.2e-6 / 2.1e-7
#   JAX: DataParallel over two devices vs one device:       9.6e-7 / 5.8e-7
#     -> TOLERANCE 1e-4, 80x the largest
#   one replica compiled by XLA vs one graph, CycleGAN:    8.3e-3 / 1.4e-3 (XLA's CPU kernels
#     round otherwise; 6.2e-3 / 3e-6 after one step)  -> XLA_TOLERANCE 5e-2, 6x
# Planted faults (tests below), against the two-replica run: a missing division by the
# replica count 1.0 / 1.0; the discriminators' gradients not applied - / 1.0; a
# replica-dependent random stream 0.36 / 0.59: each at least 2,000x TOLERANCE (the
# smallest, 0.2, asserted) and 4x XLA_TOLERANCE.
TOLERANCE = 1e-4
XLA_TOLERANCE = 5e-2


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    write_sample_data(root, monet=4, photo=4, seed=1)
    return root


def fit(root, out, replicas: int, pipeline: str = "demo", sets=(), jit: bool = True):
    """`train.train` of `pipeline` (tiny) for STEPS steps of global batch GLOBAL_BATCH through
    fit, with train.jit_compile=`jit`, on one replica or two."""
    strategy = two_replicas() if replicas == 2 else tf.distribute.get_strategy()
    overrides = [f'data.monet="{root}"', f'data.photo="{root}"', "data.image_size=32", "data.augment=false",
                 f"train.batch_size={GLOBAL_BATCH // replicas}", "train.samples=0", "train.epochs=1",
                 f"train.steps_per_epoch={STEPS}", f"train.jit_compile={str(jit).lower()}", "train.seed=1",
                 f'output.dir="{out}"', *TINY, *sets]
    run = train.train(config.load(pipeline, overrides), strategy=strategy, use_budget=False, verbose=0)
    assert run.strategy.num_replicas_in_sync == replicas
    assert int(run.model.step.numpy()) == STEPS
    return run


def gradient_errors(one, two) -> dict[str, float]:
    """||m_two − m_one|| / ||m_one|| per player of two runs (see the module docstring)."""
    return helpers.gradient_errors(one.model, two.model)


def assert_same_gradients(one, two, tolerance=TOLERANCE):
    for player_one, player_two in zip(one.model.players, two.model.players):
        assert int(player_one.optimizer.iterations.numpy()) == STEPS * player_one.steps, player_one.name
        assert int(player_two.optimizer.iterations.numpy()) == STEPS * player_one.steps, player_two.name
    errors = gradient_errors(one, two)
    print("relative errors of m:", errors)
    assert max(errors.values()) < tolerance, errors


@pytest.fixture(scope="module")
def cyclegan_one(sample_root, tmp_path_factory):
    """One replica, graph (no XLA): the reference."""
    return fit(sample_root, str(tmp_path_factory.mktemp("one")), 1, jit=False)


def test_one_replica_fit_compiled_by_xla_equals_the_graph(cyclegan_one, sample_root, tmp_path):
    xla = fit(sample_root, str(tmp_path / "xla"), 1)
    assert xla.model.jit_compile is True  # what one GPU (and each TPU replica) runs
    assert_same_gradients(cyclegan_one, xla, XLA_TOLERANCE)


def test_two_replicas_through_fit_equal_one(cyclegan_one, sample_root, tmp_path):
    two = fit(sample_root, str(tmp_path / "two"), 2)
    assert two.model.jit_compile is False  # XLA cannot compile strategy.run across devices (runs.py)
    assert_same_gradients(cyclegan_one, two)
    assert os.path.isfile(os.path.join(str(tmp_path / "two"), "generator.keras"))


@pytest.mark.slow  # two more runs: 1.5 min of CPU
def test_two_replicas_equal_one_with_several_critic_updates_per_step(sample_root, tmp_path):
    # WGAN-GP CycleGAN with n_critic = 2: the critics step twice per batch. The penalty's
    # interpolation draws differ between one replica and two (each replica has its own
    # stream, runs.spread_seeds), so the penalty weight is 0 here: what is compared is the
    # n_critic loop and the division by the replica count, exactly.
    sets = ["model.n_critic=2", "model.gp_weight=0.0"]
    one = fit(sample_root, str(tmp_path / "one"), 1, "cyclegan_wgangp", sets, jit=False)
    two = fit(sample_root, str(tmp_path / "two"), 2, "cyclegan_wgangp", sets)
    assert [p.steps for p in one.model.players] == [1, 2]
    assert_same_gradients(one, two)


# ------------------------------------------------------------------ planted faults


def _faulty_step(skip: str | None = None, replica_noise: float = 0.0):
    """gan_tpu.backends.tensorflow.train_step with one fault planted: player `skip`'s
    gradients not applied, or noise from a stream seeded by the replica id added to the
    Monet batch."""
    real = tf_backend.train_step

    def train_step(model, data):
        if replica_noise:
            seed = tf.stack([tf.distribute.get_replica_context().replica_id_in_sync_group, 0])
            data = (data[0] + replica_noise * tf.random.stateless_normal(tf.shape(data[0]), seed), data[1])
        for player in model.players:
            if player.name == skip:
                player.optimizer.apply_gradients = lambda *args, **kwargs: None
        return real(model, data)

    return train_step


def _undivided(self, loss):
    """Adam.scale_loss multiplying by the replica count: undoes the trainer's division."""
    return loss * tf.distribute.get_strategy().num_replicas_in_sync


@pytest.mark.parametrize("fault, at_least", [
    ("undivided", {"generator": 0.5, "discriminator": 0.5}),  # measured 1.0, 1.0
    pytest.param("skip", {"discriminator": 0.5}, marks=pytest.mark.slow),  # measured 1.0
], ids=["no-division-by-replicas", "one-player-not-applied"])
def test_the_comparison_catches_planted_faults(cyclegan_one, sample_root, tmp_path, monkeypatch, fault, at_least):
    if fault == "undivided":
        monkeypatch.setattr(keras.optimizers.Adam, "scale_loss", _undivided, raising=False)
    else:
        monkeypatch.setattr(tf_backend, "train_step", _faulty_step(skip="discriminator"))
    two = fit(sample_root, str(tmp_path / "two"), 2)
    errors = gradient_errors(cyclegan_one, two)
    print("relative errors of m:", errors)
    for player, least in at_least.items():
        assert errors[player] >= least, errors  # 0.5: 5,000x TOLERANCE
    with pytest.raises(AssertionError):
        assert_same_gradients(cyclegan_one, two)


@pytest.mark.slow  # two more runs
def test_the_comparison_catches_a_replica_dependent_random_stream(sample_root, tmp_path, monkeypatch):
    # Both runs draw noise for the Monet batch from a stream seeded by the replica id: one
    # replica draws all 4 images' noise from seed 0; of two, replica 0 draws the same first 2,
    # replica 1 other ones from seed 1.
    monkeypatch.setattr(tf_backend, "train_step", _faulty_step(replica_noise=0.5))
    one = fit(sample_root, str(tmp_path / "one"), 1, jit=False)
    two = fit(sample_root, str(tmp_path / "two"), 2)
    errors = gradient_errors(one, two)
    print("relative errors of m:", errors)
    assert min(errors.values()) >= 0.2, errors  # measured 0.36 / 0.59; 0.2: 2,000x TOLERANCE
    with pytest.raises(AssertionError):
        assert_same_gradients(one, two)


# ------------------------------------------------------------------ JAX: DataParallel


def _jax_worker(root: str, folder: str) -> None:  # KERAS_BACKEND=jax, two host devices
    """`train.train` of the tiny CycleGAN on one device, then under DataParallel over two;
    each run's Adam first moments into FOLDER/{one,two}.npz."""
    import json

    import keras

    from gan_tpu import runtime

    assert keras.backend.backend() == "jax"
    info = {}
    for name, devices in (("one", keras.distribution.list_devices("cpu")[:1]),
                          ("two", keras.distribution.list_devices("cpu"))):
        strategy = runtime.JaxDevices(devices)  # two: sets DataParallel globally
        overrides = [f'data.monet="{root}"', f'data.photo="{root}"', "data.image_size=32", "data.augment=false",
                     f"train.batch_size={GLOBAL_BATCH // len(devices)}", "train.samples=0", "train.epochs=1",
                     f"train.steps_per_epoch={STEPS}", "train.seed=1", f'output.dir="{folder}/{name}"', *TINY]
        run = train.train(config.load("demo", overrides), strategy=strategy, use_budget=False, verbose=0)
        info[name] = dict(replicas=run.strategy.num_replicas_in_sync, step=int(np.array(run.model.step)),
                          jit=bool(run.model.jit_compile),
                          iterations=[int(np.array(p.optimizer.iterations)) for p in run.model.players])
        np.savez(os.path.join(folder, f"{name}.npz"), **helpers.first_moments(run.model))
    with open(os.path.join(folder, "info.json"), "w") as fh:
        json.dump(info, fh)


def _moments_of(path) -> dict[str, np.ndarray]:
    with np.load(path) as arrays:
        return {k: arrays[k] for k in arrays.files}


@pytest.mark.slow  # a JAX process compiling two runs: about a minute of CPU
def test_jax_data_parallel_through_fit_equals_one_device(sample_root, tmp_path):
    import json
    import subprocess

    pytest.importorskip("jax")
    root_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": root_dir, "CUDA_VISIBLE_DEVICES": "",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "tests.test_replicas", sample_root, str(tmp_path)], env=env,
                          cwd=root_dir, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.load(open(tmp_path / "info.json"))
    assert info["one"]["replicas"] == 1 and info["two"]["replicas"] == 2
    for name in ("one", "two"):  # jit "auto": always on JAX
        assert info[name]["jit"] and info[name]["step"] == STEPS and info[name]["iterations"] == [STEPS, STEPS]
    one, two = _moments_of(tmp_path / "one.npz"), _moments_of(tmp_path / "two.npz")
    errors = {k: float(np.linalg.norm(two[k] - one[k]) / np.linalg.norm(one[k])) for k in one}
    print("relative errors of m (JAX):", errors)
    assert max(errors.values()) < TOLERANCE, errors


if __name__ == "__main__":
    _jax_worker(sys.argv[1], sys.argv[2])
