"""Read back a generated dataset: summary per (op, severity), checksum verification, a picture.

Only the manifest and the shards' image members are read; tar members are never unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from augforge.core.errors import AugforgeError

IMAGE_EXTS = (".png", ".jpg", ".jpeg")


@dataclass
class Inspection:
    """What `inspect_dataset` found."""

    root: Path
    manifest: dict[str, Any]
    groups: list[dict[str, Any]] = field(default_factory=list)  # op, severity, shards, samples
    bad_shards: list[str] = field(default_factory=list)  # missing or checksum mismatch
    quarantined: int = 0
    verified: bool = False

    @property
    def ok(self) -> bool:
        return not self.bad_shards


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest.json of a generated dataset, with a clear error when it is absent."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise AugforgeError(
            f"{path} not found: is {root} the --out folder of a finished `augforge generate`?"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AugforgeError(f"{path} is not valid JSON: {exc}") from None


def inspect_dataset(root: str | Path, *, verify: bool = True) -> Inspection:
    """Summarise a dataset by (op, severity); with `verify`, re-hash every shard."""
    root = Path(root)
    manifest = load_manifest(root)
    result = Inspection(root=root, manifest=manifest, verified=verify)
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for shard in manifest.get("shards", []):
        g = groups.setdefault(
            (shard["op"], shard["severity"]),
            {"op": shard["op"], "severity": shard["severity"], "shards": 0, "samples": 0},
        )
        g["shards"] += 1
        g["samples"] += shard["count"]
        path = root / shard["path"]
        if not path.is_file():
            result.bad_shards.append(f"{shard['path']}: missing")
        elif verify and _sha256(path) != shard["sha256"]:
            result.bad_shards.append(f"{shard['path']}: sha256 mismatch")
    result.groups = list(groups.values())
    result.quarantined = int(manifest.get("quarantine", {}).get("inputs", 0))
    return result


def read_shard_images(path: Path, limit: int) -> list[tuple[str, np.ndarray]]:
    """Up to `limit` (key, uint8 picture) pairs from one shard, in order."""
    out: list[tuple[str, np.ndarray]] = []
    with tarfile.open(path) as tar:
        for member in tar:
            if len(out) >= limit:
                break
            if member.isfile() and member.name.lower().endswith(IMAGE_EXTS):
                data = tar.extractfile(member)
                if data is None:
                    continue
                with Image.open(io.BytesIO(data.read())) as im:
                    out.append((member.name.rsplit(".", 1)[0], np.asarray(im.convert("RGB"))))
    return out


def sample_grid(root: str | Path, *, per_group: int = 4, tile: int = 96) -> Image.Image:
    """A picture: one row per (op, severity), its first `per_group` samples as tiles."""
    root = Path(root)
    manifest = load_manifest(root)
    firsts: dict[tuple[str, int], str] = {}
    for shard in manifest.get("shards", []):
        if shard["count"]:
            firsts.setdefault((shard["op"], shard["severity"]), shard["path"])
    if not firsts:
        raise AugforgeError(f"{root}: the dataset has no samples to show")
    label_w = 150
    canvas = Image.new("RGB", (label_w + per_group * tile, len(firsts) * tile), "white")
    draw = ImageDraw.Draw(canvas)
    for row, ((op, level), rel) in enumerate(firsts.items()):
        draw.text((4, row * tile + tile // 2 - 6), f"{op} @{level}", fill="black")
        for col, (_, pic) in enumerate(read_shard_images(root / rel, per_group)):
            thumb = Image.fromarray(pic).resize((tile, tile), Image.BILINEAR)
            canvas.paste(thumb, (label_w + col * tile, row * tile))
    return canvas
