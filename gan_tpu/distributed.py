"""Runs past one host: one process per host (a TPU pod slice's workers, several GPU hosts),
joined by JAX's distributed runtime, training one `keras.distribution.DataParallel` over
every process's devices.

* Start: :func:`start` joins the job when Keras' variables name one
  (`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `_NUM_PROCESSES`, `_PROCESS_ID`, what
  `keras.distribution.initialize` reads), when `runtime.processes` asks for it, or on a
  Cloud TPU pod slice (JAX finds the workers itself). It calls `jax.distributed.initialize`
  as Keras' `initialize` does, with a connect timeout and a heartbeat timeout (Keras' passes
  none: an absent coordinator would hang for 5 minutes, a dead peer stall for 100 s), and
  turns a failure into one line naming the address and the variable to fix.
* Data: a domain whose record files divide over the processes is read by file
  (:func:`process_files`: each process reads only its files); otherwise :func:`process_rows`
  keeps this process's rows of each global batch, so every process decodes and augments
  only its share and the global batch is the one a single process would make.
* One writer, one clock: process 0 writes the run directory; the others run the same code
  on a scratch directory (:func:`local_config`), removed at exit, so every process makes the
  same collective calls in the same order. The budget's clock is process 0's
  (:func:`one_clock`), so the guard, the planner and the NaN guard decide the same step on
  every process, and `[eval]`'s best is process 0's (:func:`agree`, gan_tpu.metrics.shares); on resume process 0 sends its checkpoint files to the others, so
  every process restores the same checkpoint (:func:`local_config`).

A single process never imports JAX here and behaves exactly as without this module.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from typing import Callable, Mapping

from gan_tpu.errors import UserError

ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
TIMEOUT = "GAN_TPU_CONNECT_TIMEOUT"  # seconds to reach the coordinator (and to notice a dead peer)
DEFAULT_TIMEOUT_S = 120

_state = {"index": 0, "count": 1}


def index() -> int:
    """This process's index in the job (0 when alone)."""
    return _state["index"]


def count() -> int:
    """How many processes the job has (1 when alone)."""
    return _state["count"]


def is_writer() -> bool:
    """Whether this process writes the run directory, the generator and the zip."""
    return index() == 0


def tpu_pod(env: Mapping[str, str] | None = None) -> bool:
    """A Cloud TPU VM of a multi-host slice: its workers are listed in `TPU_WORKER_HOSTNAMES`."""
    env = os.environ if env is None else env
    return "," in env.get("TPU_WORKER_HOSTNAMES", "")


def tf_workers(env: Mapping[str, str]) -> int:
    """How many workers (and chief) `TF_CONFIG` names: 0 when it is not set."""
    import json

    if not env.get("TF_CONFIG"):
        return 0
    try:
        cluster = json.loads(env["TF_CONFIG"]).get("cluster", {})
        return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))
    except (ValueError, AttributeError, TypeError):
        raise UserError(f"TF_CONFIG={env['TF_CONFIG'][:80]!r}: not TensorFlow's JSON cluster spec") from None


def requested(processes="auto", env: Mapping[str, str] | None = None) -> dict | None:
    """What to join: {"coordinator", "num_processes", "process_id"} (None values: JAX finds
    them, as on a TPU pod), or None for a single process.

    `processes` is `runtime.processes`: "auto" (join when Keras' variables are set or on a
    TPU pod slice), 1 (never), or N (join a job of N processes; the variables give the rest).
    """
    env = os.environ if env is None else env
    if processes != "auto" and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 1):
        raise UserError(f"runtime.processes: {processes!r} is not \"auto\" or a process count (1, 2, ...)")
    if processes == 1:
        return None
    named = [k for k in (ADDRESSES, NUM_PROCESSES, PROCESS_ID) if env.get(k)]
    if not named and tf_workers(env) > 1:
        raise UserError(f"TF_CONFIG names {tf_workers(env)} workers, but TensorFlow's multi-worker "
                        f"training (MultiWorkerMirroredStrategy) is not wired in: run past one host with "
                        f"the JAX backend and {ADDRESSES}, {NUM_PROCESSES}, {PROCESS_ID} "
                        f"(docs/multihost.md), or unset TF_CONFIG for one host")
    if not named:
        if processes == "auto" and not tpu_pod(env):
            return None
        if processes != "auto":
            raise UserError(f"runtime.processes = {processes}: set {ADDRESSES}, {PROCESS_ID} "
                            f"(or --coordinator, --process-id) on every process")
        return {"coordinator": None, "num_processes": None, "process_id": None}
    missing = [k for k in (ADDRESSES, PROCESS_ID) if not env.get(k)]
    if missing:
        raise UserError(f"{', '.join(named)} set but not {' and '.join(missing)}: set all three "
                        f"Keras variables (or --coordinator, --num-processes, --process-id) on every process")
    addresses = [a.strip() for a in env[ADDRESSES].split(",") if a.strip()]
    job = {"coordinator": addresses[0]}
    for key, var in (("num_processes", NUM_PROCESSES), ("process_id", PROCESS_ID)):
        text = env.get(var) or (str(processes) if key == "num_processes" and processes != "auto" else "")
        if not text and len(addresses) > 1 and key == "num_processes":
            text = str(len(addresses))
        if not text.strip().isdigit():
            raise UserError(f"{var}={text!r}: not a whole number")
        job[key] = int(text)
    n, i = job["num_processes"], job["process_id"]
    if processes not in ("auto", n):
        raise UserError(f"runtime.processes = {processes}, but {NUM_PROCESSES}={n}")
    if len(addresses) > 1 and len(addresses) != n:
        raise UserError(f"{ADDRESSES} lists {len(addresses)} addresses, but {NUM_PROCESSES}={n}")
    if n < 1 or not 0 <= i < n:
        raise UserError(f"{PROCESS_ID}={i}: must be in 0..{n - 1} ({NUM_PROCESSES}={n})")
    return job


def add_job_flags(parser) -> None:
    """`gan-tpu train|run`'s flags naming the job (the same as Keras' three variables)."""
    group = parser.add_argument_group("past one host (JAX backend; default: Keras' variables)")
    group.add_argument("--coordinator", metavar="HOST:PORT",
                       help=f"process 0's address, the same on every process ({ADDRESSES})")
    group.add_argument("--num-processes", type=int, metavar="N", help=f"processes in the job ({NUM_PROCESSES})")
    group.add_argument("--process-id", type=int, metavar="I", help=f"this process, 0..N-1 ({PROCESS_ID})")


def apply_flags(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """The CLI's --coordinator, --num-processes and --process-id, as Keras' variables."""
    for var, value in ((ADDRESSES, coordinator), (NUM_PROCESSES, num_processes), (PROCESS_ID, process_id)):
        if value is not None:
            os.environ[var] = str(value)


def timeout_s(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    text = env.get(TIMEOUT, "")
    if text and not text.isdigit():
        raise UserError(f"{TIMEOUT}={text!r}: not a whole number of seconds")
    return int(text) if text else DEFAULT_TIMEOUT_S


def start(cfg: dict) -> int:
    """Join the job `cfg` and the environment ask for (see :func:`requested`); returns the
    process count (1: nothing was done, nothing imported)."""
    job = requested(cfg["runtime"].get("processes", "auto"))
    if job is None:
        return 1
    if os.environ.get("KERAS_BACKEND") != "jax":
        raise UserError(f"a multi-process run ({ADDRESSES} or runtime.processes) needs Keras' JAX "
                        f"backend: set runtime.backend = \"jax\" (or KERAS_BACKEND=jax)")
    import threading

    import jax

    from gan_tpu import job_watch

    job_watch.prepare()  # a process gone is not fatal to the others: they end in one line
    timeout = timeout_s()
    heartbeat = max(10, timeout // 4)
    where = job["coordinator"] or "the TPU pod's coordinator"
    message = (f"process {job['process_id']} of {job['num_processes']} could not join the job at {where} "
               f"within {timeout} s; check {ADDRESSES} (the coordinator's host:port, reachable from every "
               f"host), {NUM_PROCESSES} (the same on every process) and {PROCESS_ID} (0..N-1, each once)")
    # JAX ends the process with a fatal C++ error (a stack dump, no exception) when the job
    # does not form in time: this watchdog, firing first, says why in one line instead.
    watchdog = threading.Timer(timeout, _give_up, (message,))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(coordinator_address=job["coordinator"], num_processes=job["num_processes"],
                                   process_id=job["process_id"], initialization_timeout=timeout + 60,
                                   heartbeat_timeout_seconds=heartbeat)
    except Exception as err:  # noqa: BLE001 - XlaRuntimeError, ValueError, RuntimeError
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"{message} ({first})") from None
    finally:
        watchdog.cancel()
    _state.update(index=jax.process_index(), count=jax.process_count())
    job_watch.watch(index(), count(), job["coordinator"], heartbeat)
    return count()


def _give_up(message: str) -> None:
    import sys

    print(f"gan-tpu: error: {message}", file=sys.stderr, flush=True)
    os._exit(2)


# ------------------------------------------------------------------ one writer


def local_config(cfg: dict, resume: bool = False) -> dict:
    """`cfg` for this process: as is on the writer; elsewhere `[output] dir` is a scratch
    folder removed at exit (the others run the same code, writing nothing the user sees).
    With `resume`, process 0 sends the others its checkpoint files (and `[eval]`'s best)
    first: every process then restores the same checkpoint the same way (a restore assigns
    every variable, and each assignment is a collective check across processes)."""
    if count() == 1:
        return cfg
    theirs = os.path.join(cfg["output"]["dir"], "checkpoints")
    if not is_writer():
        scratch = tempfile.mkdtemp(prefix=f"gan_tpu-process{index()}-")
        _scratch(scratch)
        cfg = {section: dict(values) if isinstance(values, dict) else values for section, values in cfg.items()}
        cfg["output"]["dir"] = os.path.join(scratch, "run")
    if resume:
        _copy_folder(theirs, os.path.join(cfg["output"]["dir"], "checkpoints"))
        # [eval]'s best so far, so that every process exports the same generator at the end
        _copy_folder(os.path.dirname(theirs), cfg["output"]["dir"], ("generator_best.keras",))
        _copy_folder(os.path.join(os.path.dirname(theirs), "eval"), os.path.join(cfg["output"]["dir"], "eval"),
                     ("best.json",))
    return cfg


def _copy_folder(source: str, target: str, names: tuple[str, ...] | None = None) -> None:
    """Process 0's files in `source` (those in `names`, if given), written into `target` on
    the other processes."""
    import json

    files = {}
    if is_writer() and os.path.isdir(source):
        for name in sorted(os.listdir(source)):
            if (names is None or name in names) and os.path.isfile(os.path.join(source, name)):
                with open(os.path.join(source, name), "rb") as fh:
                    files[name] = fh.read()
    listing = _bytes(json.dumps({n: len(b) for n, b in files.items()}).encode())
    for name, size in json.loads(listing).items():
        payload = _bytes(files.get(name, b""), size)
        if not is_writer():
            os.makedirs(target, exist_ok=True)
            with open(os.path.join(target, name), "wb") as fh:
                fh.write(payload)


def _bytes(payload: bytes, size: int | None = None) -> bytes:
    """Process 0's `payload` on every process (`size`: its length, when all know it)."""
    import numpy as np

    if size is None:
        size = int(broadcast(np.int32(len(payload))))
    buffer = np.zeros(size, np.uint8)
    if is_writer():
        buffer[:] = np.frombuffer(payload, np.uint8)
    return broadcast(buffer).tobytes() if size else b""


def local_path(path: str) -> str:
    """A file the writer writes at `path` (the zip); elsewhere a scratch file in `[output] dir`."""
    if is_writer():
        return path
    scratch = tempfile.mkdtemp(prefix=f"gan_tpu-process{index()}-")
    _scratch(scratch)
    return os.path.join(scratch, os.path.basename(path))


def _scratch(folder: str) -> None:
    """A scratch folder, removed at exit (also when the job ends early: gan_tpu.job_watch)."""
    from gan_tpu import job_watch

    atexit.register(shutil.rmtree, folder, True)
    job_watch.scratch(folder)


# ------------------------------------------------------------------ one clock, one state


def broadcast(values):
    """Process 0's NumPy values (a pytree), on every process. 64-bit values travel as pairs
    of 32-bit words: JAX without x64 would round them to 32 bits."""
    if count() == 1:
        return values
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    def wide(x) -> bool:
        return np.asarray(x).dtype.itemsize == 8

    def pack(x):
        return np.ascontiguousarray(x).reshape(-1).view(np.int32) if wide(x) else x

    def unpack(x, got):
        return np.asarray(got).view(np.asarray(x).dtype).reshape(np.shape(x)) if wide(x) else got

    return jax.tree_util.tree_map(unpack, values, multihost_utils.broadcast_one_to_all(
        jax.tree_util.tree_map(pack, values)))


def agree(decision: bool) -> bool:
    """Process 0's `decision`, on every process; `decision` itself when alone."""
    if count() == 1:
        return decision
    import numpy as np

    return bool(broadcast(np.int32(decision)))


def one_clock(clock: Callable[[], float] | None, run_elapsed: Callable[[], float]) -> Callable[[], float] | None:
    """The clock every process's budget guard and planner read: process 0's (a broadcast per
    reading, so each reading must be made by every process); `clock` itself when alone.
    With the real clock, its `command_start` is when process 0's command began (its
    `run_elapsed()` seconds ago)."""
    if count() == 1:
        return clock
    import numpy as np

    local = clock or time.monotonic

    def read() -> float:
        return float(broadcast(np.float64(local())))

    if clock is None:  # the budget counts from process 0's command start
        read.command_start = float(broadcast(np.float64(local() - run_elapsed())))
    return read


# ------------------------------------------------------------------ data


def _rows(global_batch: int) -> int:
    """This process's rows of a global batch."""
    if global_batch % count():
        raise UserError(f"train.batch_size: the global batch {global_batch} does not split over "
                        f"{count()} processes")
    return global_batch // count()


def process_files(files: tuple[str, ...], kind: str) -> tuple[str, ...] | None:
    """This process's share of a domain's record files (files i::P, for process i of P) when
    there are P of them, or a multiple of P; None (alone, other files, or a count that does
    not divide) when the processes split each global batch by rows instead (:func:`process_rows`)."""
    if count() == 1 or kind != "tfrec" or len(files) % count():
        return None
    return tuple(files[index()::count()])


def global_position(local_index, global_batch: int):
    """Where this process's `local_index`-th element of its own files stands in the stream of
    global batches (process i's rows of each are [i·B/P, (i+1)·B/P)): the position a single
    process's element would have there, so every element of a step gets its own seed."""
    rows = _rows(global_batch)
    return (local_index // rows) * global_batch + index() * rows + local_index % rows


def process_rows(ds, global_batch: int):
    """This process's rows of each global batch: of an enumerated stream of (index, ...)
    elements, those whose `index % global_batch` lies in [i·B/P, (i+1)·B/P) for process i of
    P (the rest are dropped before anything is decoded)."""
    if count() == 1:
        return ds
    rows = _rows(global_batch)
    lo = index() * rows

    def mine(i, *_):
        return (i % global_batch >= lo) & (i % global_batch < lo + rows)

    return ds.filter(mine)


def gathered(tree):
    """Past one process, a pytree of JAX arrays sharded over every process's devices as
    NumPy arrays holding all of it, on every process; `tree` itself when alone."""
    if count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def allgather(array):
    """Every process's NumPy `array` (the same shape on each), stacked on a new first axis in
    process order, on every process."""
    if count() == 1:
        import numpy as np

        return np.asarray(array)[None]
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(array, tiled=False)
