"""CycleGAN on the shared adversarial base: XLA step, replica invariance, learning, save/load."""
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import losses, models
from gan_tpu.errors import UserError
from gan_tpu.models.networks import patch_discriminator, resnet_generator, unet_generator
from tests.helpers import REPLICA_TOLERANCE, assert_gradients_agree, gradient_errors, smooth_images, two_replicas

TINY = dict(ngf=4, ndf=4, n_blocks=1)


def _batch(n=2, size=32, seed=0):
    rng = np.random.default_rng(seed)
    monet = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    photo = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    return tf.constant(monet), tf.constant(photo)


def _weights(model):
    return [v.numpy() for net in model.networks.values() for v in net.trainable_variables]


def test_registry_lists_cyclegan_with_defaults():
    assert "cyclegan" in models.names()
    d = models.defaults("cyclegan")
    assert (d["cycle_weight"], d["identity_weight"], d["lr"], d["beta_1"]) == (10.0, 0.5, 2e-4, 0.5)
    with pytest.raises(UserError, match="model.nope: not an option of model 'cyclegan'"):
        models.build("cyclegan", image_size=32, nope=1)
    with pytest.raises(UserError, match="unknown model 'stylegan9'"):
        models.build("stylegan9", image_size=32)


def test_network_shapes_and_the_70px_patchgan():
    assert unet_generator(64, ngf=4).output_shape == (None, 64, 64, 3)
    assert resnet_generator(64, ngf=4, n_blocks=2).output_shape == (None, 64, 64, 3)
    d = patch_discriminator(256, ndf=4)
    assert d.output_shape == (None, 30, 30, 1)  # the 70x70 PatchGAN's 30x30 map at 256 px
    assert len(unet_generator(256, ngf=4).layers) > len(unet_generator(32, ngf=4).layers)


def test_losses_match_their_formulas():
    real, fake = tf.constant([[2.0, -1.0]]), tf.constant([[0.5, -3.0]])
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731  softplus
    bce_d = 0.5 * (np.mean(sp(-np.array([2.0, -1.0]))) + np.mean(sp(np.array([0.5, -3.0]))))
    assert float(losses.discriminator_loss("bce", real, fake)) == pytest.approx(bce_d, rel=1e-5)
    assert float(losses.generator_loss("bce", fake)) == pytest.approx(np.mean(sp(-np.array([0.5, -3.0]))), rel=1e-5)
    ls_d = 0.5 * (np.mean((np.array([2.0, -1.0]) - 1) ** 2) + np.mean(np.array([0.5, -3.0]) ** 2))
    assert float(losses.discriminator_loss("lsgan", real, fake)) == pytest.approx(ls_d)
    assert float(losses.l1(real, fake)) == pytest.approx(1.75)


@pytest.mark.parametrize("generator", ["unet", "resnet"])
def test_train_step_compiles_with_xla_and_updates_every_network(generator):
    model = models.build("cyclegan", image_size=32, generator=generator, **TINY)
    model.compile(jit_compile=True)
    before = _weights(model)
    step = tf.function(model.train_step, jit_compile=True)
    logs = step(_batch())
    assert set(logs) == set(model.loss_names)
    assert all(np.isfinite(float(v)) for v in logs.values())
    after = _weights(model)
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    assert int(model.g_optimizer.iterations) == 1 and int(model.d_optimizer.iterations) == 1


def _one_fit_step(strategy, batch):
    tf.keras.utils.set_random_seed(7)
    with strategy.scope():
        # resnet: no dropout, no batch statistics, so replicas must not matter
        model = models.build("cyclegan", image_size=32, generator="resnet", **TINY)
        model.compile(jit_compile=False)
    ds = tf.data.Dataset.from_tensors(batch)
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    return model


def test_two_replicas_equal_one_replica_with_the_same_global_batch():
    batch = _batch(n=2, seed=1)
    one = _one_fit_step(tf.distribute.get_strategy(), batch)
    two = _one_fit_step(two_replicas(), batch)
    # The gradients themselves, through Adam's first moments (proportional to them, unlike the
    # weights): a missing division by the replica count gives 1.0 (tests/test_replicas.py).
    assert_gradients_agree(gradient_errors(one, two), REPLICA_TOLERANCE)


def test_overfitting_four_images_lowers_cycle_and_identity():
    tf.keras.utils.set_random_seed(1)
    model = models.build("cyclegan", image_size=32, generator="resnet", ngf=8, ndf=8, n_blocks=1, lr=1e-3)
    model.compile(jit_compile=False)
    images = tf.image.resize(smooth_images(8, seed=2).astype(np.float32) / 127.5 - 1.0, [32, 32])
    ds = tf.data.Dataset.from_tensors((images[:4], images[4:])).repeat()
    history = model.fit(ds, epochs=5, steps_per_epoch=10, verbose=0).history
    assert history["cycle"][-1] < 0.7 * history["cycle"][0]
    assert history["identity"][-1] < 0.7 * history["identity"][0]


def test_translator_save_and_load_give_identical_outputs(tmp_path):
    import keras

    model = models.build("cyclegan", image_size=32, generator="resnet", **TINY)
    path = str(tmp_path / "g.keras")
    model.translator.save(path)
    loaded = keras.models.load_model(path, compile=False)
    x = _batch()[1]
    np.testing.assert_array_equal(model.translator(x).numpy(), loaded(x).numpy())
