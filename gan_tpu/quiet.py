"""A quiet start: TensorFlow's and XLA's C++ log lines kept off standard error.

TensorFlow 2.21 logs through absl before its logging is initialised, so TF_CPP_MIN_LOG_LEVEL
does not silence lines such as `I0000 ... cudart_stub.cc:31] Could not find cuda drivers` or
`E0000 ... failed call to cuInit: ... CUDA error` on a machine without a GPU, which read like
failures before every one-line error. `filter_native_logs()` points file descriptor 2 at a
pipe whose reader drops those lines and passes everything else on; Python's own `sys.stderr`
(gan_tpu's log, warnings, tracebacks) writes to the terminal directly. `gan-tpu --verbose`
leaves standard error alone.
"""
from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# absl's format (`I0000 00:00:1796411484.898013    5367 port.cc:153] ...`), TensorFlow's
# older one (`2024-05-01 10:00:00.000000: W tensorflow/...`), and absl's pre-init notice.
# Fatal (F) lines are kept.
NATIVE = re.compile(rb"^(?:[IWE]\d{4} [\d:.]+\s+\d+ [^\]\s]+:\d+\] "
                    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\] "
                    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)")


_handlers: list = []


def on_native_line(handler) -> None:
    """`handler(line: bytes) -> bool` sees every line not dropped; True: it dealt with the line."""
    _handlers.append(handler)


def is_native_log(line: bytes) -> bool:
    return bool(NATIVE.match(line))


class NativeLogFilter:
    """Installed once per process; `close()` (also at exit) restores descriptor 2."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self.saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self.previous = sys.stderr
        sys.stderr = open(os.dup(self.saved), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
        self.thread = threading.Thread(target=self._pump, args=(read,), daemon=True, name="native-log-filter")
        self.thread.start()
        atexit.register(self.close)

    def _pump(self, read: int) -> None:
        with open(read, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                self._write(b"".join(line + b"\n" for line in lines if not self._handled(line)))
            if not is_native_log(pending):
                self._write(pending)

    @staticmethod
    def _handled(line: bytes) -> bool:
        return is_native_log(line) or any(handler(line) for handler in _handlers)

    def _write(self, data: bytes) -> None:
        while data:  # a pipe or terminal may take part of it
            data = data[os.write(self.saved, data):]

    def close(self) -> None:
        if self.thread is None:
            return
        sys.stderr.flush()
        os.dup2(self.saved, 2)  # closes the pipe's last writer here: the reader sees its end
        self.thread.join(timeout=2)
        self.thread = None


def filter_native_logs(argv: list[str]) -> tuple[list[str], NativeLogFilter | None]:
    """`argv` without `--verbose`, and the filter installed unless it was there."""
    if "--verbose" in argv:
        return [a for a in argv if a != "--verbose"], None
    return argv, NativeLogFilter()
