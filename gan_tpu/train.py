"""`gan-tpu train`: the data, the callbacks and the fit loop of a pipeline config.

The run and its directory (model, checkpoints, exports) are gan_tpu.runs'; the time kept
back for generation is measured by what `generation` gives (gan_tpu.runs' real one by default).
"""
from __future__ import annotations

import logging
import math
import os
import time

import numpy as np
import tensorflow as tf

from gan_tpu import budget, data, distributed, plan, run_logs, runs, runtime
from gan_tpu.callbacks import BudgetGuard, Checkpointer, NanGuard, PlotWriter, SampleGrid
from gan_tpu.errors import UserError
from gan_tpu.metrics.callback import MiFIDCallback
from gan_tpu.progress import EpochLines, counted, is_terminal

log = logging.getLogger("gan_tpu")


def resolve_sources(cfg: dict) -> tuple[data.Source, data.Source]:
    """The Monet and photo sources named by `[data]`, with errors naming the key."""
    sources = []
    for domain in data.DOMAINS:
        try:
            sources.append(data.resolve(cfg["data"][domain], domain))
        except UserError as err:
            raise UserError(f"data.{domain}: {err}") from None
    return sources[0], sources[1]


def sample_photos(source: data.Source, count: int, image_size: int, source_size: int) -> np.ndarray:
    """The first `count` photos, resized to the training size, as floats in [-1, 1]."""
    batch = data.to_float(next(iter(data.source_images(source, source_size).batch(count))))
    if image_size != source_size:
        batch = tf.image.resize(batch, [image_size, image_size], method="area")
    return batch.numpy()


def train(cfg: dict, *, resume: bool = False, callbacks=(), verbose: int | str = "auto",
          strategy: tf.distribute.Strategy | None = None, use_budget: bool = True,
          clock=None, extractor=None, generation=runs.generation_reserve) -> runs.Run:
    """Train the pipeline `cfg`; returns the Run (model, checkpoint) when done or stopped.

    Training stops early, with a checkpoint, when the budget guard says generation would
    no longer fit in `[budget] hours`; `train.epochs = "auto"` plans the run's length for
    the budget instead (gan_tpu.plan). `generation(run, photo_count, **clock)` gives the
    generation reserve (a gan_tpu.budget.GenerationReserve, measured before training). A
    non-finite loss stops training and restores the last good checkpoint (`Run.diverged`
    says which loss at which step). `clock` (seconds) and `extractor` (for `[eval]`)
    replace the real ones in tests. `verbose` "auto": Keras's bar on a terminal, else
    one plain line per epoch (gan_tpu.progress).
    """
    cfg = distributed.local_config(cfg, resume)  # past one process: process 0 alone writes the run dir
    clock = distributed.one_clock(clock, budget.run_elapsed)  # past one process: process 0's clock
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
    run = runs.start(cfg, resume=resume, strategy=strategy)

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
        run.model.set_total_steps(epochs * steps)  # LR schedules that decay to 0 at the run's end
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
        reserve = generation(run, counts[1], **({} if clock is None else {"clock": clock}))
        guard, planner = budget_guard(run, reserve, steps, first_step, resumed=resumed,
                                      used_s=float(saved_plan[2]) if resumed else 0.0,
                                      clock=clock, evaluator=evaluator)
    checkpointer = Checkpointer(run.manager, run.epoch, run.step, cfg["train"]["checkpoint_every"],
                                healthy=lambda: not nan_guard.triggered,
                                before_save=(lambda: run.plan_state.assign(planner.state())) if planner else None)
    history = run_logs.HistoryCSV(os.path.join(out, "history.csv"), append=resume)
    all_callbacks = [nan_guard, checkpointer]
    if photos is not None:
        all_callbacks.insert(1, SampleGrid(photos, os.path.join(out, "samples")))
    if evaluator is not None:
        all_callbacks.insert(1, evaluator)
    if planner is not None:
        all_callbacks[:0] = [guard, planner]
    all_callbacks += [history, PlotWriter(out)]
    if cfg["train"]["tensorboard"]:  # after the callbacks whose files it reads
        all_callbacks.append(run_logs.TensorBoardWriter(out, run.model))
    all_callbacks += list(callbacks)
    if verbose == "auto" and not is_terminal():  # a log file or a committed notebook: plain lines
        verbose = 0
        all_callbacks.append(EpochLines())
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

    epochs_text = "planned epochs" if auto else counted(cfg["train"]["epochs"], "epoch")
    log.info("training %s: %s x %d steps, global batch %d on %d replica(s)", cfg["model"]["name"], epochs_text,
             steps, global_batch,
             run.strategy.num_replicas_in_sync)
    epoch, skip = first_epoch, done_in_epoch
    try:
        while epoch < last_epoch():
            end = epoch + 1 if skip else last_epoch()  # a run resumed mid-epoch first ends it
            ds = data.training_stream(monet, train_photo, first_epoch=epoch, epochs=end, skip_steps=skip, **stream)
            run.model.fit(ds, epochs=end, initial_epoch=epoch, steps_per_epoch=steps - skip,
                          callbacks=all_callbacks, verbose=verbose, shuffle=False)
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
        restored = runs.restore(run)
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
    if evaluator is None:
        runs.export(run)
    else:
        runs.export(run, evaluator.best_epoch, evaluator.best)
    return run


def _lr_note(model, step: int) -> str:
    if step < 1:
        return ""
    return f"; learning rate at the last step {100 * model.lr_fraction(step - 1):.2f} % of its peak"


def make_evaluator(run: runs.Run, photo: data.Source, count: int, extractor=None) -> MiFIDCallback:
    """`[eval]`: MiFID of the first `count` photos (held out of training) every few epochs,
    scored with the model's painting weights; each new best generator is saved as
    `generator_best.keras`."""
    from gan_tpu.metrics.extractors import get_extractor
    from gan_tpu.metrics.score import load_reference

    cfg = run.cfg
    if cfg["eval"]["extractor"] == "tiny":
        log.warning('[eval] picks the best generator by the "tiny" extractor, a fixed random network whose '
                    'scores mean nothing for MiFID: set eval.extractor="kaggle:PATH" to Kaggle\'s Inception '
                    '(classify_image_graph_def.pb), or eval.every=0 to train on every photo')
    extractor = extractor or get_extractor(cfg["eval"]["extractor"], strategy=None)
    reference, _ = load_reference(cfg["eval"]["reference"] or cfg["data"]["monet"], extractor,
                                    cache_dir=os.path.join(run.out_dir, "eval"), log=log.info)
    photos = sample_photos(photo, count, cfg["data"]["image_size"], cfg["data"]["source_size"])
    evaluator = MiFIDCallback(photos, reference, extractor, os.path.join(run.out_dir, "eval"),
                              every=cfg["eval"]["every"], save_best=False,
                              on_best=lambda epoch, scores: runs.save_best(run))
    evaluator.set_model(run.model)  # it scores once before fit, too (warm_up)
    return evaluator


def budget_guard(run: runs.Run, generation: budget.GenerationReserve, steps_per_epoch: int,
                 initial_step: int = 0, *, resumed: plan.Plan | None = None, used_s: float = 0.0,
                 clock=None, evaluator: MiFIDCallback | None = None):
    """The run's budget guard and planner: the guard's reserve is the planner's, the
    generation reserve plus the evaluations still due."""
    cfg = run.cfg
    hours = cfg["budget"]["hours"] or budget.default_budget_hours(run.strategy)
    clock_kw = {} if clock is None else {"clock": clock}
    start = None
    if used_s:  # a resumed plan: count the budget time the earlier sessions used
        now = (clock or time.monotonic)()
        start = now - used_s - (budget.run_elapsed() if clock is None else 0.0)
    if hasattr(clock, "command_start"):  # past one process: process 0's (gan_tpu.distributed)
        start = clock.command_start - used_s
    guard = BudgetGuard(hours * 3600.0, start=start, initial_step=initial_step, **clock_kw)
    auto = cfg["train"]["epochs"] == "auto"
    planner = plan.Planner(
        guard, generation=generation, steps_per_epoch=steps_per_epoch, set_total=run.model.set_total_steps,
        fixed_total=None if auto else cfg["train"]["epochs"] * steps_per_epoch, plan=resumed,
        eval_every=cfg["eval"]["every"] if evaluator else 0,
        eval_s=(lambda: evaluator.eval_s) if evaluator else (lambda: 0.0),
        paused_s=(lambda: evaluator.seconds) if evaluator else (lambda: 0.0))
    return guard, planner
