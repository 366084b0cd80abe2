"""`gan-tpu train`: build the strategy, data and model from a pipeline config, then fit.

A run directory holds `config.toml` (the resolved config), `checkpoints/`, `samples/`
(one PNG grid per epoch), `history.csv` and, at the end, `generator.keras`.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from gan_tpu import budget, checkpoints
from gan_tpu import config as config_lib
from gan_tpu import data, models, runtime, translator
from gan_tpu.callbacks import Checkpointer, SampleGrid
from gan_tpu.errors import UserError

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
    stop_reason: str | None = None  # why training ended early (budget), if it did
    diverged: str | None = None     # which loss went non-finite at which step, if one did

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
    checkpoint = checkpoints.model_variables(model, epoch)
    manager = checkpoints.CheckpointManager(
        checkpoint, os.path.join(cfg["output"]["dir"], "checkpoints"),
        max_to_keep=cfg["train"]["keep_checkpoints"])
    spread_seeds(model, strategy)
    return Run(cfg, strategy, model, checkpoint, manager, epoch)


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
          strategy: tf.distribute.Strategy | None = None, use_budget: bool = True) -> Run:
    """Train the pipeline `cfg`; returns the Run (model, checkpoint) when done or stopped.

    Training stops early, with a checkpoint, when the budget guard says generation would
    no longer fit in `[budget] hours`; a non-finite loss stops it and restores the last
    good checkpoint (`Run.diverged` says which loss at which step).
    """
    out = cfg["output"]["dir"]
    monet, photo = resolve_sources(cfg)
    if cfg["data"]["verify"]:
        counts = [data.verify_source(s, cfg["data"]["source_size"]) for s in (monet, photo)]
    else:
        counts = [data.count_images(s) for s in (monet, photo)]
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
    steps = cfg["train"]["steps_per_epoch"] or data.steps_per_epoch(*counts, global_batch)
    epochs = cfg["train"]["epochs"]
    if hasattr(run.model, "set_total_steps"):  # LR schedules that decay to 0 at the run's end
        run.model.set_total_steps(epochs * steps)
    first_epoch = int(run.epoch.numpy())
    done_in_epoch = int(run.step.numpy()) - first_epoch * steps
    if not 0 <= done_in_epoch < steps:  # a run resumed with another steps_per_epoch
        done_in_epoch = 0
    if first_epoch >= epochs:
        log.info("all %d epochs already trained", epochs)
        return run

    stream = dict(global_batch=global_batch, image_size=cfg["data"]["image_size"],
                  source_size=cfg["data"]["source_size"], augment_images=cfg["data"]["augment"],
                  rot90=cfg["data"]["rot90"], cache=cfg["data"]["cache"],
                  shuffle_buffer=cfg["data"]["shuffle_buffer"], seed=cfg["train"]["seed"], steps=steps)
    photos = sample_photos(photo, cfg["train"]["samples"], cfg["data"]["image_size"],
                           cfg["data"]["source_size"]) if cfg["train"]["samples"] else None
    nan_guard = budget.NanGuard(initial_step=int(run.step.numpy()))
    checkpointer = Checkpointer(run.manager, run.epoch, run.step, cfg["train"]["checkpoint_every"],
                                healthy=lambda: not nan_guard.triggered)
    all_callbacks = [nan_guard, checkpointer,
                     keras.callbacks.CSVLogger(os.path.join(out, "history.csv"), append=resume)]
    if photos is not None:
        all_callbacks.insert(1, SampleGrid(photos, os.path.join(out, "samples")))
    guard = budget_guard(run, counts[1], initial_step=int(run.step.numpy())) if use_budget else None
    if guard is not None:
        all_callbacks.insert(0, guard)
    all_callbacks += list(callbacks)

    # A run resumed mid-epoch first finishes that epoch, then trains the rest.
    phases = []
    if done_in_epoch:
        phases.append((first_epoch, first_epoch + 1, steps - done_in_epoch, done_in_epoch))
        first_epoch += 1
    if first_epoch < epochs:
        phases.append((first_epoch, epochs, steps, 0))
    log.info("training %s: %d epochs x %d steps, global batch %d on %d replica(s)",
             cfg["model"]["name"], epochs, steps, global_batch, run.strategy.num_replicas_in_sync)
    try:
        for start, end, phase_steps, skip in phases:
            ds = data.training_stream(monet, photo, first_epoch=start, epochs=end, skip_steps=skip, **stream)
            run.model.fit(ds, epochs=end, initial_epoch=start, steps_per_epoch=phase_steps,
                          callbacks=all_callbacks, verbose=verbose, shuffle=False)
            if run.model.stop_training:
                break
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
    if guard is not None and guard.stopped:
        run.stop_reason = guard.stop_reason
    export_translator(run)
    return run


def submission_count(cfg: dict, photo_count: int) -> int:
    """How many images the run's submission will hold (for the budget's reserve)."""
    sub = cfg["submission"]
    if sub["count"]:
        return sub["count"]
    return photo_count if sub["allow_any_count"] else min(max(photo_count, 7000), 10000)


def budget_guard(run: Run, photo_count: int, initial_step: int = 0) -> budget.BudgetGuard:
    """The run's budget guard, its reserve measured by timing real generation batches."""
    cfg = run.cfg
    hours = cfg["budget"]["hours"] or budget.default_budget_hours(run.strategy)
    from gan_tpu.submission.generate import make_generation_timer

    per_replica = cfg["submission"]["batch_size"]
    timer, global_batch = make_generation_timer(
        translator.painter(run.model), strategy=run.strategy,
        batch_size=per_replica * run.strategy.num_replicas_in_sync, quality=cfg["submission"]["quality"])
    reserve = budget.GenerationReserve(timer, batch_size=global_batch,
                                       count=submission_count(cfg, photo_count))
    return budget.BudgetGuard(hours * 3600.0, reserve=reserve, initial_step=initial_step)


def export_translator(run: Run) -> str:
    """Save the photo -> Monet network (a noise model's z -> Monet generator) as
    `generator.keras` in the run dir (atomically)."""
    final = os.path.join(run.out_dir, "generator.keras")
    tmp = os.path.join(run.out_dir, "generator.tmp.keras")
    with run.model.painting_weights():  # the EMA generator when the model averages one
        run.model.exported.save(tmp)
    os.replace(tmp, final)
    return final

