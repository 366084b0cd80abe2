"""The README and docs/ against the code: generated tables current, links alive, the front
page short, every pipeline key documented."""
from __future__ import annotations

import os
import re

from gan_tpu import config, models
from gan_tpu.models import catalog, registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATED = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "docs", "models-reference.md")]
PENDING: set = set()  # pages linked before they exist (none now)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_generated_tables_match_the_registry_and_pipelines():
    for path in GENERATED:
        text = _read(path)
        assert "<!-- gan-tpu:model-table -->" in text, path
    assert catalog.stale(GENERATED) == [], "stale generated tables: run `make docs`"
    assert set(catalog.ABOUT) == set(models.names())


def test_a_changed_default_or_pipeline_makes_the_docs_stale(monkeypatch, tmp_path):
    cls, defaults = registry._MODELS["cyclegan"]
    monkeypatch.setitem(registry._MODELS, "cyclegan", (cls, {**defaults, "lr": 3e-4}))
    assert catalog.stale(GENERATED) == GENERATED
    assert "`lr` = `0.0003`" in catalog.model_options() and "lr `0.0003`" in catalog.model_table()
    monkeypatch.undo()
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    for name in ("cyclegan.toml", "demo.toml"):
        (pipelines / name).write_text((config.PIPELINES_DIR / name).read_text())
    text = (pipelines / "cyclegan.toml").read_text().replace('upsample = "resize"', 'upsample = "antialias"')
    (pipelines / "cyclegan.toml").write_text(text)
    monkeypatch.setattr(config, "PIPELINES_DIR", pipelines)
    assert '`pipelines/cyclegan.toml`: ' in catalog.model_options()
    assert '`upsample` = `"antialias"`' in catalog.model_options()
    assert catalog.stale(GENERATED[1:]) == GENERATED[1:]


def test_update_fills_only_marked_blocks():
    text = "a\n<!-- gan-tpu:model-table -->\nold\n<!-- /gan-tpu:model-table -->\nb\n"
    new = catalog.update(text)
    assert new.startswith("a\n<!-- gan-tpu:model-table -->\n\n| model |") and new.endswith(
        "\n<!-- /gan-tpu:model-table -->\nb\n")
    assert "old" not in new and catalog.update(new) == new


def test_readme_is_a_front_page_and_every_link_resolves():
    readme = _read(os.path.join(ROOT, "README.md"))
    assert len(readme.splitlines()) <= 250
    assert "make test" in readme
    pages = [os.path.join(ROOT, "README.md")] + [
        os.path.join(ROOT, "docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs"))) if f.endswith(".md")]
    linked = set()
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _read(page)):
            if "://" in target:
                continue
            path = os.path.normpath(os.path.join(os.path.dirname(page), target))
            rel = os.path.relpath(path, ROOT)
            linked.add(rel)
            assert os.path.exists(path) or rel in PENDING, f"{os.path.relpath(page, ROOT)}: broken link {target}"
    own = {f"docs/{f}" for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")}
    assert own <= linked, f"docs pages nothing links to: {sorted(own - linked)}"


def test_every_pipeline_key_is_documented():
    doc = _read(os.path.join(ROOT, "docs", "pipelines.md"))
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    for section, keys in config.SCHEMA.items():
        for key in keys:
            if section == "model":
                continue
            assert any(f"`{section}." in row and re.search(rf"[`.]{key}`", row) for row in rows), \
                f"docs/pipelines.md: no row for {section}.{key}"
