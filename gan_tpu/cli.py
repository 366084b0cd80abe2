"""`gan-tpu` command line: one subcommand per module, bad input as a one-line error."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from gan_tpu.errors import UserError

# Each module defines `register(subparsers)`, which adds its subcommand(s) and sets
# `func(args) -> int | None` as the parser default. Imported lazily-ish: TensorFlow
# loads only once a command actually needs it.
_COMMAND_MODULES = (
    "gan_tpu.commands",
    "gan_tpu.submission.validate",
    "gan_tpu.submission.submit",
    "gan_tpu.metrics.score",
    "gan_tpu.kaggle.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gan-tpu",
        description="TPU-first GAN pipeline for Kaggle's Monet competition.",
        epilog="--verbose (anywhere on the line): keep TensorFlow's and XLA's C++ log lines on "
               "standard error, which gan-tpu otherwise filters out.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()  # the budget counts from here, not from the process start
    if argv is None:  # the program itself, not a test calling main(): keep C++ logs off stderr
        from gan_tpu.quiet import filter_native_logs

        argv, native_filter = filter_native_logs(sys.argv[1:])
        if native_filter is not None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(argv)
    from gan_tpu import keras_backend, platform

    try:  # before any command module imports Keras: the backend is fixed at import
        backend = keras_backend.choose(argv)
        platform.require_supported(backend)
    except UserError as err:
        print(f"gan-tpu: error: {err}", file=sys.stderr)
        return 2
    from gan_tpu.budget import mark_run_start

    mark_run_start(started)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from gan_tpu import job_watch

    try:
        status = int(args.func(args) or 0)
        job_watch.finish()  # past one process: wait for every process before leaving the job
    except UserError as err:
        job_watch.stop()
        print(f"gan-tpu: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if job_watch.lost_peer(err):  # past one process: another one went (one line, exit 3)
            job_watch.end_after(err)
        raise
    except KeyboardInterrupt:
        print("gan-tpu: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
