"""Which accelerator is here, which Keras backend can drive it, and whether the installed
versions are supported: decided from the environment, device files and package metadata.

Nothing here imports Keras or TensorFlow (both fix things at import: Keras its backend,
TensorFlow the devices it claims); on a TPU host JAX is imported to ask whether it sees
the TPU. The CLI (`gan_tpu.keras_backend`) and the notebooks (`gan_tpu.kaggle`) both ask here.

* TPU: Kaggle's TPU image ships ``tensorflow-cpu`` beside ``jax[tpu]``, so there Keras's
  JAX backend is the way to the TPU. :func:`choose_tpu_backend` takes JAX when JAX sees the
  TPU, else TPUStrategy with a TPU-capable TensorFlow (``tensorflow-tpu``), else no plan and
  the command that fixes the image.
* Versions: :data:`FLOORS` is the support matrix's lowest row (setup.cfg and the README
  state the same numbers); :func:`require_supported` names what is too old, in one line.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Callable, Mapping

from gan_tpu.errors import UserError

# The lowest versions gan_tpu is tested on (`make test-compat`, the "floor" row).
FLOORS = {"python": (3, 10), "tensorflow": (2, 18), "keras": (3, 8), "numpy": (1, 26),
          "scipy": (1, 11), "jax": (0, 4, 38)}
# TensorFlow's distributions: any one of them provides `import tensorflow`.
TENSORFLOW_DISTS = ("tensorflow", "tensorflow-cpu", "tensorflow-tpu", "tensorflow-intel",
                    "tensorflow-macos", "tf-nightly", "tf-nightly-cpu")
# The newest TensorFlow with a TPU build: tensorflow-tpu 2.20.0 (none for 2.21 yet).
LAST_TPU_TENSORFLOW = (2, 20)
# What to do when neither JAX nor TensorFlow can drive the TPU. Not a package install: a
# Kaggle notebook with Internet on cannot be submitted, and Kaggle dropped tensorflow-tpu
# from its TPU image ("No TPU platform found" with the image's libtpu).
TPU_FIX = ("restart the session (Run > Restart & clear cell outputs) so that no other process holds "
           "the TPU, and run again; if JAX still sees no TPU, use the GPU notebook (GPU T4 x2)")


def version_tuple(text: str) -> tuple[int, ...]:
    """(2, 20, 0) from "2.20.0", "2.20.0rc1" or "2.20.0.dev2025"."""
    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def distributions() -> dict[str, str]:
    """Installed tensorflow*/tf-*/jax*/libtpu*/keras/numpy/scipy -> version (lower-case, dashes)."""
    found = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith(("tensorflow", "tf-nightly", "jax", "libtpu", "keras")) or name in ("numpy", "scipy"):
            found[name] = dist.version
    return found


# --------------------------------------------------------------------------- accelerators


def tpu_kind(env: Mapping[str, str] | None = None, exists: Callable[[str], bool] = os.path.exists) -> str | None:
    """"vm" (a TPU VM: local chips), "node" (an older remote TPU node) or None (no TPU)."""
    env = os.environ if env is None else env
    name = env.get("TPU_NAME", "")
    if name.startswith("grpc://") or env.get("COLAB_TPU_ADDR"):
        return "node"
    if (name == "local" or env.get("TPU_ACCELERATOR_TYPE") or env.get("ISTPUVM") == "1"  # Kaggle's marker
            or exists("/dev/accel0") or exists("/dev/vfio/0")):
        return "vm"
    return None


def gpu_devices(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """The NVIDIA GPUs attached ("GPU 0: Tesla T4 ..."), from the driver, not TensorFlow."""
    smi = which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        gpus = [line.split(" (UUID")[0].strip() for line in out.splitlines() if line.startswith("GPU ")]
        if gpus:
            return gpus
    dev = "/dev"
    names = os.listdir(dev) if os.path.isdir(dev) else []
    return sorted(f"/dev/{n}" for n in names if re.fullmatch(r"nvidia\d+", n))


def framework_gpus(python: str = sys.executable, timeout: float = 300.0) -> tuple[int, str | None]:
    """(GPUs TensorFlow sees, why none) asked in a fresh interpreter: this process must not
    import TensorFlow or Keras before the Keras backend is set."""
    code = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError) as err:
        return 0, f"TensorFlow could not be asked ({err})"
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].isdigit():
        errors = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return 0, f"TensorFlow does not start ({errors[-1] if errors else f'exit status {proc.returncode}'})"
    count = int(lines[-1])
    return count, None if count else "TensorFlow lists no GPU (its CUDA build and the driver do not match?)"


@dataclasses.dataclass
class TpuFacts:
    """What decides how training can reach a TPU (gathered by :func:`tpu_facts`)."""

    tpu: str | None                        # tpu_kind(): "vm", "node" or None
    distributions: dict[str, str]          # installed tensorflow*/jax*/libtpu*/keras -> version
    jax_backend: bool                      # JAX is installed (gan_tpu's JAX trainer can run)
    jax_platform: str | None = None        # jax.default_backend(), when JAX imports
    jax_error: str | None = None           # why JAX could not be used


@dataclasses.dataclass
class BackendPlan:
    """How training will reach the accelerator: ``backend`` "jax" or "tensorflow", or None (stop)."""

    backend: str | None
    reason: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.backend is not None


def tensorflow_tpu_capable(dists: Mapping[str, str]) -> tuple[bool, str]:
    """(can TensorFlow drive a TPU here, why) from the installed distributions."""
    if "tensorflow-tpu" in dists:
        return True, f"tensorflow-tpu {dists['tensorflow-tpu']} is installed"
    if "tensorflow-cpu" in dists:
        return False, f"tensorflow-cpu {dists['tensorflow-cpu']} has no TPU support"
    if "tensorflow" in dists:
        version = dists["tensorflow"]
        if version_tuple(version)[:2] > LAST_TPU_TENSORFLOW:
            return False, (f"tensorflow {version} has no TPU support (the newest TPU build is "
                           f"tensorflow-tpu {_dotted(LAST_TPU_TENSORFLOW)}.0)")
        if not any(name.startswith("libtpu") for name in dists):
            return False, f"tensorflow {version} is installed without libtpu"
        return True, f"tensorflow {version} with libtpu"
    return False, "TensorFlow is not installed"


def choose_tpu_backend(facts: TpuFacts) -> BackendPlan:
    """The JAX path when JAX sees the TPU; else TPUStrategy with a TPU-capable TensorFlow;
    else no plan, with the command that fixes the image."""
    if facts.tpu is None:
        return BackendPlan(None, "no TPU is attached to this machine",
                           fix="Notebook settings > Accelerator > TPU, then run again")
    if facts.jax_backend and facts.jax_platform == "tpu":
        jax_version = facts.distributions.get("jax", "?")
        return BackendPlan("jax", f"Keras JAX backend on the TPU (jax {jax_version}, gan_tpu.backends.jax)")
    capable, why = tensorflow_tpu_capable(facts.distributions)
    if not facts.jax_backend:
        jax_note = "JAX is not installed"
    elif facts.jax_error:
        jax_note = f"the JAX path does not work here: {facts.jax_error}"
    else:
        jax_note = f"JAX runs on {facts.jax_platform or 'nothing'}, not the TPU"
    if capable:
        if facts.tpu == "node" or not facts.jax_backend:
            return BackendPlan("tensorflow", f"TPUStrategy: {why}")
        return BackendPlan("tensorflow", f"TPUStrategy: {why} ({jax_note})")
    return BackendPlan(None, f"{why}, and {jax_note}", fix=TPU_FIX)


def tpu_facts(probe_jax: bool = True, env: Mapping[str, str] | None = None) -> TpuFacts:
    """Gather :class:`TpuFacts` on this machine (imports JAX on a TPU host, never TensorFlow or Keras)."""
    facts = TpuFacts(tpu=tpu_kind(env), distributions=distributions(),
                     jax_backend=importlib.util.find_spec("jax") is not None)
    if probe_jax and facts.jax_backend and facts.tpu is not None:
        try:
            import jax

            facts.jax_platform = jax.default_backend()
        except Exception as err:  # noqa: BLE001 - any failure means: not this path
            facts.jax_error = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return facts


def auto_backend(facts: TpuFacts | None = None) -> str:
    """The Keras backend for "auto": the TPU plan's on a TPU host (JAX when JAX sees the TPU,
    as on Kaggle's TPU image), TensorFlow everywhere else."""
    facts = facts or tpu_facts()
    if facts.tpu is None:
        return "tensorflow"
    return choose_tpu_backend(facts).backend or "tensorflow"


# --------------------------------------------------------------------------- versions


def too_old(backend: str, dists: Mapping[str, str] | None = None,
            python: tuple[int, ...] = tuple(sys.version_info[:3])) -> list[tuple[str, str, str]]:
    """(what, installed, requirement) for every installed version below the support matrix's
    floor for ``backend`` ("tensorflow" or "jax"); missing packages count too."""
    dists = distributions() if dists is None else dists
    found = []
    if python[:2] < FLOORS["python"]:
        found.append(("Python", _dotted(python), f"Python>={_dotted(FLOORS['python'])}"))
    tf_dist = next((d for d in TENSORFLOW_DISTS if d in dists), None)
    if tf_dist is None:
        if importlib.util.find_spec("tensorflow") is None:  # else a build without metadata: trust it
            found.append(("tensorflow", "not installed", f"tensorflow>={_dotted(FLOORS['tensorflow'])}"))
    elif version_tuple(dists[tf_dist]) < FLOORS["tensorflow"]:
        found.append((tf_dist, dists[tf_dist], f"{tf_dist}>={_dotted(FLOORS['tensorflow'])}"))
    wanted = ["keras", "numpy", "scipy"] + (["jax", "jaxlib"] if backend == "jax" else [])
    for name in wanted:
        floor = FLOORS["jax" if name == "jaxlib" else name]
        if name not in dists:
            found.append((name, "not installed", f"{name}>={_dotted(floor)}"))
        elif version_tuple(dists[name]) < floor:
            found.append((name, dists[name], f"{name}>={_dotted(floor)}"))
    return found


def require_supported(backend: str, dists: Mapping[str, str] | None = None,
                      python: tuple[int, ...] = tuple(sys.version_info[:3])) -> None:
    """Raise one-line UserError naming every package too old for ``backend``, and the fix."""
    old = too_old(backend, dists, python)
    if not old:
        return
    from gan_tpu import __version__

    listed = ", ".join(f"{what} {have} (needs {need})" for what, have, need in old)
    if any(what == "Python" for what, _, _ in old):
        fix = f"use Python {_dotted(FLOORS['python'])} or newer"
    else:
        fix = "pip install -U " + " ".join(f"'{need}'" for _, _, need in old) + ", then restart"
    raise UserError(f"gan_tpu {__version__} on {backend}: too old or missing: {listed} "
                    f"(see the README's support matrix); fix: {fix}")
