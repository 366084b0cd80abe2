"""`make test-compat`: every row of the README's support matrix in its own virtual
environment, gan_tpu installed from its wheel as users install it, then run as they run it.

    python .ci/compat.py WHEEL [ROW ...]     (rows: kaggle-tpu gpu-tf219 floor; default all)

* kaggle-tpu: Kaggle's TPU image (Python 3.12, tensorflow-cpu 2.20.0, jax/jaxlib 0.7.2 on
  CPU, newest keras and numpy, Jupyter), the wheel with ``--no-deps --no-index`` as the
  notebook installs it (and it ships the pipelines). On a host made to look like a TPU VM
  the notebook's accelerator cell must choose JAX without importing Keras; the TPU
  notebook itself is executed (.ci/kaggle_rehearsal.py: a Jupyter kernel, a stand-in
  /kaggle in each mount layout, offline) in smoke mode on 8 JAX host devices (a v5e-8's
  8 chips), 2 images per replica, to a valid images.zip (.ci/kaggle_checks.py).
* gpu-tf219: the GPU notebook on an older TensorFlow (Python 3.12, tensorflow 2.19 with
  the Keras pip gives it, Jupyter), wheel ``--no-deps``; the GPU notebook executed the same way.
* floor: the lowest versions claimed (gan_tpu.platform.FLOORS: Python, TensorFlow, Keras,
  JAX, numpy, scipy), ``pip install 'WHEEL[tf,jax]'`` resolving install_requires under
  those pins; `gan-tpu demo` and the TPU notebook's .py twin on JAX against a stand-in
  /kaggle ($GAN_TPU_KAGGLE_ROOT).

Venvs live in .compat/<row>/ (git-ignored) and are reused while their requirements are
unchanged; pip's cache is .compat/pip-cache (PIP_CACHE_DIR wins), so a fresh clone starts
cold, as CI does. Each step's wall time is printed, and a summary.
"""
from __future__ import annotations

import concurrent.futures
import glob
import json
import os
import shutil
import subprocess
import sys
import time

from kaggle_checks import TPU_DEVICES, check_notebook, check_wheel, run_problems

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPAT_DIR = os.environ.get("COMPAT_DIR", os.path.join(ROOT, ".compat"))
STEP_TIMEOUT = int(os.environ.get("COMPAT_STEP_TIMEOUT", "1800"))
JUPYTER = ["nbclient", "ipykernel"]  # Kaggle's images have Jupyter: the rehearsal executes the .ipynb


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
            requirements=["tensorflow-cpu==2.20.0", "jax==0.7.2", "jaxlib==0.7.2", "keras", "numpy", "scipy",
                          *JUPYTER],
            install=notebook_install,
            checks=[("the wheel ships the pipelines, installed offline", "wheel", None, None),
                    ("accelerator cell on a TPU VM chooses JAX", "accelerator", "tpu-cyclegan", True),
                    *[(f"TPU notebook executed, {layout} /kaggle layout, smoke, JAX over 8 host devices",
                       "notebook", "tpu-cyclegan", ("jax", layout)) for layout in ("new", "old")]]),
        "gpu-tf219": dict(
            python="3.12",
            requirements=["tensorflow==2.19.*", "scipy", *JUPYTER],
            install=notebook_install,
            checks=[("accelerator cell imports no Keras", "accelerator", "gpu-cyclegan", False),
                    *[(f"GPU notebook executed, {layout} /kaggle layout, smoke, TensorFlow",
                       "notebook", "gpu-cyclegan", ("tensorflow", layout)) for layout in ("new", "old")]]),
        "floor": dict(
            python=".".join(map(str, floors()["python"])),
            requirements=floor_pins(),
            install=[f"{wheel}[tf,jax]", "-c", "{constraints}"],
            checks=[("gan-tpu demo (TensorFlow)", "demo", None, None),
                    ("TPU twin, smoke, JAX over 8 host devices", "twin", "tpu-cyclegan", "jax")]),
    }


class Row:
    def __init__(self, name: str, spec: dict, wheel: str = ""):
        self.name, self.spec, self.wheel = name, spec, wheel
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
        elif kind == "twin":  # the .py twin on a stand-in /kaggle ($GAN_TPU_KAGGLE_ROOT)
            work = os.path.join(self.work, kernel)
            shutil.rmtree(work, ignore_errors=True)
            root = self.stand_in_kaggle(work)
            env = self.env(GAN_TPU_SMOKE="1", GAN_TPU_KAGGLE_ROOT=root, **self.backend_env(arg))
            twin = os.path.join(ROOT, "kernels", kernel, f"{kernel}.py")
            proc = self.run(what, [python, twin], env=env, cwd=os.path.join(root, "working"))
            self._check_twin(what, os.path.join(root, "working"), arg, proc.stdout + proc.stderr)
            shutil.rmtree(work, ignore_errors=True)
        elif kind == "notebook":
            backend, layout = arg
            work = os.path.join(self.work, f"{kernel}-{layout}")
            shutil.rmtree(work, ignore_errors=True)
            data = os.path.join(work, "sample-data")
            self.run("sample data", [python, "-m", "gan_tpu.cli", "sample-data", "--out", data,
                                     "--monet", "4", "--photo", "8"], env=self.env())
            env = self.env(GAN_TPU_SMOKE="1", **self.backend_env(backend))
            out = os.path.join(work, "out")
            self.run(what, [python, os.path.join(ROOT, ".ci", "kaggle_rehearsal.py"), kernel, "--layout", layout,
                            "--wheel", self.wheel, "--data", data, "--out", out], env=env)
            check_notebook(f"{self.name}: {what}", out, backend)
            shutil.rmtree(work, ignore_errors=True)
        elif kind == "wheel":
            check_wheel(self.wheel)
            code = "import gan_tpu.config as c; print(c.PIPELINES_DIR, c.load('cyclegan')['model']['name'])"
            got = self.run(what, [python, "-c", code], env=self.env()).stdout.split()
            if got[-1] != "cyclegan" or not got[0].startswith(self.venv):
                raise RuntimeError(f"{self.name}: {what}: pipelines not loaded from the installed wheel: {got}")
        elif kind == "demo":
            out = os.path.join(self.work, "demo_out")
            shutil.rmtree(out, ignore_errors=True)
            self.run(what, [os.path.join(self.bin, "gan-tpu"), "demo", "--out", out], env=self.env())
            if not os.path.isfile(os.path.join(out, "images.zip")):
                raise RuntimeError(f"{self.name}: {what}: no images.zip in {out}")

    @staticmethod
    def backend_env(backend: str) -> dict:
        if backend != "jax":
            return {}
        return dict(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                    XLA_FLAGS=f"--xla_force_host_platform_device_count={TPU_DEVICES}")

    def stand_in_kaggle(self, work: str) -> str:
        """work/kaggle: sample data where Kaggle mounts the competition today, working/, temp/."""
        root = os.path.join(work, "kaggle")
        python = os.path.join(self.bin, "python")
        self.run("sample data", [python, "-m", "gan_tpu.cli", "sample-data", "--out",
                                 os.path.join(root, "input", "competitions", "gan-getting-started"),
                                 "--monet", "4", "--photo", "8"], env=self.env())
        for sub in ("working", "temp"):
            os.makedirs(os.path.join(root, sub))
        return root

    def _check_twin(self, what: str, work: str, backend: str, output: str) -> None:
        problems = run_problems(work, backend, output)
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
    table = {n: Row(n, matrix[n], wheel) for n in names}
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
