"""`gan-tpu run` and `gan-tpu demo`'s workflow: train under the budget, then the submission.

Above both gan_tpu.train (the fit) and gan_tpu.runs (the run directory, what is painted from it).
"""
from __future__ import annotations

import sys

from gan_tpu import distributed, runs, train


def train_and_submit(cfg: dict, zip_path: str, *, resume: bool = False):
    """Train under the budget guard, then translate the photos into a validated zip;
    returns (run, submission result)."""
    run = train.train(cfg, resume=resume)
    if run.stop_reason:
        print(f"training stopped early to keep the budget: {run.stop_reason}")
    if run.diverged:
        print(f"WARNING: {run.diverged}; the submission comes from the last good checkpoint "
              f"(step {int(run.step.numpy())})", file=sys.stderr)
    # Past one process every process paints its share; process 0 alone writes `zip_path`.
    result = runs.translate_photos(run, cfg["data"]["photo"], distributed.local_path(zip_path))
    return run, result
