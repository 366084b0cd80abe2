"""MUNIT: defaults, AdaIN, styles (sampled, fixed per run, several in the grid), one XLA
step reused for overfitting, replicas, save/load, mixed_bfloat16, the CLI's --style-seed."""
import os

import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import config, models
from gan_tpu.models.munit import GRID_STYLES, style_code
from gan_tpu.models.translation_layers import AdaIN
from tests.helpers import (assert_saved_translator_gives_identical_outputs, assert_trains_in_mixed_bfloat16,
                           assert_two_replicas_equal_one, images_at, overfit, train_and_generate_with_the_cli)

TINY = dict(dim=4, ndf=4, n_res=1, mlp_dim=8, d_layers=2, d_scales=2)
DRIT_TINY = dict(dim=4, ndf=4, n_res=1, d_layers=2, d_scales=2, content_d_layers=0, d_iter=2)


@pytest.fixture(scope="module")
def compiled():
    """The model, its XLA step, the first step's logs and weights, and 25 overfitting steps."""
    tf.keras.utils.set_random_seed(3)
    model = models.build("munit", image_size=32, lr=1e-3, **TINY)
    model.compile(jit_compile=True)
    images = images_at(32)
    noise_before = model.noise_seed.state.numpy().copy()
    return dict(model=model, noise_before=noise_before, **overfit(model, (images[:4], images[4:]), steps=25))


def test_registered_with_the_authors_defaults():
    d = models.defaults("munit")
    assert (d["gan_weight"], d["recon_weight"], d["style_weight"], d["content_weight"], d["cycle_weight"]) == \
        (1.0, 10.0, 1.0, 1.0, 0.0)
    assert (d["style_dim"], d["mlp_dim"], d["n_res"], d["d_scales"], d["weight_decay"]) == (8, 256, 4, 3, 1e-4)
    cfg = config.load("munit")
    own = {k: v for k, v in d.items() if k not in models.registry.SHARED}  # ema: every model's option
    assert {k: v for k, v in cfg["model"].items() if k != "name"} == own


def test_adain_normalizes_each_image_and_applies_its_own_parameters():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (2, 5, 5, 3)).astype(np.float32)
    params = rng.normal(size=(2, 12)).astype(np.float32)  # two AdaIN layers' worth
    x_in = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + 1e-5)
    for index in (0, 1):
        beta, gamma = params[:, 6 * index:6 * index + 3], params[:, 6 * index + 3:6 * index + 6]
        np.testing.assert_allclose(AdaIN(index=index)([x, params]).numpy(),
                                   x_in * gamma[:, None, None] + beta[:, None, None], rtol=1e-4, atol=1e-4)


def test_styles_change_the_translation_and_a_style_seed_fixes_it():
    tf.keras.utils.set_random_seed(4)  # the same weights whatever ran before in this process
    model = models.build("munit", image_size=32, **TINY)
    photos = images_at(32)[:2]
    np.testing.assert_array_equal(style_code(5, 8), style_code(5, 8))
    assert not np.allclose(style_code(5, 8), style_code(6, 8))
    model.set_style(5)
    np.testing.assert_array_equal(model._style.code.numpy(), style_code(5, 8))
    five = model.translator(photos).numpy()
    model.set_style(6)
    six = model.translator(photos).numpy()
    assert np.abs(five - six).mean() > 1e-4
    model.set_style(5)
    np.testing.assert_array_equal(model.translator(photos).numpy(), five)
    columns = model.sample_columns(photos)
    assert len(columns) == GRID_STYLES and all(tuple(c.shape) == (2, 32, 32, 3) for c in columns)
    model.set_style(0)  # the grid's first column is seed 0's style
    np.testing.assert_allclose(columns[0].numpy(), model.translator(photos).numpy(), atol=1e-6)
    assert np.abs(columns[1].numpy() - columns[2].numpy()).mean() > 1e-4


@pytest.mark.parametrize("name", ["munit", "drit"])
def test_ema_paints_in_the_style_a_style_seed_chose(name):
    model = models.build(name, image_size=32, ema=0.5, **(TINY if name == "munit" else DRIT_TINY))
    photos = images_at(32)[:2]
    for _ in range(3):
        model.after_step()  # averaged from the start (ema_start 0)
    model.set_style(7)  # `gan-tpu generate --style-seed 7`, after training
    with model.painting_weights():
        np.testing.assert_array_equal(model._style.code.numpy(), style_code(7, model.style_dim))
        painted = model.translator(photos).numpy()
    np.testing.assert_array_equal(model._style.code.numpy(), style_code(7, model.style_dim))
    np.testing.assert_allclose(painted, model.translator(photos).numpy(), atol=1e-6)  # weights unchanged: same


def test_xla_step_updates_every_network_with_finite_losses(compiled):
    model = compiled["model"]
    assert set(compiled["first"]) == set(model.loss_names)
    assert all(np.isfinite(v) for v in compiled["first"].values())
    assert all(not np.array_equal(a, b) for a, b in zip(compiled["before"], compiled["after"]))
    assert compiled["first"]["cycle"] == 0.0  # the authors' default: no style-augmented cycle
    assert not np.array_equal(model.noise_seed.state.numpy(), compiled["noise_before"])  # styles drawn
    assert compiled["iterations"] == [25, 25]  # counted before later tests step the model


def test_overfitting_four_images_lowers_image_and_latent_reconstruction(compiled):
    first, last = compiled["first"], compiled["history"][-1]
    assert last["recon"] < 0.7 * first["recon"]
    assert last["style"] < first["style"]


def test_translator_save_and_load_give_identical_outputs_with_its_style(tmp_path):
    model = models.build("munit", image_size=32, style_seed=3, **TINY)
    assert_saved_translator_gives_identical_outputs(model, images_at(32)[:2], tmp_path)


def test_two_replicas_equal_one_replica_with_the_same_global_batch():
    def build():
        model = models.build("munit", image_size=32, **TINY)
        model.noise = False  # each replica draws its own styles: compared with zero styles
        return model

    images = images_at(32, seed=5)
    assert_two_replicas_equal_one(build, (images[:2], images[2:4]))


def test_mixed_bfloat16_trains_with_float32_losses():
    assert_trains_in_mixed_bfloat16(lambda: models.build("munit", image_size=32, **TINY),
                                    lambda model: model.decoder_monet.get_layer("decoder_monet_res0a_adain"),
                                    images_at(32))


def test_cli_trains_generates_with_a_style_seed_and_grids_show_every_style(tmp_path, capsys):
    import zipfile

    from gan_tpu import cli

    sets = [f"model.{k}={v}" for k, v in TINY.items()]
    out, default_zip = train_and_generate_with_the_cli(tmp_path, "pipelines/munit.toml", sets)
    _, seed0_zip = train_and_generate_with_the_cli(tmp_path, "pipelines/munit.toml", sets, ["--style-seed", "0"])
    _, seed7_zip = train_and_generate_with_the_cli(tmp_path, "pipelines/munit.toml", sets, ["--style-seed", "7"])

    def members(path):
        with zipfile.ZipFile(path) as zf:
            return [zf.read(n) for n in sorted(zf.namelist())]

    assert members(default_zip) == members(seed0_zip)  # the pipeline's style_seed is 0
    assert members(seed7_zip) != members(seed0_zip)
    grid = tf.io.decode_png(open(os.path.join(out, "samples", "epoch_001.png"), "rb").read())
    assert grid.shape == (2 * 128, (1 + GRID_STYLES) * 128, 3)  # 2 photos x (photo + 3 styles), 128 px tiles
    assert cli.main(["generate", "--checkpoint", os.path.join(out, "generator.keras"), "--photos",
                     str(tmp_path / "data"), "--style-seed", "1", "--out", str(tmp_path / "x.zip")]) == 2
    assert "gan-tpu: error: --style-seed: only a MUNIT or DRIT++ run" in capsys.readouterr().err
