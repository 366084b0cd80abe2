"""What a notebook keeps as its output: the run's small artefacts copied next to ``images.zip``.

The run folder itself (checkpoints of about 1.4 GB each, ``.keras`` exports) lives in
scratch space (:func:`gan_tpu.kaggle.paths.scratch_dir`): everything under
``/kaggle/working`` becomes the notebook version's output, slow to save, and the output
should be the submission and what a person looks at.
"""
from __future__ import annotations

import os
import shutil

# Relative to the run folder: what a person looks at. Never checkpoints or models.
KEPT = ("config.toml", "history.csv", "plots.png", "eval/scores.csv", "eval/best.json")
KEPT_FOLDERS = ("samples",)
MAX_BYTES = 8 * 1024 * 1024   # a sample grid or plot is well under this; anything bigger stays behind


def keep_outputs(run_dir: str, working: str, log=print) -> list[str]:
    """Copy the run's config, history, plots, sample grids and scores into ``working``;
    returns the paths written (relative to ``working``)."""
    wanted = [p for p in KEPT if os.path.isfile(os.path.join(run_dir, p))]
    for folder in KEPT_FOLDERS:
        base = os.path.join(run_dir, folder)
        if os.path.isdir(base):
            wanted += [os.path.join(folder, n) for n in sorted(os.listdir(base)) if n.endswith(".png")]
    written = []
    for rel in wanted:
        src = os.path.join(run_dir, rel)
        if os.path.getsize(src) > MAX_BYTES:
            continue
        dst = os.path.join(working, rel.replace("eval/", "eval_"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(os.path.relpath(dst, working))
    log(f"kept in {working}: {', '.join(written) or 'nothing'} (checkpoints stay in {run_dir})")
    return written
