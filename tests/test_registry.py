"""The contract every registered model keeps: it builds at its smallest size, takes
XLA-compiled steps, and a run planned for its budget (`train.epochs = "auto"`: a first plan,
then a re-plan when steps slow down) ends its learning rates where `decay_start` says."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import models
from gan_tpu.callbacks import BudgetGuard
from gan_tpu.models.base import NoiseModel, TranslationModel
from gan_tpu.optimizers import schedule_of
from gan_tpu.plan import Planner
from tests.test_budget import FakeClock, StepTime

SIZE = 32
# Smallest settings for whatever a registered model has (applied where the option exists).
TINY = dict(ngf=4, ndf=4, nef=4, n_blocks=1, latent_dim=8, mc_samples=1, n_critic=2, n_dis=1,
            global_layers=4, local_layers=3, disc_layers=2, pool_size=2, num_patches=8, patch_dim=8,
            nce_layers="0,4", dim=4, n_res=1, mlp_dim=8, d_layers=2, d_scales=2, content_d_layers=0, d_iter=2,
            attention=0, shared_dim=8)


def tiny(name: str, **options):
    defaults = models.defaults(name)
    return models.build(name, image_size=SIZE, **{k: v for k, v in TINY.items() if k in defaults}, **options)


def optimizers_of(model) -> list:
    return list({id(p.optimizer): p.optimizer for p in model.players}.values())


@pytest.mark.parametrize("name", models.names())
def test_every_model_declares_its_kind_and_decays_from_its_registered_decay_start(name):
    model = tiny(name)
    assert isinstance(model, NoiseModel) != isinstance(model, TranslationModel)  # exactly one
    decay_start = models.defaults(name)["decay_start"]
    model.set_total_steps(100)
    for opt in optimizers_of(model):
        assert schedule_of(opt) is not None  # every rate goes through the base's schedule
    # constant until decay_start of the run, then linearly to 0 at its end
    expected = [1.0 if s <= 100 * decay_start else (100 - s) / (100 - 100 * decay_start) for s in (0, 50, 75, 100)]
    np.testing.assert_allclose([model.lr_fraction(s) for s in (0, 50, 75, 100)], expected, atol=1e-6)
    # the planner's call (`plan.py`) on a compiled model decaying from half-way: a re-plan at
    # step 80 to end at 90 continues from the rate at step 80 and still ends at 0 (cut, fastcut
    # and stargan once took one argument here: a TypeError)
    model = tiny(name, decay_start=0.5)
    model.compile(jit_compile=True)  # builds the optimizers and the schedules' state; traces nothing
    model.set_total_steps(100)
    at_80 = model.lr_fraction(80)
    assert at_80 == pytest.approx(0.4, abs=1e-6)
    model.set_total_steps(90, 80)
    assert model.lr_fraction(80) == pytest.approx(at_80, abs=1e-6)
    assert model.lr_fraction(90) == pytest.approx(0.0, abs=1e-6) and model.lr_fraction(85) < at_80


# The XLA planned run compiles every model (8-9 CPU-minutes for the registry): the recipe's
# model in the fast tier, every other one in the slow tier (`make test-slow`).
FAST = {"cyclegan"}


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in models.names()])
def test_every_model_trains_xla_compiled_through_a_planned_and_replanned_run(name):
    keras.utils.set_random_seed(0)
    model = tiny(name, decay_start=0.5)
    model.compile(jit_compile=True)
    rates = {id(opt): float(opt.learning_rate) for opt in optimizers_of(model)}  # the peaks
    clock = FakeClock()
    guard = BudgetGuard(28.0, clock=clock, start=0.0)
    plans = []

    def set_total(steps, at_step=None):
        plans.append((steps, at_step))
        model.set_total_steps(steps, at_step)

    planner = Planner(guard, generation=0.0, steps_per_epoch=5, set_total=set_total, window=2, recent=2)
    rng = np.random.default_rng(0)
    batch = tuple(rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32") for _ in range(2))
    data = tf.data.Dataset.from_tensors(batch).repeat()
    history = model.fit(data, steps_per_epoch=5, epochs=100, verbose=0,
                        callbacks=[StepTime(clock, lambda step: 2.0 if step > 8 else 1.0), guard, planner])
    total = planner.plan.total_steps
    # first plan after 3 steps of 1 s: 3 + int((28 - 3) * 0.98 - 3) = 24 steps; then 2 s a
    # step from step 9 on: re-planned shorter, from the step it was re-planned at
    assert plans[0] == (24, 3) and all(at > 8 for _, at in plans[1:])  # the first plan: made at step 3
    assert planner.replans == len(plans) - 1 >= 1 and total < 24
    assert planner.finished and not guard.stopped and int(model.step.numpy()) == total
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    # the decay ended with the run: every optimizer's rate is 0 after the last step, and was
    # falling through it (the re-plan bent it, never jumped it back up)
    assert model.lr_fraction(total) == 0.0 and 0.0 < model.lr_fraction(total - 1) <= 0.5
    for opt in optimizers_of(model):
        assert rates[id(opt)] > 0 and float(opt.learning_rate) == 0.0
    if isinstance(model, NoiseModel):
        assert model.sample(0, 2).shape == (2, SIZE, SIZE, 3)
    else:
        assert model.translator(batch[1]).shape == (2, SIZE, SIZE, 3)
