"""`train.epochs = "auto"`: the plan's arithmetic, and the planner driven by a fake clock
through real `model.fit` (a tiny Dense model) and through `train.train` (a tiny CycleGAN)."""
import csv
import json
import logging
import os

import keras
import numpy as np
import pytest

from gan_tpu import optimizers
from gan_tpu.callbacks import BudgetGuard
from gan_tpu.plan import Plan, Planner, evaluations_due, steps_that_fit
from tests.test_budget import FakeClock, StepTime


@pytest.mark.parametrize("available, step_s, done, every, eval_s, expected", [
    (100.0, 1.0, 0, 0, 0.0, 100),      # 100 s at 1 s/step
    (100.0, 0.3, 0, 0, 0.0, 333),      # whole steps only
    (100.0, 1.0, 40, 0, 0.0, 140),     # counted from the steps already done
    (7.5, 1.0, 0, 0, 0.0, 7),          # less than one epoch of 10 fits: 7 steps, no more
    (0.5, 1.0, 3, 0, 0.0, 3),          # not even one step
    (-20.0, 1.0, 3, 0, 0.0, 3),        # already over
    (100.0, 1.0, 0, 1, 5.0, 65),       # 5 s evaluations every epoch of 10: 65 steps + 7 of them
    (100.0, 1.0, 0, 2, 20.0, 50),      # 20 s ones every 2nd epoch: 50 steps + 2 (epochs 2, 4)
])
def test_steps_that_fit(available, step_s, done, every, eval_s, expected):
    total = steps_that_fit(available_s=available, step_s=step_s, done_steps=done, steps_per_epoch=10,
                           eval_every=every, eval_s=eval_s)
    assert total == expected
    spent = (total - done) * step_s + evaluations_due(done, total, 10, every) * eval_s
    assert spent <= max(available, 0.0)
    more = total + 1  # one step more would not fit
    assert (more - done) * step_s + evaluations_due(done, more, 10, every) * eval_s > available


def test_evaluations_due():
    assert evaluations_due(0, 100, 10, 1) == 10
    assert evaluations_due(0, 95, 10, 1) == 10    # the partial last epoch ends (and is scored)
    assert evaluations_due(35, 100, 10, 2) == 4   # epochs 4 (not ended yet), 6, 8, 10
    assert evaluations_due(40, 100, 10, 2) == 3   # epoch 4 ended at step 40
    assert evaluations_due(0, 100, 10, 0) == 0 and evaluations_due(50, 50, 10, 1) == 0


def _decaying_model(decay_start=0.0):
    schedule = optimizers.LinearDecay(1e-2, decay_start=decay_start)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    opt = keras.optimizers.Adam(schedule)
    opt.build(model.trainable_variables)
    schedule.attach(opt)
    model.compile(optimizer=opt, loss="mse")
    return model, schedule


def _set_total(schedule):
    return lambda total, at_step=None: (schedule.set_total_steps(total) if at_step is None
                                        else schedule.replan(total, at_step))


def _fit_planned(budget_s, seconds, generation_s=30.0, epochs=1000, **planner_kw):
    clock = FakeClock()
    model, schedule = _decaying_model()
    guard = BudgetGuard(budget_s, clock=clock, start=0.0)
    planner = Planner(guard, generation=generation_s, steps_per_epoch=20, set_total=_set_total(schedule),
                      **planner_kw)
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    model.fit(x, x.sum(axis=1, keepdims=True), batch_size=1, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[StepTime(clock, seconds), guard, planner])
    return clock, guard, planner, model, schedule


def _lr_at_last_step(model, schedule):
    return float(schedule(model.optimizer.iterations - 1)) / schedule.lr


def test_auto_plan_ends_the_decay_at_the_last_step_inside_the_budget(caplog):
    with caplog.at_level(logging.INFO, logger="gan_tpu"):
        clock, guard, planner, model, schedule = _fit_planned(180.0, 1.0)
    # planned after 11 steps (the first is not timed): (180 - 11 - 30) * 0.98 - 3 s of 1 s steps
    assert planner.plan.total_steps == 11 + 133 and planner.replans == 0
    assert planner.finished and not guard.stopped and guard.step == 144
    assert int(model.optimizer.iterations) == 144
    assert _lr_at_last_step(model, schedule) < 0.01  # the decay's end, within 1 % of the peak
    assert clock.t + 30.0 <= 180.0  # training, then generation, inside the budget
    plan_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("plan: ")]
    assert len(plan_lines) == 1 and "144 steps (7.2 epochs of 20) at 1.000 s/step" in plan_lines[0]
    assert "reserve 0:00:30" in plan_lines[0] and "of the 0:03:00 budget" in plan_lines[0]


def test_a_slowdown_replans_once_without_a_jump_and_still_finishes_the_decay():
    lrs = []

    class LearningRates(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            lrs.append(float(schedule(self.model.optimizer.iterations)))

    clock = FakeClock()
    model, schedule = _decaying_model()
    guard = BudgetGuard(300.0, clock=clock, start=0.0)
    planner = Planner(guard, generation=30.0, steps_per_epoch=20, set_total=_set_total(schedule))
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    slow_from = 130  # half of the first plan (261 steps): 2x slower from then on
    model.fit(x, x.sum(axis=1, keepdims=True), batch_size=1, epochs=1000, shuffle=False, verbose=0,
              callbacks=[StepTime(clock, lambda step: 2.0 if step > slow_from else 1.0), guard, planner,
                         LearningRates()])
    assert planner.replans == 1 and planner.finished and not guard.stopped
    assert planner.plan.step_s == 2.0 and planner.plan.total_steps < 261
    assert clock.t + 30.0 <= 300.0
    assert lrs[-1] / schedule.lr < 0.01
    steps = np.abs(np.diff(lrs)) / schedule.lr
    assert steps.max() < 0.012  # never a jump: at most one step of the steepest decay


def test_a_fixed_epoch_count_that_cannot_fit_says_so_once_at_the_start(caplog):
    with caplog.at_level(logging.WARNING, logger="gan_tpu"):
        clock, guard, planner, model, _ = _fit_planned(100.0, 1.0, epochs=10, fixed_total=200)
    warnings = [r.getMessage() for r in caplog.records if "will not fit" in r.getMessage()]
    assert len(warnings) == 1 and "train.epochs 10 (200 steps) will not fit in 0:01:40" in warnings[0]
    assert "about 3.2 epochs fit" in warnings[0]  # 11 + (100 - 11 - 30) * 0.98 - 3 = 65 steps
    assert guard.stopped and guard.step < 200  # the guard still keeps the budget
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gan_tpu"):
        _fit_planned(1000.0, 1.0, epochs=2, fixed_total=40)
    assert not [r for r in caplog.records if "will not fit" in r.getMessage()]


def test_the_guard_stops_earlier_when_evaluations_are_due():
    def fit(eval_s):
        clock = FakeClock()
        guard = BudgetGuard(60.0, clock=clock, start=0.0)
        planner = Planner(guard, generation=10.0, steps_per_epoch=4, set_total=lambda *a: None,
                          fixed_total=40, eval_every=5, eval_s=lambda: eval_s)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        x = np.zeros((8, 4), np.float32)
        model.fit(x, x[:, :1], batch_size=2, epochs=10, verbose=0, callbacks=[StepTime(clock, 1.0), guard, planner])
        return guard

    assert not fit(0.0).stopped  # 40 s of steps + 10 s of generation fit in 60 s
    # evaluations at the ends of epochs 5 and 10 (steps 20, 40), 15 s each: after step 20
    # one is left, so the guard stops when t + 10 + 15 + 1 > 60, after step 35
    guard = fit(15.0)
    assert guard.stopped and guard.stop_step == 35 and "reserve 0:00:25" in guard.stop_reason


def test_resumed_plan_is_the_same_plan():
    clock = FakeClock()
    guard = BudgetGuard(300.0, clock=clock, start=-25.0)  # 25 s used by an earlier session
    resumed = Plan(261, 1.0, at_step=25)
    planner = Planner(guard, generation=30.0, steps_per_epoch=20, set_total=lambda *a: None, plan=resumed)
    guard.step = 25
    assert planner.state() == [261.0, 1.0, 25.0, 300.0]
    assert planner.projected_end(25, 1.0) == 25.0 + 236 + 30.0  # still inside 300


# ------------------------------------------------------------------ through train.train


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    from gan_tpu.sample_data import write_sample_data

    root = str(tmp_path_factory.mktemp("data"))
    write_sample_data(root, monet=6, photo=8, seed=3)
    return root


def _cfg(sample_root, out, *extra):
    from gan_tpu import config

    return config.load("demo", [
        f'data.monet="{sample_root}"', f'data.photo="{sample_root}"',
        "data.image_size=32", 'model.generator="resnet"', "model.ngf=4", "model.ndf=4", "model.n_blocks=1",
        "model.decay_start=0.0", "train.batch_size=2", "train.samples=0", "train.steps_per_epoch=4",
        "submission.batch_size=2",
        f'output.dir="{out}"', *extra])


class _KillAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.players[0].optimizer.iterations) == self.step:
            raise KeyboardInterrupt


def test_kill_and_resume_keeps_the_plan_and_the_original_budget(sample_root, tmp_path):
    from gan_tpu import train

    out = str(tmp_path / "run")
    budget_s = 90.0  # fake seconds; the generation reserve, timed on the same clock, is its 60 s floor
    cfg = _cfg(sample_root, out, 'train.epochs="auto"', f"budget.hours={budget_s / 3600}")
    first = FakeClock()
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, verbose=0, clock=first, callbacks=[StepTime(first, 1.0), _KillAt(18)])
    second = FakeClock()
    run = train.train(cfg, resume=True, verbose=0, clock=second, callbacks=[StepTime(second, 1.0)])
    saved = run.plan_state.numpy()
    total = int(saved[0])
    assert 18 < total == run.planned_steps == int(run.step.numpy())  # the first session's plan, done
    assert saved[2] == pytest.approx(first.t + second.t)  # budget used: both sessions
    assert budget_s - saved[2] >= 60.0  # what is left still holds the generation reserve
    # the decay (from the first plan, before the kill) ends at the planned last step
    assert 0.0 < run.model.lr_fraction(total - 1) <= 1.0 / (total - 18) and run.model.lr_fraction(total) == 0.0
    rows = open(os.path.join(out, "history.csv")).read().splitlines()
    assert rows[-1].split(",")[rows[0].split(",").index("planned_steps")] == str(total)


class _KnownScores:
    """A stand-in extractor: the reference's features, then for each later call (the
    warm-up, then epochs 1, 2, ...) the same features shifted by a known offset, so the
    FID of each evaluation is known in order; 64-d so no row is near a reference row."""

    name, dim, key, comparable_with_kaggle = "known", 64, "known-v1", False

    def __init__(self, offsets):
        self.offsets = list(offsets)
        self.calls = 0

    def features(self, images, batch_size=64, progress=None):
        return np.concatenate([f for f, _ in self.extract(images, batch_size)]), None

    def extract(self, images, batch_size=64, progress=None):
        n = len(list(images)) if not hasattr(images, "shape") else int(images.shape[0])
        rng = np.random.default_rng(self.calls and 1)  # the reference draws once, the rest alike
        offset = 0.0 if self.calls == 0 else self.offsets[self.calls - 1]
        self.calls += 1
        yield (rng.normal(size=(n, self.dim)) + offset).astype(np.float32), None


def test_eval_exports_the_best_epochs_generator_and_the_last_one(sample_root, tmp_path, caplog):
    from gan_tpu import train

    weights = {}

    class Capture(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights[epoch + 1] = self.model.exported.get_weights()

    out = str(tmp_path / "run")
    cfg = _cfg(sample_root, out, "train.epochs=4", "train.steps_per_epoch=1", "eval.every=1", "eval.photos=3")
    extractor = _KnownScores([5.0, 4.0, 3.0, 0.5, 2.0])  # warm-up, epochs 1-4: epoch 3 is best
    with caplog.at_level("WARNING", logger="gan_tpu"):
        run = train.train(cfg, verbose=0, use_budget=False, extractor=extractor, callbacks=[Capture()])
    # eval.extractor is "tiny" (the default): said once, as it picks the exported generator
    assert len([r for r in caplog.records if '"tiny" extractor' in r.getMessage()]) == 1
    scores = list(csv.DictReader(open(os.path.join(out, "eval", "scores.csv"))))
    assert [int(r["epoch"]) for r in scores] == [0, 1, 2, 3, 4]
    fids = [float(r["fid"]) for r in scores]
    assert fids.index(min(fids)) == 3 and float(scores[3]["mifid"]) == pytest.approx(fids[3])

    def saved(name):
        return keras.models.load_model(os.path.join(out, name), compile=False).get_weights()

    for got, want in zip(saved("generator.keras"), weights[3]):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(saved("generator_last.keras"), weights[4]):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(run.model.exported.get_weights(), weights[3]):  # `run` generates from it
        np.testing.assert_array_equal(got, want)
    assert json.load(open(os.path.join(out, "eval", "best.json")))["epoch"] == 3
    assert os.path.isfile(os.path.join(out, "plots.png"))
