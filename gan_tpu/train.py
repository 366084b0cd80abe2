"""`gan-tpu train`: build the strategy, data and model from a pipeline config, then fit.

A run directory holds `config.toml` (the resolved config), `checkpoints/`, `samples/`
(one PNG grid per epoch), `history.csv`, `plots.png` and, at the end, `generator.keras`;
with `[eval]`, `eval/` (scores.csv, TensorBoard scalars) and `generator_last.keras`.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from gan_tpu import budget, checkpoints
from gan_tpu import config as config_lib
from gan_tpu import data, models, plan, runtime, translator
from gan_tpu.callbacks import BudgetGuard, Checkpointer, NanGuard, PlotWriter, SampleGrid
from gan_tpu.errors import UserError
from gan_tpu.metrics.callback import MiFIDCallback

log = logging.getLogger("gan_tpu")


@dataclasses.dataclass
class Run:
    """Everything a run is made of, built once inside the strategy's scope."""

    cfg: dict
    strategy: tf.distribute.Strategy  # or runtime.JaxDevices on Keras' JAX backend
    model: keras.Model  # an AdversarialModel
    checkpoint: dict  # name -> variable: what a checkpoint holds (gan_tpu.checkpoints)
    manager: checkpoints.CheckpointManager
    epoch: tf.Variable
    plan_state: tf.Variable  # [planned steps, s/step, budget s used, budget s]: gan_tpu.plan, checkpointed
    stop_reason: str | None = None  # why training ended early (budget), if it did
    diverged: str | None = None     # which loss went non-finite at which step, if one did
    planned_steps: int = 0          # the run's planned (or fixed) step count, when budgeted

    @property
    def step(self) -> tf.Variable:
        return self.model.players[0].optimizer.iterations

    @property
    def out_dir(self) -> str:
        return self.cfg["output"]["dir"]


def resolve_sources(cfg: dict) -> tuple[data.Source, data.Source]:
    """The Monet and photo sources named by `[data]`, with errors naming the key."""
    sources = []
    for domain in data.DOMAINS:
        try:
            sources.append(data.resolve(cfg["data"][domain], domain))
        except UserError as err:
            raise UserError(f"data.{domain}: {err}") from None
    return sources[0], sources[1]


def build_model(cfg: dict, strategy: tf.distribute.Strategy):
    """The configured model, created and compiled inside `strategy.scope()`."""
    jit = cfg["train"]["jit_compile"]
    if jit == "auto":  # JAX always: an uncompiled JAX step runs op by op
        jit = runtime.platform(strategy) != "cpu" or keras.backend.backend() == "jax"
    with strategy.scope():
        try:
            model = models.build(cfg["model"]["name"], image_size=cfg["data"]["image_size"],
                                 **config_lib.model_options(cfg))
        except ValueError as err:  # an option value the model cannot use
            raise UserError(f"model: {err}") from None
        model.compile(jit_compile=jit)
    return model


def make_run(cfg: dict, strategy: tf.distribute.Strategy | None = None) -> Run:
    """Strategy, precision, model and checkpoint for a config (no data is read here)."""
    backend = cfg["runtime"].get("backend", "auto")
    if backend not in ("auto", keras.backend.backend()):
        raise UserError(f"runtime.backend: {backend!r}, but Keras runs on {keras.backend.backend()!r} in "
                        f"this process (set KERAS_BACKEND={backend} before Keras is imported)")
    if strategy is None:
        strategy = runtime.get_strategy(cfg["runtime"]["device"])
    precision = cfg["runtime"]["precision"]
    runtime.set_precision(runtime.default_precision(strategy) if precision == "auto" else precision)
    # Odd, so never 0: with a global seed of 0, tf.data's shuffle cannot take the tensor
    # seeds that make each epoch's stream reproducible (random_seed.get_seed compares to 0).
    keras.utils.set_random_seed(2 * cfg["train"]["seed"] + 1)
    model = build_model(cfg, strategy)
    with strategy.scope():
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        plan_state = tf.Variable(tf.zeros([4], tf.float64), trainable=False, name="plan")
    checkpoint = checkpoints.model_variables(model, epoch)
    checkpoint["plan"] = plan_state
    manager = checkpoints.CheckpointManager(
        checkpoint, os.path.join(cfg["output"]["dir"], "checkpoints"),
        max_to_keep=cfg["train"]["keep_checkpoints"])
    spread_seeds(model, strategy)
    return Run(cfg, strategy, model, checkpoint, manager, epoch, plan_state)


def spread_seeds(model, strategy) -> None:
    """Give each replica its own random stream (a noise model's training latents).

    A seed generator made in `strategy.scope()` has one copy of its state [s, n] per
    replica, all equal: every replica would draw the same latents. Replica r's copy becomes
    [s + r, n]. Checkpoints hold replica 0's copy and restoring sets every copy to it, so
    this runs after every build and every restore.
    """
    gens = list(getattr(model, "seed_generators", {}).values())
    if not gens or strategy.num_replicas_in_sync == 1 or keras.backend.backend() != "tensorflow":
        return

    @tf.function
    def shift():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        for gen in gens:
            state = gen.state.value
            gen.state.assign(state + tf.cast(tf.stack([replica, 0]), state.dtype))

    strategy.run(shift)


def restore(run: Run, path: str | None = None) -> str | None:
    """Restore the latest checkpoint (or `path`); returns what was restored, or None."""
    restored = run.manager.restore(path, repr(run.cfg["model"]["name"]))  # None: the newest readable
    if restored is None:
        return None
    spread_seeds(run.model, run.strategy)  # the restore gave every replica replica 0's seeds
    return restored


def sample_photos(source: data.Source, count: int, image_size: int, source_size: int) -> np.ndarray:
    """The first `count` photos, resized to the training size, as floats in [-1, 1]."""
    batch = data.to_float(next(iter(data.source_images(source, source_size).batch(count))))
    if image_size != source_size:
        batch = tf.image.resize(batch, [image_size, image_size], method="area")
    return batch.numpy()


def train(cfg: dict, *, resume: bool = False, callbacks=(), verbose: int | str = "auto",
          strategy: tf.distribute.Strategy | None = None, use_budget: bool = True,
          clock=None, extractor=None) -> Run:
    """Train the pipeline `cfg`; returns the Run (model, checkpoint) when done or stopped.

    Training stops early, with a checkpoint, when the budget guard says generation would
    no longer fit in `[budget] hours`; `train.epochs = "auto"` plans the run's length for
    the budget instead (gan_tpu.plan). A non-finite loss stops it and restores the last
    good checkpoint (`Run.diverged` says which loss at which step). `clock` (seconds) and
    `extractor` (for `[eval]`) replace the real ones in tests.
    """
    out = cfg["output"]["dir"]
    auto = cfg["train"]["epochs"] == "auto"
    if auto and not use_budget:
        raise UserError('train.epochs = "auto" plans the run for its budget: it needs the budget guard')
    monet, photo = resolve_sources(cfg)
    if cfg["data"]["verify"]:
        counts = [data.verify_source(s, cfg["data"]["source_size"]) for s in (monet, photo)]
    else:
        counts = [data.count_images(s) for s in (monet, photo)]
    held_out = cfg["eval"]["photos"] if cfg["eval"]["every"] else 0
    if held_out >= counts[1]:
        raise UserError(f"eval.photos: holding out {held_out} of {counts[1]} photos leaves none to train on")
    ckpt_dir = os.path.join(out, "checkpoints")
    if not resume and tf.io.gfile.exists(ckpt_dir) and tf.train.latest_checkpoint(ckpt_dir):
        raise UserError(f"{out}: holds checkpoints of an earlier run; pass --resume to continue "
                        f"it, or choose another --out")
    os.makedirs(out, exist_ok=True)
    run = make_run(cfg, strategy)
    if resume:
        restored = restore(run)
        log.info("resumed from %s", restored or "nothing (no checkpoint yet)")
    config_lib.save(cfg, os.path.join(out, "config.toml"))

    global_batch = runtime.global_batch_size(cfg["train"]["batch_size"], run.strategy)
    steps = cfg["train"]["steps_per_epoch"] or data.steps_per_epoch(counts[0], counts[1] - held_out, global_batch)
    first_epoch = int(run.epoch.numpy())
    first_step = int(run.step.numpy())
    done_in_epoch = first_step - first_epoch * steps
    if not 0 <= done_in_epoch < steps:  # a run resumed with another steps_per_epoch
        done_in_epoch = 0
    saved_plan = run.plan_state.numpy()
    if auto:
        resumed = plan.Plan(int(saved_plan[0]), float(saved_plan[1]), first_step) if saved_plan[0] > 0 else None
        if resumed is not None and first_step >= resumed.total_steps:
            log.info("all %d planned steps already trained", resumed.total_steps)
            return run
    else:
        resumed = None
        epochs = cfg["train"]["epochs"]
        if hasattr(run.model, "set_total_steps"):  # LR schedules that decay to 0 at the run's end
            run.model.set_total_steps(epochs * steps)
        if first_epoch >= epochs:
            log.info("all %d epochs already trained", epochs)
            return run

    stream = dict(global_batch=global_batch, image_size=cfg["data"]["image_size"],
                  source_size=cfg["data"]["source_size"], augment_images=cfg["data"]["augment"],
                  rot90=cfg["data"]["rot90"], cache=cfg["data"]["cache"],
                  shuffle_buffer=cfg["data"]["shuffle_buffer"], seed=cfg["train"]["seed"], steps=steps)
    photos = sample_photos(photo, cfg["train"]["samples"], cfg["data"]["image_size"],
                           cfg["data"]["source_size"]) if cfg["train"]["samples"] else None
    evaluator = make_evaluator(run, photo, held_out, extractor) if held_out else None
    train_photo = data.without_first(photo, held_out) if held_out else photo
    nan_guard = NanGuard(initial_step=first_step)
    planner = None
    if use_budget:
        guard, planner = budget_guard(run, counts[1], steps, first_step, resumed=resumed,
                                      used_s=float(saved_plan[2]) if resumed else 0.0,
                                      clock=clock, evaluator=evaluator)
    checkpointer = Checkpointer(run.manager, run.epoch, run.step, cfg["train"]["checkpoint_every"],
                                healthy=lambda: not nan_guard.triggered,
                                before_save=(lambda: run.plan_state.assign(planner.state())) if planner else None)
    history = keras.callbacks.CSVLogger(os.path.join(out, "history.csv"), append=resume)
    all_callbacks = [nan_guard, checkpointer]
    if photos is not None:
        all_callbacks.insert(1, SampleGrid(photos, os.path.join(out, "samples")))
    if evaluator is not None:
        all_callbacks.insert(1, evaluator)
    if planner is not None:
        all_callbacks[:0] = [guard, planner]
    all_callbacks += [history, PlotWriter(out), *callbacks]
    if evaluator is not None and not evaluator.eval_s:
        evaluator.warm_up(first_epoch)
    if planner is not None:
        planner.generation.measure()

    def last_epoch() -> int:  # the epoch count fit runs to: planned, or one more until planned
        if not auto:
            return cfg["train"]["epochs"]
        if planner.plan is None:
            return epoch + 1
        return max(epoch + 1, math.ceil(planner.plan.total_steps / steps))

    log.info("training %s: %s x %d steps, global batch %d on %d replica(s)", cfg["model"]["name"],
             "planned epochs" if auto else f"{cfg['train']['epochs']} epochs", steps, global_batch,
             run.strategy.num_replicas_in_sync)
    epoch, skip = first_epoch, done_in_epoch
    try:
        while epoch < last_epoch():
            end = epoch + 1 if skip else last_epoch()  # a run resumed mid-epoch first ends it
            ds = data.training_stream(monet, train_photo, first_epoch=epoch, epochs=end, skip_steps=skip, **stream)
            run.model.fit(ds, epochs=end, initial_epoch=epoch, steps_per_epoch=steps - skip,
                          callbacks=all_callbacks, verbose=verbose, shuffle=False)
            history.append = True  # the next fit adds to history.csv
            if run.model.stop_training:
                break
            epoch, skip = end, 0
    except KeyboardInterrupt:
        saved = checkpointer.save()
        log.info("interrupted at step %d; %s; continue with --resume", int(run.step.numpy()),
                 f"saved {saved}" if saved else "checkpoint already saved")
        raise
    if nan_guard.triggered:
        run.diverged = nan_guard.message()
        restored = restore(run)
        log.error("%s; restored %s", run.diverged, restored or "nothing: no good checkpoint yet")
        if restored is None:
            raise UserError(f"{run.diverged}, before any checkpoint: nothing to keep "
                            f"(try a lower model.lr)")
    if planner is not None:
        run.planned_steps = planner.planned_steps()
        if guard.stopped:
            run.stop_reason = guard.stop_reason
        done = int(run.step.numpy())
        if run.planned_steps:
            log.info("plan: %d of %d planned steps done%s", done, run.planned_steps, _lr_note(run.model, done))
        else:
            log.info("plan: none made: training stopped after %d step(s), before %d were timed",
                     done, planner.window + 1)
    export_translator(run, evaluator)
    return run


def _lr_note(model, step: int) -> str:
    if not hasattr(model, "lr_fraction") or step < 1:
        return ""
    return f"; learning rate at the last step {100 * model.lr_fraction(step - 1):.2f} % of its peak"


def make_evaluator(run: Run, photo: data.Source, count: int, extractor=None) -> MiFIDCallback:
    """`[eval]`: MiFID of the first `count` photos (held out of training) every few epochs;
    each new best generator is saved as `generator_best.keras`."""
    from gan_tpu.metrics.extractors import get_extractor
    from gan_tpu.metrics.score import load_reference

    cfg = run.cfg
    extractor = extractor or get_extractor(cfg["eval"]["extractor"], strategy=None)
    reference, _ = load_reference(cfg["eval"]["reference"] or cfg["data"]["monet"], extractor,
                                    cache_dir=os.path.join(run.out_dir, "eval"), log=log.info)
    photos = sample_photos(photo, count, cfg["data"]["image_size"], cfg["data"]["source_size"])
    return MiFIDCallback(photos, reference, extractor, os.path.join(run.out_dir, "eval"),
                         every=cfg["eval"]["every"], translator=run.model.translator,
                         painting=run.model.painting_weights, save_best=False, on_best=lambda epoch, scores: _save_best(run))


def _save_best(run: Run) -> None:
    with run.model.painting_weights():  # the weights that were just scored
        save_network(run.model.exported, os.path.join(run.out_dir, BEST))


def submission_count(cfg: dict, photo_count: int) -> int:
    """How many images the run's submission will hold (for the budget's reserve)."""
    sub = cfg["submission"]
    if sub["count"]:
        return sub["count"]
    return photo_count if sub["allow_any_count"] else min(max(photo_count, 7000), 10000)


def budget_guard(run: Run, photo_count: int, steps_per_epoch: int, initial_step: int = 0, *,
                 resumed: plan.Plan | None = None, used_s: float = 0.0, clock=None,
                 evaluator: MiFIDCallback | None = None):
    """The run's budget guard and planner: the guard's reserve is the measured generation
    time (real generation batches, timed) plus the evaluations still due."""
    cfg = run.cfg
    hours = cfg["budget"]["hours"] or budget.default_budget_hours(run.strategy)
    from gan_tpu.submission.generate import make_generation_timer

    per_replica = cfg["submission"]["batch_size"]
    timer, global_batch = make_generation_timer(
        translator.painter(run.model), strategy=run.strategy,
        batch_size=per_replica * run.strategy.num_replicas_in_sync, quality=cfg["submission"]["quality"])
    clock_kw = {} if clock is None else {"clock": clock}
    generation = budget.GenerationReserve(timer, batch_size=global_batch,
                                          count=submission_count(cfg, photo_count), **clock_kw)
    start = None
    if used_s:  # a resumed plan: count the budget time the earlier sessions used
        now = (clock or time.monotonic)()
        start = now - used_s - (budget.run_elapsed() if clock is None else 0.0)
    guard = BudgetGuard(hours * 3600.0, start=start, initial_step=initial_step, **clock_kw)
    auto = cfg["train"]["epochs"] == "auto"
    set_total = getattr(run.model, "set_total_steps", lambda steps, at_step=None: None)
    planner = plan.Planner(
        guard, generation=generation, steps_per_epoch=steps_per_epoch, set_total=set_total,
        fixed_total=None if auto else cfg["train"]["epochs"] * steps_per_epoch, plan=resumed,
        eval_every=cfg["eval"]["every"] if evaluator else 0,
        eval_s=(lambda: evaluator.eval_s) if evaluator else (lambda: 0.0),
        paused_s=(lambda: evaluator.seconds) if evaluator else (lambda: 0.0))
    guard.reserve = lambda: planner.reserve_s(guard.step)
    return guard, planner


BEST, LAST = "generator_best.keras", "generator_last.keras"


def save_network(network: keras.Model, path: str) -> str:
    """`network.save(path)`, atomically."""
    tmp = path[: -len(".keras")] + ".tmp.keras"
    network.save(tmp)
    os.replace(tmp, path)
    return path


def export_translator(run: Run, evaluator: MiFIDCallback | None = None) -> str:
    """Save the photo -> Monet network (a noise model's z -> Monet generator) as
    `generator.keras` in the run dir (atomically). With `[eval]`, that is the best one by
    MiFID, the last one goes to `generator_last.keras`, and the run's network is given the
    best weights, so what is generated next comes from the best."""
    final = os.path.join(run.out_dir, "generator.keras")
    best = os.path.join(run.out_dir, BEST)
    if evaluator is None or evaluator.best_epoch is None or not os.path.isfile(best):
        with run.model.painting_weights():  # the EMA generator when the model averages one
            return save_network(run.model.exported, final)
    with run.model.painting_weights():
        save_network(run.model.exported, os.path.join(run.out_dir, LAST))
    best_weights = keras.models.load_model(best, compile=False).get_weights()
    run.model.exported.set_weights(best_weights)
    log.info("eval: exporting the generator of epoch %d (MiFID %.2f) as generator.keras; the last "
             "one as %s", evaluator.best_epoch, evaluator.best, LAST)
    return save_network(run.model.exported, final)
