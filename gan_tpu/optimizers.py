"""Optimizers and learning-rate schedules for the adversarial models (backend-free Keras 3).

`make(kind, ...)` builds `adam` or `adabelief`; `LinearDecay` keeps the rate constant, then
decays it linearly to 0 over the last part of training (Zhu et al.'s CycleGAN schedule).
Schedules read the optimizer's own `iterations`, which checkpoints carry, so a resumed run
continues the schedule exactly where it stopped.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

OPTIMIZERS = ("adam", "adabelief")


@keras.saving.register_keras_serializable(package="gan_tpu")
class AdaBelief(keras.optimizers.Optimizer):
    """AdaBelief (Zhuang et al. 2020, Algorithm 2): Adam with the "belief" s_t in place of v_t.

        m_t = β1·m + (1 − β1)·g
        s_t = β2·s + (1 − β2)·(g − m_t)² + ε
        θ  -= lr · m_t/(1 − β1^t) / (sqrt(s_t/(1 − β2^t)) + ε)

    ε = 1e-16 is the authors' current default. `weight_decay` (a base-class option) is
    decoupled, as in AdamW.
    """

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-16,
                 name="adabelief", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._beliefs = self.add_optimizer_variables(var_list, ["momentum", "belief"])

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        bias_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), t)
        bias_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), t)
        index = self._get_variable_index(variable)
        m, s = self._momentums[index], self._beliefs[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        surprise = ops.square(ops.subtract(gradient, m))
        self.assign(s, ops.add(ops.add(ops.multiply(s, self.beta_2), ops.multiply(surprise, 1 - self.beta_2)),
                               self.epsilon))
        step = ops.divide(ops.divide(m, bias_1), ops.add(ops.sqrt(ops.divide(s, bias_2)), self.epsilon))
        self.assign_sub(variable, ops.multiply(lr, step))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="gan_tpu")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`lr` until `decay_start` · total_steps, then linearly down to 0 at `total_steps`.

    `total_steps` counts training steps (batches); an optimizer that updates
    `updates_per_step` times per batch (WGAN-GP's critic, n_critic) divides its iterations
    by that first. `total_steps` 0 (not known yet) or `decay_start` 1 keep `lr` constant.

    Once :meth:`attach`-ed to its optimizer, the decay's shape lives in one optimizer
    variable `[start, fraction, end]` (lr·fraction until step `start`, then linearly to 0
    at `end`): the compiled step reads it, checkpoints carry it, and :meth:`replan` moves
    the end mid-run without a jump in the rate. Unattached, `total_steps` may be set until
    the train function is traced.
    """

    def __init__(self, lr: float, decay_start: float = 0.5, total_steps: int = 0,
                 updates_per_step: int = 1):
        if not 0.0 <= decay_start <= 1.0:
            raise ValueError(f"decay_start must be a fraction of training in [0, 1], got {decay_start}")
        self.lr = lr if callable(lr) else float(lr)  # a float, or a schedule it decays
        self.decay_start = float(decay_start)
        self.total_steps = int(total_steps)
        self.updates_per_step = int(updates_per_step)
        self.segment = None  # the [start, fraction, end] variable, once attached

    def _initial_segment(self, total_steps: int) -> list[float]:
        if total_steps <= 0 or self.decay_start >= 1.0:
            return [0.0, 1.0, 0.0]  # end 0: constant
        return [self.decay_start * total_steps, 1.0, float(total_steps)]

    def attach(self, optimizer) -> None:
        """Keep the decay's shape in a variable of `optimizer` (call after `optimizer.build`)."""
        if self.segment is None:
            self.segment = optimizer.add_variable((3,), initializer="zeros", dtype="float32",
                                                  name="lr_decay")
            self.segment.assign(self._initial_segment(self.total_steps))

    def set_total_steps(self, steps: int) -> None:
        """The whole run's length, before training starts."""
        self.total_steps = int(steps)
        if self.segment is not None:
            self.segment.assign(self._initial_segment(self.total_steps))

    def fraction(self, step: float) -> float:
        """lr(step) / lr on the host, from the current segment (steps are training steps)."""
        start, frac, end = (np.asarray(self.segment.numpy() if hasattr(self.segment, "numpy") else self.segment)
                            if self.segment is not None else self._initial_segment(self.total_steps))
        if end <= 0:
            return 1.0
        if step <= start:
            return float(frac)
        return float(frac * min(max((end - step) / max(end - start, 1.0), 0.0), 1.0))

    def replan(self, total_steps: int, at_step: int) -> None:
        """End the decay at `total_steps` instead, continuing from the rate at `at_step`:
        still constant → the decay starts at `decay_start` of the new total (not before
        now); already decaying → a straight line from today's rate to 0 at the new end."""
        self.total_steps = int(total_steps)
        if self.segment is None:
            return
        if self.decay_start >= 1.0:
            return
        start, frac, end = (float(x) for x in np.asarray(self.segment.numpy()))
        if end <= 0 or at_step <= start:  # constant so far
            new_start = max(self.decay_start * total_steps, float(at_step))
            segment = [new_start, frac, float(total_steps)]
        else:
            segment = [float(at_step), self.fraction(at_step), float(total_steps)]
        segment[2] = max(segment[2], segment[0])
        self.segment.assign(segment)

    def __call__(self, iterations):
        step = ops.floor(ops.cast(iterations, "float32") / self.updates_per_step)
        lr = ops.cast(self.lr(iterations), "float32") if callable(self.lr) else ops.convert_to_tensor(self.lr, "float32")
        if self.segment is None:
            if self.total_steps <= 0 or self.decay_start >= 1.0:
                return lr
            start = self.decay_start * self.total_steps
            left = (self.total_steps - step) / max(self.total_steps - start, 1.0)
            return lr * ops.clip(left, 0.0, 1.0)
        segment = ops.cast(self.segment, "float32")
        start, frac, end = segment[0], segment[1], segment[2]
        left = ops.clip((end - step) / ops.maximum(end - start, 1.0), 0.0, 1.0)
        decayed = ops.where(step <= start, frac, frac * left)
        return lr * ops.where(end <= 0.0, 1.0, decayed)

    @classmethod
    def from_config(cls, config):
        lr = config.pop("lr")
        return cls(keras.saving.deserialize_keras_object(lr) if isinstance(lr, dict) else lr, **config)

    def get_config(self):
        lr = keras.saving.serialize_keras_object(self.lr) if callable(self.lr) else self.lr
        return {"lr": lr, "decay_start": self.decay_start, "total_steps": self.total_steps,
                "updates_per_step": self.updates_per_step}


def schedule_of(optimizer: keras.optimizers.Optimizer):
    """The schedule `optimizer` was made with (None for a constant rate)."""
    rate = optimizer._learning_rate  # Keras keeps the schedule object here (no public accessor)
    return rate if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) else None


def make(kind: str, lr, *, beta_1: float = 0.9, beta_2: float = 0.999, weight_decay=None,
         name: str | None = None) -> keras.optimizers.Optimizer:
    """`adam` or `adabelief` with learning rate `lr` (a float or a schedule)."""
    if kind == "adam":
        return keras.optimizers.Adam(learning_rate=lr, beta_1=beta_1, beta_2=beta_2,
                                     weight_decay=weight_decay, name=name or "adam")
    if kind == "adabelief":
        return AdaBelief(learning_rate=lr, beta_1=beta_1, beta_2=beta_2,
                         weight_decay=weight_decay, name=name or "adabelief")
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")


def scale_losses(players) -> None:
    """Under the `mixed_float16` policy, wrap each player's optimizer (once, if players share
    it) in Keras's dynamic `LossScaleOptimizer`: the trainers multiply the loss by its scale
    (`scale_loss`), and it divides the gradients back, skips a step whose gradients are not
    finite (weights and slots untouched) and halves the scale, doubling it after 2,000 finite
    steps. float16 gradients below 6e-8 would otherwise round to 0. Other policies (float32;
    bfloat16, whose range is float32's) need no scaling: optimizers are left as they are.
    Idempotent; call before the optimizers are built."""
    if keras.mixed_precision.global_policy().name != "mixed_float16":
        return
    wrapped = {}
    for player in players:
        opt = player.optimizer
        if isinstance(opt, keras.optimizers.LossScaleOptimizer):
            continue
        if id(opt) not in wrapped:
            wrapped[id(opt)] = keras.optimizers.LossScaleOptimizer(opt, name=f"{opt.name}_loss_scale")
        player.optimizer = wrapped[id(opt)]
