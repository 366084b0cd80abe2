"""Progress when standard output is not a terminal: one plain line per epoch (and at most one
every 30 s inside an epoch) with steps, losses and time left; generation's counts the same
way; no carriage returns, backspaces or colour codes. A real fit on a tiny Keras model."""
import io
import re

import keras
import numpy as np
import pytest

from gan_tpu import progress

CONTROL = re.compile(r"[\r\b\x1b]")
LINE = re.compile(r"^epoch (\d+)/(\d+) step (\d+)/(\d+) \| loss \d\S* \| \d+ s this epoch, ~(.+) left$")


class Clock:
    def __init__(self, step_s):
        self.now, self.step_s = 0.0, step_s

    def __call__(self):
        self.now += self.step_s
        return self.now


@pytest.fixture(scope="module")
def model():
    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    net.compile(optimizer="sgd", loss="mse")
    return net


def test_epoch_lines_from_a_real_fit(model):
    lines = []
    clock = Clock(step_s=4.0)  # every clock read is 4 s later: 30 s pass inside a 10-step epoch
    callback = progress.EpochLines(every_s=30.0, clock=clock, write=lines.append)
    x, y = np.ones((20, 2), "float32"), np.ones((20, 1), "float32")
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[callback])
    assert all(not CONTROL.search(line) for line in lines)
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    ends = [m for m in parsed if m[3] == m[4]]
    assert [(m[1], m[2], m[3]) for m in ends] == [("1", "3", "10"), ("2", "3", "10"), ("3", "3", "10")]
    mid = [m for m in parsed if m[3] != m[4]]
    assert 1 <= len(mid) <= 3 * 2  # at most one per 30 s (8 s per step here: every 4th step)
    assert ends[-1][5] == "0 s"  # nothing left after the last step


def test_epoch_line_time_left_and_losses():
    lines = []
    clock = Clock(step_s=0.0)
    cb = progress.EpochLines(clock=clock, write=lines.append)
    cb.set_params({"epochs": 2, "steps": 100})
    clock.now = 100.0
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    for step in range(100):
        clock.now += 1.5
        cb.on_train_batch_end(step, {"g_loss": 3.14159, "d_loss": 0.5})
    cb.on_epoch_end(0, {"g_loss": 3.14159, "d_loss": 0.5})
    # 30 s / 1.5 s per step: a line at steps 20, 40, 60, 80; then the epoch's line
    assert len(lines) == 5
    assert lines[0] == "epoch 1/2 step 20/100 | d_loss 0.5 g_loss 3.142 | 30 s this epoch, ~4m30s left"  # 180 steps to go
    assert lines[-1] == "epoch 1/2 step 100/100 | d_loss 0.5 g_loss 3.142 | 2m30s this epoch, ~2m30s left"


def test_count_lines_for_generation():
    lines = []
    clock = Clock(step_s=0.0)
    bar = progress.CountLines(7038, clock=clock, write=lines.append)
    for done in range(0, 7039, 64):
        clock.now += 1.0  # 64 images a second
        bar.update(done)
    bar.update(7038, finalize=True)
    bar.update(7038, finalize=True)  # once only
    assert lines[0] == "generate: 1,856/7,038 images, 61.9 image/s, ~1m24s left"  # at 30 s
    assert lines[-1].startswith("generate: 7,038/7,038 images,") and lines[-1].endswith(", done")
    assert len(lines) == 4 and not any(CONTROL.search(line) for line in lines)


def test_terminal_keeps_the_bar_and_other_streams_get_lines(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert progress.is_terminal(Tty()) and not progress.is_terminal(io.StringIO())
    monkeypatch.setattr("sys.stdout", Tty())
    assert isinstance(progress.progress_bar(10), keras.utils.Progbar)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert isinstance(progress.progress_bar(10), progress.CountLines)
    assert [progress.duration(s) for s in (4.6, 65, 7322)] == ["5 s", "1m05s", "2h02m"]
