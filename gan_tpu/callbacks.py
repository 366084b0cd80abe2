"""Training callbacks: sample grids people can look at, checkpoints, the budget and NaN guards."""
from __future__ import annotations

import contextlib
import collections
import logging
import os
import time
from typing import Iterable, Optional

import keras
import numpy as np
import tensorflow as tf

from gan_tpu.budget import Clock, Reserve, format_duration, run_elapsed
from gan_tpu.data import to_uint8
from gan_tpu.models.base import NoiseModel

log = logging.getLogger("gan_tpu")


def atomic_write(path: str, payload: bytes) -> None:
    """Write bytes under a temporary name, then rename: readers never see half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(payload)
    os.replace(tmp, path)


def image_grid(rows: list[np.ndarray]) -> np.ndarray:
    """uint8 image batches [N, H, W, 3] as columns side by side, one row per image index."""
    return np.concatenate([np.concatenate(list(col), axis=0) for col in rows], axis=1)


class SampleGrid(keras.callbacks.Callback):
    """After each epoch, `samples/epoch_NNN.png`: the same photos (left) and their translations
    (`model.sample_columns`: one column, or one per style for MUNIT).

    A noise model's grid has the same shape, filled with 2 x N samples from the same fixed
    latents every epoch (those of its submission's first batch). Tiles are enlarged
    (nearest neighbour) to at least 128 px so small runs can be seen.
    """

    def __init__(self, photos: np.ndarray, out_dir: str, translator=None):
        super().__init__()
        self.photos = tf.constant(photos, tf.float32)  # [-1, 1]
        self.out_dir = out_dir
        self._translator = translator
        os.makedirs(out_dir, exist_ok=True)

    def write(self, name: str) -> str:
        # a model's own networks paint with its painting weights (EMA's, if averaged)
        with self.model.painting_weights() if self._translator is None else contextlib.nullcontext():
            grid = self._grid()
        scale = max(1, 128 // self.photos.shape[1])  # small training sizes: tiles >= 128 px
        grid = np.kron(grid, np.ones((scale, scale, 1), np.uint8))
        path = os.path.join(self.out_dir, name)
        atomic_write(path, tf.io.encode_png(grid).numpy())
        return path

    def _grid(self) -> np.ndarray:
        if self._translator is None and isinstance(self.model, NoiseModel):
            n = int(self.photos.shape[0])
            fakes = to_uint8(self.model.sample(0, 2 * n)).numpy()
            grid = image_grid([fakes[:n], fakes[n:]])
        else:
            if self._translator is not None:
                columns = [self._translator(self.photos, training=False)]
            else:
                columns = self.model.sample_columns(self.photos)
            grid = image_grid([to_uint8(c).numpy() for c in [self.photos, *columns]])
        return grid

    def on_epoch_end(self, epoch, logs=None):
        self.write(f"epoch_{epoch + 1:03d}.png")


class Checkpointer(keras.callbacks.Callback):
    """Saves through a `gan_tpu.checkpoints.CheckpointManager` every N steps, at each epoch end, at the end.

    `epoch_var` (part of the checkpoint) counts completed epochs, so a resumed run knows
    where it is; `step_var` (the model's `step`) counts train steps.
    """

    def __init__(self, manager, epoch_var: tf.Variable, step_var,
                 every_steps: int = 0, healthy=lambda: True, before_save=None):
        super().__init__()
        self.healthy = healthy  # never checkpoint a diverged model over a good one
        self.before_save = before_save  # e.g. record the run's plan in its checkpointed variable
        self.manager = manager
        self.epoch_var = epoch_var
        self.step_var = step_var
        self.every_steps = every_steps
        self._last_saved = None

    def _step(self) -> int:
        if getattr(self, "_model", None) is not None:
            self.model  # noqa: B018  on JAX, this pulls fit's training state into the variables
        return int(self.step_var.numpy())

    def save(self) -> str | None:
        # Keyed on the epoch too: an every-N save on an epoch's last step holds the epoch
        # before; the epoch end writes that step again, or a resume would redo the epoch.
        state = (self._step(), int(self.epoch_var.numpy()))
        if state == self._last_saved or not self.healthy():
            return None
        self._last_saved = state
        step = state[0]
        if self.before_save is not None:
            self.before_save()
        return self.manager.save(checkpoint_number=step)

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and self._step() % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        if self.healthy():
            self.epoch_var.assign(epoch + 1)
        self.save()

    def on_train_end(self, logs=None):
        self.save()


class BudgetGuard(keras.callbacks.Callback):
    """Stop ``fit`` so that generation still fits inside the run's budget.

    At the end of every training batch: stop when
    ``elapsed + reserve + one more step > budget``, where one more step is the
    slowest of the last ``step_window`` step intervals (not the first step of each
    ``fit``, which is mostly tracing and compiling: counting it stopped short runs after
    one step). On stop it sets
    ``model.stop_training``, records ``stopped``, ``stop_reason`` and ``stop_step``,
    and logs the reason (the trainer's Checkpointer saves at the end of training).

    Args:
      budget_s: the whole run's budget in seconds (see :func:`default_budget_hours`).
      reserve: seconds to keep for generation etc., or a callable returning them
        (called every batch, so it may grow). If it has a ``measure()`` method and is
        not ``measured`` yet, it is measured at ``on_train_begin``.
      start: the run's start on ``clock``'s scale. Default: the process start when
        ``clock`` is ``time.monotonic``, else ``clock()`` at construction.
      clock: seconds, monotonic.
      initial_step: steps already done before this ``fit`` (a resumed run).
    """

    def __init__(
        self,
        budget_s: float,
        *,
        reserve: Reserve = 0.0,
        start: Optional[float] = None,
        clock: Clock = time.monotonic,
        step_window: int = 3,
        initial_step: int = 0,
    ):
        super().__init__()
        if budget_s <= 0:
            raise ValueError(f"budget must be positive, got {budget_s} s")
        self.budget_s = float(budget_s)
        self.reserve = reserve
        self.clock = clock
        if start is None:
            start = clock() - run_elapsed() if clock is time.monotonic else clock()
        self.start = start
        self.step_intervals: collections.deque = collections.deque(maxlen=max(1, step_window))
        self.step = initial_step
        self._epoch_base = initial_step
        self._last: Optional[float] = None
        self._first_of_fit = False
        self.stopped = False
        self.stop_reason: Optional[str] = None
        self.stop_step: Optional[int] = None
        self._began = False

    # -- numbers ---------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self.start

    def reserve_s(self) -> float:
        return float(self.reserve() if callable(self.reserve) else self.reserve)

    def next_step_s(self) -> float:
        return max(self.step_intervals) if self.step_intervals else 0.0

    def remaining(self) -> float:
        """Seconds of training left before the guard stops (may be negative)."""
        return self.budget_s - self.elapsed() - self.reserve_s() - self.next_step_s()

    # -- Keras hooks -----------------------------------------------------------------
    def on_train_begin(self, logs=None):
        measure = getattr(self.reserve, "measure", None)
        if callable(measure) and not getattr(self.reserve, "measured", False):
            measure()
        self._last = self.clock()
        self._first_of_fit = True  # its interval is mostly tracing and compiling: not a step time
        elapsed, reserve = self.elapsed(), self.reserve_s()
        if not self._began:  # a run may call fit more than once
            self._began = True
            log.info("budget: %s of %s used at training start, reserve %s",
                     format_duration(elapsed), format_duration(self.budget_s), format_duration(reserve))
        if elapsed + reserve > self.budget_s:  # Keras still runs one step before it checks
            self._stop(f"budget {format_duration(self.budget_s)} already spent at training start: "
                       f"elapsed {format_duration(elapsed)} + reserve {format_duration(reserve)}")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_base = self.step

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if self._last is not None and not self._first_of_fit:
            self.step_intervals.append(now - self._last)
        self._first_of_fit = False
        self._last = now
        self.step = self._epoch_base + int(batch) + 1
        if self.stopped:
            self.model.stop_training = True
            return
        elapsed, reserve, one_more = now - self.start, self.reserve_s(), self.next_step_s()
        if elapsed + reserve + one_more > self.budget_s:
            self._stop(
                f"budget: stopping after step {self.step}: elapsed {format_duration(elapsed)} + reserve "
                f"{format_duration(reserve)} + next step {one_more:.1f} s would pass the budget {format_duration(self.budget_s)}"
            )

    def _stop(self, reason: str) -> None:
        self.stopped = True
        self.stop_reason = reason
        self.stop_step = self.step
        if self.model is not None:
            self.model.stop_training = True
        log.warning(reason)


class NanGuard(keras.callbacks.Callback):
    """Stop ``fit`` when a logged loss is NaN or infinite; record which one and when.

    Checks every numeric entry of the batch logs (or only ``keys``). On the first
    non-finite value it sets ``model.stop_training``, records ``bad_key``,
    ``bad_step`` (1-based: the step that produced it, counting ``initial_step``) and
    ``bad_value`` and logs an error; the trainer then restores the last good checkpoint.
    """

    def __init__(
        self,
        keys: Optional[Iterable[str]] = None,
        *,
        initial_step: int = 0,
    ):
        super().__init__()
        self.keys = set(keys) if keys is not None else None
        self.step = initial_step
        self._epoch_base = initial_step
        self.bad_key: Optional[str] = None
        self.bad_step: Optional[int] = None
        self.bad_value: Optional[float] = None

    @property
    def triggered(self) -> bool:
        return self.bad_key is not None

    def message(self) -> Optional[str]:
        if not self.triggered:
            return None
        return f"loss {self.bad_key!r} is {self.bad_value} at step {self.bad_step}: training diverged"

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_base = self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step = self._epoch_base + int(batch) + 1
        if self.triggered:
            self.model.stop_training = True
            return
        for key, value in (logs or {}).items():
            if self.keys is not None and key not in self.keys:
                continue
            bad = _first_non_finite(value)
            if bad is None:
                continue
            self.bad_key, self.bad_step, self.bad_value = key, self.step, bad
            self.model.stop_training = True
            log.error("nan guard: %s; stopping", self.message())
            return


def _first_non_finite(value) -> Optional[float]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.size == 0 or np.all(np.isfinite(arr)):
        return None
    return float(arr.reshape(-1)[~np.isfinite(arr.reshape(-1))][0])


class PlotWriter(keras.callbacks.Callback):
    """Redraws the run's `plots.png` (gan_tpu.plots) at every epoch end: list it after the
    CSVLogger, which writes the epoch's row first. Without matplotlib: one info line, no plot."""

    def __init__(self, run_dir: str):
        super().__init__()
        self.run_dir = run_dir
        self.available = True

    def on_epoch_end(self, epoch, logs=None):
        if not self.available:
            return
        from gan_tpu import plots

        try:
            plots.write(self.run_dir)
        except ImportError:
            self.available = False
            log.info("plots: matplotlib is not installed, so no plots.png (pip install 'gan_tpu[plots]')")
