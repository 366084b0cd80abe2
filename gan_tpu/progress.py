"""Progress for logs that are not a terminal (a committed Kaggle notebook, ``> file``).

Keras's progress bar redraws itself with carriage returns, backspaces and colour codes: in a
log that is not a terminal, a 3-hour run becomes one unreadable line. When standard output
is not a terminal, training prints :class:`EpochLines` instead (one plain line per epoch, at
most one every ``every_s`` inside an epoch) and generation :class:`CountLines`; a terminal
keeps Keras's bar.
"""
from __future__ import annotations

import sys
import time

import keras

EVERY_S = 30.0


def counted(n, noun: str) -> str:
    """'1 epoch', '6 epochs', 'auto epochs'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def is_terminal(stream=None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def duration(seconds: float) -> str:
    """"42 s", "12m05s", "2h03m"."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _number(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


class EpochLines(keras.callbacks.Callback):
    """Training progress as plain lines: ``epoch 3/30 step 211/211 | d_loss 0.52 g_loss 3.1 |
    41 s this epoch, ~19m30s left``. The time left is this fit's remaining steps at the mean
    step time so far."""

    def __init__(self, every_s: float = EVERY_S, clock=time.monotonic, write=None):
        super().__init__()
        self.every_s, self.clock = every_s, clock
        self.write = write or (lambda line: print(line, flush=True))
        self.started = self.epoch_started = self.last = 0.0
        self.done = self.step = self.epoch = 0

    def on_train_begin(self, logs=None):
        self.started = self.clock()
        self.done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.step = epoch, 0
        self.epoch_started = self.last = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        self.step = batch + 1
        now = self.clock()
        if now - self.last >= self.every_s and self.step < (self.params.get("steps") or 0):
            self.last = now
            self.write(self.line(logs, now))

    def on_epoch_end(self, epoch, logs=None):
        self.write(self.line(logs, self.clock()))

    def line(self, logs, now: float) -> str:
        steps = self.params.get("steps") or 0
        epochs = self.params.get("epochs") or 0
        losses = " ".join(f"{k} {_number(v)}" for k, v in sorted((logs or {}).items()))
        left = ""
        if self.done and steps:
            remaining = (epochs - self.epoch - 1) * steps + (steps - self.step)
            left = f", ~{duration(remaining * (now - self.started) / self.done)} left"
        return (f"epoch {self.epoch + 1}/{epochs} step {self.step}/{steps or '?'}"
                f"{' | ' + losses if losses else ''} | {duration(now - self.epoch_started)} this epoch{left}")


class CountLines:
    """A stand-in for ``keras.utils.Progbar(target)`` (``update(current, finalize=)``) that
    writes ``generate: 2,048/7,038 images, 41.3 image/s, ~2m01s left`` at most every ``every_s``,
    and once at the end."""

    def __init__(self, target: int | None, unit_name: str = "image", every_s: float = EVERY_S,
                 clock=time.monotonic, write=None):
        self.target, self.unit, self.every_s, self.clock = target, unit_name, every_s, clock
        self.write = write or (lambda line: print(line, flush=True))
        self.started = self.last = clock()
        self.finished = False

    def update(self, current: int, finalize: bool | None = None) -> None:
        now = self.clock()
        final = finalize if finalize is not None else (self.target is not None and current >= self.target)
        if self.finished or (not final and now - self.last < self.every_s):
            return
        self.last, self.finished = now, final
        rate = current / (now - self.started) if now > self.started else 0.0
        total = f"/{self.target:,}" if self.target else ""
        left = ""
        if self.target and rate and not final:
            left = f", ~{duration((self.target - current) / rate)} left"
        self.write(f"generate: {current:,}{total} {self.unit}s, {rate:.1f} {self.unit}/s"
                   f"{left}{', done' if final else ''}")


def progress_bar(target: int | None, unit_name: str = "image"):
    """Keras's bar on a terminal, else :class:`CountLines`."""
    if is_terminal():
        return keras.utils.Progbar(target, unit_name=unit_name)
    return CountLines(target, unit_name)
