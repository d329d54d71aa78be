"""ShardTarWriter writes exactly the bytes of webdataset's TarWriter, for every kind of member."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import webdataset as wds

from augforge.pipelines.shards import SHARD_MTIME, TAR_MODE, TAR_USER
from augforge.pipelines.tario import ShardTarWriter

SETTINGS = {"mtime": SHARD_MTIME, "user": TAR_USER, "group": TAR_USER, "mode": TAR_MODE}


def both(samples: list[tuple[str, dict[str, bytes]]]) -> tuple[bytes, bytes]:
    ours, theirs = io.BytesIO(), io.BytesIO()
    writer = ShardTarWriter(ours, **SETTINGS)
    reference = wds.TarWriter(theirs, encoder=False, **SETTINGS)
    for key, members in samples:
        writer.write(key, members)
        reference.write({"__key__": key, **members})
    writer.close()
    reference.close()
    return ours.getvalue(), theirs.getvalue()


def test_same_bytes_as_webdataset_tarwriter() -> None:
    rng = np.random.default_rng(0)
    sizes = [0, 1, 511, 512, 513, 1023, 4096, 70_000]
    keys = ["00000000", "n01440764/ILSVRC2012_val_00000293", "a" * 95, "b" * 96,  # 96 + '.json' > 100
            "dir/" + "c" * 120, "café/naïve", "x" * 99]
    samples = []
    for i, key in enumerate(keys * 2):
        png = rng.integers(0, 256, sizes[i % len(sizes)], dtype=np.uint8).tobytes()
        meta = (b'{"key":"%d"}' % i) * (i + 1)
        samples.append((f"{key}_{i}" if i >= len(keys) else key, {"png": png, "json": meta}))
    ours, theirs = both(samples)
    assert ours == theirs
    assert len(ours) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(ours)) as tar:
        names = tar.getnames()
    assert names[:2] == ["00000000.json", "00000000.png"] and "café/naïve.png" in names


@pytest.mark.parametrize("count", [0, 1, 7])
def test_end_of_archive_padding(count: int) -> None:
    ours, theirs = both([(f"{i:08d}", {"png": b"\x89PNG" * (i + 1), "json": b"{}"}) for i in range(count)])
    assert ours == theirs
