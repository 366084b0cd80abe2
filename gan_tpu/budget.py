"""The run's time budget: Kaggle's limits, the run's clock, and the reserve kept for generation.

Kaggle's budget counts the whole run (3 h on TPU, 5 h on GPU/CPU), generation included.
:class:`gan_tpu.callbacks.BudgetGuard` stops ``model.fit`` at the end of the step after which one more
step would eat into the reserve kept for generation + zip + validation (+ scoring):

    stop when  elapsed + reserve + (time of one more step)  >  budget

The reserve is a number or a callable; :class:`GenerationReserve` times real
generation batches, scales them to the image count and adds a safety margin, and
only ever grows when re-measured. The guard itself (and the NaN guard) are Keras
callbacks in :mod:`gan_tpu.callbacks`; this module imports no Keras or TensorFlow at
its top, so the CLI can mark the run's start before choosing a backend.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Callable, Optional, Union

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


def format_duration(seconds: float) -> str:
    """H:MM:SS (negative as 0)."""
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

    Measuring again never lowers the reserve (``grow_only``). Before any measurement the
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
                 format_duration(self.seconds), per_batch, self.batch_size, self.count, 100 * self.margin)
        return self.seconds

    def _set(self, seconds: float) -> None:
        if self.seconds is None or not self.grow_only or seconds > self.seconds:
            self.seconds = float(seconds)

    def __call__(self) -> float:
        if self.seconds is not None:
            return self.seconds
        return self.validate_s_per_image * self.count + self.fixed_s
