"""Training runs: the files a run leaves, exact resume after an interruption, CLI errors."""
import csv
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import cli, config, train
from gan_tpu.errors import UserError
from gan_tpu.sample_data import write_sample_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    write_sample_data(root, monet=4, photo=6, seed=1)
    return root


def _cfg(sample_root, out, **train_keys):
    overrides = [f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', "data.image_size=32",
                 "model.generator=\"resnet\"", "model.ngf=4", "model.ndf=4", "model.n_blocks=1",
                 "train.batch_size=2", "train.samples=2", f'output.dir="{out}"']
    overrides += [f"train.{k}={v}" for k, v in train_keys.items()]
    return config.load("demo", overrides)


def _weights(run):
    return [v.numpy() for net in run.model.networks.values() for v in net.trainable_variables]


def test_a_run_leaves_config_checkpoints_samples_history_and_generator(sample_root, tmp_path):
    out = str(tmp_path / "run")
    run = train.train(_cfg(sample_root, out, epochs=2, steps_per_epoch=2), verbose=0)
    assert sorted(os.listdir(out)) == ["checkpoints", "config.toml", "generator.keras", "history.csv",
                                       "plots.png", "samples", "tensorboard"]
    assert sorted(os.listdir(os.path.join(out, "samples"))) == ["epoch_001.png", "epoch_002.png"]
    grid = tf.io.decode_png(tf.io.read_file(os.path.join(out, "samples", "epoch_002.png")))
    assert grid.shape == (2 * 128, 2 * 128, 3)  # two photos beside their translations, x4
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("ckpt-4")
    assert config.load(os.path.join(out, "config.toml")) == run.cfg
    lines = open(os.path.join(out, "history.csv")).read().splitlines()
    assert lines[0].startswith("epoch") and len(lines) == 3
    rows = list(csv.DictReader(lines))  # planned vs done, as the budget planner logs them
    assert [(r["planned_steps"], r["steps_done"]) for r in rows] == [("4", "2"), ("4", "4")]
    plot = tf.io.decode_png(tf.io.read_file(os.path.join(out, "plots.png")))
    assert plot.shape[0] > 300 and plot.shape[1] > 600  # the loss panels, readable
    generator = keras.models.load_model(os.path.join(out, "generator.keras"), compile=False)
    x = tf.random.uniform((1, 32, 32, 3), -1, 1)
    np.testing.assert_allclose(generator(x).numpy(), run.model.translator(x).numpy(), atol=1e-6)

    with pytest.raises(UserError, match="holds checkpoints of an earlier run; pass --resume"):
        train.train(_cfg(sample_root, out, epochs=2, steps_per_epoch=2), verbose=0)


class _Interrupt(keras.callbacks.Callback):
    """Ctrl-C after `steps` steps, as a user or a preempted kernel would."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.players[0].optimizer.iterations) == self.steps:
            raise KeyboardInterrupt


def test_resume_after_interruption_gives_the_straight_runs_weights(sample_root, tmp_path):
    straight = train.train(_cfg(sample_root, str(tmp_path / "a"), epochs=2, steps_per_epoch=3), verbose=0)

    out = str(tmp_path / "b")
    cfg = _cfg(sample_root, out, epochs=2, steps_per_epoch=3, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, callbacks=[_Interrupt(2)], verbose=0)  # mid-epoch 1, after ckpt-2
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("ckpt-2")
    resumed = train.train(cfg, resume=True, verbose=0)

    assert int(resumed.step.numpy()) == 6 and int(resumed.epoch.numpy()) == 2
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_cli_errors_are_one_line_without_traceback(sample_root, tmp_path, capsys):
    assert cli.main(["train", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.strip() == f"gan-tpu: error: {tmp_path / 'missing.toml'}: no such pipeline file"

    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run(
        [sys.executable, "-m", "gan_tpu.cli", "train", "demo", "--set", f'data.monet="{tmp_path}/nope"'],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        f"gan-tpu: error: data.monet: {tmp_path}/nope: no such file or folder"


def test_models_and_sample_data_commands(tmp_path, capsys):
    assert cli.main(["models"]) == 0
    assert "cyclegan: generator='unet'" in capsys.readouterr().out
    assert cli.main(["sample-data", "--out", str(tmp_path), "--monet", "2", "--photo", "3"]) == 0
    assert sorted(os.listdir(tmp_path / "photo_tfrec")) == ["photo00-3.tfrec"]
    assert cli.main(["sample-data", "--out", str(tmp_path), "--monet", "0"]) == 2


@pytest.mark.slow  # 69 s; `make test-compat`'s floor row also runs `gan-tpu demo` from the wheel
def test_demo_end_to_end(tmp_path, capsys):
    out = str(tmp_path / "demo")
    code = cli.main(["demo", "--out", out, "--set", "train.epochs=1", "--set", "train.steps_per_epoch=2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "images.zip (60 JPEGs, 256x256, validated)" in printed
    assert "not comparable with Kaggle's scores" in printed and "MiFID:" in printed
    with zipfile.ZipFile(os.path.join(out, "images.zip")) as zf:
        names = zf.namelist()
        assert sorted(names, key=lambda n: int(n[:-4])) == [f"{i}.jpg" for i in range(1, 61)]
        image = tf.io.decode_jpeg(zf.read("1.jpg"))
    assert image.shape == (256, 256, 3)
    assert os.path.isfile(os.path.join(out, "run", "samples", "epoch_001.png"))
    assert os.path.isfile(os.path.join(out, "run", "generator.keras"))
