"""CycleGAN options and the named variants: XLA steps, replicas, learning, save/load,
bfloat16, the image pool, DiffAugment, the LR schedule, AdaBelief, and the pipelines."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import augment, cli, models, optimizers
from gan_tpu.image_pool import ImagePool
from gan_tpu.models.networks import patch_discriminator, resnet_generator
from gan_tpu.sample_data import write_sample_data
from tests.helpers import REPLICA_TOLERANCE, assert_gradients_agree, gradient_errors, smooth_images, two_replicas

TINY = dict(ngf=4, ndf=4, n_blocks=1)
VARIANTS = ("cyclegan_resnet", "cyclegan_wgangp", "sn_cyclegan")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mirrored():
    # Reduction through one device, not collectives: each MirroredStrategy's collective
    # instance keys start from the same number and collide with other tests' strategies.
    return two_replicas()


def _batch(n=2, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(tf.constant(rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)) for _ in range(2))


def _weights(model):
    return [v.numpy() for net in model.networks.values() for v in net.trainable_variables]


def test_variants_are_registered_with_their_own_defaults_and_bad_values_are_refused():
    d = {name: models.defaults(name) for name in ("cyclegan",) + VARIANTS}
    assert set(d["cyclegan"]) == set(d["sn_cyclegan"])  # one class, one option set
    assert (d["cyclegan"]["pool_size"], d["cyclegan"]["diff_augment"], d["cyclegan"]["decay_start"]) == (0, "", 1.0)
    assert (d["cyclegan_resnet"]["skips"], d["cyclegan_resnet"]["norm"], d["cyclegan_resnet"]["pool_size"]) == (True, "layer", 50)
    assert (d["cyclegan_wgangp"]["adversarial"], d["cyclegan_wgangp"]["n_critic"], d["cyclegan_wgangp"]["gp_weight"]) == ("wgan-gp", 5, 10.0)
    assert (d["sn_cyclegan"]["spectral_norm"], d["sn_cyclegan"]["adversarial"]) == (True, "lsgan")
    for bad, match in [(dict(adversarial="wgan"), "adversarial must be one of"),
                       (dict(optimizer="sgd"), "optimizer must be one of"),
                       (dict(adversarial="hinge", label_smoothing=0.1), "label_smoothing applies to bce and lsgan"),
                       (dict(skips=True), "skips applies to the resnet generator"),
                       (dict(diff_augment="translation,zoom"), "unknown DiffAugment policy 'zoom'"),
                       (dict(decay_start=1.5), "decay_start must be a fraction")]:
        with pytest.raises(ValueError, match=match):
            models.build("cyclegan", image_size=32, **TINY, **bad)


def test_resnet_skips_and_spectral_norm_networks():
    plain = resnet_generator(32, ngf=4, n_blocks=1)
    skip = resnet_generator(32, ngf=4, n_blocks=1, skips=True, norm="layer")
    assert skip.output_shape == (None, 32, 32, 3)
    assert [l.name for l in skip.layers if isinstance(l, keras.layers.Concatenate)] == ["resnet_skip0", "resnet_skip1"]
    assert skip.count_params() > plain.count_params()
    # layer norm: per-channel affine, so the parameters do not depend on the image size
    assert skip.count_params() == resnet_generator(64, ngf=4, n_blocks=1, skips=True, norm="layer").count_params()
    assert any(isinstance(l, keras.layers.GroupNormalization) and l.groups == 1 for l in skip.layers)
    d = patch_discriminator(32, ndf=4, spectral_norm=True)
    assert sum(isinstance(l, keras.layers.SpectralNormalization) for l in d.layers) == 5  # every conv
    assert d.output_shape == patch_discriminator(32, ndf=4).output_shape


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_train_step_compiles_with_xla(name):
    # n_critic 1 (not 5) keeps the compile small; the repeat is checked without XLA below
    extra = dict(n_critic=1, diff_augment="translation,cutout") if name == "cyclegan_wgangp" else {}
    # one strided PatchGAN layer instead of three: every layer kind, a third of the compile
    keras.utils.set_random_seed(6)  # the same weights whatever ran before in this process
    model = models.build(name, image_size=32, **TINY, **extra, disc_layers=1)
    model.compile(jit_compile=True)
    before = _weights(model)
    logs = tf.function(model.train_step, jit_compile=True)(_batch())
    assert set(logs) == set(model.loss_names)
    assert all(np.isfinite(float(v)) for v in logs.values())
    # A Wasserstein critic's output bias has no gradient: both its terms and the penalty
    # are invariant to a constant shift of D. Every other weight moves.
    fixed = {"d_monet_logits/bias", "d_photo_logits/bias"} if name == "cyclegan_wgangp" else set()
    assert sum(isinstance(l, keras.layers.SpectralNormalization) for l in model.d_monet.layers) == \
        (3 if name == "sn_cyclegan" else 0)
    paths = [v.path for net in model.networks.values() for v in net.trainable_variables]
    moved = {p for p, a, b in zip(paths, before, _weights(model)) if not np.array_equal(a, b)}
    assert moved == set(paths) - fixed, set(paths) - moved
    assert int(model.g_optimizer.iterations) == 1 and int(model.d_optimizer.iterations) == model.n_critic
    if model.pool_monet is not None:
        assert int(model.pool_monet.count.numpy()) == 2  # both fakes of the batch went in


def _one_fit_step(strategy, batch):
    keras.utils.set_random_seed(7)
    with strategy.scope():
        model = models.build("sn_cyclegan", image_size=32, **TINY)
        model.compile(jit_compile=False, run_eagerly=True)  # eager: no tracing cost for one step
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, steps_per_epoch=1, verbose=0)
    return model


def test_two_replicas_equal_one_replica_for_sn_cyclegan():
    # sn_cyclegan is the variant with the most per-step state: spectral norm's power
    # iteration (vector_u, the kernel reassigned) and the image pool (whose first step only
    # fills, so its output is the fakes themselves). cyclegan_resnet takes the same path with
    # layer norm (per image, no batch statistics) and skips. cyclegan_wgangp's penalty draws
    # one eps per image, so two replicas draw other eps than one: not comparable weight for
    # weight, though its loss is scaled by the replica count by the same trainer.
    batch = _batch(n=2, seed=1)
    one = _one_fit_step(tf.distribute.get_strategy(), batch)
    two = _one_fit_step(_mirrored(), batch)
    assert_gradients_agree(gradient_errors(one, two), REPLICA_TOLERANCE)
    # each replica keeps its own pool; the first replica's holds the first image
    np.testing.assert_allclose(one.pool_monet.images.numpy()[0], two.pool_monet.images.numpy()[0],
                               rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # learning test, 16 s
def test_overfitting_four_images_lowers_cycle_and_identity_for_cyclegan_resnet():
    keras.utils.set_random_seed(1)
    model = models.build("cyclegan_resnet", image_size=32, ngf=8, ndf=8, n_blocks=1, lr=1e-3,
                         diff_augment="translation,cutout", total_steps=50)
    model.compile(jit_compile=False)
    images = tf.image.resize(smooth_images(8, seed=2).astype(np.float32) / 127.5 - 1.0, [32, 32])
    ds = tf.data.Dataset.from_tensors((images[:4], images[4:])).repeat()
    history = model.fit(ds, epochs=5, steps_per_epoch=10, verbose=0).history
    assert history["cycle"][-1] < 0.7 * history["cycle"][0]
    assert history["identity"][-1] < 0.7 * history["identity"][0]
    assert float(model.g_optimizer.learning_rate) == pytest.approx(0.0, abs=1e-12)  # decayed to 0 at step 50


def test_save_and_load_give_identical_outputs(tmp_path):
    model = models.build("cyclegan_resnet", image_size=32, **TINY)
    path = str(tmp_path / "g.keras")
    model.translator.save(path)
    loaded = keras.models.load_model(path, compile=False)
    x = _batch()[1]
    np.testing.assert_array_equal(model.translator(x).numpy(), loaded(x).numpy())
    d = models.build("sn_cyclegan", image_size=32, **TINY).d_monet
    d.save(str(tmp_path / "d.keras"))
    np.testing.assert_array_equal(d(x).numpy(), keras.models.load_model(str(tmp_path / "d.keras"))(x).numpy())


def test_mixed_bfloat16_runs_with_float32_losses():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:  # one model with every stateful option: critic repeats, penalty, pool, DiffAugment
        model = models.build("cyclegan_wgangp", image_size=32, **TINY, n_critic=2, pool_size=2,
                             diff_augment="translation,cutout")
        model.compile(jit_compile=False)
        logs = model.train_step(_batch())  # eagerly: no tracing cost
        assert int(model.g_optimizer.iterations) == 1 and int(model.d_optimizer.iterations) == 2
        assert model.g_monet.layers[2].compute_dtype == "bfloat16"
        assert all(v.dtype == tf.float32 and np.isfinite(float(v)) for v in logs.values())
        assert model.pool_monet.images.dtype == "float32" and int(model.pool_monet.count.numpy()) == 2
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_image_pool_fills_then_swaps_half_and_checkpoints(tmp_path):
    pool = ImagePool(4, (2, 2, 1), seed=3)
    step = tf.function(pool.__call__, jit_compile=True)
    seen, swapped = set(), 0
    for k in range(12):
        new = [10.0 * k + 1, 10.0 * k + 2]
        out = step(tf.constant(new)[:, None, None, None] * tf.ones((2, 2, 2, 1))).numpy()[:, 0, 0, 0]
        stored = set(pool.images.numpy()[:, 0, 0, 0].tolist())
        if k < 2:  # filling: what goes in comes out
            assert out.tolist() == new and int(pool.count.numpy()) == 2 * k + 2
        assert set(out.tolist()) <= set(new) | seen  # only this batch's or earlier fakes
        seen |= set(new)
        if k >= 1:
            assert len(stored) == 4 and stored <= seen
        swapped += sum(v not in new for v in out)
    assert int(pool.count.numpy()) == 4
    assert 6 <= swapped <= 14  # about half of the 20 fakes after filling came back as old ones
    # the pool is state like any other: a checkpoint of its variables restores it
    ckpt = tf.train.Checkpoint(pool=pool)
    path = ckpt.save(str(tmp_path / "c"))
    saved = pool.images.numpy().copy()
    step(tf.zeros((2, 2, 2, 1)) - 5.0)
    ckpt.restore(path)
    np.testing.assert_array_equal(pool.images.numpy(), saved)
    assert ImagePool(0, (2, 2, 1))(tf.ones((1, 2, 2, 1))).shape == (1, 2, 2, 1)  # size 0: pass through


def test_image_pool_is_per_replica_under_mirrored_strategy():
    strategy = _mirrored()
    with strategy.scope():
        pool = ImagePool(2, (1, 1, 1), seed=0)

    @tf.function
    def put(fakes):
        return strategy.run(pool, (fakes,))

    values = iter([tf.fill((1, 1, 1, 1), 1.0), tf.fill((1, 1, 1, 1), 2.0)])
    per_replica = strategy.experimental_distribute_values_from_function(lambda ctx: next(values))
    out = strategy.experimental_local_results(put(per_replica))
    assert [float(o.numpy().ravel()[0]) for o in out] == [1.0, 2.0]
    local = [v.numpy().ravel()[0] for v in strategy.experimental_local_results(pool.images.value)]
    assert local == [1.0, 2.0]


def test_diff_augment_treats_real_and_fake_alike():
    real = tf.ones((3, 16, 16, 3))
    fake = tf.Variable(tf.ones((3, 16, 16, 3)) * 0.5)
    seed = keras.random.SeedGenerator(0)
    a_real = augment.diff_augment(real, "translation,cutout", seed=seed)
    with tf.GradientTape() as tape:
        a_fake = augment.diff_augment(fake, "translation,cutout", seed=seed)
        total = tf.reduce_sum(a_fake)
    assert a_real.shape == a_fake.shape == real.shape
    assert np.any(tape.gradient(total, fake).numpy() != 0)  # G learns through it
    for out, value in ((a_real.numpy(), 1.0), (a_fake.numpy(), 0.5)):
        assert set(np.unique(out)) <= {0.0, value}  # shifted and cut, never rescaled
        zeros = (out[..., 0] == 0).mean(axis=(1, 2))
        assert np.all(zeros <= 0.25 + 2 * 16 * 2 / 256 + 1e-6)  # an 8x8 hole + up to 2 px shift
        assert np.all(zeros > 0)
    assert augment.parse_policy("") == () and augment.parse_policy(models.defaults("cyclegan")["diff_augment"]) == ()
    assert "color" not in augment.parse_policy("translation,cutout")


def _authors_translation(x, ty, tx):
    """The authors' rand_translation (DiffAugment_pytorch.py) for given shifts: pad by one
    zero pixel, out[i, j] = pad[clamp(i + ty + 1, 0, H + 1), clamp(j + tx + 1, 0, W + 1)]."""
    b, h, w, _ = x.shape
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = np.clip(np.arange(h)[None, :] + ty[:, None] + 1, 0, h + 1)  # (B, H)
    cols = np.clip(np.arange(w)[None, :] + tx[:, None] + 1, 0, w + 1)
    return pad[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def test_translation_matches_the_authors_rand_translation():
    size, batch = 32, 400
    x = np.tile((np.arange(size * size, dtype="float32") + 1).reshape(1, size, size, 1), (batch, 1, 1, 1))
    out = augment.translation(tf.constant(x), seed=keras.random.SeedGenerator(3)).numpy()
    # each image's shift, read from where its centre pixel's value came from
    centre = out[:, 16, 16, 0].astype(int) - 1
    ty, tx = centre // size - 16, centre % size - 16
    s = int(size * 0.125 + 0.5)  # the authors' shift_x: 4 px at 32 px (not 2)
    assert augment.max_shift(size) == s and augment.max_shift(256) == 32
    assert set(ty) == set(tx) == set(range(-s, s + 1))  # randint(-s, s + 1): both ends drawn
    np.testing.assert_array_equal(out, _authors_translation(x, ty, tx))


def test_linear_decay_values_follow_the_optimizers_iterations():
    s = optimizers.LinearDecay(2e-4, decay_start=0.5, total_steps=100)
    values = [float(s(tf.constant(i))) for i in (0, 49, 50, 75, 99, 100, 150)]
    np.testing.assert_allclose(values, [2e-4, 2e-4, 2e-4, 1e-4, 2e-4 / 50, 0.0, 0.0], rtol=1e-6, atol=1e-12)
    critic = optimizers.LinearDecay(2e-4, decay_start=0.5, total_steps=100, updates_per_step=5)
    assert float(critic(tf.constant(375))) == pytest.approx(1e-4)  # 375 critic updates = step 75
    assert float(optimizers.LinearDecay(2e-4, 0.5, 0)(tf.constant(10**6))) == pytest.approx(2e-4)
    model = models.build("cyclegan_wgangp", image_size=32, **TINY)
    model.set_total_steps(100)
    model.g_optimizer.build(model.players[0].variables)
    model.d_optimizer.build(model.players[1].variables)
    model.g_optimizer.iterations.assign(75)  # as a checkpoint restore leaves it
    model.d_optimizer.iterations.assign(5 * 75)
    assert float(model.g_optimizer.learning_rate) == pytest.approx(0.5e-4)
    assert float(model.d_optimizer.learning_rate) == pytest.approx(0.5e-4)
    model.set_total_steps(200)  # a new plan: the decay starts at 100
    assert float(model.g_optimizer.learning_rate) == pytest.approx(1e-4)  # the pipeline's lr, constant again
    fixed = models.build("cyclegan_wgangp", image_size=32, **{**TINY, "total_steps": 100})
    fixed.set_total_steps(10)  # an explicit total_steps option is kept
    assert fixed.lr_fraction(75) == pytest.approx(0.5)


def test_linear_decay_replans_without_a_jump():
    s = optimizers.LinearDecay(1.0, decay_start=0.5, total_steps=100)
    s.attach(keras.optimizers.Adam(s))
    lr = lambda step: float(s(tf.constant(step)))  # noqa: E731
    s.replan(60, at_step=20)  # still constant: the decay now starts at 30
    assert lr(20) == 1.0 and lr(30) == 1.0 and lr(45) == pytest.approx(0.5) and lr(60) == 0.0
    before = lr(50)
    s.replan(200, at_step=50)  # mid-decay, longer: a straight line from today's rate
    assert lr(50) == pytest.approx(before) and lr(200) == 0.0
    assert lr(125) == pytest.approx(before / 2)
    assert [s.fraction(x) for x in (50, 125)] == pytest.approx([lr(50), lr(125)])
    s = optimizers.LinearDecay(1.0, decay_start=0.5, total_steps=100)
    s.attach(keras.optimizers.Adam(s))
    s.replan(50, at_step=40)  # constant so far, shrunk so its decay would have begun: from now
    assert [lr(40), lr(45), lr(50)] == pytest.approx([1.0, 0.5, 0.0])


def _adabelief_numpy(theta, grads, lr=1e-2, b1=0.9, b2=0.999, eps=1e-16):
    m, s = np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * (g - m) ** 2 + eps
        theta = theta - lr * (m / (1 - b1 ** t)) / (np.sqrt(s / (1 - b2 ** t)) + eps)
    return theta


def test_adabelief_matches_the_published_update_rule():
    rng = np.random.default_rng(0)
    theta0 = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(5)]
    var = keras.Variable(theta0)
    opt = optimizers.AdaBelief(learning_rate=1e-2)
    for g in grads:
        opt.apply_gradients([(tf.constant(g), var)])
    np.testing.assert_allclose(var.numpy(), _adabelief_numpy(theta0.astype(np.float64), grads), rtol=1e-5, atol=1e-6)
    assert isinstance(optimizers.make("adabelief", 1e-3), optimizers.AdaBelief)
    assert models.build("cyclegan", image_size=32, **TINY, optimizer="adabelief").d_optimizer.name == "d_adabelief"


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    write_sample_data(root, monet=2, photo=2, seed=4)
    return root


@pytest.mark.parametrize("name", ("cyclegan_wgangp",))  # the n_critic path; the others share the CLI code
def test_pipeline_trains_and_generates_from_the_cli(name, sample_root, tmp_path):
    run, out = str(tmp_path / "run"), str(tmp_path / "images.zip")
    small = [f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', "data.image_size=32",
             "train.epochs=1", "train.steps_per_epoch=1", "train.samples=0", "data.verify=false",
             "model.ngf=4", "model.ndf=4"] + (["model.n_blocks=1"] if name != "cyclegan" else [])
    small += ["model.n_critic=1"] if name == "cyclegan_wgangp" else []  # the full recipe: by hand
    sets = [a for s in small for a in ("--set", s)]
    assert cli.main(["train", os.path.join(ROOT, "pipelines", f"{name}.toml"), *sets, "--out", run]) == 0
    assert cli.main(["generate", "--run", run, "--out", out, "--allow-any-count", "--no-progress"]) == 0
    from gan_tpu.submission.validate import validate_zip

    report = validate_zip(out, min_count=2, max_count=2)  # one 256 px JPEG per sample photo
    assert report.ok, report
