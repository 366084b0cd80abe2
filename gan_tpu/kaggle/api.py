"""The official ``kaggle`` package, imported and authenticated only when needed, and its
errors as one line with no secret in it.

Credentials are checked before the ``kaggle`` package is imported (its import
authenticates and prints on its own): ``kaggle.json`` in the Kaggle config directory
(``$KAGGLE_CONFIG_DIR``, else ``~/.kaggle``, else ``$XDG_CONFIG_HOME/kaggle`` as the
kaggle CLI resolves it), ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``, or an access token
(``KAGGLE_API_TOKEN``, ``~/.kaggle/access_token``). A credentials file readable by
other users draws the kaggle CLI's warning. The key is never printed.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import stat
import sys
from dataclasses import dataclass
from typing import Optional

from gan_tpu.errors import UserError

INSTALL_HINT = "pip install 'gan_tpu[kaggle]'"


@dataclass
class Credentials:
    """Where the Kaggle credentials come from (never holds the key itself)."""

    source: str  # "kaggle.json", "environment" or "access token"
    path: Optional[str] = None
    username: Optional[str] = None


def config_dir() -> str:
    """The Kaggle config directory, resolved as the kaggle package does."""
    configured = os.environ.get("KAGGLE_CONFIG_DIR")
    if configured:
        return os.path.expanduser(configured)
    home = os.path.join(os.path.expanduser("~"), ".kaggle")
    if sys.platform.startswith("linux") and not os.path.exists(home):
        xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        return os.path.join(xdg, "kaggle")
    return home


def readable_by_others(path: str) -> bool:
    if os.name == "nt":
        return False
    mode = os.stat(path).st_mode
    return bool(mode & (stat.S_IROTH | stat.S_IRGRP))


def find_credentials(warn=None) -> Credentials:
    """Check that credentials exist (without reading the key out); raise UserError if not.

    ``warn(message)`` is called for a credentials file readable by other users.
    """
    warn = warn or (lambda msg: print(f"gan-tpu: warning: {msg}", file=sys.stderr))
    directory = config_dir()
    path = os.path.join(directory, "kaggle.json")
    env_user, env_key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    if os.path.isfile(path):
        if readable_by_others(path):
            warn(f"Your Kaggle API key is readable by other users on this system! "
                 f"To fix this, run 'chmod 600 {path}'")
        try:
            with open(path) as f:
                data = json.load(f)
        except OSError as err:
            raise UserError(f"cannot read Kaggle credentials {path}: {err.strerror or err}") from err
        except ValueError as err:
            raise UserError(f"Kaggle credentials {path} are not valid JSON") from err
        if not isinstance(data, dict):
            raise UserError(f"Kaggle credentials {path}: expected a JSON object with username and key")
        missing = [k for k in ("username", "key") if not data.get(k) and not os.environ.get(f"KAGGLE_{k.upper()}")]
        if missing:
            raise UserError(f"Kaggle credentials {path}: no {' or '.join(repr(k) for k in missing)}")
        return Credentials("kaggle.json", path, data.get("username") or env_user)
    if env_user and env_key:
        return Credentials("environment", None, env_user)
    token = os.environ.get("KAGGLE_API_TOKEN")
    token_file = os.path.join(os.path.expanduser("~"), ".kaggle", "access_token")
    if token or os.path.isfile(token_file):
        return Credentials("access token", None if token else token_file, None)
    if env_user or env_key:
        have, lack = ("KAGGLE_USERNAME", "KAGGLE_KEY") if env_user else ("KAGGLE_KEY", "KAGGLE_USERNAME")
        raise UserError(f"Kaggle credentials: {have} is set but {lack} is not")
    raise UserError(
        f"no Kaggle credentials: put kaggle.json (from kaggle.com > Settings > API) in {directory} "
        "and chmod 600 it, or set KAGGLE_USERNAME and KAGGLE_KEY"
    )


def _secrets() -> list[str]:
    secrets = [os.environ.get("KAGGLE_KEY"), os.environ.get("KAGGLE_API_TOKEN")]
    path = os.path.join(config_dir(), "kaggle.json")
    try:
        with open(path) as f:
            secrets.append(json.load(f).get("key"))
    except (OSError, ValueError, AttributeError):
        pass
    return [s for s in secrets if isinstance(s, str) and len(s) >= 4]


def scrub(text: str) -> str:
    """`text` with every Kaggle secret this machine holds replaced by ****."""
    for secret in _secrets():
        text = text.replace(secret, "****")
    return text


def one_line(text, limit: int = 300) -> str:
    """`text` (or an error) as one line of at most `limit` characters."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    line = " | ".join(lines) if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def load_api():
    """Import and authenticate the kaggle package's ``KaggleApi`` (credentials checked first)."""
    quiet = io.StringIO()
    if importlib.util.find_spec("kaggle") is None:
        raise UserError(f"the kaggle package is not installed: {INSTALL_HINT}")
    try:
        with contextlib.redirect_stdout(quiet):  # its import authenticates and prints
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as err:
        raise UserError(f"the kaggle package is not installed ({err.name or err}): {INSTALL_HINT}") from err
    api = KaggleApi()
    # The class resolves its config path once, at import; follow the environment now.
    api.config_dir = config_dir()
    api.config = os.path.join(api.config_dir, "kaggle.json")
    try:
        with contextlib.redirect_stdout(quiet):
            api.authenticate()
    except SystemExit as err:  # it prints help and exits when nothing works
        raise UserError("Kaggle authentication failed: check kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY") from err
    except Exception as err:  # noqa: BLE001 - any library error becomes one line
        raise UserError(f"Kaggle authentication failed: {error_line(err)}") from err
    return api


def error_line(err: BaseException) -> str:
    """An API error as one line, secrets scrubbed (its type name when it has no text)."""
    return scrub(one_line(err)) or type(err).__name__


def loaded(api=None):
    """`api` when given (tests pass a stand-in), else the kaggle package's authenticated API."""
    if api is not None:
        return api
    if importlib.util.find_spec("kaggle") is None:
        raise UserError(f"the kaggle package is not installed: {INSTALL_HINT}")
    find_credentials()
    return load_api()
