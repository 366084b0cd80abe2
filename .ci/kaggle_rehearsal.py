"""The Kaggle rehearsal: a kernel's .ipynb executed top to bottom in a Jupyter kernel, as
Kaggle's "Save & Run All" does, on a stand-in /kaggle tree laid out as Kaggle mounts it.

    ROW_PYTHON .ci/kaggle_rehearsal.py KERNEL --layout new|old --wheel WHEEL --data DIR --out DIR

Run with a support-matrix row's interpreter (nbclient, ipykernel and gan_tpu's wheel
installed: the image's packages). It re-runs itself in a private mount and network
namespace (``unshare --mount --net``; root, or ``--map-root-user``): there a tmpfs is
mounted at /kaggle and at /tmp, the loopback link is brought up for the kernel's ZMQ
sockets and nothing else is reachable (no package index either). The tree:

* new layout: ``input/competitions/gan-getting-started/`` (DIR, from ``gan-tpu sample-data``),
  ``input/datasets/rehearsal/gan-tpu-wheel/WHEEL``, ``working/``, ``temp/``;
* old layout: ``input/gan-getting-started/``, ``input/gan-tpu-wheel/WHEEL``, ``working/``
  (no temp/: the run folder goes to /tmp/gan_tpu_run).

``input/`` is mounted read-only and the kernel starts in ``/kaggle/working``. The notebook
finds everything itself (gan_tpu.kaggle's discovery). Written to OUT (outside /kaggle, which
vanishes with the namespace): ``executed.ipynb``, ``images.zip``, ``config.toml`` (the run's,
as kept in working/) and ``manifest.json`` (working/ and scratch files with sizes, the
notebook's error if any, ``gan-tpu validate``'s result). Nothing stays on the machine: the
/kaggle mount point, if this made it, is removed again.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

KAGGLE = "/kaggle"
LAYOUTS = {"new": ("competitions/gan-getting-started", "datasets/rehearsal/gan-tpu-wheel"),
           "old": ("gan-getting-started", "gan-tpu-wheel")}
SCRATCH = {"new": "/kaggle/temp", "old": "/tmp/gan_tpu_run"}


def outer(args, argv: list[str]) -> int:
    """Make /kaggle's mount point if need be, run the inner half in new namespaces, tidy up."""
    made = not os.path.exists(KAGGLE)
    if made:
        try:
            os.mkdir(KAGGLE)
        except PermissionError:
            raise SystemExit(f"rehearsal: {KAGGLE} does not exist and this user cannot make its mount "
                             f"point: run as root, or create an empty {KAGGLE} once") from None
    try:
        userns = [] if os.geteuid() == 0 else ["--map-root-user"]
        cmd = ["unshare", "--mount", "--net", "--propagation", "private", *userns,
               sys.executable, os.path.abspath(__file__), "--inner", *argv]
        return subprocess.run(cmd).returncode
    finally:
        if made:
            os.rmdir(KAGGLE)  # an empty mount point on the host: the tmpfs lived in the namespace


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True)


def lay_out(layout: str, wheel: str, data: str, keep: list[str]) -> None:
    sh("mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", KAGGLE)
    data_dir, wheel_dir = (os.path.join(KAGGLE, "input", d) for d in LAYOUTS[layout])
    shutil.copytree(data, data_dir)
    os.makedirs(wheel_dir)
    shutil.copy(wheel, wheel_dir)
    os.makedirs(os.path.join(KAGGLE, "working"))
    if layout == "new":
        os.makedirs(os.path.join(KAGGLE, "temp"))
    private_tmp(keep)  # after the copies: WHEEL may be in /tmp
    sh("mount", "--bind", f"{KAGGLE}/input", f"{KAGGLE}/input")
    sh("mount", "-o", "remount,bind,ro", f"{KAGGLE}/input")
    try:
        open(os.path.join(KAGGLE, "input", "probe"), "w").close()
    except OSError:
        pass
    else:
        raise SystemExit("rehearsal: /kaggle/input is not read-only")


def private_tmp(keep: list[str]) -> None:
    """A fresh tmpfs at /tmp, as on a new Kaggle VM. What this rehearsal itself runs from and
    writes to (the checkout, the row's venv, OUT) may live under the host's /tmp (a CI clone
    in /tmp): those folders are bound back in at their own paths, through a holding mount
    at /mnt that exists only in this namespace."""
    under_tmp = sorted({os.path.realpath(k) for k in keep if os.path.realpath(k).startswith("/tmp/")})
    if under_tmp:
        sh("mount", "-t", "tmpfs", "tmpfs", "/mnt")
        os.makedirs("/mnt/host-tmp")
        sh("mount", "--rbind", "/tmp", "/mnt/host-tmp")
    sh("mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", "/tmp")
    for path in under_tmp:
        if any(path.startswith(other + "/") for other in under_tmp if other != path):
            continue  # inside a folder bound already
        os.makedirs(path, exist_ok=True)
        sh("mount", "--rbind", "/mnt/host-tmp" + path[len("/tmp"):], path)


def files(root: str) -> list[tuple[str, int]]:
    found = []
    for folder, _, names in os.walk(root):
        found += [(os.path.relpath(os.path.join(folder, n), root), os.path.getsize(os.path.join(folder, n)))
                  for n in names]
    return sorted(found)


def inner(args) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    sh("ip", "link", "set", "lo", "up")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.makedirs(args.out, exist_ok=True)
    lay_out(args.layout, args.wheel, args.data, keep=[root, sys.prefix, args.out])
    home = "/tmp/home"
    os.makedirs(home)
    os.environ.update(HOME=home, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
                      JUPYTER_RUNTIME_DIR=os.path.join(home, "runtime"))
    for key in ("PYTHONPATH", "GAN_TPU_WORKING", "GAN_TPU_KAGGLE_ROOT", "GAN_TPU_SCRATCH"):
        os.environ.pop(key, None)  # the notebook's literal /kaggle paths, nothing else
    working = os.path.join(KAGGLE, "working")
    os.chdir(working)
    kernels = os.path.join(root, "kernels")
    notebook = os.path.join(kernels, args.kernel, f"{args.kernel}.ipynb")
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": working}})
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err)[-4000:]
    except Exception as err:  # noqa: BLE001 - the kernel died, timed out...: say it, keep the notebook
        error = f"{type(err).__name__}: {err}"[-4000:]
    os.makedirs(args.out, exist_ok=True)
    nbformat.write(nb, os.path.join(args.out, "executed.ipynb"))
    zip_path = os.path.join(working, "images.zip")
    validate = None
    if os.path.isfile(zip_path):
        shutil.copy(zip_path, args.out)
        proc = subprocess.run([sys.executable, "-m", "gan_tpu.cli", "validate", zip_path, "--allow-any-count"],
                              capture_output=True, text=True)
        validate = {"rc": proc.returncode, "output": (proc.stdout + proc.stderr)[-2000:]}
    if os.path.isfile(os.path.join(working, "config.toml")):
        shutil.copy(os.path.join(working, "config.toml"), args.out)
    manifest = {"error": error, "validate": validate, "working": files(working),
                "scratch": files(SCRATCH[args.layout]), "python": sys.executable}
    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kernel")
    parser.add_argument("--layout", choices=LAYOUTS, required=True)
    parser.add_argument("--wheel", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key in ("wheel", "data", "out"):
        setattr(args, key, os.path.abspath(getattr(args, key)))
    if args.inner:
        return inner(args)
    return outer(args, [a for a in argv if a != "--inner"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
