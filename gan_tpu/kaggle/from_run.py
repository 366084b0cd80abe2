"""``make submit`` from a GPU box: the competition scores notebook versions only, so a local
run's exported generator goes to Kaggle as a new version of the dataset <you>/gan-tpu-generator
(with ``budget.json``, the budget guard's record of the training time), the small notebook
``kernels/gan-tpu-generate`` paints images.zip from it offline, and that version is submitted."""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from gan_tpu.errors import UserError
from gan_tpu.kaggle.api import loaded
from gan_tpu.kaggle.push import _username, push_dataset
from gan_tpu.kaggle.versions import POLL_S, WAIT_S

GENERATOR_SLUG = "gan-tpu-generator"
GENERATE_KERNEL = "gan-tpu-generate"
GENERATORS = ("generator.keras", "generator_best.keras")  # gan_tpu.runs: FINAL, then BEST


def run_generator(run_dir: str | os.PathLike) -> Path:
    """The run's exported generator: generator.keras, else generator_best.keras."""
    for name in GENERATORS:
        path = Path(run_dir) / name
        if path.is_file():
            return path
    raise UserError(f"{run_dir}: no {' or '.join(GENERATORS)} (a finished `gan-tpu train`/`run` exports it)")


def input_rank(path: str | os.PathLike) -> int | None:
    """The rank of a saved Keras model's first input (4: images, 2: latents), read from the
    .keras zip's config.json without Keras; None when it cannot be told."""
    import zipfile

    def first(node):
        if isinstance(node, dict):
            for key in ("batch_shape", "batch_input_shape"):
                if isinstance(node.get(key), list):
                    return node[key]
            node = list(node.values())
        if isinstance(node, list):
            for item in node:
                found = first(item)
                if found is not None:
                    return found
        return None

    try:
        with zipfile.ZipFile(path) as zf:
            shape = first(json.loads(zf.read("config.json")))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return len(shape) if shape is not None else None


def budget_record(run_dir: str | os.PathLike) -> dict:
    """The budget guard's record in the run's newest checkpoint: [planned steps, s/step,
    budget s used, budget s] (gan_tpu.plan), as a dict; zeros when the run kept no budget."""
    import tensorflow as tf

    folder = Path(run_dir) / "checkpoints"
    prefix = tf.train.latest_checkpoint(str(folder)) if folder.is_dir() else None
    if prefix is None:
        raise UserError(f"{run_dir}: no checkpoint, so no record of the training time to account for")
    reader = tf.train.load_checkpoint(prefix)
    planned, step_s, used_s, budget_s = (float(x) for x in reader.get_tensor("plan"))
    steps = int(reader.get_tensor("step")) if reader.has_tensor("step") else None
    return {"run": Path(run_dir).resolve().name, "checkpoint": os.path.basename(prefix), "steps": steps,
            "planned_steps": int(planned), "seconds_per_step": step_s, "train_seconds": used_s,
            "budget_seconds": budget_s}


def stage(run_dir: str | os.PathLike, folder: str | os.PathLike) -> dict:
    """generator.keras and budget.json for the dataset, written into `folder`; returns the record."""
    generator = run_generator(run_dir)
    if input_rank(generator) == 2:
        raise UserError(f"{generator}: a noise model's generator (latents -> images); the generation notebook "
                        f"translates photos, so paint this run in a training notebook (make kernel)")
    record = dict(budget_record(run_dir), generator=generator.name)
    if record["train_seconds"] <= 0:
        raise UserError(f"{run_dir}: its checkpoints record no training time (budget off?): the 5 h GPU budget "
                        f"could not be accounted for; train with the budget guard on ([budget] in the pipeline)")
    target = Path(folder) / "generator.keras"
    target.write_bytes(generator.read_bytes())
    (Path(folder) / "budget.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def submit_run(run_dir: str, message: str, *, competition: str | None = None, wheel_dir: str = "dist",
               api=None, timeout_s: float = WAIT_S, poll_s: float = POLL_S, sleep=time.sleep, clock=time.monotonic,
               log=print, **push):
    """Upload the run's generator (+ budget.json), push the generation notebook, wait, validate, submit."""
    from gan_tpu.kaggle.roundtrip import push_and_collect

    api = loaded(api)
    dataset = f"{_username(api)}/{GENERATOR_SLUG}"
    with tempfile.TemporaryDirectory(prefix="gan-tpu-generator-") as folder:
        record = stage(run_dir, folder)
        hours = record["train_seconds"] / 3600
        log(f"{run_dir}: training took {hours:.2f} h of the {record['budget_seconds'] / 3600:.2f} h budget "
            f"(step {record['steps']}); generation on Kaggle is added to it")
        push_dataset(api, sorted(Path(folder).iterdir()), dataset, title="gan-tpu generator",
                     subtitle="a gan_tpu run's exported generator and its training time",
                     notes=f"{record['run']} {record['checkpoint']}", sleep=sleep, log=log)
    return push_and_collect(GENERATE_KERNEL, wheel_dir=wheel_dir, submit=True, message=message,
                            competition=competition, out_dir=Path(run_dir) / "kaggle", timeout_s=timeout_s,
                            poll_s=poll_s, api=api, sleep=sleep, clock=clock, log=log, **push)
