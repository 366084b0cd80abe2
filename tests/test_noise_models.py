"""Noise-to-image models (DCGAN, WGAN-GP, SN-GAN, ArtGAN): XLA steps in mixed_bfloat16,
synchronized batch norm across replicas, seeded sampling, a two-mode toy data set, each
pipeline through the CLI, and a 7,000-image zip from a DCGAN run."""
import os
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import cli, models, runs
from gan_tpu.models.base import NoiseModel, TranslationModel
from gan_tpu.models.noise_networks import dcgan_generator
from gan_tpu.sample_data import write_sample_data
from tests.helpers import two_replicas

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = ("artgan", "dcgan", "sngan", "wgan_gp")
TINY = dict(ngf=4, ndf=4, latent_dim=8)


def _mirrored():
    return two_replicas()


def _weights(model):
    return [[v.numpy() for v in net.trainable_variables] for net in model.networks.values()]


def _batch(size, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(tf.constant(rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)) for _ in range(2))


def test_registered_with_the_papers_defaults():
    assert set(NOISE) <= set(models.names())
    dc, wg, sn, art = (models.defaults(n) for n in ("dcgan", "wgan_gp", "sngan", "artgan"))
    assert (dc["latent_dim"], dc["lr"], dc["beta_1"]) == (100, 2e-4, 0.5)
    assert (wg["n_critic"], wg["gp_weight"], wg["lr"], wg["beta_1"], wg["beta_2"]) == (5, 10.0, 1e-4, 0.5, 0.9)
    assert wg["critic_norm"] == "layer"
    assert (sn["n_dis"], sn["lr"], sn["beta_1"], sn["beta_2"]) == (5, 2e-4, 0.0, 0.9)
    assert (art["lr"], art["lr_decay"]) == (1e-3, 0.9)
    model = models.build("dcgan", image_size=256, ngf=4, ndf=4)
    assert isinstance(model, NoiseModel) and model.latent_dim == 100
    assert model.generator.output_shape == (None, 256, 256, 3)  # grows from 4x4 to the image size
    assert model.discriminator.output_shape == (None, 1)
    with pytest.raises(ValueError, match="critic_norm must be 'layer' or 'none'"):
        models.build("wgan_gp", image_size=32, critic_norm="batch")
    with pytest.raises(ValueError, match="power of two"):
        models.build("dcgan", image_size=48)
    assert isinstance(models.build("cyclegan", image_size=32, ngf=4, ndf=4), TranslationModel)


@pytest.mark.parametrize("name", NOISE)
def test_one_xla_step_in_mixed_bfloat16_updates_every_network(name):
    size = 16 if name == "artgan" else 8  # the smallest sizes each model allows: compiles are costly
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        extra = {"n_critic": 1} if name == "wgan_gp" else {"n_dis": 1} if name == "sngan" else {}
        model = models.build(name, image_size=size, **TINY, **extra)
        model.compile(jit_compile=True)
        before = _weights(model)
        logs = tf.function(model.train_step, jit_compile=True)(_batch(size))
        assert model.generator.layers[-2].compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert set(logs) == set(model.loss_names)
    for key, value in logs.items():
        assert value.dtype == tf.float32 and np.isfinite(float(value)), key
    after = _weights(model)
    for net, old, new in zip(model.networks, before, after):
        for path, a, b in zip((v.path for v in model.networks[net].trainable_variables), old, new):
            if "kernel" in path:  # a bias can start at an exact zero gradient (D's logit, sigmoid 0.5)
                assert not np.array_equal(a, b), path
    assert all(int(p.optimizer.iterations) == 1 for p in model.players)


def test_sampling_is_seeded_by_batch_index_and_truncation_bounds_latents():
    model = models.build("dcgan", image_size=8, **TINY, truncation=0.5)
    a, b = model.sample(3, 4).numpy(), model.sample(3, 4).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 8, 8, 3) and np.abs(a).max() <= 1.0
    assert not np.allclose(a, model.sample(4, 4).numpy())
    z = model.sample_latents(0, 512).numpy()
    assert np.abs(z).max() <= 0.5 and z.std() > 0.2
    assert models.build("dcgan", image_size=8, **TINY).sample_latents(0, 512).numpy().std() > 0.9
    with pytest.raises(NotImplementedError, match="paints from noise"):
        model.translator  # noqa: B018


def test_synchronized_batch_norm_statistics_do_not_depend_on_the_replica_count():
    z = tf.constant(np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32))
    keras.utils.set_random_seed(3)
    one = dcgan_generator(16, latent_dim=8, ngf=4)
    weights = one.get_weights()
    single = one(z, training=True).numpy()

    strategy = _mirrored()
    with strategy.scope():
        two = dcgan_generator(16, latent_dim=8, ngf=4)
        two.set_weights(weights)
    halves = strategy.experimental_distribute_values_from_function(
        lambda ctx: z[2 * ctx.replica_id_in_sync_group: 2 * ctx.replica_id_in_sync_group + 2])
    out = strategy.run(tf.function(lambda x: two(x, training=True)), args=(halves,))
    mirrored = np.concatenate([t.numpy() for t in strategy.experimental_local_results(out)])
    # each replica normalizes its 2 images with the statistics of all 4, as one replica does
    np.testing.assert_allclose(mirrored, single, atol=1e-5)
    for a, b in zip(one.non_trainable_weights, two.non_trainable_weights):  # moving mean, variance
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert not np.allclose(one.non_trainable_weights[0].numpy(), 0.0)


def test_each_replica_draws_its_own_training_latents():
    strategy = _mirrored()
    with strategy.scope():
        model = models.build("dcgan", image_size=8, **TINY)
    runs.spread_seeds(model, strategy)
    out = strategy.run(tf.function(lambda: model.latents(3)))
    first, second = (t.numpy() for t in strategy.experimental_local_results(out))
    assert first.shape == (3, 8) and not np.allclose(first, second)


def _two_kinds(n, size, seed=0):
    """Kind 0: red top half on black; kind 1: blue left half on white (+ small noise)."""
    rng = np.random.default_rng(seed)
    proto = np.zeros((2, size, size, 3), np.float32) - 1.0
    proto[0, : size // 2, :, 0] = 1.0
    proto[1] = 1.0
    proto[1, :, : size // 2, :2] = -1.0
    kinds = np.arange(n) % 2
    images = proto[kinds] + rng.normal(0, 0.05, (n, size, size, 3)).astype(np.float32)
    return np.clip(images, -1, 1), proto


@pytest.mark.slow  # 300 steps, one seed: whether both modes are learned depends on the thread count
def test_a_tiny_dcgan_learns_both_modes_of_a_two_kind_data_set():
    size = 16
    images, proto = _two_kinds(64, size)
    keras.utils.set_random_seed(0)
    model = models.build("dcgan", image_size=size, latent_dim=16, ngf=16, ndf=16, lr=1e-3)
    model.compile(jit_compile=False)
    ds = tf.data.Dataset.from_tensor_slices((images, images)).shuffle(64, seed=0).repeat().batch(16)
    model.fit(ds, epochs=1, steps_per_epoch=300, verbose=0)
    fakes = model.sample(0, 128).numpy().reshape(128, -1)
    dist = np.linalg.norm(fakes[:, None, :] - proto.reshape(2, -1)[None], axis=-1) / np.sqrt(fakes.shape[1])
    nearest = dist.argmin(1)
    share = np.bincount(nearest, minlength=2) / len(nearest)
    between = np.linalg.norm(proto[0] - proto[1]) / np.sqrt(fakes.shape[1])
    assert share.min() > 0.2, share                         # both kinds are painted
    assert np.median(dist.min(1)) < 0.25 * between, (np.median(dist.min(1)), between)  # and look like them


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("noise_data"))
    write_sample_data(root, monet=4, photo=4, size=64, seed=2)
    return root


def _train_cli(name, sample_root, out, *extra):
    args = ["train", os.path.join(ROOT, "pipelines", f"{name}.toml"), "--set", "data.image_size=32", "--set", "train.epochs=1",
            "--set", "train.steps_per_epoch=2", "--set", f'data.monet="{sample_root}"',
            "--set", f'data.photo="{sample_root}"', "--set", "data.source_size=64",
            "--set", "model.ngf=4", "--set", "model.ndf=4", "--set", "train.batch_size=2",
            "--set", "train.samples=2", "--set", "submission.batch_size=4", "--out", out]
    for item in extra:
        args += ["--set", item]
    return cli.main(args)


@pytest.fixture(scope="module")
def dcgan_run(sample_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "dcgan")
    assert _train_cli("dcgan", sample_root, out) == 0
    return out


@pytest.mark.parametrize("name", NOISE)
def test_each_pipeline_trains_from_the_cli_and_its_generator_reloads(name, sample_root, dcgan_run, tmp_path):
    if name == "dcgan":
        out = dcgan_run
    else:
        out = str(tmp_path / name)
        extra = {"sngan": ["model.n_dis=1"], "wgan_gp": ["model.n_critic=2"]}.get(name, [])
        assert _train_cli(name, sample_root, out, *extra) == 0
    assert {"checkpoints", "config.toml", "generator.keras", "history.csv", "samples"} <= set(os.listdir(out))
    grid = tf.io.decode_png(tf.io.read_file(os.path.join(out, "samples", "epoch_001.png")))
    assert grid.shape == (2 * 128, 2 * 128, 3)  # 2 x 2 samples, each enlarged to 128 px
    run, generator = runs.load(out)
    assert generator is run.model.generator and isinstance(run.model, NoiseModel)
    if name == "wgan_gp":
        iterations = {p.name: int(p.optimizer.iterations) for p in run.model.players}
        assert iterations == {"generator": 2, "critic": 4}  # n_critic updates per step
    saved = keras.models.load_model(os.path.join(out, "generator.keras"), compile=False)
    z = run.model.sample_latents(0, 2)
    inputs = [z, tf.one_hot([0, 0], 2)] if name == "artgan" else z
    np.testing.assert_array_equal(saved(inputs, training=False).numpy(), generator(inputs, training=False).numpy())
    np.testing.assert_array_equal(run.model.sample(0, 2).numpy(), generator(inputs, training=False).numpy())


@pytest.mark.slow  # 44 s of a quiet 2-core make test; the fast tier validates 7,000 members in test_validate
def test_generate_7000_samples_from_a_dcgan_run_writes_a_valid_zip(dcgan_run, tmp_path, capsys, zip_validated_once):
    out = str(tmp_path / "images.zip")
    assert cli.main(["generate", "--run", dcgan_run, "--count", "7000", "--out", out, "--no-progress",
                     "--batch", "64"]) == 0
    assert "7000 images" in capsys.readouterr().out
    assert cli.main(["validate", out]) == 0
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        first = tf.io.decode_jpeg(zf.read("1.jpg"))
    assert len(names) == 7000 and first.shape == (256, 256, 3)
    assert cli.main(["generate", "--checkpoint", os.path.join(dcgan_run, "generator.keras"),
                     "--photos", dcgan_run, "--out", str(tmp_path / "x.zip")]) == 2
    assert "a noise model's generator" in capsys.readouterr().err


def test_generate_truncation_changes_the_latents_and_rejects_bad_values(dcgan_run, tmp_path, capsys):
    def first_images(*extra):
        out = str(tmp_path / f"t{len(extra)}.zip")
        assert cli.main(["generate", "--run", dcgan_run, "--count", "4", "--allow-any-count", "--out", out,
                         "--no-progress", *extra]) == 0
        with zipfile.ZipFile(out) as zf:
            return [zf.read(n) for n in sorted(zf.namelist())]

    plain, truncated = first_images(), first_images("--truncation", "0.5")
    assert len(plain) == len(truncated) == 4 and plain != truncated
    assert first_images("--truncation", "0") == plain  # 0 is off
    capsys.readouterr()
    assert cli.main(["generate", "--run", dcgan_run, "--truncation", "-1", "--out", str(tmp_path / "x.zip")]) == 2
    assert "--truncation -1.0: must be 0 (off) or positive" in capsys.readouterr().err
    assert cli.main(["generate", "--checkpoint", os.path.join(dcgan_run, "generator.keras"), "--photos", dcgan_run,
                     "--truncation", "0.5", "--out", str(tmp_path / "x.zip")]) == 2
    assert "--truncation: only a noise model's run" in capsys.readouterr().err
