"""A run's per-epoch records: `history.csv` and `tensorboard/`.

`history.csv` numbers epochs as the sample grids are (the first epoch is 1, its grid
`samples/epoch_001.png`) and holds only the columns training logs (Keras' CSVLogger adds an
all-NA `val_*` twin of every column when there is no validation data). `tensorboard/` gets,
per epoch, the losses, each player's learning rate, the planned and done steps, the `[eval]`
scores of that epoch and its sample grid. Both work on either Keras backend: the event files
are written with `tf.summary.write`, eagerly, from values the callbacks already have, in the
formats TensorBoard's scalar and image plugins read (the tensorboard package need not be
installed to write them).
"""
from __future__ import annotations

import csv
import logging
import math
import os

import keras
import numpy as np
import tensorflow as tf

from gan_tpu.metrics.callback import _scalar as scalar  # no tensorboard package needed

log = logging.getLogger("gan_tpu")
PLAN_KEYS = ("planned_steps", "steps_done")


def _numbers(logs: dict | None) -> dict[str, float]:
    out = {}
    for key, value in (logs or {}).items():
        if key.startswith("val_"):
            continue
        try:
            out[key] = float(np.asarray(value))
        except (TypeError, ValueError):
            continue
    return out


class HistoryCSV(keras.callbacks.Callback):
    """One row per epoch (1-based) of what training logged; appends to an existing file
    (a resumed run) under its header."""

    def __init__(self, path: str, append: bool = False):
        super().__init__()
        self.path = path
        self.append = append

    def on_epoch_end(self, epoch, logs=None):
        values = _numbers(logs)
        header = None
        if self.append and os.path.isfile(self.path) and os.path.getsize(self.path):
            with open(self.path, newline="") as fh:
                header = next(csv.reader(fh), None)
        fresh = header is None
        header = header or ["epoch", *sorted(values)]
        row = {"epoch": epoch + 1, **{k: _cell(v) for k, v in values.items()}}
        with open(self.path, "a" if not fresh else "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore", restval="")
            if fresh:
                writer.writeheader()
            writer.writerow(row)
        self.append = True  # later epochs (and later fits of this run) add rows


def _cell(value: float):
    return int(value) if value.is_integer() and abs(value) < 2 ** 53 else value


class TensorBoardWriter(keras.callbacks.Callback):
    """`RUN/tensorboard/`: per epoch `loss/*`, `learning_rate/<player>`, `plan/*`, `eval/*`
    (from `eval/scores.csv`) and the `samples` grid (from `samples/epoch_NNN.png`). List it
    after the callbacks that write those files."""

    def __init__(self, run_dir: str, model=None):
        super().__init__()
        self.run_dir = run_dir
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "tensorboard"))
        if model is not None:
            self.set_model(model)

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + 1
        with self.writer.as_default():
            for key, value in _numbers(logs).items():
                scalar(f"plan/{key}" if key in PLAN_KEYS else f"loss/{key}", value, step)
            for name, value in self.learning_rates().items():
                scalar(f"learning_rate/{name}", value, step)
            for key, value in self.eval_scores(step).items():
                scalar(f"eval/{key}", value, step)
            grid = os.path.join(self.run_dir, "samples", f"epoch_{step:03d}.png")
            if os.path.isfile(grid):
                image("samples", tf.io.read_file(grid), step)
        self.writer.flush()

    def learning_rates(self) -> dict[str, float]:
        rates = {}
        for player in self.model.players:
            try:
                rates[player.name] = float(keras.ops.convert_to_numpy(player.optimizer.learning_rate))
            except (AttributeError, TypeError, ValueError):
                continue
        return rates

    def eval_scores(self, epoch: int) -> dict[str, float]:
        path = os.path.join(self.run_dir, "eval", "scores.csv")
        if not os.path.isfile(path):
            return {}
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if _float(r.get("epoch")) == epoch]
        if not rows:
            return {}
        scores = {k: _float(v) for k, v in rows[-1].items() if k != "epoch"}
        return {k: v for k, v in scores.items() if v is not None and math.isfinite(v)}

    def on_train_end(self, logs=None):
        self.writer.flush()


def image(tag: str, png: tf.Tensor, step: int) -> None:
    """A TensorBoard image from PNG bytes: what its image op writes ([width, height, PNG])."""
    height, width = tf.unstack(tf.shape(tf.io.decode_png(png))[:2])
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="images"),
        summary_description="photos (left) beside their translations")
    tf.summary.write(tag, tf.stack([tf.as_string(width), tf.as_string(height), png]), step=step, metadata=metadata)


def _float(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
