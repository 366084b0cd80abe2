"""A run's history.csv (epochs from 1, as the grids; no empty columns) and its tensorboard/
event files (losses, learning rates, planned/done steps, [eval] scores, sample grids), on the
TensorFlow backend here and on JAX in a subprocess through the CLI."""
import csv
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import config, train
from gan_tpu.sample_data import write_sample_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["data.image_size=32", 'model.generator="resnet"', "model.ngf=4", "model.ndf=4", "model.n_blocks=1",
        "train.batch_size=2", "train.samples=2", "train.epochs=2", "train.steps_per_epoch=2"]


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    write_sample_data(root, monet=4, photo=6, seed=2)
    return root


def read_events(run_dir: str) -> dict[str, list[tuple[int, object]]]:
    """tag -> [(step, value)]: scalars as floats, images as the PNG's decoded shape."""
    found: dict[str, list] = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if value.metadata.plugin_data.plugin_name == "images":
                    array = tuple(tf.io.decode_png(array[2]).shape)  # [width, height, png...]
                else:
                    array = float(array)
                found.setdefault(value.tag, []).append((event.step, array))
    return found


def test_tensorflow_run_writes_history_and_tensorboard(sample_root, tmp_path):
    out = str(tmp_path / "run")
    cfg = config.load("demo", [f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', *TINY,
                               "eval.every=1", "eval.photos=2", f'output.dir="{out}"'])
    train.train(cfg, verbose=0)
    with open(os.path.join(out, "history.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"]  # as samples/epoch_001.png, epoch_002.png
    assert not any(k.startswith("val_") for k in rows[0]) and all(v != "NA" and v != "" for r in rows for v in r.values())
    assert [(r["planned_steps"], r["steps_done"]) for r in rows] == [("4", "2"), ("4", "4")]

    events = read_events(out)
    for tag in ("loss/g_total", "loss/d_monet", "loss/cycle", "plan/steps_done", "learning_rate/generator",
                "eval/mifid", "eval/fid"):
        assert [step for step, _ in events[tag]] == [1, 2], tag
    assert [v for _, v in events["plan/steps_done"]] == [2.0, 4.0]
    np.testing.assert_allclose([v for _, v in events["loss/g_total"]], [float(r["g_total"]) for r in rows], rtol=1e-6)
    assert [v for _, v in events["learning_rate/generator"]] == pytest.approx([8e-4, 8e-4])
    assert events["samples"] == [(1, (256, 256, 3)), (2, (256, 256, 3))]  # 2 photos beside their translations, x4


@pytest.mark.slow  # a JAX CLI run in a subprocess, 33 s
def test_jax_run_writes_the_same_tensorboard_tags(sample_root, tmp_path):
    """Keras' JAX backend, through the CLI as a user runs it (about 2 minutes on 2 loaded
    cores, most of it XLA compiling the step)."""
    pytest.importorskip("jax")
    out = str(tmp_path / "jax")
    sets = [f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', *TINY, "train.epochs=1",
            'runtime.backend="jax"']
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.run([sys.executable, "-m", "gan_tpu.cli", "train", "demo", "--out", out,
                           *[a for s in sets for a in ("--set", s)]],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training cyclegan: 1 epoch x 2 steps, global batch 2" in proc.stderr  # not "1 epochs"
    events = read_events(out)
    assert {"loss/g_total", "loss/d_photo", "learning_rate/generator", "learning_rate/discriminator",
            "plan/planned_steps", "plan/steps_done", "samples"} <= set(events)
    assert events["samples"] == [(1, (256, 256, 3))]
    assert [v for _, v in events["learning_rate/generator"]] == pytest.approx([8e-4])
    assert np.isfinite([v for _, v in events["loss/g_total"]]).all()
