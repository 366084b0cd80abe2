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

from gan_tpu import optimizers


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
    """Base for GANs trained player by player; subclasses define `make_players` and `loss_names`.

    Every model is either a :class:`TranslationModel` (paints photos: `translator`) or a
    :class:`NoiseModel` (paints from latents: `sample`); callers tell them apart by class.
    Optional capabilities are declared here, never probed: `has_fixed_style` (MUNIT, DRIT++:
    `set_style(seed)` picks the one style a run paints in).
    """

    loss_names: tuple[str, ...] = ()
    has_fixed_style: bool = False

    def __init__(self, *, decay_start: float = 1.0, total_steps: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= decay_start <= 1.0:
            raise ValueError(f"decay_start must be a fraction of training in [0, 1], got {decay_start}")
        # Every model's LR schedule (see `lr_schedule`): constant until `decay_start` of the
        # run, then linearly to 0 at its end; `total_steps` > 0 fixes the run's length.
        self.decay_start = float(decay_start)
        self.fixed_total_steps = int(total_steps)
        self._schedules: list[optimizers.LinearDecay] = []
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

        self.ema = WeightAverage(self.exported, decay, start, fixed=self.fixed_variables, name="ema")

    @property
    def fixed_variables(self) -> list:
        """Variables of the exported network set for generation, never trained (EMA leaves
        them alone): MUNIT's and DRIT++'s chosen style code."""
        return []

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

    # -- the learning-rate contract: every model's rates go through `lr_schedule` ------------
    def lr_schedule(self, lr) -> optimizers.LinearDecay:
        """`lr` (a float, or a Keras schedule such as ArtGAN's exponential decay) under the
        run's linear decay: give it to one optimizer. `compile` counts that optimizer's
        updates per train step and keeps the decay's shape in its state (checkpointed)."""
        schedule = optimizers.LinearDecay(lr, self.decay_start, self.fixed_total_steps)
        self._schedules.append(schedule)
        return schedule

    @property
    def schedule_variables(self) -> list:
        """The decay-shape variables `compile` added to the optimizers (checkpoints of
        earlier versions may lack them: they then keep the shape the run sets)."""
        return [s.segment for s in self._schedules if s.segment is not None]

    def _optimizer_of(self, schedule):
        for player in self.players:
            if optimizers.schedule_of(player.optimizer) is schedule:
                return player.optimizer
        raise ValueError(f"{type(self).__name__}: an lr_schedule no player's optimizer uses")

    def _count_updates(self) -> None:
        """Each schedule counts train steps: its optimizer's updates per step divide them."""
        for schedule in self._schedules:
            opt = self._optimizer_of(schedule)
            schedule.updates_per_step = sum(p.steps for p in self._players if p.optimizer is opt)

    def set_total_steps(self, steps: int, at_step: int | None = None) -> None:
        """The run's length in train steps, for every LR decay (ignored when the
        `total_steps` option fixes it); with `at_step`, a re-plan mid-run that continues
        from the rate at that step."""
        if self.fixed_total_steps:
            return
        for schedule in self._schedules:
            if at_step is None:
                schedule.set_total_steps(steps)
            else:
                schedule.replan(steps, at_step)

    def lr_fraction(self, step: int) -> float:
        """The first schedule's learning rate at train step `step`, as a fraction of its peak."""
        return self._schedules[0].fraction(step) if self._schedules else 1.0

    @property
    def players(self) -> list[Player]:
        if self._players is None:
            self._players = self.make_players()
            self._count_updates()
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

    def set_style(self, seed: int) -> None:
        """Models with `has_fixed_style`: paint every photo in the style drawn from `seed`."""
        raise NotImplementedError(f"{type(self).__name__} has no fixed style")

    @property
    def seed_generators(self) -> dict:
        """Random state the train step draws from (latents, penalty mixes), by attribute name:
        the trainer checkpoints it and gives each replica its own stream."""
        return {k: v for k, v in vars(self).items()
                if isinstance(v, keras.random.SeedGenerator) and hasattr(v, "state") and k[0] != "_"}

    @property
    def exported(self) -> keras.Model:
        """The network saved as a run's `generator.keras` (and averaged by EMA)."""
        raise NotImplementedError

    def compile(self, jit_compile=True, **kwargs):
        """Compile and build every optimizer now: lazily built optimizers break under
        MirroredStrategy with a custom train_step (keras-team/keras#23085)."""
        from gan_tpu.optimizers import scale_losses

        scale_losses(self.players)  # mixed_float16: every player's optimizer scales its loss
        for player in self.players:
            player.optimizer.build(player.variables)
        for schedule in self._schedules:  # before JAX's optimizer wrapper lists the variables
            schedule.attach(self._optimizer_of(schedule))
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


class TranslationModel(AdversarialModel):
    """A photo -> painting model: submissions translate photos with `translator`."""

    @property
    def exported(self) -> keras.Model:
        return self.translator


class NoiseModel(AdversarialModel):
    """A noise -> painting model: submissions are `sample(batch_index, batch_size)`, from
    latents of size `latent_dim` through `generator` (the exported network); no translator."""

    latent_dim: int = 0

    @property
    def exported(self) -> keras.Model:
        return self.generator

    @property
    def translator(self):
        raise NotImplementedError(f"{type(self).__name__} paints from noise: use sample(), not a translator")

    def sample(self, batch_index, batch_size: int):
        """`batch_size` paintings in [-1, 1] at the training size, from latents seeded by the
        integer (tensor) `batch_index` alone: the same index gives the same images."""
        raise NotImplementedError

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)
