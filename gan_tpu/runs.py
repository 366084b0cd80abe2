"""A run directory: made, restored, exported, loaded, and the submission painted from it.

A run directory holds `config.toml` (the resolved config), `checkpoints/`, `samples/` (one
PNG grid per epoch), `history.csv`, `plots.png` and, at the end, `generator.keras`; with
`[eval]`, `eval/` (scores.csv, TensorBoard scalars), `generator_best.keras` (each new best by
MiFID) and `generator_last.keras`. The trainer (gan_tpu.train) fills it; `gan-tpu generate`
paints from it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os

import keras
import tensorflow as tf

from gan_tpu import checkpoints, config, models, runtime, setting_errors
from gan_tpu.errors import UserError
from gan_tpu.models.base import NoiseModel

log = logging.getLogger("gan_tpu")

FINAL, BEST, LAST = "generator.keras", "generator_best.keras", "generator_last.keras"


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
    restored: str | None = None     # the checkpoint last restored, if any
    best_generator: str | None = None  # a .keras file whose weights the run paints with (the best by MiFID)

    @property
    def step(self) -> tf.Variable:
        return self.model.step

    @property
    def out_dir(self) -> str:
        return self.cfg["output"]["dir"]


def build_model(cfg: dict, strategy: tf.distribute.Strategy):
    """The configured model, created and compiled inside `strategy.scope()`."""
    jit = cfg["train"]["jit_compile"]
    if jit == "auto":  # JAX always: an uncompiled JAX step runs op by op
        jit = runtime.platform(strategy) != "cpu" or keras.backend.backend() == "jax"
    if jit and runtime.splits_over_devices(strategy):
        # Keras compiles the whole step, strategy.run and its all-reduce included, as one XLA
        # program, which cannot reach the other devices' variable copies: the first step fails
        # ("Trying to access resource ... located in device ...:1 from device ...:0"; seen on two
        # logical CPUs, tests/test_replicas.py). TPUStrategy compiles its replicas with XLA anyway.
        log.info("train.jit_compile: off under MirroredStrategy over %d devices (XLA cannot compile "
                 "a step across devices)", strategy.num_replicas_in_sync)
        jit = False
    with strategy.scope():
        try:
            model = models.build(cfg["model"]["name"], image_size=cfg["data"]["image_size"],
                                 **config.model_options(cfg))
        except ValueError as err:  # an option value the model cannot use: name the setting
            raise setting_errors.model_value_error(cfg, err, models.defaults(cfg["model"]["name"])) from None
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
    # Seeds the initial weights; the data order is keyed on the config's seed alone
    # (data.shuffled_blocks), whatever this global seed is.
    keras.utils.set_random_seed(2 * cfg["train"]["seed"] + 1)
    model = build_model(cfg, strategy)
    with strategy.scope():
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        plan_state = tf.Variable(tf.zeros([4], tf.float64), trainable=False, name="plan")
    checkpoint = checkpoints.model_variables(model, epoch)
    checkpoint["plan"] = plan_state
    manager = checkpoints.CheckpointManager(
        checkpoint, os.path.join(cfg["output"]["dir"], "checkpoints"),
        max_to_keep=cfg["train"]["keep_checkpoints"], stand_ins=checkpoints.stand_ins(model))
    spread_seeds(model, strategy)
    return Run(cfg, strategy, model, checkpoint, manager, epoch, plan_state)


def start(cfg: dict, *, resume: bool = False, strategy: tf.distribute.Strategy | None = None) -> Run:
    """The run of `cfg` in its directory (`[output] dir`), made, and restored with `resume`.

    A folder holding an earlier run's checkpoints is refused unless resuming. The resolved
    config is saved as `config.toml`.
    """
    out = cfg["output"]["dir"]
    ckpt_dir = os.path.join(out, "checkpoints")
    if not resume and tf.io.gfile.exists(ckpt_dir) and tf.train.latest_checkpoint(ckpt_dir):
        raise UserError(f"{out}: holds checkpoints of an earlier run; pass --resume to continue "
                        f"it, or choose another --out")
    saved = os.path.join(out, "config.toml")
    if resume and os.path.isfile(saved):
        setting_errors.check_resume(cfg, config.load(saved), out)
    created = not os.path.isdir(out)
    os.makedirs(out, exist_ok=True)
    try:
        run = make_run(cfg, strategy)
    except BaseException:
        if created:  # a failed start leaves no empty run folder behind
            setting_errors.remove_empty(out)
        raise
    if resume:
        restored = restore(run)
        log.info("resumed from %s", restored or "nothing (no checkpoint yet)")
    config.save(cfg, os.path.join(out, "config.toml"))
    return run


def spread_seeds(model, strategy) -> None:
    """Give each replica its own random stream (a noise model's training latents).

    A seed generator made in `strategy.scope()` has one copy of its state [s, n] per
    replica, all equal: every replica would draw the same latents. Replica r's copy becomes
    [s + r, n]. Checkpoints hold replica 0's copy and restoring sets every copy to it, so
    this runs after every build and every restore.
    """
    gens = list(model.seed_generators.values())
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
    """Restore the latest readable checkpoint (or `path`); returns what was restored, or None."""
    restored = run.manager.restore(path, repr(run.cfg["model"]["name"]))  # None: the newest readable
    if restored is None:
        return None
    run.restored = restored
    spread_seeds(run.model, run.strategy)  # the restore gave every replica replica 0's seeds
    return restored


# ------------------------------------------------------------------ export


def save_network(network: keras.Model, path: str) -> str:
    """`network.save(path)`, atomically."""
    tmp = path[: -len(".keras")] + ".tmp.keras"
    network.save(tmp)
    os.replace(tmp, path)
    return path


def save_best(run: Run) -> str:
    """The weights just scored best (the EMA ones when averaged) as `generator_best.keras`."""
    with run.model.painting_weights():
        return save_network(run.model.exported, os.path.join(run.out_dir, BEST))


def export(run: Run, best_epoch: int | None = None, best: float | None = None) -> str:
    """Save the photo -> Monet network (a noise model's z -> Monet generator) as
    `generator.keras` in the run dir (atomically). With a best epoch by MiFID (`[eval]`),
    that is the best one, the last one goes to `generator_last.keras`, and the run's
    network is given the best weights and paints with them from then on."""
    final = os.path.join(run.out_dir, FINAL)
    best_path = os.path.join(run.out_dir, BEST)
    if best_epoch is None or not os.path.isfile(best_path):
        with run.model.painting_weights():  # the EMA generator when the model averages one
            return save_network(run.model.exported, final)
    with run.model.painting_weights():
        save_network(run.model.exported, os.path.join(run.out_dir, LAST))
    paint_with(run, best_path)
    log.info("eval: exporting the generator of epoch %d (MiFID %.2f) as %s; the last one as %s",
             best_epoch, best, FINAL, LAST)
    return save_network(run.model.exported, final)


def paint_with(run: Run, path: str) -> None:
    """Give the run's network the weights of the generator saved at `path` (its best by
    MiFID); the run paints with them from then on (`painting`)."""
    try:
        run.model.exported.set_weights(load_keras(path).get_weights())
    except ValueError as err:  # another model's generator
        raise UserError(f"{path}: does not fit model {run.cfg['model']['name']!r} "
                        f"({str(err).splitlines()[0][:160]})") from None
    run.best_generator = path


@contextlib.contextmanager
def painting(run: Run):
    """The weights the run paints with inside the block: its best generator's when it was
    given them (`export`, `load`), else the model's painting weights (EMA ones when averaged)."""
    if run.best_generator is not None:  # already in the network
        yield
        return
    with run.model.painting_weights():
        yield


# ------------------------------------------------------------------ load


def _run_dir_of_checkpoint(prefix: str) -> str:
    folder = os.path.dirname(os.path.abspath(prefix))
    return os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder


def load_keras(path: str) -> keras.Model:
    """A `.keras` generator, or a one-line error naming the file."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # keras raises many types for a bad file
        raise UserError(f"{path}: not a loadable Keras model ({str(err).splitlines()[0][:160]})") from None


def load(run_dir: str | None = None, checkpoint: str | None = None):
    """(Run or None, generator) from a run directory or a checkpoint / `.keras` file.

    A run directory paints with its best generator by MiFID (`generator_best.keras`, what
    `[eval]` exports) when it has one, else from its newest readable checkpoint;
    `paints_from` says which.
    """
    if checkpoint and checkpoint.endswith(".keras"):
        return None, load_keras(checkpoint)
    if checkpoint:
        if not tf.io.gfile.exists(checkpoint + ".index"):
            raise UserError(f"{checkpoint}: no such checkpoint (expected {checkpoint}.index)")
        run_dir = _run_dir_of_checkpoint(checkpoint)
    cfg_path = os.path.join(run_dir, "config.toml")
    if not os.path.isfile(cfg_path):
        raise UserError(f"{run_dir}: not a run directory (no config.toml)")
    cfg = config.load(cfg_path)
    cfg["output"]["dir"] = run_dir
    run = make_run(cfg)
    best = os.path.join(run_dir, BEST)
    if checkpoint is None and os.path.isfile(best):
        paint_with(run, best)
        return run, run.model.exported
    if restore(run, checkpoint) is None:
        raise UserError(f"{run_dir}: holds no checkpoint yet")
    return run, run.model.exported  # a noise model's generator (z -> Monet): generate samples


def paints_from(run: Run) -> str:
    """One line: what the run paints with."""
    if run.best_generator is not None:
        scored = os.path.join(run.out_dir, "eval", "best.json")
        epoch = ""
        if os.path.isfile(scored):
            with open(scored) as fh:
                row = json.load(fh)
            epoch = f", epoch {row['epoch']}"
        return f"{run.best_generator} (the best generator by MiFID{epoch})"
    if run.restored is not None:
        return f"{run.restored} (the newest readable checkpoint)"
    return "the run's current weights"


# ------------------------------------------------------------------ the submission


def submission_count(cfg: dict, photo_count: int) -> int:
    """How many images the run's submission will hold (for the budget's reserve)."""
    from gan_tpu.submission.generate import resolve_count

    sub = cfg["submission"]
    return resolve_count(photo_count, sub["count"] or None, allow_any_count=sub["allow_any_count"])


def generation_reserve(run: Run, photo_count: int, **clock):
    """The budget's generation reserve for the run: real generation batches (model + JPEG), timed."""
    from gan_tpu import budget, translator
    from gan_tpu.submission.generate import make_generation_timer

    sub = run.cfg["submission"]
    timer, global_batch = make_generation_timer(
        translator.painter(run.model), strategy=run.strategy,
        batch_size=sub["batch_size"] * run.strategy.num_replicas_in_sync, quality=sub["quality"])
    return budget.GenerationReserve(timer, batch_size=global_batch,
                                    count=submission_count(run.cfg, photo_count), **clock)


def translate_photos(run: Run, photos: str, out: str, **overrides):
    """Translate every photo under `photos` with the run's generator (its best by MiFID,
    else its EMA weights when the model averages them) into a submission zip; a noise
    model paints from seeded latents instead."""
    from gan_tpu import data, translator
    from gan_tpu.submission.generate import write_samples, write_submission
    from gan_tpu.submission.validate import MIN_COUNT

    sub = run.cfg["submission"]
    options = dict(count=sub["count"] or None, quality=sub["quality"],
                   allow_any_count=sub["allow_any_count"],
                   batch_size=sub["batch_size"] * run.strategy.num_replicas_in_sync)
    options.update({k: v for k, v in overrides.items() if v is not None})
    with painting(run):
        if isinstance(run.model, NoiseModel):  # no photos
            options["count"] = options["count"] or MIN_COUNT
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            return write_samples(translator.sampler_at_size(run.model), out, strategy=run.strategy, **options)
        try:
            photo_source = data.resolve(photos, "photo")
        except UserError as err:
            raise UserError(f"photos: {err}") from None
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        return write_submission(translator.at_size(run.model.translator), data.source_images(photo_source), out,
                                strategy=run.strategy, photo_count=data.count_images(photo_source), **options)
