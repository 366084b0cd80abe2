"""An exponential moving average of a network's weights (BigGAN's EMA generator), backend-free.

`WeightAverage(network, decay, start)` keeps one shadow copy of every float variable of
`network` (weights, batch-norm statistics, spectral-norm vectors). After each train step
`update(network)` counts the step and sets, for every variable w,

    shadow <- w                               while steps <= start,
    shadow <- decay * shadow + (1 - decay) * w  after,

so the average starts from the weights of step `start` (early weights are noise). Variables
given as `fixed` (MUNIT's and DRIT++'s chosen style code: not learned, set for generation)
are neither averaged nor swapped; they keep a shadow slot, so checkpoints keep their layout. The
shadows and the step count are Keras variables of the model: checkpoints hold them and the
JAX trainer carries them as state. `swapped(network)` puts the averages into the network
for as long as a `with` block lasts (exports, sample grids, submissions).
"""
from __future__ import annotations

import contextlib

import keras
from keras import ops


def averaged_variables(network: keras.Model) -> list:
    """The variables an average covers: every float variable (not seed-generator states)."""
    return [v for v in network.variables if "float" in str(v.dtype)]


def _host_copy(variable):
    return ops.convert_to_numpy(variable.value).copy()


class WeightAverage(keras.layers.Layer):
    """Shadow weights of one network and the step count they were averaged over."""

    def __init__(self, network: keras.Model, decay: float, start: int = 0, fixed=(), **kwargs):
        super().__init__(name=kwargs.pop("name", "ema"), **kwargs)
        self._fixed = {id(v) for v in fixed}
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema must be 0 (off) or a decay in (0, 1), got {decay}")
        if start < 0:
            raise ValueError(f"ema_start must be 0 or more, got {start}")
        self.decay, self.start = float(decay), int(start)
        # Replicas compute identical averages of mirrored weights: "mean" keeps them in sync.
        self.shadows = [self.add_weight(shape=v.shape, dtype=v.dtype, initializer="zeros", trainable=False,
                                        aggregation="mean", name=f"shadow_{i}")
                        for i, v in enumerate(averaged_variables(network))]
        for shadow, v in zip(self.shadows, averaged_variables(network)):
            shadow.assign(_host_copy(v))  # not v's own buffer: JAX's trainer donates each once
        self.steps = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                     aggregation="only_first_replica", name="steps")
        self.built = True

    def update(self, network: keras.Model) -> None:
        """One train step done: count it and move every shadow toward the network's weights."""
        self.steps.assign(self.steps + 1)
        decay = ops.where(self.steps > self.start, self.decay, 0.0)
        for shadow, v in self._pairs(network):
            d = ops.cast(decay, shadow.dtype)
            shadow.assign(d * shadow + (1.0 - d) * ops.cast(v.value, shadow.dtype))

    def _pairs(self, network: keras.Model) -> list:
        """(shadow, variable) of every averaged variable (not the fixed ones)."""
        return [(s, v) for s, v in zip(self.shadows, averaged_variables(network)) if id(v) not in self._fixed]

    @contextlib.contextmanager
    def swapped(self, network: keras.Model):
        """The averaged weights in `network` inside the block; its own ones back after
        (eagerly, outside any compiled step)."""
        pairs = self._pairs(network)

        def swap():  # through host copies: an eager TF read may alias the buffer it assigns into
            for shadow, v in pairs:
                own, average = _host_copy(v), _host_copy(shadow)
                v.assign(average)
                shadow.assign(own)

        swap()
        try:
            yield network
        finally:
            swap()
