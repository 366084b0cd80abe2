"""``gan-tpu submit``: the competition takes notebook submissions only, so a submission is a
notebook version: ``--kernel OWNER/SLUG [--version N]`` downloads that version's images.zip,
validates it and submits the version through the official client's code-competition route
(``competition_submit_code``, as ``kaggle competitions submit -k -v`` does); ``--run DIR``
first puts a local run's generator on Kaggle and paints it there (gan_tpu.kaggle.from_run).
A plain zip goes only to a file competition (``--competition``); for this one it is refused
with the right command. Credentials are checked first, errors scrubbed of secrets."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from gan_tpu.errors import UserError
from gan_tpu.kaggle.api import INSTALL_HINT, error_line, find_credentials, load_api, loaded
from gan_tpu.kaggle.paths import COMPETITION as DEFAULT_COMPETITION
from gan_tpu.kaggle.code_submit import check_response, submit_version, validated
from gan_tpu.kaggle.versions import WAIT_S, latest_version, split_kernel

NOTEBOOK_ONLY = {DEFAULT_COMPETITION}  # competitions that score a notebook version's output only


def notebook_route(zip_path: str = "images.zip") -> str:
    return (f"{DEFAULT_COMPETITION} takes notebook submissions only, not an uploaded {zip_path}: "
            f"submit the notebook version that wrote it with `gan-tpu submit --kernel OWNER/SLUG "
            f"--version N -m MESSAGE` (or push one: `make kernel SUBMIT=1`; from a local run: "
            f"`make submit RUN=runs/NAME`)")


def submit_notebook(kernel: str, message: str, version: int | None = None, *,
                    competition: str = DEFAULT_COMPETITION, api=None, out=None) -> Path:
    """``gan-tpu submit --kernel``: the given (or newest) version, checked, then submitted."""
    out = out or sys.stdout
    log = lambda line: print(line, file=out, flush=True)  # noqa: E731
    split_kernel(kernel)
    _require_message(message)
    api = loaded(api)
    if version is None:
        version = latest_version(api, kernel)
        log(f"{kernel}: newest version {version}")
    with tempfile.TemporaryDirectory(prefix="gan-tpu-submit-") as folder:
        return submit_version(api, kernel, int(version), message, competition=competition, folder=folder, log=log)


def _require_message(message: str) -> None:
    if not message or not message.strip():
        raise UserError("a submission message is required: -m MESSAGE")


def submit(path: str, message: str, competition: str = DEFAULT_COMPETITION, *,
           validate: bool = True, out=None) -> object:
    """A file competition's route: validate ``path``, then upload it; returns the API's response."""
    out = out or sys.stdout
    if competition in NOTEBOOK_ONLY:
        raise UserError(notebook_route(path))
    _require_message(message)
    # Cheap checks first: a missing package or credentials should not wait for validation.
    if importlib.util.find_spec("kaggle") is None:
        raise UserError(f"the kaggle package is not installed: {INSTALL_HINT}")
    creds = find_credentials()
    if validate:
        validated(path, lambda line: print(line, file=out, flush=True))
    api = load_api()
    try:
        result = api.competition_submit(os.fspath(path), message, competition)
    except Exception as err:  # noqa: BLE001 - API errors (HTTP, network, validation) as one line
        raise UserError(f"Kaggle API error submitting {path} to {competition}: "
                        f"{error_line(err)}") from err
    text = check_response(result, f"{path} to {competition}")
    who = f" as {creds.username}" if creds.username else ""
    print(f"submitted {path} to {competition}{who}: {text or 'ok'}", file=out, flush=True)
    ref = getattr(result, "ref", None)
    if ref:
        print(f"submission ref: {ref}", file=out, flush=True)
    return result


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "submit",
        help="submit a Kaggle notebook version (--kernel), or a local run through a generation notebook (--run)",
        description=f"{DEFAULT_COMPETITION} scores the images.zip a notebook version wrote: --kernel OWNER/SLUG "
        "[--version N] downloads it, validates it and submits that version; --run DIR uploads the run's "
        "generator, paints images.zip in a Kaggle notebook, and submits that. A ZIP is submitted only to a file "
        f"competition (--competition). Needs the official kaggle package ({INSTALL_HINT}) and credentials: "
        "kaggle.json in $KAGGLE_CONFIG_DIR or ~/.kaggle, or KAGGLE_USERNAME and KAGGLE_KEY.",
    )
    p.add_argument("zip", nargs="?", help="a file competition's submission file")
    p.add_argument("--kernel", metavar="OWNER/SLUG", help="the notebook whose version to submit")
    p.add_argument("--version", type=int, metavar="N", help="its version (default: the newest)")
    p.add_argument("--run", metavar="DIR", help="a local run: its generator is painted on Kaggle, then submitted")
    p.add_argument("-m", "--message", required=True, help="the submission's description")
    p.add_argument("--competition", default=DEFAULT_COMPETITION,
                   help=f"competition slug (default {DEFAULT_COMPETITION})")
    p.add_argument("--wait-hours", type=float, default=WAIT_S / 3600,
                   help=f"--run: how long to wait for the notebook (default {WAIT_S / 3600:.0f})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    chosen = [name for name in ("zip", "kernel", "run") if getattr(args, name)]
    if len(chosen) != 1:
        raise UserError("give one of: --kernel OWNER/SLUG (a notebook version), --run DIR (a local run), "
                        "or ZIP (a file competition)")
    if args.version is not None and not args.kernel:
        raise UserError("--version goes with --kernel OWNER/SLUG")
    if args.kernel:
        submit_notebook(args.kernel, args.message, args.version, competition=args.competition)
    elif args.run:
        from gan_tpu.kaggle.from_run import submit_run

        _require_message(args.message)
        submit_run(args.run, args.message, competition=args.competition, timeout_s=args.wait_hours * 3600)
    else:
        submit(args.zip, args.message, args.competition)
    return 0
