"""The committed operator catalog must be what `augforge catalog` generates now."""

from __future__ import annotations

import re
from pathlib import Path

from augforge.catalog import PREVIEW_DIR, render_text, write_catalog
from augforge.core.registry import list_ops

CATALOG = Path(__file__).resolve().parents[1] / "ops"


def test_catalog_is_up_to_date():
    committed = (CATALOG / "README.md").read_text(encoding="utf-8")
    assert committed == render_text(), "ops/README.md is stale: run `augforge catalog` (or `make catalog`)"


def test_every_op_has_a_section_and_a_preview():
    text = (CATALOG / "README.md").read_text(encoding="utf-8")
    for spec in list_ops():
        assert f"### `{spec.name}`" in text
        if spec.reads == ("image",):
            assert (CATALOG / PREVIEW_DIR / f"{spec.name}.jpg").is_file(), f"no preview for {spec.name}"
    linked = set(re.findall(rf"\({PREVIEW_DIR}/([a-z0-9_]+)\.jpg\)", text))
    assert linked == {s.name for s in list_ops() if s.reads == ("image",)}


def test_constants_appear_in_catalog():
    text = render_text()
    # gaussian_noise sigma at ImageNet-C severity 5 and CIFAR-10-C severity 1
    assert "| imagenet | 0.08 | 0.12 | 0.18 | 0.26 | 0.38 |" in text
    assert "| cifar | 0.04 | 0.06 | 0.08 | 0.09 | 0.1 |" in text


def test_write_catalog_pictures(tmp_path):
    files = write_catalog(tmp_path, pictures=True)
    assert files[0] == tmp_path / "README.md"
    assert len(files) == 1 + len([s for s in list_ops() if s.reads == ("image",)])
    assert all(f.stat().st_size > 0 for f in files)
