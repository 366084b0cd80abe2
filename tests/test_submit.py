"""`gan-tpu submit ZIP --competition C` (a file competition): the real kaggle package, with only its
network call stubbed. The notebook route of gan-getting-started: tests/test_submit_routes.py."""
import importlib.util
import json
import os
import sys
import zipfile

import pytest

from gan_tpu.cli import main
from gan_tpu.kaggle import api as kaggle_api
from gan_tpu.submission import submit as submit_mod
from tests.helpers import valid_submission_zip

# Imported only inside fixtures, once HOME and KAGGLE_CONFIG_DIR point into tmp_path: the
# package creates its config folder and authenticates when first imported.
if importlib.util.find_spec("kaggle") is None:
    pytest.skip("the kaggle package is not installed (pip install 'gan_tpu[kaggle]')",
                allow_module_level=True)

KEY = "0123456789abcdef0123456789abcdef"
# The file route is for file competitions; gan-getting-started takes notebook versions (test_submit_routes).
FILE_COMP = ["--competition", "file-comp"]


@pytest.fixture(scope="module")
def valid_zip(tmp_path_factory, zip_validated_once):  # its copies validated once per file (conftest)
    return valid_submission_zip(tmp_path_factory.mktemp("sub") / "images.zip")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean home and Kaggle config dir; no credentials anywhere yet."""
    home = tmp_path / "home"
    home.mkdir()
    cfg = tmp_path / "kaggle_cfg"
    cfg.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(cfg))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "XDG_CONFIG_HOME",
                "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE"):
        monkeypatch.delenv(var, raising=False)
    return cfg


def _kaggle_api_class():
    from kaggle.api.kaggle_api_extended import KaggleApi

    return KaggleApi


@pytest.fixture
def network(env, monkeypatch):
    """Stub the one network call: KaggleApi.competition_submit; record what it receives."""
    class Response:
        message = "Successfully submitted to I'm Something of a Painter Myself"
        ref = 12345

    def competition_submit(self, file_name, message, competition, quiet=False, sandbox=False):
        calls.append(dict(file_name=file_name, message=message, competition=competition,
                          user=self.config_values.get("username")))
        return calls.response

    calls = type("Calls", (list,), {})()  # a list that also carries the response to return
    calls.response = Response()
    monkeypatch.setattr(_kaggle_api_class(), "competition_submit", competition_submit)
    return calls


def _write_json(cfg, mode=0o600, **data):
    path = cfg / "kaggle.json"
    path.write_text(json.dumps(data or {"username": "monet-fan", "key": KEY}))
    os.chmod(path, mode)
    return path


def test_submits_with_kaggle_json(env, network, valid_zip, capfd):
    _write_json(env)
    assert main(["submit", valid_zip, "-m", "cyclegan v1", *FILE_COMP]) == 0
    assert network == [dict(file_name=valid_zip, message="cyclegan v1", competition="file-comp", user="monet-fan")]
    out, err = capfd.readouterr()
    assert out.splitlines()[0].startswith("VALID: ")
    assert "submitted" in out and "as monet-fan" in out and "submission ref: 12345" in out
    assert KEY not in out + err and "warning" not in err


def test_submits_with_environment_credentials_and_another_competition(env, network, valid_zip, monkeypatch,
                                                                      capfd):
    monkeypatch.setenv("KAGGLE_USERNAME", "env-user")
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    assert main(["submit", valid_zip, "-m", "env run", "--competition", "other-comp"]) == 0
    assert network[0]["competition"] == "other-comp" and network[0]["user"] == "env-user"
    out, err = capfd.readouterr()
    assert KEY not in out + err


def test_no_credentials_is_a_one_line_error(env, network, valid_zip, capfd):
    assert main(["submit", valid_zip, "-m", "x", *FILE_COMP]) == 2
    out, err = capfd.readouterr()
    assert err.count("\n") == 1 and err.startswith("gan-tpu: error: no Kaggle credentials")
    assert "kaggle.json" in err and str(env) in err and "KAGGLE_USERNAME" in err
    assert network == []


def test_half_environment_credentials(env, network, valid_zip, monkeypatch, capfd):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    assert main(["submit", valid_zip, "-m", "x", *FILE_COMP]) == 2
    assert "KAGGLE_USERNAME is set but KAGGLE_KEY is not" in capfd.readouterr().err


def test_broken_kaggle_json(env, network, valid_zip, capfd):
    (env / "kaggle.json").write_text("{not json")
    assert main(["submit", valid_zip, "-m", "x", *FILE_COMP]) == 2
    assert f"{env / 'kaggle.json'} are not valid JSON" in capfd.readouterr().err
    _write_json(env, username="someone")
    assert main(["submit", valid_zip, "-m", "x", *FILE_COMP]) == 2
    err = capfd.readouterr().err
    assert "no 'key'" in err and network == []


def test_credentials_readable_by_others_warns(env, network, valid_zip, capfd):
    path = _write_json(env, mode=0o644)
    assert main(["submit", valid_zip, "-m", "x", *FILE_COMP]) == 0
    out, err = capfd.readouterr()
    assert "gan-tpu: warning: Your Kaggle API key is readable by other users" in err
    assert f"chmod 600 {path}" in err
    assert KEY not in out + err
    assert len(network) == 1


def test_api_error_shows_its_text_without_the_key(env, network, valid_zip, monkeypatch, capfd):
    _write_json(env)

    def failing(self, file_name, message, competition, quiet=False, sandbox=False):
        raise RuntimeError(f"403 Client Error: Forbidden for url: https://example.invalid/submit?k={KEY}\n"
                           "You must accept this competition's rules")

    monkeypatch.setattr(_kaggle_api_class(), "competition_submit", failing)
    assert main(["submit", valid_zip, "-m", "x", *FILE_COMP]) == 2
    out, err = capfd.readouterr()
    assert err.startswith("gan-tpu: error: Kaggle API error submitting") and err.count("\n") == 1
    assert "403 Client Error: Forbidden" in err and "accept this competition's rules" in err
    assert KEY not in out + err


def test_failed_upload_reported_in_the_response(env, network, valid_zip, capfd):
    _write_json(env)
    network.response.message = "Could not submit to competition"
    assert main(["submit", valid_zip, "-m", "x", *FILE_COMP]) == 2
    assert "Could not submit to competition" in capfd.readouterr().err


def test_package_not_installed(env, network, valid_zip, monkeypatch, capfd):
    _write_json(env)
    monkeypatch.setitem(sys.modules, "kaggle", None)  # what an uninstalled package looks like
    assert main(["submit", valid_zip, "-m", "x", *FILE_COMP]) == 2
    err = capfd.readouterr().err
    assert err.strip() == "gan-tpu: error: the kaggle package is not installed: pip install 'gan_tpu[kaggle]'"
    with pytest.raises(submit_mod.UserError, match=r"pip install 'gan_tpu\[kaggle\]'"):
        kaggle_api.load_api()


def test_invalid_zip_is_not_submitted(env, network, tmp_path, capfd):
    _write_json(env)
    bad = tmp_path / "images.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("1.jpg", b"not a jpeg at all" * 40)
    assert main(["submit", str(bad), "-m", "x", *FILE_COMP]) == 2
    out, err = capfd.readouterr()
    assert out.startswith("INVALID: ") and "not submitting" in err
    assert network == []
    assert main(["submit", str(tmp_path / "missing.zip"), "-m", "x", *FILE_COMP]) == 2
    assert "zip not found" in capfd.readouterr().err


def test_empty_message(env, network, valid_zip, capfd):
    _write_json(env)
    assert main(["submit", valid_zip, "-m", "  ", *FILE_COMP]) == 2
    assert "-m MESSAGE" in capfd.readouterr().err


def test_config_dir_follows_the_kaggle_cli(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KAGGLE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert kaggle_api.config_dir() == str(tmp_path / "xdg" / "kaggle")
    (tmp_path / ".kaggle").mkdir()
    assert kaggle_api.config_dir() == str(tmp_path / ".kaggle")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "elsewhere"))
    assert kaggle_api.config_dir() == str(tmp_path / "elsewhere")
