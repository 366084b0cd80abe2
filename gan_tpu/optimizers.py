"""Optimizers and learning-rate schedules for the adversarial models (backend-free Keras 3).

`make(kind, ...)` builds `adam` or `adabelief`; `LinearDecay` keeps the rate constant, then
decays it linearly to 0 over the last part of training (Zhu et al.'s CycleGAN schedule).
Schedules read the optimizer's own `iterations`, which checkpoints carry, so a resumed run
continues the schedule exactly where it stopped.
"""
from __future__ import annotations

import keras
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
    `total_steps` may be set after construction, before the train function is traced.
    """

    def __init__(self, lr: float, decay_start: float = 0.5, total_steps: int = 0,
                 updates_per_step: int = 1):
        if not 0.0 <= decay_start <= 1.0:
            raise ValueError(f"decay_start must be a fraction of training in [0, 1], got {decay_start}")
        self.lr = float(lr)
        self.decay_start = float(decay_start)
        self.total_steps = int(total_steps)
        self.updates_per_step = int(updates_per_step)

    def __call__(self, iterations):
        lr = ops.convert_to_tensor(self.lr, "float32")
        if self.total_steps <= 0 or self.decay_start >= 1.0:
            return lr
        step = ops.floor(ops.cast(iterations, "float32") / self.updates_per_step)
        start = self.decay_start * self.total_steps
        left = (self.total_steps - step) / max(self.total_steps - start, 1.0)
        return lr * ops.clip(left, 0.0, 1.0)

    def get_config(self):
        return {"lr": self.lr, "decay_start": self.decay_start, "total_steps": self.total_steps,
                "updates_per_step": self.updates_per_step}


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
