"""Run a kernel's cells up to its accelerator check in this (fresh) interpreter, as Kaggle does,
and print what it chose as one JSON line: backend, KERAS_BACKEND, whether Keras or
TensorFlow got imported.

    python .ci/accelerator_cell.py tpu-cyclegan --fake-tpu

``--fake-tpu`` makes this host look like a Kaggle TPU VM (v5e-8): TPU_ACCELERATOR_TYPE is
set and JAX reports the "tpu" platform (a test-only patch of ``jax.default_backend``; JAX
itself is real). Used by tests/test_platform.py and `make test-compat` (.ci/compat.py).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

KERNELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels")


def cells_through_accelerator(twin_text: str) -> list[str]:
    """The twin's code cells, up to and including the one calling prepare_accelerator."""
    parts = re.split(r"^(# %%.*)$", twin_text, flags=re.M)[1:]  # marker, body, marker, body, ...
    cells = [body for marker, body in zip(parts[::2], parts[1::2]) if "[markdown]" not in marker]
    for i, cell in enumerate(cells):
        if "prepare_accelerator(" in cell:
            return cells[:i + 1]
    raise SystemExit("no prepare_accelerator cell in the twin")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kernel")
    parser.add_argument("--fake-tpu", action="store_true")
    args = parser.parse_args()
    if args.fake_tpu:
        os.environ["TPU_ACCELERATOR_TYPE"] = "v5litepod-8"
        import jax

        jax.default_backend = lambda: "tpu"  # test-only: JAX "sees" the TPU
    with open(os.path.join(KERNELS, args.kernel, f"{args.kernel}.py")) as fh:
        cells = cells_through_accelerator(fh.read())
    scope: dict = {"__name__": "__main__"}
    for cell in cells:
        exec(compile(cell, f"{args.kernel} cell", "exec"), scope)
    plan = scope["plan"]
    print(json.dumps({"backend": plan.backend, "reason": plan.reason,
                      "KERAS_BACKEND": os.environ.get("KERAS_BACKEND"),
                      "keras_imported": "keras" in sys.modules,
                      "tensorflow_imported": "tensorflow" in sys.modules}))


if __name__ == "__main__":
    main()
