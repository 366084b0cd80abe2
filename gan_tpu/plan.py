"""`train.epochs = "auto"`: plan the run's length from measured step times, against the budget.

After the first steps (the first, compiling, one excluded) the planner takes the median
step time s of a measured window and sets the run's total step count T, the largest with

    elapsed + (T − done)·s + evaluations(done, T)·e + generation + slack  <=  budget

where `generation` is the measured generation reserve (:class:`gan_tpu.budget.GenerationReserve`),
e the measured time of one in-training evaluation, evaluations(done, T) the number still
due before step T, and slack a few steps plus a small fraction of the training time (the
budget guard stops one step early when a step runs slow). LR schedules then decay over T.
When the medians of two consecutive windows of a few steps drift from s by more than
`drift` the same way, or the plan no longer fits, it re-plans from the current step: the decay is bent from today's rate to the
new end, never jumped. The plan (T, s and the budget time used) is saved with every
checkpoint, so `--resume` continues it against the time left.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from typing import Callable, Optional

import keras

from gan_tpu.budget import format_duration as _fmt

log = logging.getLogger("gan_tpu")


@dataclasses.dataclass
class Plan:
    total_steps: int
    step_s: float
    at_step: int = 0        # the step it was made at
    reserve_s: float = 0.0  # generation + the evaluations still due, when made


def evaluations_due(done_steps: int, total_steps: int, steps_per_epoch: int, every: int) -> int:
    """Evaluations at the ends of epochs after step `done_steps` up to the one holding step
    `total_steps` (a partial last epoch ends, and is evaluated, too); 0 when `every` is 0."""
    if every <= 0 or total_steps <= done_steps:
        return 0
    first = done_steps // steps_per_epoch + 1          # the first epoch not ended yet
    last = math.ceil(total_steps / steps_per_epoch)     # the epoch step total_steps ends
    return max(0, last // every - (first - 1) // every)


def steps_that_fit(*, available_s: float, step_s: float, done_steps: int, steps_per_epoch: int,
                   eval_every: int = 0, eval_s: float = 0.0) -> int:
    """The largest total step count T >= done_steps whose training and evaluations fit in
    `available_s` seconds (the budget less elapsed time, generation and slack)."""
    if step_s <= 0:
        raise ValueError(f"step time must be positive, got {step_s}")
    if available_s <= 0:
        return done_steps
    def cost(total: int) -> float:
        evals = evaluations_due(done_steps, total, steps_per_epoch, eval_every)
        return (total - done_steps) * step_s + evals * eval_s

    low, high = done_steps, done_steps + int(available_s // step_s)  # high: no evaluations
    while low < high:  # the cost grows with the step count: bisect for the last that fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if cost(mid) <= available_s else (low, mid - 1)
    return low


class Planner(keras.callbacks.Callback):
    """Plans, re-plans and ends a run of `epochs = "auto"` (or checks a fixed one fits).

    Reads time and step count from `guard` (a BudgetGuard listed before it) and becomes its
    reserve: called, it gives :meth:`reserve_s` at the guard's step. `generation` is the generation reserve in seconds (or a
    callable, e.g. a GenerationReserve). `set_total(steps, at_step)` applies a plan to the
    model's LR schedules (at_step None: the first plan, from the start; else a re-plan
    that continues from the rate at that step). `eval_s()` is the time of one evaluation, and
    `paused_s()` the total seconds spent in evaluations so far (left out of step times).
    With `fixed_total` (a fixed epoch count), it only warns once, at the first measurement,
    when the budget cannot hold that many steps.
    """

    def __init__(self, guard, *, generation, steps_per_epoch: int, set_total: Callable[[int, Optional[int]], None],
                 fixed_total: Optional[int] = None, plan: Optional[Plan] = None, eval_every: int = 0,
                 eval_s: Callable[[], float] = lambda: 0.0, paused_s: Callable[[], float] = lambda: 0.0,
                 window: int = 10, recent: int = 5, drift: float = 0.10, margin: float = 0.02,
                 slack_steps: int = 3):
        super().__init__()
        self.guard = guard
        self.generation = generation
        self.steps_per_epoch = int(steps_per_epoch)
        self.set_total = set_total
        self.fixed_total = fixed_total
        self.plan = plan
        self.eval_every = int(eval_every)
        self.eval_s = eval_s
        self.paused_s = paused_s
        self.window, self.recent = int(window), int(recent)
        self.drift, self.margin, self.slack_steps = drift, margin, slack_steps
        self.intervals: list[float] = []
        self.replans = 0
        self.finished = False  # the planned steps are all done
        self._last: Optional[tuple[float, float]] = None  # (clock, paused) at the last step end
        self._since_plan = 0
        self._pending = 0  # the direction (+1 slower, -1 faster) the last checked window drifted
        self._checked = False
        guard.reserve = self

    def __call__(self) -> float:
        """The guard's reserve now: generation plus the evaluations still due."""
        return self.reserve_s(self.guard.step)

    # -- arithmetic ----------------------------------------------------------------------
    def generation_s(self) -> float:
        return float(self.generation() if callable(self.generation) else self.generation)

    def evals_left(self, step: int, total: int) -> int:
        return evaluations_due(step, total, self.steps_per_epoch, self.eval_every)

    def make(self, step: int, step_s: float) -> Plan:
        """The plan from `step` on, at `step_s` seconds per step."""
        generation = self.generation_s()
        left = self.guard.budget_s - self.guard.elapsed() - generation
        available = left * (1.0 - self.margin) - self.slack_steps * step_s
        total = steps_that_fit(available_s=available, step_s=step_s, done_steps=step,
                               steps_per_epoch=self.steps_per_epoch, eval_every=self.eval_every,
                               eval_s=self.eval_s())
        reserve = generation + self.evals_left(step, total) * self.eval_s()
        return Plan(total, step_s, step, reserve)

    def reserve_s(self, step: int) -> float:
        """Generation plus the evaluations still due under the plan (for the budget guard)."""
        total = self.fixed_total if self.fixed_total is not None else (self.plan.total_steps if self.plan else step)
        return self.generation_s() + self.evals_left(step, total) * self.eval_s()

    def projected_end(self, step: int, step_s: float) -> float:
        """Budget time used when the plan's last step, its evaluations and generation are done."""
        return (self.guard.elapsed() + (self.plan.total_steps - step) * step_s
                + self.evals_left(step, self.plan.total_steps) * self.eval_s() + self.generation_s())

    # -- Keras hooks -----------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._last = None  # the first step of every fit compiles or fills pipelines: not timed
        if self.plan is not None and self.guard.step >= self.plan.total_steps:
            self._finish()

    def on_train_batch_end(self, batch, logs=None):
        now, paused = self.guard.clock(), self.paused_s()
        if self._last is not None:
            self.intervals.append(now - self._last[0] - (paused - self._last[1]))
            self._since_plan += 1
        self._last = (now, paused)
        step = self.guard.step
        if self.fixed_total is not None:
            self._check_fixed(step)
            return
        if self.plan is None:
            if len(self.intervals) < self.window:
                return
            self._apply(self.make(step, statistics.median(self.intervals[-self.window:])), step, first=True)
        elif (self._since_plan >= self.recent and self._since_plan % self.recent == 0
              and self.plan.total_steps - step > self.window):
            # Checked once per `recent` steps (disjoint windows); a re-plan needs two windows
            # in a row off the same way, so a jittery CPU does not re-plan every few steps.
            # (A resumed plan is checked as soon as this; in its last steps a re-plan could
            # only bend the decay short of 0, and the guard still keeps the budget.)
            recent = statistics.median(self.intervals[-self.recent:])
            off = recent / self.plan.step_s - 1.0
            direction = 0 if abs(off) <= self.drift else (1 if off > 0 else -1)
            if self.projected_end(step, recent) > self.guard.budget_s:
                direction = 2  # no longer fits: re-plan now
            confirmed = direction == 2 or (direction != 0 and direction == self._pending)
            self._pending = direction
            if confirmed:  # at the two windows' median (a slowdown: never below the last one's)
                both = statistics.median(self.intervals[-2 * self.recent:])
                self._apply(self.make(step, max(both, recent) if direction > 0 else both), step, first=False)
        if step >= self.plan.total_steps:
            self._finish()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["planned_steps"] = self.planned_steps()
            logs["steps_done"] = self.guard.step

    # -- helpers ---------------------------------------------------------------------------
    def state(self) -> list[float]:
        """What a checkpoint keeps: [planned steps (0: none), s/step, budget s used, budget s]."""
        total, step_s = (self.plan.total_steps, self.plan.step_s) if self.plan is not None else (0, 0.0)
        return [float(total), float(step_s), self.guard.elapsed(), self.guard.budget_s]

    def planned_steps(self) -> int:
        if self.fixed_total is not None:
            return self.fixed_total
        return self.plan.total_steps if self.plan is not None else 0

    def _apply(self, plan: Plan, step: int, first: bool) -> None:
        old = self.plan
        self.plan = plan
        self._since_plan = 0
        self._pending = 0
        if self.model is not None:
            self.model  # noqa: B018  on JAX, this pulls fit's training state into the variables
        self.set_total(plan.total_steps, None if first and step == 0 else step)
        if first:
            log.info("plan: %s", self.describe(plan))
        else:
            self.replans += 1
            # a noisy CPU re-plans often by a step or two: say so only when it matters
            level = logging.INFO if abs(plan.total_steps - old.total_steps) > 0.01 * old.total_steps else logging.DEBUG
            log.log(level, "plan: re-planned at step %d (%.3f s/step, was %.3f): %d steps, was %d; %s",
                    step, plan.step_s, old.step_s, plan.total_steps, old.total_steps, self.describe(plan))

    def describe(self, plan: Plan) -> str:
        left = plan.total_steps - plan.at_step
        training = left * plan.step_s
        evals = self.evals_left(plan.at_step, plan.total_steps)
        finish = self.guard.elapsed() + training + evals * self.eval_s() + self.generation_s()
        return (f"{plan.total_steps} steps ({plan.total_steps / self.steps_per_epoch:.1f} epochs of "
                f"{self.steps_per_epoch}) at {plan.step_s:.3f} s/step: training {_fmt(training)} more, "
                f"reserve {_fmt(plan.reserve_s)} (generation {_fmt(self.generation_s())}, {evals} "
                f"evaluation(s)), finishing at {_fmt(finish)} of the {_fmt(self.guard.budget_s)} budget")

    def _check_fixed(self, step: int) -> None:
        if self._checked or len(self.intervals) < self.window:
            return
        self._checked = True
        step_s = statistics.median(self.intervals[-self.window:])
        fits = self.make(step, step_s).total_steps
        if fits < self.fixed_total:
            log.warning("budget: train.epochs %d (%d steps) will not fit in %s: about %.1f epochs fit "
                        "at %.3f s/step, so the budget guard will stop early with the LR decay "
                        "unfinished; set train.epochs = \"auto\" to plan for the budget",
                        self.fixed_total // self.steps_per_epoch, self.fixed_total,
                        _fmt(self.guard.budget_s), fits / self.steps_per_epoch, step_s)

    def _finish(self) -> None:
        self.finished = True
        if self.model is not None:
            self.model.stop_training = True

