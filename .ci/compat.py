"""`make test-compat`: every row of the README's support matrix in its own virtual
environment, gan_tpu installed from its wheel as users install it, then run as they run it.

    python .ci/compat.py WHEEL [ROW ...]     (rows: kaggle-tpu gpu-tf219 floor; default all)

* kaggle-tpu: Kaggle's TPU image (Python 3.12, tensorflow-cpu 2.20.0, jax/jaxlib 0.7.2 on
  CPU, newest keras and numpy), the wheel with ``--no-deps --no-index`` as the notebook
  installs it. On a host made to look like a TPU VM the notebook's accelerator cell must
  choose JAX without importing Keras; the TPU twin runs end to end in smoke mode on
  8 JAX host devices (a v5e-8's 8 chips), 2 images per replica, to a valid images.zip.
* gpu-tf219: the GPU notebook on an older TensorFlow (Python 3.12, tensorflow 2.19 with
  the Keras pip gives it), wheel ``--no-deps``; the GPU twin end to end in smoke mode.
* floor: the lowest versions claimed (gan_tpu.platform.FLOORS: Python, TensorFlow, Keras,
  JAX, numpy, scipy), ``pip install 'WHEEL[tf,jax]'`` resolving install_requires under
  those pins; `gan-tpu demo` and the TPU twin on JAX.

Venvs live in .compat/<row>/ (git-ignored) and are reused while their requirements are
unchanged; pip's cache is .compat/pip-cache (PIP_CACHE_DIR wins), so a fresh clone starts
cold, as CI does. Each step's wall time is printed, and a summary.
"""
from __future__ import annotations

import concurrent.futures
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPAT_DIR = os.environ.get("COMPAT_DIR", os.path.join(ROOT, ".compat"))
STEP_TIMEOUT = int(os.environ.get("COMPAT_STEP_TIMEOUT", "1800"))
TPU_DEVICES = 8  # a v5e-8


def floors() -> dict[str, tuple[int, ...]]:
    sys.path.insert(0, ROOT)  # gan_tpu.platform imports nothing but the stdlib
    from gan_tpu.platform import FLOORS

    return FLOORS


def floor_pins() -> list[str]:
    """Pins for the floor row, from gan_tpu.platform.FLOORS ((2, 18) -> newest 2.18.x)."""
    pins = []
    for name, floor in floors().items():
        if name == "python":
            continue
        pin = ".".join(map(str, floor)) + (".*" if len(floor) == 2 else "")
        pins.append(f"{name}=={pin}")
        if name == "jax":
            pins.append(f"jaxlib=={pin}")
    return pins


def find_python(version: str) -> str:
    """An interpreter for `version` ("3.12"): on PATH, else under pyenv's versions."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv, "versions", f"{version}.*", "bin", f"python{version}")))
    for exe in filter(None, candidates):
        if subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0:
            return exe
    raise SystemExit(f"test-compat: no working python{version} on this machine")


def rows(wheel: str) -> dict[str, dict]:
    notebook_install = ["--no-deps", "--no-index", "--force-reinstall", wheel]
    return {
        "kaggle-tpu": dict(
            python="3.12",
            requirements=["tensorflow-cpu==2.20.0", "jax==0.7.2", "jaxlib==0.7.2", "keras", "numpy", "scipy"],
            install=notebook_install,
            checks=[("accelerator cell on a TPU VM chooses JAX", "accelerator", "tpu-cyclegan", True),
                    ("TPU twin, smoke, JAX over 8 host devices", "twin", "tpu-cyclegan", "jax")]),
        "gpu-tf219": dict(
            python="3.12",
            requirements=["tensorflow==2.19.*", "scipy"],
            install=notebook_install,
            checks=[("accelerator cell imports no Keras", "accelerator", "gpu-cyclegan", False),
                    ("GPU twin, smoke, TensorFlow", "twin", "gpu-cyclegan", "tensorflow")]),
        "floor": dict(
            python=".".join(map(str, floors()["python"])),
            requirements=floor_pins(),
            install=[f"{wheel}[tf,jax]", "-c", "{constraints}"],
            checks=[("gan-tpu demo (TensorFlow)", "demo", None, None),
                    ("TPU twin, smoke, JAX over 8 host devices", "twin", "tpu-cyclegan", "jax")]),
    }


class Row:
    def __init__(self, name: str, spec: dict):
        self.name, self.spec = name, spec
        self.lines: list[str] | None = []  # buffered while rows install side by side; None: print
        self.dir = os.path.join(COMPAT_DIR, name)
        self.venv = os.path.join(self.dir, "venv")
        self.bin = os.path.join(self.venv, "bin")
        self.work = os.path.join(self.dir, "work")

    def run(self, what: str, cmd: list[str], env: dict | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess:
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, cwd=cwd or self.work, capture_output=True, text=True,
                              timeout=STEP_TIMEOUT)
        took = time.monotonic() - started
        self.say(f"  {'ok ' if proc.returncode == 0 else 'FAIL'} {took:7.1f} s  {what}")
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-6000:]
            raise RuntimeError(f"{self.name}: {what} failed (exit {proc.returncode}):\n{tail}")
        return proc

    def say(self, line: str) -> None:
        if self.lines is None:
            print(line, flush=True)
        else:
            self.lines.append(line)

    def pip(self, what: str, args: list[str]) -> None:
        self.run(what, [os.path.join(self.bin, "python"), "-m", "pip", "install", "--quiet", *args])

    def install(self) -> None:
        os.makedirs(self.work, exist_ok=True)
        wanted = json.dumps([self.spec["python"], self.spec["requirements"]])
        stamp = os.path.join(self.dir, "requirements.json")
        fresh = not (os.path.exists(stamp) and open(stamp).read() == wanted)
        if fresh:
            shutil.rmtree(self.venv, ignore_errors=True)
            self.run(f"venv (python {self.spec['python']})", [find_python(self.spec["python"]), "-m", "venv", self.venv])
            self.pip("pip upgrade", ["--upgrade", "pip"])
        constraints = os.path.join(self.dir, "constraints.txt")
        with open(constraints, "w") as fh:
            fh.write("\n".join(self.spec["requirements"]) + "\n")
        if fresh and "{constraints}" not in self.spec["install"]:  # the image's own packages first
            self.pip("the image's packages: " + " ".join(self.spec["requirements"]), self.spec["requirements"])
        args = [constraints if a == "{constraints}" else a for a in self.spec["install"]]
        self.pip("gan_tpu: pip install " + " ".join(os.path.relpath(a, ROOT) if os.sep in a else a for a in args), args)
        with open(stamp, "w") as fh:
            fh.write(wanted)
        versions = self.run("versions", [os.path.join(self.bin, "python"), "-c",
                                         "import sys; from gan_tpu import platform as p; "
                                         "print('python', sys.version.split()[0], p.distributions())"]).stdout
        self.say(f"       {versions.strip()}")

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND", "VIRTUAL_ENV")}
        env.update(PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}", CUDA_VISIBLE_DEVICES="",
                   TF_CPP_MIN_LOG_LEVEL="2", **extra)
        return env

    def check(self, what: str, kind: str, kernel: str | None, arg) -> None:
        python = os.path.join(self.bin, "python")
        if kind == "accelerator":  # a fresh interpreter runs the notebook's first cells
            args = [python, os.path.join(ROOT, ".ci", "accelerator_cell.py"), kernel] + (["--fake-tpu"] if arg else [])
            env = self.env(**({} if arg else {"GAN_TPU_SMOKE": "1"}))
            out = json.loads(self.run(what, args, env=env).stdout.strip().splitlines()[-1])
            want = "jax" if arg else "tensorflow"
            if out["backend"] != want or out["KERAS_BACKEND"] != want or out["keras_imported"]:
                raise RuntimeError(f"{self.name}: {what}: got {out}")
        elif kind == "twin":
            work = os.path.join(self.work, kernel)
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
            env = self.env(GAN_TPU_SMOKE="1", GAN_TPU_WORKING=work)
            if arg == "jax":
                env.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                           XLA_FLAGS=f"--xla_force_host_platform_device_count={TPU_DEVICES}")
            twin = os.path.join(ROOT, "kernels", kernel, f"{kernel}.py")
            proc = self.run(what, [python, twin], env=env, cwd=work)
            self._check_twin(what, work, arg, proc.stdout + proc.stderr)
        elif kind == "demo":
            out = os.path.join(self.work, "demo_out")
            shutil.rmtree(out, ignore_errors=True)
            self.run(what, [os.path.join(self.bin, "gan-tpu"), "demo", "--out", out], env=self.env())
            if not os.path.isfile(os.path.join(out, "images.zip")):
                raise RuntimeError(f"{self.name}: {what}: no images.zip in {out}")

    def _check_twin(self, what: str, work: str, backend: str, output: str) -> None:
        """The run's own record: its backend, replicas and per-replica batch, a validated zip
        (the twin itself stops unless `gan-tpu validate` passes)."""
        with open(os.path.join(work, "run", "config.toml")) as fh:
            config = fh.read()
        problems = []
        if f'backend = "{backend}"' not in config:
            problems.append(f"config.toml does not say backend = {backend!r}")
        if backend == "jax":
            match = re.search(r"global batch (\d+) on (\d+) replica", output)
            if not match or int(match[2]) != TPU_DEVICES or int(match[1]) <= TPU_DEVICES:
                problems.append(f"not {TPU_DEVICES} replicas with more than one image each: "
                                f"{match[0] if match else 'no training line'}")
        if not os.path.isfile(os.path.join(work, "images.zip")):
            problems.append("no images.zip")
        if problems:
            raise RuntimeError(f"{self.name}: {what}: {'; '.join(problems)}\n{output[-3000:]}")


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    wheel, wanted = os.path.abspath(argv[0]), argv[1:]
    matrix = rows(wheel)
    unknown = [w for w in wanted if w not in matrix]
    if unknown:
        raise SystemExit(f"test-compat: unknown row(s) {unknown}; rows: {', '.join(matrix)}")
    os.environ.setdefault("PIP_CACHE_DIR", os.path.join(COMPAT_DIR, "pip-cache"))
    started = time.monotonic()
    names = wanted or list(matrix)
    failures = []

    def install(row: Row):
        try:
            row.install()
            return None
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            return err

    # Installs are mostly download and unpacking: all rows at once; then the checks, which
    # use the CPU, one row after the other.
    print(f"test-compat: installing {', '.join(names)} side by side", flush=True)
    table = {n: Row(n, matrix[n]) for n in names}
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        errors = dict(zip(names, pool.map(install, table.values())))
    print(f"test-compat: installed in {time.monotonic() - started:.0f} s", flush=True)
    for name, row in table.items():
        print(f"[{name}]", *row.lines, sep="\n", flush=True)
        row.lines = None
        error = errors[name]
        try:
            if error is not None:
                raise error
            for check in matrix[name]["checks"]:
                row.check(*check)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            print(f"  {err}", flush=True)
            failures.append(name)
    total = time.monotonic() - started
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"test-compat: {len(wanted or matrix) - len(failures)} row(s) passed, {len(failures)} failed "
          f"({', '.join(failures) or 'none'}); {total:.0f} s wall, load {load:.1f} on {os.cpu_count()} cores")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
