"""A multi-process job that loses a process: every other process ends with one line naming
the process that stopped and what to do (`--resume`), exit status 3, within a bounded time.

Left to itself JAX ends the survivors with a fatal C++ error (a stack dump, exit 134) when
its coordination service sees a process go, or the collective that was waiting for it
raises first and JAX's shutdown then aborts. Here:

* the job runs with JAX's `jax_enable_recoverability`, so that a process gone is not fatal
  to the others by itself (:func:`prepare`);
* a watchdog thread asks the coordination service every `POLL_S` seconds which processes
  are alive (a dead or frozen one drops out after the heartbeat timeout) and ends this
  process with one line naming the one gone, or the coordinator when it cannot be reached;
* a collective that fails because its peer went (gloo's "Connection closed by peer") ends
  the command the same way (:func:`lost_peer`, :func:`end_after`), waiting at most one
  heartbeat timeout for the watchdog to name the process;
* what JAX still ends fatally (the coordinator gone, seen by its error poll first) is
  turned into the same line by the native-log filter (:func:`fatal_line`).

A normal end passes a barrier of every process before the watchdog stops (:func:`finish`),
so that a process finishing first is not taken for one that died.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import threading

EXIT_STATUS = 3
POLL_S = 2.0
_PEER_GONE = re.compile(r"Gloo [\w -]+ failed|closed by peer|reset by peer|heartbeat timeout|unhealthy|Socket closed")
FATAL = re.compile(rb"^F\d{4} .*(?:client\.h:\d+\] Terminating process because the JAX distributed service"
                   rb"|coordination_service_agent)")

_lock = threading.Lock()
_job = {"index": 0, "count": 1, "coordinator": None, "heartbeat_s": 0, "stop": None, "scratch": [],
        "finishing": False, "client": None}


def advice(index: int) -> str:
    return (f"process {index} stops too: start every process again with --resume "
            f"to continue from process 0's last checkpoint")


def say_and_exit(line: str) -> None:
    """Print `line` as this process's only error, remove its scratch folders, exit 3 now
    (no Python or JAX shutdown: that would wait for, or abort on, the process gone)."""
    _lock.acquire()  # the first report wins; never released: this process ends here
    print(f"gan-tpu: error: {line}", file=sys.stderr, flush=True)
    for folder in _job["scratch"]:
        shutil.rmtree(folder, True)
    os._exit(EXIT_STATUS)


def scratch(folder: str) -> None:
    """A scratch folder to remove when the job ends early (an ordinary end removes it at exit)."""
    _job["scratch"].append(folder)


def prepare() -> None:
    """Before joining: a process gone is not fatal to the others by itself (they end here,
    in one line, instead)."""
    import jax

    try:
        jax.config.update("jax_enable_recoverability", True)
    except (AttributeError, KeyError):  # an older JAX: its fatal error stays (see fatal_line)
        pass


def _gone_line(gone: list[int], reachable: bool) -> str:
    me, n = _job["index"], _job["count"]
    if not reachable and me != 0:  # (process 0 runs the coordinator itself)
        where = _job["coordinator"] or "the TPU pod's coordinator"
        return f"process 0 of {n} (the coordinator, {where}) stopped or cannot be reached; {advice(me)}"
    names = f"process {', '.join(str(i) for i in gone)} of {n}" if gone else "another process of the job"
    return (f"{names} stopped (killed, crashed, or silent for {_job['heartbeat_s']} s); "
            f"{advice(me)}")


def watch(index: int, count: int, coordinator: str | None, heartbeat_s: int) -> None:
    """Start the watchdog (a daemon thread) for process `index` of `count`."""
    from jax._src import distributed as jax_distributed  # the client JAX made; no public handle

    client = getattr(jax_distributed.global_state, "client", None)
    _job.update(index=index, count=count, coordinator=coordinator, heartbeat_s=heartbeat_s,
                stop=threading.Event(), client=client)
    if client is None or not hasattr(client, "get_live_nodes"):
        return
    stopped, everyone = _job["stop"], list(range(count))

    def loop() -> None:
        failures = 0
        while not stopped.wait(POLL_S):
            try:
                live, failures = client.get_live_nodes(everyone), 0
            except Exception:  # noqa: BLE001 - the coordinator's RPC failed twice: it is gone
                failures += 1
                if failures == 2 and not (stopped.is_set() or _job["finishing"]):
                    say_and_exit(_gone_line([0], reachable=False))
                continue
            gone = sorted(set(everyone) - set(live))
            if gone and not (stopped.is_set() or _job["finishing"]):  # (at the end, others leave first)
                say_and_exit(_gone_line(gone, reachable=True))

    threading.Thread(target=loop, daemon=True, name="gan_tpu-job-watch").start()
    atexit.register(_leave)  # before the interpreter's end tears the client down
    from gan_tpu import quiet

    quiet.on_native_line(fatal_line)


def lost_peer(err: BaseException) -> bool:
    """Whether `err` is a collective that failed because another process of the job went."""
    # JAX raises it as JaxRuntimeError, or as ValueError from a jitted call's dispatch.
    return _job["count"] > 1 and isinstance(err, Exception) and bool(_PEER_GONE.search(str(err)))


def end_after(err: BaseException) -> None:
    """After :func:`lost_peer`: let the watchdog name the process gone (at most a heartbeat
    timeout and two polls), else say what the collective said."""
    if _job["stop"] is not None:
        _job["stop"].wait(_job["heartbeat_s"] + 2 * POLL_S)  # never set here: a bounded sleep
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    say_and_exit(f"another process of the job stopped ({first}); {advice(_job['index'])}")


def fatal_line(line: bytes) -> bool:
    """For the native-log filter: JAX's fatal line about the job ends this process with the
    one line instead (True: the line was handled)."""
    if _job["count"] < 2 or not FATAL.match(line):
        return False
    say_and_exit(_gone_line([], reachable=_job["index"] == 0))
    return True


def stop() -> None:
    """This process ends on its own (an error of its own): the watchdog need not report."""
    if _job["stop"] is not None:
        _job["stop"].set()


def finish() -> None:
    """A normal end: wait for every process, stop the watchdog, leave the job."""
    if _job["count"] < 2:
        return
    from jax.experimental import multihost_utils

    _job["finishing"] = True  # once past the barrier, the others may leave before this one looks
    multihost_utils.sync_global_devices("gan_tpu: done")
    _leave()


def _leave() -> None:
    """Leave the job in order (also at exit): the others disconnect first, process 0, which
    runs the coordination service, once they have. With JAX's recoverability no shutdown
    barrier orders this, and a process still disconnecting from a service gone ends with
    JAX's fatal error. (The service answers a question about who is alive once every live
    process it names has asked, or is gone: process 0's answer {0} means all others left.)"""
    import jax

    client, _job["client"] = _job["client"], None
    if _job["count"] < 2 or client is None:  # alone, or already left
        return
    stop()
    if _job["index"] == 0:
        everyone = list(range(_job["count"]))

        def others_left() -> None:
            try:
                while set(client.get_live_nodes(everyone)) != {0}:
                    pass
            except Exception:  # noqa: BLE001 - nothing more to wait for
                pass

        waiting = threading.Thread(target=others_left, daemon=True)
        waiting.start()
        waiting.join(_job["heartbeat_s"] + 2 * POLL_S)
    jax.distributed.shutdown()
