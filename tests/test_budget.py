"""BudgetGuard, GenerationReserve and NanGuard, driven by a fake clock through real model.fit."""
import subprocess
import sys
import logging
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import two_replicas

from gan_tpu.budget import GenerationReserve, default_budget_hours, process_uptime
from gan_tpu.callbacks import BudgetGuard, NanGuard


class FakeClock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class StepTime(keras.callbacks.Callback):
    """Each training step 'takes' `seconds(step)` on the fake clock (listed before the guard)."""

    def __init__(self, clock, seconds):
        super().__init__()
        self.clock, self.seconds, self.steps = clock, seconds, 0

    def on_train_batch_begin(self, batch, logs=None):
        self.steps += 1
        self.clock.advance(self.seconds(self.steps) if callable(self.seconds) else self.seconds)


def _tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _data(n=8, nan_row=None):
    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    if nan_row is not None:
        y[nan_row] = np.nan
    return x, y


def _fit(callbacks, epochs=10, n=8, nan_row=None, batch_size=2):
    model = _tiny_model()
    x, y = _data(n, nan_row)
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    return model


def test_default_budget_hours():
    assert default_budget_hours("tpu") == 3.0
    assert default_budget_hours("TPU") == 3.0
    assert default_budget_hours("gpu") == 5.0
    assert default_budget_hours("cpu") == 5.0
    assert default_budget_hours() == 5.0  # this machine: the default strategy on CPU
    assert default_budget_hours(two_replicas()) == 5.0
    with pytest.raises(ValueError, match="unknown platform"):
        default_budget_hours("abacus")


def test_stops_when_one_more_step_would_eat_the_reserve(caplog):
    clock = FakeClock()
    guard = BudgetGuard(100.0, reserve=20.0, clock=clock)
    timer = StepTime(clock, 10.0)
    with caplog.at_level(logging.INFO, logger="gan_tpu"):
        model = _fit([timer, guard], epochs=10)  # 40 steps offered, 4 per epoch
    # after step 7: 70 + 20 + 10 = 100, not over; after step 8: 80 + 20 + 10 > 100
    assert timer.steps == 8 and guard.stop_step == 8
    assert guard.stopped and model.stop_training
    assert clock.t + guard.reserve_s() <= 100.0  # generation still fits
    assert "stopping after step 8" in guard.stop_reason
    assert "0:01:40" in guard.stop_reason  # the budget, as h:mm:ss
    assert any("stopping after step 8" in r.getMessage() for r in caplog.records)


def test_a_slow_compiling_first_step_is_not_taken_for_the_step_time():
    clock = FakeClock()
    guard = BudgetGuard(100.0, reserve=20.0, clock=clock)
    _fit([StepTime(clock, lambda step: 70.0 if step == 1 else 1.0), guard])
    # after step 1: 70 + 20 < 100, and the next step is not another 70 s: train on until
    # t + 20 + 1 > 100, i.e. after step 11 (t = 80); 40 steps were offered
    assert guard.stop_step == 11 and clock.t + 20.0 <= 100.0


def test_run_start_before_training_counts():
    clock = FakeClock(1000.0)
    guard = BudgetGuard(100.0, reserve=20.0, clock=clock, start=960.0)  # 40 s already spent
    timer = StepTime(clock, 10.0)
    _fit([timer, guard])
    assert guard.stop_step == 4  # 40 + 40 + 20 + 10 > 100


@pytest.mark.parametrize("window, stop_step", [(3, 7), (1, 36)])
def test_slow_steps_are_remembered(window, stop_step):
    clock = FakeClock()
    guard = BudgetGuard(65.0, reserve=0.0, clock=clock, step_window=window)
    # steps take 1 s except step 5, which takes 30 s (say, an epoch-end checkpoint)
    _fit([StepTime(clock, lambda step: 30.0 if step == 5 else 1.0), guard])
    # window 3: after step 7 (t = 36) one more step still counts as 30 s: 66 > 65
    # window 1: it counts as 1 s, so training runs on until t + 1 > 65
    assert guard.stop_step == stop_step
    assert clock.t <= 65.0


def test_a_growing_reserve_stops_training_earlier():
    clock = FakeClock()
    reserve = lambda: 20.0 + 0.5 * clock.t  # noqa: E731 - generation gets slower as the run goes on
    guard = BudgetGuard(100.0, reserve=reserve, clock=clock)
    _fit([StepTime(clock, 10.0), guard])
    # step k: 10k + 20 + 5k + 10 > 100  ->  k > 4.67
    assert guard.stop_step == 5
    assert "reserve 0:00:45" in guard.stop_reason


def test_generation_reserve_is_measured_at_train_begin_and_only_grows(caplog):
    clock = FakeClock()
    batch_seconds = [5.0, 1.0, 1.0]  # first call compiles: 4 s extra

    def generate_batch():
        clock.advance(batch_seconds.pop(0) if batch_seconds else 2.0)

    reserve = GenerationReserve(generate_batch, batch_size=10, count=100, margin=0.5, fixed_s=10.0,
                                validate_s_per_image=0.1, clock=clock)
    assert reserve() == 20.0 and not reserve.measured  # before measuring: validation + fixed
    guard = BudgetGuard(1000.0, reserve=reserve, clock=clock, start=0.0)
    with caplog.at_level(logging.INFO, logger="gan_tpu"):
        _fit([StepTime(clock, 50.0), guard])
    # measured at train begin: (4 + 1 * 10 batches) * 1.5 + 10 + 10 = 41
    assert reserve.measurements == 1 and reserve.per_batch_s == 1.0 and reserve() == 41.0
    assert any("generation reserve" in r.getMessage() for r in caplog.records)
    # clock: 7 s measuring + k steps * 50; stop when 7 + 50k + 41 + 50 > 1000: k = 19
    assert guard.stopped and guard.stop_step == 19 and clock.t + reserve() <= 1000.0
    # re-measured with 2 s batches: (4 + 2 * 10) * 1.5 + 20 = 56; faster ones never shrink it
    assert reserve.measure() == 56.0
    batch_seconds[:] = [0.1] * 10
    assert reserve.measure() == 56.0


def test_generation_reserve_with_a_real_generator(tmp_path):
    from gan_tpu.submission.generate import make_generation_timer

    net = keras.Sequential([keras.Input((256, 256, 3)), keras.layers.Conv2D(3, 3, padding="same",
                                                                             activation="tanh")])
    run_batch, global_batch = make_generation_timer(net, batch_size=4)
    reserve = GenerationReserve(run_batch, batch_size=global_batch, count=7038, margin=0.2, fixed_s=0.0,
                                validate_s_per_image=0.0)
    seconds = reserve.measure()
    assert reserve.per_batch_s > 0 and seconds >= reserve.per_batch_s * 1760 * 1.2


def test_already_over_budget_at_start():
    clock = FakeClock(500.0)
    guard = BudgetGuard(100.0, reserve=10.0, clock=clock, start=0.0)
    timer = StepTime(clock, 1.0)
    _fit([timer, guard])
    assert timer.steps == 1  # Keras runs one step before it looks
    assert "already spent at training start" in guard.stop_reason


def test_default_start_is_the_command_start_else_the_process_start():
    import gan_tpu.budget as budget

    budget.mark_run_start(time.monotonic() - 100.0)  # as the CLI does when a command begins
    assert BudgetGuard(3600.0).elapsed() == pytest.approx(100.0, abs=2.0)
    budget._RUN_START = None
    guard = BudgetGuard(3600.0)
    uptime = process_uptime()
    assert 0.0 < uptime < 24 * 3600
    assert guard.elapsed() == pytest.approx(uptime, abs=2.0)
    assert guard.remaining() < 3600.0
    with pytest.raises(ValueError):
        BudgetGuard(0.0)


def test_nan_guard_stops_and_says_which_loss_at_which_step(caplog):
    guard = NanGuard()
    with caplog.at_level(logging.ERROR, logger="gan_tpu"):
        model = _fit([guard], epochs=3, n=8, nan_row=5)  # rows 4-5 are step 3 (batch 2)
    assert guard.triggered and guard.bad_key == "loss" and guard.bad_step == 3
    assert np.isnan(guard.bad_value)
    assert model.stop_training
    assert "loss 'loss' is nan at step 3" in guard.message()
    assert any("at step 3" in r.getMessage() for r in caplog.records)


def test_nan_guard_counts_steps_across_epochs_and_resumes():
    guard = NanGuard(initial_step=100)

    class NanInSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:
                logs["disc_loss"] = float("inf")

    _fit([NanInSecondEpoch(), guard], epochs=5)  # 4 steps per epoch
    assert (guard.bad_key, guard.bad_step) == ("disc_loss", 100 + 4 + 2)


def test_nan_guard_keys_filter():
    guard = NanGuard(keys=["gen_loss"])

    class BadMetric(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            logs["accuracy"] = float("nan")

    _fit([BadMetric(), guard], epochs=1)
    assert not guard.triggered and guard.message() is None


class CountingLogs(keras.callbacks.Callback):
    """Listed first: wraps each batch's loss so that reading it on the host is counted."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def on_train_batch_end(self, batch, logs=None):
        counter, value = self, logs["loss"]

        class Counted:
            def __array__(self, dtype=None, copy=None):
                counter.reads += 1
                return np.asarray(value, dtype=dtype)

        logs["loss"] = Counted()


def test_guards_read_the_logs_once_per_step_and_count_every_step():
    # The guards run on the host after every step: the budget guard must not touch the
    # step's tensors at all, the NaN guard must read each loss once (one host sync).
    clock = FakeClock()
    counting = CountingLogs()
    guard, nan = BudgetGuard(3600.0, reserve=60.0, clock=clock), NanGuard()
    _fit([counting, StepTime(clock, 1.0), guard], epochs=2)
    assert counting.reads == 0 and guard.step == 8 and not guard.stopped
    counting = CountingLogs()
    _fit([counting, nan], epochs=2)
    assert counting.reads == 8 and nan.step == 8 and not nan.triggered


def test_help_and_argument_errors_import_neither_tensorflow_nor_keras():
    code = ("import sys\nfrom gan_tpu import cli\ntry:\n    rc = cli.main({args!r})\n"
            "except SystemExit as exit:\n    rc = exit.code\n"
            "print(rc, [m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules])")
    for args, rc in ((["--help"], 0), (["train"], 2), (["run", "demo", "--frobnicate"], 2),
                     (["run", "no_such_pipeline"], 2), (["train", "demo", "--set", "epochs"], 2)):
        proc = subprocess.run([sys.executable, "-c", code.format(args=args)],
                              capture_output=True, text=True, timeout=120)
        assert proc.stdout.strip().splitlines()[-1] == f"{rc} []", (args, proc.stdout[-500:], proc.stderr[-500:])
