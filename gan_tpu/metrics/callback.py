"""Scoring during training: MiFID of a fixed held-out photo sample every K epochs.

``MiFIDCallback`` translates the same photos each time (``model.translator`` by
default, [−1, 1] in and out, under the model's ``painting_weights`` when it has them: the
EMA weights of a model that averages them), scores them against a ``Reference`` (the Monet set's
features), adds ``fid``/``distance``/``mifid`` to the epoch logs, appends a row to
``scores.csv``, writes TensorBoard scalars, and keeps the best weights by MiFID
(``best.weights.h5`` + ``best.json``) and/or calls ``on_best(epoch, scores)``.
The photos are scored at the translator's output size; the extractor resizes them.
Its time is measured (``eval_s``, the slowest evaluation; ``seconds``, all of them) so a
budgeted run can keep time for the evaluations still due and leave them out of step times.
A run resumed in the same folder keeps the best found so far (``best.json``).
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf

from gan_tpu import distributed
from gan_tpu.metrics import shares
from gan_tpu.metrics.scoring import DEFAULT_EPS, Reference, StreamingScorer

FIELDS = ("epoch", "fid", "distance", "mifid")
log = logging.getLogger("gan_tpu")


def _scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar without needing the tensorboard package (what its scalar op writes)."""
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=metadata)


class MiFIDCallback(keras.callbacks.Callback):
    """Every ``every`` epochs: translate ``photos``, score MiFID, log it, keep the best."""

    def __init__(self, photos, reference: Reference, extractor, out_dir: str, *, every: int = 1,
                 translator=None, batch_size: int = 32, eps: float = DEFAULT_EPS,
                 save_best: bool = True, on_best=None, dtype=tf.float64):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.photos = np.asarray(photos)
        self.reference = reference
        self.extractor = extractor
        self.out_dir = out_dir
        self.every = int(every)
        self._translator = translator
        self.batch_size = int(batch_size)
        self.eps = eps
        self.save_best = save_best
        self.on_best = on_best
        self.dtype = dtype
        self.best = float("inf")
        self.best_epoch = None
        self.history: list[dict] = []
        os.makedirs(out_dir, exist_ok=True)
        self.csv_path = os.path.join(out_dir, "scores.csv")
        self.best_path = os.path.join(out_dir, "best.weights.h5")
        self._writer = tf.summary.create_file_writer(os.path.join(out_dir, "tensorboard"))
        self._painting = None  # past one process: (translator, its jitted painter)
        self.eval_s = 0.0   # the slowest evaluation so far (the first one compiles)
        self.seconds = 0.0  # all evaluations so far
        best_json = os.path.join(out_dir, "best.json")
        if os.path.isfile(best_json):  # a resumed run: beat the best so far, not infinity
            with open(best_json) as fh:
                row = json.load(fh)
            self.best_epoch = int(row["epoch"])
            self.best = row["mifid"] if row.get("mifid") is not None else row["fid"]

    def timed_score(self) -> dict:
        """`score()`, its time added to `seconds` and `eval_s`."""
        start = time.perf_counter()
        scores = self.score()
        took = time.perf_counter() - start
        self.seconds += took
        self.eval_s = max(self.eval_s, took)
        return scores

    def warm_up(self, epoch: int = 0) -> dict:
        """Score once before training (compiles the translator and extractor, measures
        `eval_s`; give it its model first, `set_model`); a fresh run's `scores.csv` gets it as
        epoch `epoch`, never as the best."""
        scores = self.timed_score()
        if not os.path.exists(self.csv_path):
            self._write_row({"epoch": epoch, **scores})
        log.info("eval: MiFID %s before training (%.1f s per evaluation)", _fmt(scores["mifid"]), self.eval_s)
        return scores

    def _write_row(self, row: dict) -> None:
        new = not os.path.exists(self.csv_path)
        with open(self.csv_path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)

    def score(self) -> dict:
        """Translate the photos and score them now: {"fid", "distance", "mifid"}. Past one
        process each paints and embeds its share; process 0 scores them all (gan_tpu.metrics.shares)."""
        translator = self._translator or self.model.translator
        shared = distributed.count() > 1
        # a model's own translator paints with its painting weights (EMA's, if averaged)
        with self.model.painting_weights() if self._translator is None else contextlib.nullcontext():
            if shared:
                places, fakes = shares.paint_share(self._painter(translator), self.photos, self.batch_size)
            else:
                fakes = np.concatenate([
                    np.asarray(translator(tf.constant(self.photos[i:i + self.batch_size]), training=False))
                    for i in range(0, len(self.photos), self.batch_size)])
        features = (feats for feats, _ in self.extractor.extract(fakes, self.batch_size))
        if shared:
            rows = shares.gathered_rows(places, np.concatenate(list(features)), len(self.photos))
            if not distributed.is_writer():
                return shares.agreed({})
            features = (rows[i:i + self.batch_size] for i in range(0, len(rows), self.batch_size))
        scorer = StreamingScorer(self.reference, self.dtype, keep_features=False)
        for feats in features:
            scorer.update(feats)
        out = scorer.result(eps=self.eps, kid_subsets=0)
        scores = {k: out[k] for k in ("fid", "distance", "mifid")}
        return shares.agreed(scores) if shared else scores

    def _painter(self, translator):
        if self._painting is None or self._painting[0] is not translator:  # compiled once per translator
            self._painting = (translator, shares.painter(translator))
        return self._painting[1]

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        scores = self.timed_score()
        row = {"epoch": epoch + 1, **scores}
        self.history.append(row)
        if logs is not None:
            logs.update({k: v for k, v in scores.items() if v is not None})
        self._write_row(row)
        with self._writer.as_default():
            for key, value in scores.items():
                if value is not None:
                    _scalar(f"score/{key}", value, epoch + 1)
        self._writer.flush()
        value = scores["mifid"] if scores["mifid"] is not None else scores["fid"]
        if distributed.agree(bool(value < self.best)):  # past one process: process 0's decision
            self.best, self.best_epoch = value, epoch + 1
            if self.save_best:
                tmp = self.best_path[: -len(".weights.h5")] + ".tmp.weights.h5"
                self.model.save_weights(tmp)
                os.replace(tmp, self.best_path)
            if self.on_best is not None:
                self.on_best(epoch + 1, scores)
            best_json = os.path.join(self.out_dir, "best.json")  # last: it names what is saved
            with open(best_json + ".tmp", "w") as fh:
                json.dump(row, fh)
            os.replace(best_json + ".tmp", best_json)
        log.info("eval: epoch %d MiFID %s (best %s, epoch %s)", epoch + 1, _fmt(scores["mifid"]),
                 _fmt(self.best), self.best_epoch)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"
