"""`gan-tpu validate`: every bad input the issue lists, on real zips of real JPEGs."""
import os
import time
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from gan_tpu.cli import main
from gan_tpu.errors import UserError
from gan_tpu.submission.validate import check_zip, validate_zip


def _image(seed: int, shape=(256, 256, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w, c = shape
    ramp = np.add.outer(np.linspace(0, 180, h), np.linspace(0, 60, w))[..., None]
    return (ramp * rng.uniform(0.6, 1.0, size=(1, 1, c)) + rng.uniform(0, 15, size=(1, 1, c))).astype(np.uint8)


def _jpeg(seed: int, shape=(256, 256, 3), quality=90) -> bytes:
    return tf.io.encode_jpeg(_image(seed, shape), quality=quality).numpy()


def _variants(base: bytes, n: int):
    """n byte-distinct JPEGs of one image, cheaply: a COM segment after SOI holds the index."""
    for i in range(n):
        comment = f"gan_tpu test {i}".encode()
        yield base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]


def _zip(path, members) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return str(path)


def _numbered(datas, start=1):
    return [(f"{i}.jpg", d) for i, d in enumerate(datas, start)]


@pytest.fixture(scope="module")
def base_jpeg():
    return _jpeg(0)


@pytest.fixture(scope="module")
def zip_7000(tmp_path_factory, base_jpeg):
    return _zip(tmp_path_factory.mktemp("z") / "images.zip", _numbered(_variants(base_jpeg, 7000)))


def _small(tmp_path, extra, n=5, name="images.zip"):
    good = _numbered(_jpeg(10 + i) for i in range(n))
    return _zip(tmp_path / name, good + list(extra))


def _problems(path, **kw):
    kw.setdefault("min_count", None)
    kw.setdefault("max_count", None)
    return validate_zip(path, **kw).problems


def test_7000_members_are_valid_and_the_cli_says_so(zip_7000, capsys):
    t0 = time.perf_counter()
    report = validate_zip(zip_7000)
    seconds = time.perf_counter() - t0
    assert report.ok, report.problems[:5]
    assert report.count == 7000
    print(f"validated 7,000 members in {seconds:.2f} s")
    capsys.readouterr()
    assert main(["validate", zip_7000]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("VALID: ") and "7000 JPEG images" in out[0] and len(out) == 1


def test_6999_members_are_too_few(tmp_path, base_jpeg, capsys):
    path = _zip(tmp_path / "images.zip", _numbered(_variants(base_jpeg, 6999)))
    assert main(["validate", path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("INVALID: ") and "1 problem" in out[0]
    assert out[1].strip() == "count: 6999 images, fewer than 7,000"
    assert main(["validate", path, "--allow-any-count"]) == 0


def test_count_range_is_configurable(tmp_path):
    path = _small(tmp_path, [], n=5)
    assert validate_zip(path, min_count=1, max_count=5).ok
    assert validate_zip(path, min_count=1, max_count=4).problems == ["count: 5 images, more than 4"]
    assert main(["validate", path, "--min-count", "2", "--max-count", "6"]) == 0
    assert main(["validate", path, "--min-count", "6", "--max-count", "9"]) == 1


def test_png_member(tmp_path):
    png = tf.io.encode_png(_image(3)).numpy()
    path = _small(tmp_path, [("6.jpg", png), ("7.png", tf.io.encode_png(_image(4)).numpy())])
    problems = _problems(path)
    assert "6.jpg: not JPEG data (PNG data)" in problems
    assert "7.png: not named *.jpg" in problems
    assert "7.png: not JPEG data (PNG data)" in problems


def test_255x256_jpeg(tmp_path):
    path = _small(tmp_path, [("6.jpg", _jpeg(3, shape=(255, 256, 3)))])
    assert _problems(path) == ["6.jpg: decodes to 255x256x3, not 256x256x3"]


def test_greyscale_jpeg(tmp_path):
    path = _small(tmp_path, [("6.jpg", _jpeg(3, shape=(256, 256, 1)))])
    assert _problems(path) == ["6.jpg: decodes to 256x256x1, not 256x256x3"]


@pytest.mark.parametrize("cut", [0.5, -2])
def test_truncated_jpeg(tmp_path, cut):
    data = _jpeg(3)
    data = data[: int(len(data) * cut)] if cut > 0 else data[:cut]
    path = _small(tmp_path, [("6.jpg", data)])
    (problem,) = _problems(path)
    assert problem.startswith("6.jpg: does not decode as a JPEG (truncated or corrupt")


def test_nested_folder(tmp_path):
    path = _small(tmp_path, [("sub/", b""), ("sub/6.jpg", _jpeg(3))])
    problems = _problems(path)
    assert "sub/: is a folder (members must sit at the zip root)" in problems
    assert "sub/6.jpg: has a path part ('/' or '\\')" in problems


@pytest.mark.parametrize("name", ["../x.jpg", "..\\x.jpg", "/abs.jpg"])
def test_path_parts(tmp_path, name):
    info = zipfile.ZipInfo("placeholder.jpg")
    path = tmp_path / "images.zip"
    _small(tmp_path, [])
    with zipfile.ZipFile(path, "a") as zf:
        info.filename = name  # ZipInfo would normalise some of these names away
        zf.writestr(info, _jpeg(3))
    with zipfile.ZipFile(path) as zf:
        assert name in zf.namelist()
    problems = _problems(path)
    assert problems == [f"{name}: has a path part ('/' or '\\')"]


def test_duplicate_name_and_byte_identical_members(tmp_path):
    a, b = _jpeg(3), _jpeg(4)
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = _small(tmp_path, [("6.jpg", a), ("6.jpg", b), ("7.jpg", _jpeg(10))])
    problems = _problems(path)
    assert "6.jpg: duplicate name" in problems
    assert "7.jpg: byte-identical to 1.jpg" in problems


def test_empty_and_tiny_members(tmp_path):
    path = _small(tmp_path, [("6.jpg", b""), ("7.jpg", b"\xff\xd8\xff\xe0")])
    problems = _problems(path)
    assert "6.jpg: too small to be an image (0 bytes)" in problems
    assert "7.jpg: too small to be an image (4 bytes)" in problems


def test_total_size(tmp_path):
    path = _small(tmp_path, [], n=3)
    problems = _problems(path, max_total_bytes=1000)
    assert len(problems) == 1 and problems[0].startswith("total size: ")


def test_empty_zip(tmp_path):
    path = _zip(tmp_path / "images.zip", [])
    assert _problems(path) == ["count: the zip holds no images"]


def test_listing_is_capped(tmp_path, capsys):
    path = _zip(tmp_path / "images.zip", [(f"{i}.png", b"x" * 300 + bytes([i])) for i in range(1, 31)])
    assert main(["validate", path, "--allow-any-count"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("INVALID: ") and "60 problems" in out[0]
    assert len(out) == 1 + 20 + 1
    assert out[-1].strip() == "… and 40 more"


def test_missing_and_non_zip_are_one_line_errors(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.zip")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"gan-tpu: error: zip not found: {tmp_path / 'nope.zip'}"]
    bad = tmp_path / "images.zip"
    bad.write_bytes(b"this is not a zip")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"gan-tpu: error: not a zip file: {bad}")
    with pytest.raises(UserError, match="is a directory"):
        validate_zip(tmp_path)


def test_check_zip_raises_with_the_first_problems(tmp_path):
    path = _small(tmp_path, [("6.jpg", b"")])
    with pytest.raises(UserError, match=r"INVALID: .*6.jpg: too small") as err:
        check_zip(path, min_count=1, max_count=None)
    assert "\n" not in str(err.value)
    assert check_zip(_small(tmp_path, [], name="good.zip"), min_count=5, max_count=5).ok
