"""Keras' JAX backend: models train under DataParallel (DCGAN by default, every registered
model with GAN_TPU_JAX_MODELS=all: see DEFAULT_MODELS), one CycleGAN step equals
TensorFlow's, checkpoints move between backends, the gradient penalty agrees, generation
works, and the CLI picks the backend before Keras is imported.

The backend is fixed when Keras is imported, and this process runs TensorFlow (conftest),
so all JAX work happens in ONE subprocess (`python -m tests.test_jax_backend DIR`, two
host devices); this process prepares its inputs and checks its outputs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 32
CYCLEGAN = dict(generator="resnet", ngf=4, ndf=4, n_blocks=1)  # resnet: no dropout
# Smallest settings for whatever a registered model has (applied where the option exists).
TINY = dict(ngf=4, ndf=4, nef=4, n_blocks=1, latent_dim=8, mc_samples=1, n_critic=2, n_dis=1,
            global_layers=4, local_layers=3, disc_layers=2, pool_size=2,
            dim=4, n_res=1, mlp_dim=8, d_layers=2, d_scales=2, content_d_layers=0, d_iter=2)  # UNIT, MUNIT, DRIT++
# Compiling one JAX train step costs 10-40 s per model on 2 CPU cores, so by default the
# registry test trains the noise models with batch norm, seeds, n_critic and a gradient
# penalty (CycleGAN is covered by the TF/JAX step test); GAN_TPU_JAX_MODELS=all (or a comma
# list) trains every registered model (about 5 minutes).
DEFAULT_MODELS = ("dcgan",)  # the penalty path is covered by the gradient-penalty test


def models_to_train() -> list[str]:
    from gan_tpu import models

    wanted = os.environ.get("GAN_TPU_JAX_MODELS", ",".join(DEFAULT_MODELS))
    names = models.names() if wanted == "all" else [n for n in wanted.split(",") if n]
    return [n for n in names if n in models.names()]


def tiny_options(name: str) -> dict:
    from gan_tpu import models

    defaults = models.defaults(name)
    return {k: v for k, v in TINY.items() if k in defaults}


def batch(seed: int, n: int = 2):
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype(np.float32) for _ in range(2))


def cyclegan(seed: int = 5):
    import keras

    from gan_tpu import models

    keras.utils.set_random_seed(seed)
    model = models.build("cyclegan", image_size=SIZE, **CYCLEGAN)
    model.compile(jit_compile=keras.backend.backend() == "jax")  # JAX uncompiled runs op by op
    return model


def counter():
    import keras

    return keras.Variable(0, dtype="int32", trainable=False, name="epoch")


# TF (one device) vs JAX (DataParallel, two devices), one CycleGAN step from one checkpoint,
# relative error of each player's Adam first moments (tests/helpers.py), measured on 2 loaded
# cores: generator 2.8e-6, discriminator 1.7e-6 -> 1e-4, 36x. Planted once in the JAX trainer:
# the loss doubled (the size of a missing division by the replica count) 1.0 / 1.0; the
# discriminator's update dropped - / 1.0: 10,000x JAX_TOLERANCE.
JAX_TOLERANCE = 1e-4

EMA_DECAY = 0.5


def live_weights_callback():
    import keras

    from gan_tpu.ema import averaged_variables

    class LiveWeights(keras.callbacks.Callback):
        """The exported network's averaged variables after each train step."""

        def __init__(self):
            super().__init__()
            self.after = []

        def on_train_batch_end(self, batch, logs=None):
            model = self.model  # on JAX, this pulls fit's training state into the variables
            self.after.append([np.array(v) for v in averaged_variables(model.exported)])

    return LiveWeights


# ------------------------------------------------------------------ the JAX side


def transposed_conv_flops() -> dict:
    """XLA's compiled FLOPs of a 4x4 stride-2 transposed conv (forward; forward + both
    gradients) on 1x1 to 8x8 inputs, as `PhaseConv2DTranspose` computes it on JAX and as
    Keras' own lowering (`lax.conv_transpose`) does."""
    import jax
    import keras

    from gan_tpu.layers import PhaseConv2DTranspose

    def flops(fn, *args):
        cost = jax.jit(fn).lower(*args).compile().cost_analysis()
        return float((cost[0] if isinstance(cost, list) else cost)["flops"])

    out = {}
    for size in (1, 2, 8):
        x = np.random.default_rng(size).normal(size=(1, size, size, 8)).astype(np.float32)
        for phases in (True, False):
            layer = PhaseConv2DTranspose(16, 4, strides=2, padding="same", use_bias=False, phases=phases)
            layer.build(x.shape)
            forward = lambda k, x, layer=layer: layer.stateless_call([k], [], x)[0]  # noqa: E731
            both = jax.grad(lambda k, x, f=forward: keras.ops.sum(f(k, x) ** 2), argnums=(0, 1))
            kernel = layer.kernel.value
            out[f"{size} {'phases' if phases else 'keras'}"] = [flops(forward, kernel, x), flops(both, kernel, x)]
    return out


def _worker(folder: str) -> None:  # runs under KERAS_BACKEND=jax with two host devices
    import keras
    import tensorflow as tf

    from gan_tpu import checkpoints, losses, models, runtime, translator
    from gan_tpu.backends import input_gradient
    from gan_tpu.submission.generate import write_submission

    assert keras.backend.backend() == "jax"
    LiveWeights = live_weights_callback()  # noqa: N806
    out = {}
    devices = runtime.get_strategy("cpu")  # DataParallel over both devices, set globally
    out["replicas"] = devices.num_replicas_in_sync

    # Every registered model: two steps on a global batch of 4 (2 per device), averaging the
    # exported generator's weights from step 1 on (EMA, decay 0.5).
    out["models"], trained_models = {}, {}
    for name in models_to_train():
        keras.utils.set_random_seed(1)
        model = models.build(name, image_size=SIZE, **tiny_options(name), ema=EMA_DECAY, ema_start=1)
        model.compile(jit_compile=True)
        trained_models[name] = model
        before = {k: [np.array(v) for v in net.trainable_variables] for k, net in model.networks.items()}
        ds = tf.data.Dataset.from_tensors(batch(3, n=4)).repeat()
        live = LiveWeights()
        logs = model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0, callbacks=[live]).history
        np.savez(os.path.join(folder, f"ema_{name}.npz"), *live.after[0], *live.after[1],
                 *[np.array(s) for s in model.ema.shadows])
        trained = {id(v) for p in model.players for v in p.variables}
        out["models"][name] = {
            "finite": all(np.isfinite(v[-1]) for v in logs.values()),
            "logged": sorted(logs), "loss_names": sorted(model.loss_names),
            "steps": [int(p.optimizer.iterations.numpy()) for p in model.players], "model_step": int(np.array(model.step)),
            "player_steps": [p.steps for p in model.players], "ema_steps": int(np.array(model.ema.steps)),
            # a WGAN critic's last bias gets no gradient, so: every network moved
            "unmoved": [k for k, net in model.networks.items() if trained & {id(v) for v in net.trainable_variables}
                        and all(np.array_equal(a, np.array(b)) for a, b in zip(before[k], net.trainable_variables))]}

    # CycleGAN: TensorFlow's initial checkpoint -> outputs, one step, a checkpoint back.
    model = cyclegan(seed=99)  # other initial weights: the checkpoint must replace them all
    named = checkpoints.model_variables(model, counter())
    checkpoints.read(os.path.join(folder, "tf-ckpt"), named, "'cyclegan'")
    x = np.load(os.path.join(folder, "inputs.npz"))
    np.save(os.path.join(folder, "jax_out_from_tf.npy"), np.asarray(model.translator(x["photo"])))

    # WGAN-GP's penalty and the raw input gradient through the TF checkpoint's critic.
    def per_image(images):
        return keras.ops.mean(model.d_monet(images), axis=(1, 2, 3))

    np.save(os.path.join(folder, "jax_input_grad.npy"), np.asarray(input_gradient(per_image, x["mixed"])))
    # fake == real: x-hat is real whatever eps is drawn
    out["gp"] = float(losses.gradient_penalty(model.d_monet, x["mixed"], x["mixed"], weight=10.0, seed=3))

    # Generation: 32 px generator at 256 px over both devices, into a validated zip.
    photos = tf.data.Dataset.from_tensor_slices(x["photos256"])
    result = write_submission(translator.at_size(model.translator), photos, os.path.join(folder, "jax.zip"),
                              strategy=devices, batch_size=4, allow_any_count=True, progress=False)
    out["zip_count"] = result.count
    noise = trained_models.get("dcgan")  # a noise model trained at 32 px, sampled at 256 px inside jax.jit
    if noise is not None:
        import jax

        sampled = np.asarray(jax.jit(lambda index: translator.sampler_at_size(noise)(index, 4))(3))
        np.save(os.path.join(folder, "jax_noise_256.npy"), sampled)
        np.save(os.path.join(folder, "jax_noise_32.npy"), np.asarray(noise.sample(3, 4)))

    out["transposed_conv_flops"] = transposed_conv_flops()
    logs = model.fit(tf.data.Dataset.from_tensors((x["monet"], x["photo"])), epochs=1, steps_per_epoch=1,
                     verbose=0).history
    out["step_losses"] = {k: float(v[-1]) for k, v in logs.items()}
    from tests.helpers import first_moments

    np.savez(os.path.join(folder, "jax_moments.npz"), **first_moments(model))
    checkpoints.write(os.path.join(folder, "jax-ckpt"), named)
    np.save(os.path.join(folder, "jax_out_after.npy"), np.asarray(model.translator(x["photo"])))
    with open(os.path.join(folder, "results.json"), "w") as fh:
        json.dump(out, fh)


# ------------------------------------------------------------------ the TensorFlow side


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    pytest.importorskip("jax")
    import tensorflow as tf

    from gan_tpu import checkpoints
    from tests.helpers import first_moments, smooth_images

    folder = str(tmp_path_factory.mktemp("jax"))
    model = cyclegan(seed=5)
    named = checkpoints.model_variables(model, counter())
    checkpoints.write(os.path.join(folder, "tf-ckpt"), named)
    monet, photo = batch(11)
    rng = np.random.default_rng(12)
    inputs = dict(monet=monet, photo=photo, mixed=rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32),
                  photos256=smooth_images(4, seed=4))
    np.savez(os.path.join(folder, "inputs.npz"), **inputs)

    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "",
           "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2",  # conftest's too
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "tests.test_jax_backend", folder], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(os.path.join(folder, "results.json")) as fh:
        results = json.load(fh)

    # TensorFlow's side of the same computations, from the same checkpoint.
    tf_side = {"out_before": model.translator(photo).numpy()}

    def per_image(images):
        return tf.reduce_mean(model.d_monet(images), axis=[1, 2, 3])

    from gan_tpu import losses
    from gan_tpu.backends import input_gradient

    mixed = tf.constant(inputs["mixed"])
    tf_side["input_grad"] = input_gradient(per_image, mixed).numpy()
    tf_side["gp"] = float(losses.gradient_penalty(model.d_monet, mixed, mixed, weight=10.0, seed=3))
    from gan_tpu import translator
    from gan_tpu.submission.generate import write_submission

    write_submission(translator.at_size(model.translator), tf.data.Dataset.from_tensor_slices(inputs["photos256"]),
                     os.path.join(folder, "tf.zip"), batch_size=4, allow_any_count=True, progress=False)
    logs = model.fit(tf.data.Dataset.from_tensors((monet, photo)), epochs=1, steps_per_epoch=1, verbose=0).history
    tf_side["step_losses"] = {k: float(v[-1]) for k, v in logs.items()}
    tf_side["moments"] = first_moments(model)
    return folder, results, tf_side


def test_registered_models_train_two_steps_on_jax_with_data_parallel(jax_run):
    _, results, _ = jax_run
    assert results["replicas"] == 2
    assert sorted(results["models"]) == sorted(models_to_train())
    for name, r in results["models"].items():
        assert r["finite"], name
        assert r["logged"] == r["loss_names"], name
        assert r["steps"] == [2 * s for s in r["player_steps"]], name  # every player, n_critic included
        assert r["model_step"] == 2, name  # the model's own count: train steps, whatever its players do
        assert r["unmoved"] == [], f"{name}: networks that did not train: {r['unmoved']}"


def test_ema_weights_on_jax_follow_the_numpy_recurrence(jax_run):
    folder, results, _ = jax_run
    for name, r in results["models"].items():
        arrays = np.load(os.path.join(folder, f"ema_{name}.npz"))
        values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        k = len(values) // 3
        first, second, shadows = values[:k], values[k:2 * k], values[2 * k:]
        assert r["ema_steps"] == 2 and k > 0, name
        for w1, w2, shadow in zip(first, second, shadows):  # step 1 <= ema_start: a copy; step 2 averages
            np.testing.assert_allclose(shadow, EMA_DECAY * w1 + (1 - EMA_DECAY) * w2, rtol=1e-5, atol=1e-7)
        assert any(not np.allclose(s, w) for s, w in zip(shadows, second)), name


def test_one_cyclegan_step_is_the_same_on_jax_and_tensorflow(jax_run):
    from tests.helpers import assert_gradients_agree, moment_errors

    folder, results, tf_side = jax_run
    assert results["step_losses"].keys() == tf_side["step_losses"].keys()
    for name, value in tf_side["step_losses"].items():
        assert results["step_losses"][name] == pytest.approx(value, rel=1e-4), name
    with np.load(os.path.join(folder, "jax_moments.npz")) as arrays:
        jax_moments = {k: arrays[k] for k in arrays.files}
    # Each player's Adam first moments, (1 - beta1) x its gradient (tests/helpers.py): JAX
    # computes the transposed convs as per-phase stride-1 convs (layers.PhaseConv2DTranspose),
    # TF with its own kernels, on two devices against one (JAX_TOLERANCE: the measured noise).
    assert_gradients_agree(moment_errors(tf_side["moments"], jax_moments), JAX_TOLERANCE)


def test_checkpoints_move_between_backends_with_the_same_generator_outputs(jax_run):
    from gan_tpu import checkpoints

    folder, _, tf_side = jax_run
    photo = np.load(os.path.join(folder, "inputs.npz"))["photo"]
    # TensorFlow -> JAX
    np.testing.assert_allclose(np.load(os.path.join(folder, "jax_out_from_tf.npy")), tf_side["out_before"],
                               rtol=0, atol=1e-5)
    # JAX -> TensorFlow: a fresh model with other weights takes the JAX checkpoint
    model = cyclegan(seed=123)
    checkpoints.read(os.path.join(folder, "jax-ckpt"), checkpoints.model_variables(model, counter()), "'cyclegan'")
    np.testing.assert_allclose(model.translator(photo).numpy(), np.load(os.path.join(folder, "jax_out_after.npy")),
                               rtol=0, atol=1e-5)
    assert int(model.g_optimizer.iterations.numpy()) == 1  # optimizer state came along


def test_phase_transposed_convs_cost_no_more_forward_flops_than_keras_lowering(jax_run):
    """Their padding is folded into the convolutions, so XLA counts no taps on zeros forward:
    the same FLOPs as `lax.conv_transpose` (a quarter of the textbook count at 1x1). With the
    gradients, whose zero taps are not all folded, at most 3x the textbook forward count
    (+10 % for the elementwise loss): nothing is computed twice."""
    flops = jax_run[1]["transposed_conv_flops"]
    for size in (1, 2, 8):
        (phase_fwd, phase_all), (keras_fwd, keras_all) = flops[f"{size} phases"], flops[f"{size} keras"]
        textbook = 2 * size * size * 4 * 4 * 8 * 16
        assert phase_fwd == keras_fwd <= textbook, (size, phase_fwd, keras_fwd)
        assert keras_all <= phase_all <= 1.1 * 3 * textbook, (size, phase_all, keras_all)
    assert flops["1 phases"][0] == 4 * 2 * 8 * 16  # at 1x1, each of the 4 outputs gets one of the 16 taps


def test_gradient_penalty_and_input_gradient_agree(jax_run):
    folder, results, tf_side = jax_run
    np.testing.assert_allclose(np.load(os.path.join(folder, "jax_input_grad.npy")), tf_side["input_grad"],
                               rtol=1e-4, atol=1e-7)
    assert np.abs(tf_side["input_grad"]).max() > 0
    assert results["gp"] == pytest.approx(tf_side["gp"], rel=1e-4)


def test_generation_on_jax_writes_the_same_images(jax_run):
    import zipfile

    import tensorflow as tf

    folder, results, _ = jax_run
    assert results["zip_count"] == 4
    with zipfile.ZipFile(os.path.join(folder, "jax.zip")) as a, zipfile.ZipFile(os.path.join(folder, "tf.zip")) as b:
        assert a.namelist() == b.namelist() == [f"{i}.jpg" for i in range(1, 5)]
        for name in a.namelist():
            x = tf.io.decode_jpeg(a.read(name)).numpy().astype(np.float32)
            y = tf.io.decode_jpeg(b.read(name)).numpy().astype(np.float32)
            assert x.shape == y.shape == (256, 256, 3)
            assert np.abs(x - y).mean() < 1.0, name  # mean pooling vs TF's area resize: rounding apart
    if "dcgan" in models_to_train():  # a noise model below 256 px: resized in keras.ops, jittable
        small, large = np.load(os.path.join(folder, "jax_noise_32.npy")), np.load(os.path.join(folder, "jax_noise_256.npy"))
        assert small.shape == (4, SIZE, SIZE, 3) and large.shape == (4, 256, 256, 3)
        expected = tf.image.resize(small, [256, 256], method="bilinear").numpy()
        np.testing.assert_allclose(large, np.clip(expected, -1, 1), rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_the_cli_chooses_the_backend_from_the_pipeline_before_keras_loads(tmp_path, capsys):
    from gan_tpu import cli, keras_backend

    pipe = tmp_path / "p.toml"
    pipe.write_text('[runtime]\nbackend = "jax"\n')
    assert keras_backend.requested(["run", str(pipe)]) == "jax"
    assert keras_backend.requested(["train", str(pipe), "--set", 'runtime.backend="tensorflow"']) == "tensorflow"
    assert keras_backend.requested(["demo", "--set", 'runtime.backend="jax"']) == "jax"
    assert keras_backend.requested(["train", "demo"]) is None  # auto: KERAS_BACKEND, else detected
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.toml").write_text('[runtime]\nbackend = "jax"\n')
    assert keras_backend.requested(["generate", "--checkpoint", str(run_dir / "checkpoints" / "ckpt-3")]) == "jax"
    # Keras is already on TensorFlow in this process: a JAX pipeline is refused, in one line
    assert cli.main(["train", str(pipe)]) == 2
    assert "runtime.backend: 'jax' asked for" in capsys.readouterr().err


if __name__ == "__main__":
    _worker(sys.argv[1])
