"""The shared adversarial base: a model declares players; one train_step trains them all.

A player is a set of networks with one optimizer and one loss. Each step trains the players
in their declared order; a player's loss may leave tensors in `context` for the players after
it (CycleGAN's generators leave their fakes for the discriminators, as in Zhu et al.).
Everything backend-specific (taking gradients, applying optimizers) is in `gan_tpu.backends`.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable

import keras


@dataclasses.dataclass
class Player:
    """Networks trained together by one optimizer against one loss.

    `loss(batch, context, training)` returns (total loss, {name: scalar part to log}).
    `steps` > 1 updates this player that many times per batch (WGAN-GP's n_critic).
    """

    name: str
    networks: list[keras.Model]
    optimizer: keras.optimizers.Optimizer
    loss: Callable
    steps: int = 1

    @property
    def variables(self) -> list:
        return [v for net in self.networks for v in net.trainable_variables]


class AdversarialModel(keras.Model):
    """Base for GANs trained player by player; subclasses define `make_players` and `loss_names`."""

    loss_names: tuple[str, ...] = ()
    # What the model makes submissions from: "translation" models turn photos into paintings
    # (`translator`); "noise" models paint from latent vectors of size `latent_dim`
    # (`sample`, with the exported `generator`), and have no translator.
    kind: str = "translation"
    latent_dim: int = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._players: list[Player] | None = None
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.loss_names}
        self.ema = None  # a gan_tpu.ema.WeightAverage of `exported` once `use_ema` is called
        # Train steps done, counted by the model itself (checkpointed): a player's optimizer
        # may update more than once per step, or not at all in some steps.
        self.step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                    aggregation="only_first_replica", name="step")

    def use_ema(self, decay: float, start: int = 0) -> None:
        """Average the exported network's weights over the train steps after `start`
        (`model.ema` / `model.ema_start` of every model, see `registry.build`)."""
        from gan_tpu.ema import WeightAverage

        self.ema = WeightAverage(self.exported, decay, start, name="ema")

    def after_step(self) -> None:
        """Called by the trainer once per train step, after every player's update."""
        self.step.assign(self.step + 1)
        if self.ema is not None:
            self.ema.update(self.exported)

    @contextlib.contextmanager
    def painting_weights(self):
        """The weights a run paints with (exports, sample grids, submissions) inside the
        block: the EMA weights when the model averages them, else the trained ones."""
        if self.ema is None:
            yield self
        else:
            with self.ema.swapped(self.exported):
                yield self

    def make_players(self) -> list[Player]:
        raise NotImplementedError

    @property
    def players(self) -> list[Player]:
        if self._players is None:
            self._players = self.make_players()
        return self._players

    @property
    def networks(self) -> dict[str, keras.Model]:
        """Every network by attribute name (for checkpoints and exports)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, keras.Model) and k[0] != "_"}

    @property
    def translator(self) -> keras.Model:
        """The network that turns a photo batch in [-1, 1] into paintings (for submissions)."""
        raise NotImplementedError

    def sample_columns(self, photos) -> list:
        """The sample grid's translations of `photos`, one batch per column (MUNIT: one per style)."""
        return [self.translator(photos, training=False)]

    def sample(self, batch_index, batch_size: int):
        """Noise models: `batch_size` paintings in [-1, 1] at the training size, from latents
        seeded by the integer (tensor) `batch_index` alone: the same index gives the same images."""
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind} model: it has no sample()")

    @property
    def seed_generators(self) -> dict:
        """Random state the train step draws from (latents, penalty mixes), by attribute name:
        the trainer checkpoints it and gives each replica its own stream."""
        return {k: v for k, v in vars(self).items()
                if isinstance(v, keras.random.SeedGenerator) and hasattr(v, "state") and k[0] != "_"}

    @property
    def exported(self) -> keras.Model:
        """The network saved as a run's `generator.keras`: the translator, or a noise model's generator."""
        return self.generator if self.kind == "noise" else self.translator

    def compile(self, jit_compile=True, **kwargs):
        """Compile and build every optimizer now: lazily built optimizers break under
        MirroredStrategy with a custom train_step (keras-team/keras#23085)."""
        from gan_tpu.optimizers import scale_losses

        scale_losses(self.players)  # mixed_float16: every player's optimizer scales its loss
        for player in self.players:
            player.optimizer.build(player.variables)
        if hasattr(self, "attach_schedules"):  # before JAX's optimizer wrapper lists the variables
            self.attach_schedules()
        if keras.backend.backend() == "jax":  # JAX state carries only model.optimizer's variables
            from gan_tpu.backends.jax import players_optimizer

            kwargs.update(optimizer=players_optimizer(self), auto_scale_loss=False)
        super().compile(jit_compile=jit_compile, **kwargs)
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    def track(self, parts: dict) -> dict:
        for name, value in parts.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    def train_step(self, *args):
        """`(data)` on TensorFlow; `(state, data)` -> (logs, state) on JAX (stateless)."""
        from gan_tpu.backends import train_step

        return train_step(self, *args)

    def call(self, inputs, training=False):
        return self.translator(inputs, training=training)
