"""The notebooks' accelerator check: the backend that can drive the TPU or the GPUs (decided
in :mod:`gan_tpu.platform`), the supported versions, and ``KERAS_BACKEND`` set before
anything imports Keras; else one line with the fix. Imports neither Keras nor TensorFlow.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

from gan_tpu.errors import UserError
from gan_tpu.platform import (BackendPlan, TpuFacts, choose_tpu_backend, framework_gpus, gpu_devices,
                              require_supported, tpu_facts)

MACHINE_SHAPES = {"tpu": "TpuV5E8", "gpu": "NvidiaTeslaT4"}  # the accelerators a kernel may ask for


def prepare_accelerator(target: str, *, smoke: bool = False, facts: TpuFacts | None = None,
                        env: dict | None = None, log=print, driver_gpus: Callable[[], list[str]] = gpu_devices,
                        tensorflow_gpus: Callable[[], tuple[int, str | None]] = framework_gpus) -> BackendPlan:
    """Check the notebook's accelerator before anything trains; return the plan or stop.

    ``target`` "tpu": choose the backend (see :func:`choose_tpu_backend`) and set
    ``KERAS_BACKEND`` to it (Keras must not be imported yet on another one). Without a usable TPU this raises
    UserError with what to do, so a 3-hour run never falls back to the CPU.
    ``target`` "gpu": the driver (``driver_gpus``) must show a GPU and TensorFlow, the
    framework that trains, must see them too (``tensorflow_gpus``, asked in a subprocess).
    ``smoke``: CPU allowed (CI), said loudly.
    Then the installed versions must be supported on that backend (:func:`require_supported`).
    Imports neither Keras nor TensorFlow (JAX only, on a TPU host).
    """
    env = os.environ if env is None else env
    if target not in MACHINE_SHAPES:
        raise UserError(f"accelerator {target!r}: expected one of {', '.join(MACHINE_SHAPES)}")
    if target == "tpu":
        facts = facts or tpu_facts()
        if smoke and facts.tpu is None:
            # KERAS_BACKEND=jax (with gan_tpu's JAX trainer) rehearses the TPU image's JAX path on CPU.
            backend = "jax" if env.get("KERAS_BACKEND") == "jax" and facts.jax_backend else "tensorflow"
            plan = BackendPlan(backend, f"smoke mode: no TPU here, so this runs on the CPU ({backend})")
        else:
            plan = choose_tpu_backend(facts)
            if not plan.ok:
                raise UserError(f"cannot train on the TPU: {plan.reason}; {plan.fix}")
        return _use(plan, env, log)
    gpus = driver_gpus()
    if gpus:
        seen, why = tensorflow_gpus()
        if not seen:
            raise UserError(f"the driver shows {len(gpus)} GPU(s) ({', '.join(gpus)}) but TensorFlow sees none: "
                            f"{why}; not training on the CPU: restart the session and run again, or "
                            f"check that the image's TensorFlow is its GPU build")
        plan = BackendPlan("tensorflow", f"MirroredStrategy over {seen} GPU(s): {', '.join(gpus)}")
    elif smoke:
        plan = BackendPlan("tensorflow", "smoke mode: no GPU here, so this runs on the CPU")
    else:
        raise UserError("no GPU is visible: Notebook settings > Accelerator > GPU T4 x2, then run again")
    return _use(plan, env, log)


def _use(plan: BackendPlan, env, log) -> BackendPlan:
    require_supported(plan.backend)
    _set_keras_backend(plan.backend, env)
    log(f"accelerator: {plan.reason}")
    return plan


def _set_keras_backend(backend: str, env) -> None:
    """Fix Keras's backend for this process (gan-tpu's CLI then keeps it): before Keras loads."""
    keras = sys.modules.get("keras")
    if keras is not None:
        current = keras.backend.backend()
        if current != backend:
            raise UserError(f"Keras is already imported on {current!r}, not {backend!r}: restart the "
                            f"session and run this cell before anything imports Keras")
    env["KERAS_BACKEND"] = backend
