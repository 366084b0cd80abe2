"""Stop training in time to leave a submission: the budget guard, its reserve, the NaN guard.

Kaggle's budget counts the whole run (3 h on TPU, 5 h on GPU/CPU), generation included.
:class:`BudgetGuard` stops ``model.fit`` at the end of the step after which one more
step would eat into the reserve kept for generation + zip + validation (+ scoring):

    stop when  elapsed + reserve + (time of one more step)  >  budget

The reserve is a number or a callable; :class:`GenerationReserve` times real
generation batches, scales them to the image count and adds a safety margin, and
only ever grows when re-measured. :class:`NanGuard` stops training when a logged loss
goes non-finite and says which loss at which step.

Both take an injectable ``clock`` so tests drive them with a fake one.
"""
from __future__ import annotations

import collections
import logging
import math
import os
import time
from typing import Any, Callable, Iterable, Optional, Union

import keras

log = logging.getLogger("gan_tpu")

BUDGET_HOURS = {"tpu": 3.0, "gpu": 5.0, "cpu": 5.0}
_IMPORTED_AT = time.monotonic()

Clock = Callable[[], float]
Reserve = Union[float, Callable[[], float]]


def default_budget_hours(strategy_or_platform: Any = None) -> float:
    """Kaggle's budget for the platform: 3 h on TPU, 5 h on GPU or CPU.

    Accepts "tpu"/"gpu"/"cpu" (any case; also a JAX platform name), a
    ``tf.distribute.Strategy``, or None (the current strategy).
    """
    if isinstance(strategy_or_platform, str):
        name = strategy_or_platform.strip().lower()
        if name not in BUDGET_HOURS:
            raise ValueError(f"unknown platform {strategy_or_platform!r}: expected tpu, gpu or cpu")
        return BUDGET_HOURS[name]
    import tensorflow as tf

    from gan_tpu import runtime

    strategy = strategy_or_platform if strategy_or_platform is not None else tf.distribute.get_strategy()
    return BUDGET_HOURS[runtime.platform(strategy)]


_RUN_START: Optional[float] = None  # time.monotonic() when the current command began


def mark_run_start(at: Optional[float] = None) -> None:
    """Count the budget from now (the CLI calls this as a command starts)."""
    global _RUN_START
    _RUN_START = time.monotonic() if at is None else at


def run_elapsed() -> float:
    """Seconds since the command began, or since the process started when none was marked."""
    return time.monotonic() - _RUN_START if _RUN_START is not None else process_uptime()


def process_uptime() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere: since import)."""
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED_AT


def _fmt(seconds: float) -> str:
    seconds = max(0.0, seconds)
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


class GenerationReserve:
    """Time kept back for generation + zip + validation (+ scoring), measured.

    ``measure()`` calls ``generate_batch`` (one batch of generation, including JPEG
    encoding, returning when done) ``1 + repeats`` times: the first call's extra time
    is the compile overhead, the slowest of the others the time per batch. Then

        reserve = (compile + per_batch * ceil(count / batch_size)) * (1 + margin)
                  + validate_s_per_image * count + fixed_s

    Measuring again never lowers the reserve (``grow_only``); :meth:`grow` raises it
    by hand (e.g. from a real generation's images/s). Before any measurement the
    reserve is ``initial_s``.
    """

    def __init__(
        self,
        generate_batch: Callable[[], Any],
        *,
        batch_size: int,
        count: int,
        margin: float = 0.25,
        fixed_s: float = 60.0,
        validate_s_per_image: float = 0.002,
        repeats: int = 2,
        initial_s: Optional[float] = None,
        clock: Clock = time.perf_counter,
        grow_only: bool = True,
    ):
        if batch_size < 1 or count < 1:
            raise ValueError("batch_size and count must be positive")
        self.generate_batch = generate_batch
        self.batch_size = batch_size
        self.count = count
        self.margin = margin
        self.fixed_s = fixed_s
        self.validate_s_per_image = validate_s_per_image
        self.repeats = max(1, repeats)
        self.clock = clock
        self.grow_only = grow_only
        self.seconds: Optional[float] = initial_s
        self.per_batch_s: Optional[float] = None
        self.compile_s: float = 0.0
        self.measurements = 0

    @property
    def measured(self) -> bool:
        return self.measurements > 0

    def estimate(self, per_batch_s: float, compile_s: float = 0.0) -> float:
        batches = math.ceil(self.count / self.batch_size)
        return ((compile_s + per_batch_s * batches) * (1.0 + self.margin)
                + self.validate_s_per_image * self.count + self.fixed_s)

    def measure(self) -> float:
        """Time generation batches and update (grow) the reserve; returns it in seconds."""
        times = []
        for _ in range(1 + self.repeats):
            t0 = self.clock()
            self.generate_batch()
            times.append(self.clock() - t0)
        per_batch = max(times[1:])
        compile_s = max(0.0, times[0] - per_batch) if self.measurements == 0 else self.compile_s
        self.per_batch_s = per_batch if not self.grow_only else max(per_batch, self.per_batch_s or 0.0)
        self.compile_s = compile_s
        self.measurements += 1
        new = self.estimate(self.per_batch_s, self.compile_s)
        self._set(new)
        log.info("budget: generation reserve %s (%.3f s per batch of %d, %d images, margin %.0f%%)",
                 _fmt(self.seconds), per_batch, self.batch_size, self.count, 100 * self.margin)
        return self.seconds

    def grow(self, seconds: float) -> float:
        """Raise the reserve to at least ``seconds``."""
        self._set(seconds)
        return self.seconds

    def _set(self, seconds: float) -> None:
        if self.seconds is None or not self.grow_only or seconds > self.seconds:
            self.seconds = float(seconds)

    def __call__(self) -> float:
        if self.seconds is not None:
            return self.seconds
        return self.validate_s_per_image * self.count + self.fixed_s


class BudgetGuard(keras.callbacks.Callback):
    """Stop ``fit`` so that generation still fits inside the run's budget.

    At the end of every training batch: stop when
    ``elapsed + reserve + one more step > budget``, where one more step is the
    slowest of the last ``step_window`` step intervals (the first one includes
    compilation, so early on the guard is cautious). On stop it sets
    ``model.stop_training``, records ``stopped``, ``stop_reason`` and ``stop_step``,
    logs the reason, and calls ``on_stop(reason, step)`` (the trainer checkpoints there).

    Args:
      budget_s: the whole run's budget in seconds (see :func:`default_budget_hours`).
      reserve: seconds to keep for generation etc., or a callable returning them
        (called every batch, so it may grow). If it has a ``measure()`` method and is
        not ``measured`` yet, it is measured at ``on_train_begin``.
      start: the run's start on ``clock``'s scale. Default: the process start when
        ``clock`` is ``time.monotonic``, else ``clock()`` at construction.
      clock: seconds, monotonic.
      remeasure_every: re-measure a measurable reserve every this many steps (None: never).
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
        remeasure_every: Optional[int] = None,
        on_stop: Optional[Callable[[str, int], None]] = None,
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
        self.remeasure_every = remeasure_every
        self.on_stop = on_stop
        self.step = initial_step
        self._epoch_base = initial_step
        self._last: Optional[float] = None
        self.stopped = False
        self.stop_reason: Optional[str] = None
        self.stop_step: Optional[int] = None

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
        elapsed, reserve = self.elapsed(), self.reserve_s()
        log.info("budget: %s of %s used at training start, reserve %s",
                 _fmt(elapsed), _fmt(self.budget_s), _fmt(reserve))
        if elapsed + reserve > self.budget_s:  # Keras still runs one step before it checks
            self._stop(f"budget {_fmt(self.budget_s)} already spent at training start: "
                       f"elapsed {_fmt(elapsed)} + reserve {_fmt(reserve)}")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_base = self.step

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if self._last is not None:
            self.step_intervals.append(now - self._last)
        self._last = now
        self.step = self._epoch_base + int(batch) + 1
        if (self.remeasure_every and self.step % self.remeasure_every == 0
                and callable(getattr(self.reserve, "measure", None))):
            self.reserve.measure()
            now = self._last = self.clock()  # measuring is not a training step
        if self.stopped:
            self.model.stop_training = True
            return
        elapsed, reserve, one_more = now - self.start, self.reserve_s(), self.next_step_s()
        if elapsed + reserve + one_more > self.budget_s:
            self._stop(
                f"budget: stopping after step {self.step}: elapsed {_fmt(elapsed)} + reserve "
                f"{_fmt(reserve)} + next step {one_more:.1f} s would pass the budget {_fmt(self.budget_s)}"
            )

    def _stop(self, reason: str) -> None:
        self.stopped = True
        self.stop_reason = reason
        self.stop_step = self.step
        if self.model is not None:
            self.model.stop_training = True
        log.warning(reason)
        if self.on_stop is not None:
            self.on_stop(reason, self.step)


class NanGuard(keras.callbacks.Callback):
    """Stop ``fit`` when a logged loss is NaN or infinite; record which one and when.

    Checks every numeric entry of the batch logs (or only ``keys``). On the first
    non-finite value it sets ``model.stop_training``, records ``bad_key``,
    ``bad_step`` (1-based: the step that produced it, counting ``initial_step``) and
    ``bad_value``, logs an error and calls ``on_nan(name, step)`` -- the trainer
    restores the last good checkpoint there.
    """

    def __init__(
        self,
        keys: Optional[Iterable[str]] = None,
        *,
        on_nan: Optional[Callable[[str, int], None]] = None,
        initial_step: int = 0,
    ):
        super().__init__()
        self.keys = set(keys) if keys is not None else None
        self.on_nan = on_nan
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
            if self.on_nan is not None:
                self.on_nan(key, self.step)
            return


def _first_non_finite(value) -> Optional[float]:
    import numpy as np

    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.size == 0 or np.all(np.isfinite(arr)):
        return None
    return float(arr.reshape(-1)[~np.isfinite(arr.reshape(-1))][0])
