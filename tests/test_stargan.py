"""StarGAN: networks and labels, the domain loss, the authors' penalty, one XLA-compiled step
reused for overfitting, replicas, save/load, mixed_bfloat16."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import models
from gan_tpu.models.stargan import MONET, DomainLabel, domain_cross_entropy, stargan_discriminator, stargan_generator
from tests.helpers import (assert_saved_translator_gives_identical_outputs, assert_trains_in_mixed_bfloat16,
                           assert_two_replicas_equal_one, overfit, smooth_images)

# 32 px: three discriminator layers (4x4 patch scores, a 4x4 classifier kernel)
TINY = dict(ngf=8, ndf=8, n_blocks=1, disc_layers=3)


def _images(seed=2, n=8):
    images = smooth_images(n, seed=seed).astype(np.float32) / 127.5 - 1.0
    return tf.image.resize(images, [32, 32])


@pytest.fixture(scope="module")
def compiled():
    """StarGAN (one critic update per batch: half the compile), its XLA step and 30 overfitting steps."""
    keras.utils.set_random_seed(4)
    model = models.build("stargan", image_size=32, n_critic=1, lr=1e-3, **TINY)
    model.compile(jit_compile=True)
    images = _images()
    batch = (images[:4], images[4:])
    return dict(model=model, batch=batch, **overfit(model, batch, steps=30))


def test_registered_with_the_papers_defaults_and_sizes_are_checked():
    d = models.defaults("stargan")
    assert (d["cls_weight"], d["rec_weight"], d["gp_weight"], d["n_critic"]) == (1.0, 10.0, 10.0, 5)
    assert (d["lr"], d["beta_1"], d["beta_2"], d["n_blocks"], d["disc_layers"]) == (1e-4, 0.5, 0.999, 6, 6)
    with pytest.raises(ValueError, match="6-layer StarGAN discriminator needs an image size that is a multiple of 64, got 32"):
        models.build("stargan", image_size=32, ngf=4, ndf=4, n_blocks=1)


def test_networks_labels_and_the_translator():
    d = stargan_discriminator(128, ndf=4)
    assert [tuple(o.shape) for o in d.outputs] == [(None, 2, 2, 1), (None, 2)]  # the authors' 128 px D
    g = stargan_generator(32, ngf=4, n_blocks=1)
    x = _images()[:2]
    monet = DomainLabel(MONET)(x)
    np.testing.assert_array_equal(monet.numpy(), [[0, 1], [0, 1]])
    photo_out, monet_out = g([x, 1 - monet]).numpy(), g([x, monet]).numpy()
    assert photo_out.shape == (2, 32, 32, 3) and np.abs(photo_out - monet_out).max() > 1e-4  # the label matters
    model = models.build("stargan", image_size=32, **TINY)
    np.testing.assert_array_equal(model.translator(x).numpy(), model.generator([x, monet]).numpy())
    images, own, other = model.labelled((x, x[::-1]))  # (monet, photo): photos first
    np.testing.assert_array_equal(own.numpy(), [[1, 0], [1, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(other.numpy(), 1 - own.numpy())
    np.testing.assert_array_equal(images.numpy()[:2], x.numpy()[::-1])


def test_domain_cross_entropy_and_the_authors_penalty_on_the_summed_patch_map():
    logits = np.array([[2.0, -1.0], [0.5, 0.5]], np.float32)
    labels = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert float(domain_cross_entropy(logits, labels)) == pytest.approx(-np.mean(np.log((p * labels).sum(1))), rel=1e-6)
    model = models.build("stargan", image_size=32, **TINY)
    x = _images()[:4]
    batch = (x[:2], x[2:])
    images, _, _ = model.labelled(batch)
    # fake == real: the mix is the real image whatever ε is drawn
    _, logged = model.discriminator_loss(batch, {"fake": images}, False)
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(model.discriminator(images)[0])
    norms = tf.norm(tf.reshape(tape.gradient(total, images), [4, -1]), axis=1)
    assert float(logged["gp"]) == pytest.approx(10.0 * float(tf.reduce_mean((norms - 1.0) ** 2)), rel=1e-4)


def test_xla_step_updates_every_network_with_finite_losses(compiled):
    model = compiled["model"]
    assert set(compiled["first"]) == set(model.loss_names)
    assert all(np.isfinite(v) for v in compiled["first"].values())
    assert compiled["first"]["gp"] > 0.0
    assert all(not np.array_equal(a, b) for a, b in zip(compiled["before"], compiled["after"]))
    assert int(model.g_optimizer.iterations) == 30 and int(model.d_optimizer.iterations) == 30
    assert set(model.seed_generators) == {"gp_seed"}


def test_overfitting_four_images_lowers_reconstruction_and_domain_losses(compiled):
    first, last = compiled["first"], compiled["history"][-1]
    assert last["rec"] < 0.7 * first["rec"]
    assert last["d_cls"] < 0.85 * first["d_cls"]  # D learns to tell paintings from photos


def test_two_replicas_equal_one_replica_with_the_same_global_batch():
    # The penalty draws one ε per image from each replica's own stream, so two replicas mix
    # other images than one: it is off here (its scaling is the trainer's, as for every
    # loss). No batch statistics; two critic updates check the repeat under replicas.
    images = _images(seed=5, n=4)
    assert_two_replicas_equal_one(lambda: models.build("stargan", image_size=32, gp_weight=0.0, n_critic=2, **TINY),
                                  (images[:2], images[2:]))


def test_translator_save_and_load_give_identical_outputs(tmp_path):
    assert_saved_translator_gives_identical_outputs(models.build("stargan", image_size=32, **TINY), _images()[:2], tmp_path)


def test_mixed_bfloat16_trains_with_float32_losses():
    assert_trains_in_mixed_bfloat16(lambda: models.build("stargan", image_size=32, n_critic=1, **TINY),
                                    lambda model: model.generator.get_layer("generator_block0a_conv"), _images())
