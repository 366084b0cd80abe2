"""CUT and FastCUT: anti-aliased resampling against the authors' code, PatchNCE against its
formula, one XLA-compiled step reused for overfitting and exact resume, replicas, save/load,
mixed_bfloat16.

XLA compiles cost 10-30 s each on CPU, so the module compiles one CUT train step (tiny
widths, 32 px) and every test that trains compiled uses it; other checks run eagerly.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import checkpoints, models, runs
from gan_tpu.blur import BlurDownsample2D, BlurUpsample2D
from gan_tpu.models.cut import cut_discriminator, cut_generator, layer_sequence, patch_nce
from tests.helpers import assert_saved_translator_gives_identical_outputs, assert_trains_in_mixed_bfloat16, assert_two_replicas_equal_one, overfit, smooth_images, trainable_weights

# one residual block, so the NCE layers stop at index 12 (the first block)
TINY = dict(ngf=8, ndf=4, n_blocks=1, nce_layers="0,4,8,12", num_patches=64, patch_dim=16)


def _images(seed=2, n=8):
    images = smooth_images(n, seed=seed).astype(np.float32) / 127.5 - 1.0
    return tf.image.resize(images, [32, 32])


@pytest.fixture(scope="module")
def compiled():
    """CUT, its XLA step, the first step's logs and weights, and 20 overfitting steps."""
    keras.utils.set_random_seed(3)
    model = models.build("cut", image_size=32, lr=1e-3, **TINY)
    model.compile(jit_compile=True)
    images = _images()
    batch = (images[:4], images[4:])
    return dict(model=model, batch=batch, **overfit(model, batch, steps=20))


def test_registered_with_the_authors_defaults_and_bad_layers_are_refused():
    cut, fast = models.defaults("cut"), models.defaults("fastcut")
    assert set(cut) == set(fast)
    assert (cut["nce_weight"], cut["nce_identity"], cut["flip_equivariance"], cut["decay_start"]) == (1.0, True, False, 0.5)
    assert (fast["nce_weight"], fast["nce_identity"], fast["flip_equivariance"], fast["decay_start"]) == (10.0, False, True, 0.75)
    for d in (cut, fast):
        assert (d["nce_layers"], d["num_patches"], d["patch_dim"], d["temperature"]) == ("0,4,8,12,16", 256, 256, 0.07)
        assert (d["n_blocks"], d["gan_weight"], d["lr"], d["beta_1"], d["beta_2"]) == (9, 1.0, 2e-4, 0.5, 0.999)
    with pytest.raises(ValueError, match=r"nce_layers must be indices in 0\.\.23 .*n_blocks=1.*'0,40'"):
        models.build("cut", image_size=32, **{**TINY, "nce_layers": "0,40"})
    with pytest.raises(ValueError, match="comma-separated layer indices"):
        models.build("cut", image_size=32, **{**TINY, "nce_layers": "a,b"})


def _torch_downsample(x):
    """The CUT code's Downsample (reflect pad 1, [1,2,1]² / 16, stride 2), per channel in NumPy."""
    f = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    xp = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    h, w = (xp.shape[1] - 3) // 2 + 1, (xp.shape[2] - 3) // 2 + 1
    out = np.zeros((x.shape[0], h, w, x.shape[3]))
    for a in range(3):
        for b in range(3):
            out += f[a, b] * xp[:, a:a + 2 * h:2, b:b + 2 * w:2]
    return out


def _torch_upsample(x):
    """The CUT code's Upsample: replicate pad 1, conv_transpose2d([1,3,3,1]² / 64 · 4, stride 2,
    padding 2), then [1:, 1:] and [:-1, :-1], as a scatter-add in NumPy."""
    f = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0 * 4
    xp = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
    hp, wp = xp.shape[1:3]
    full = np.zeros((x.shape[0], 2 * (hp - 1) + 4, 2 * (wp - 1) + 4, x.shape[3]))
    for i in range(hp):
        for j in range(wp):
            full[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += xp[:, i:i + 1, j:j + 1] * f[None, :, :, None]
    return full[:, 2:-2, 2:-2][:, 1:, 1:][:, :-1, :-1]


@pytest.mark.parametrize("shape", [(2, 6, 8, 3), (1, 5, 7, 2)])
def test_anti_aliased_resampling_matches_the_cut_code(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    down, up = BlurDownsample2D()(x).numpy(), BlurUpsample2D()(x).numpy()
    assert up.shape == (shape[0], 2 * shape[1], 2 * shape[2], shape[3])
    np.testing.assert_allclose(down, _torch_downsample(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(up, _torch_upsample(x), rtol=1e-5, atol=1e-6)


def test_networks_and_the_nce_layers_of_the_authors_sequence():
    g = cut_generator(256, ngf=4, n_blocks=9, name="g")
    assert g.output_shape == (None, 256, 256, 3)
    seq = layer_sequence("g", 9)
    assert len(seq) == 32 and all(g.get_layer(n) is not None for n in seq)
    taps = [g.get_layer(seq[i]).output.shape[1:] for i in (0, 4, 8, 12, 16)]
    # the padded input, the two downsampling convs (before their blur), blocks 1 and 5
    assert taps == [(262, 262, 3), (256, 256, 8), (128, 128, 16), (64, 64, 16), (64, 64, 16)]
    assert cut_discriminator(256, ndf=4).output_shape == (None, 30, 30, 1)  # the 70x70 PatchGAN's map
    model = models.build("cut", image_size=32, **TINY)
    assert [tuple(o.shape[1:]) for o in model._encoder.outputs] == [(38, 38, 3), (32, 32, 16), (16, 16, 32), (8, 8, 32)]
    assert [tuple(o.shape[1:]) for o in model.patch_heads.outputs] == [(16,)] * 4
    assert set(model.networks) == {"generator", "patch_heads", "discriminator"}  # the encoder is the generator's


def test_patch_nce_matches_the_authors_formula():
    rng = np.random.default_rng(1)
    q, k = (rng.normal(size=(2, 5, 3)).astype(np.float32) for _ in range(2))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    expected = np.zeros((2, 5))
    for b in range(2):
        neg = q[b] @ k[b].T
        np.fill_diagonal(neg, -10.0)
        logits = np.concatenate([np.sum(q[b] * k[b], -1, keepdims=True), neg], 1) / 0.07
        expected[b] = np.log(np.exp(logits).sum(1)) - logits[:, 0]
    np.testing.assert_allclose(patch_nce(q, k, 0.07).numpy(), expected, rtol=1e-5)


def test_xla_step_updates_every_network_with_finite_losses(compiled):
    model = compiled["model"]
    assert set(compiled["first"]) == set(model.loss_names)
    assert all(np.isfinite(v) for v in compiled["first"].values())
    assert all(not np.array_equal(a, b) for a, b in zip(compiled["before"], compiled["after"]))
    assert compiled["iterations"] == [20, 20]  # G, D: counted before later tests step the model
    assert set(model.seed_generators) == {"patch_seed"}  # what the trainer spreads over replicas


def test_overfitting_four_images_lowers_both_nce_losses(compiled):
    first, last = compiled["first"], compiled["history"][-1]
    assert last["nce"] < 0.7 * first["nce"]
    assert last["nce_identity"] < 0.7 * first["nce_identity"]


def test_patch_positions_are_checkpointed_and_a_restored_step_is_identical(compiled, tmp_path):
    model, step, batch = compiled["model"], compiled["step"], compiled["batch"]
    named = checkpoints.model_variables(model, keras.Variable(0, dtype="int64", trainable=False, name="epoch"))
    seed_state = model.patch_seed.state
    assert any(v is seed_state for v in named.values())
    checkpoints.write(str(tmp_path / "ckpt-1"), named)
    before = seed_state.numpy().copy()
    model.reset_metrics()
    logs = {k: float(v) for k, v in step(batch).items()}
    weights = trainable_weights(model)
    assert not np.array_equal(seed_state.numpy(), before)  # new positions every step
    checkpoints.read(str(tmp_path / "ckpt-1"), named, "'cut'")
    model.reset_metrics()
    assert {k: float(v) for k, v in step(batch).items()} == logs
    for a, b in zip(weights, trainable_weights(model)):
        np.testing.assert_array_equal(a, b)


def test_two_replicas_equal_one_replica_with_the_same_global_batch():
    # Every position of every layer (22x22, the padded input, is the largest map at 16 px):
    # PatchNCE does not depend on the order positions are drawn in, so the replicas' own
    # (spread) streams cannot change the update. Instance norm, no batch statistics; no
    # flips (CUT).
    options = {**TINY, "num_patches": 22 * 22, "disc_layers": 2}
    images = tf.image.resize(_images(seed=5, n=4), [16, 16])
    batch = (images[:2], images[2:])

    def build():
        model = models.build("cut", image_size=16, **options)
        runs.spread_seeds(model, tf.distribute.get_strategy())  # under the strategy's scope
        return model

    # The biases of convs feeding an instance norm without affine parameters get gradients of
    # float noise around 0 (the norm removes them): next to the others' m, negligible.
    assert_two_replicas_equal_one(build, batch)


def test_translator_save_and_load_give_identical_outputs(tmp_path):
    assert_saved_translator_gives_identical_outputs(models.build("fastcut", image_size=32, **TINY), _images()[:2], tmp_path)


def test_fastcut_trains_in_mixed_bfloat16_with_float32_losses():
    model, logs = assert_trains_in_mixed_bfloat16(lambda: models.build("fastcut", image_size=32, **TINY),
                                                  lambda model: model.generator.get_layer("generator_block0_conv1"),
                                                  _images())
    assert float(logs["nce_identity"]) == 0.0 and float(logs["nce"]) > 0.0
    assert set(model.seed_generators) == {"patch_seed", "flip_seed"}
