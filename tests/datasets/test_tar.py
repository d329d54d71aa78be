"""WebDatasetReader: webdataset grouping, labels, random access, and hostile or broken shards."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augforge.core.errors import AugforgeError, BadInputError
from augforge.datasets import Reader, WebDatasetReader, expand_braces

RNG = np.random.default_rng(11)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def pixels(value: int | None = None) -> np.ndarray:
    if value is None:
        return RNG.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    return np.full((10, 14, 3), value, np.uint8)


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


class WritesAFile:
    """Unpickling this runs open(path, 'w'): the file appears if anything ever unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def keys(reader: WebDatasetReader) -> list[str]:
    return [reader.key(i) for i in range(len(reader))]


def test_groups_members_and_reads_labels(tmp_path):
    a, b, c, d = pixels(), pixels(), pixels(), pixels()
    shard = write_tar(tmp_path / "shard-000000.tar", [
        ("s1.png", png(a)), ("s1.cls", b"3\n"),
        ("s2.json", json.dumps({"label": 7, "op": "fog"}).encode()), ("s2.png", png(b)),
        ("dir.v1/s3.PNG", png(c)), ("dir.v1/s3.txt", b"a caption, not a label"),
        ("s4.png", png(d)), ("s4.txt", b" 12 "), ("s4.seg.png", png(pixels(0))),
    ])
    reader = WebDatasetReader(shard)
    assert isinstance(reader, Reader) and reader.kind == "webdataset"
    assert keys(reader) == ["s1", "s2", "dir_v1/s3", "s4"]
    samples = [reader.read(i) for i in range(4)]
    assert [s.label for s in samples] == [3, 7, None, 12]
    for s, expected in zip(samples, (a, b, c, d), strict=True):
        np.testing.assert_array_equal(s.image, expected)
    assert samples[0].source == "shard-000000.tar:s1.png"
    assert samples[1].meta["json"] == {"label": 7, "op": "fog"}
    assert samples[2].meta["txt"] == "a caption, not a label"
    assert samples[3].meta["members"] == ["png", "seg.png", "txt"]


def test_grouping_matches_webdataset(tmp_path):
    import webdataset as wds

    names = ["x/1.jpg", "x/1.cls", "x/2.seg.png", "x/2.jpg", "__meta__", "y.z/3.JPG", "noext", "4.json",
             "4.png", "5.jpg"]
    shard = write_tar(tmp_path / "s.tar", [(n, png(pixels(0))) for n in names])
    ours = WebDatasetReader(shard)
    theirs = list(wds.WebDataset(str(shard), shardshuffle=False, empty_check=False))
    assert [s["__key__"] for s in theirs] == [ours._records[i].prefix for i in range(len(ours))]
    assert [sorted(k for k in s if not k.startswith("__")) for s in theirs] == [
        sorted(r.members) for r in ours._records]


def test_image_member_preference_order(tmp_path):
    jpg_like = pixels(50)
    shard = write_tar(tmp_path / "s.tar", [("k.webp", png(pixels(9))), ("k.png", png(jpg_like))])
    sample = WebDatasetReader(shard).read(0)  # png is preferred over webp
    np.testing.assert_array_equal(sample.image, jpg_like)
    assert sample.source == "s.tar:k.png"


def test_pickle_members_are_never_unpickled(tmp_path):
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(WritesAFile(control)))  # the payload is live: it writes a file
    assert control.exists()

    marker = tmp_path / "marker"
    payload = pickle.dumps(WritesAFile(marker))
    shard = write_tar(tmp_path / "s.tar", [
        ("a.png", png(pixels())), ("a.pyd", payload), ("a.pickle", payload), ("a.pth", payload),
        ("b.pyd", payload), ("b.cls", b"1"),
    ])
    reader = WebDatasetReader(shard)
    assert reader.read(0).meta["members"] == ["pickle", "png", "pth", "pyd"]
    with pytest.raises(BadInputError, match="no image member"):
        reader.read(1)
    pickle.loads(pickle.dumps(reader))
    assert not marker.exists()


@pytest.mark.parametrize("bad_name", ["../evil.png", "x/../../evil.png", "/abs/evil.png"])
def test_unsafe_member_names_make_a_bad_record(tmp_path, bad_name):
    shard = write_tar(tmp_path / "s.tar", [("ok.png", png(pixels())), (bad_name, png(pixels())),
                                           ("ok2.png", png(pixels()))])
    reader = WebDatasetReader(shard)
    assert len(reader) == 3
    assert all("." not in k and not k.startswith("/") for k in keys(reader))
    with pytest.raises(BadInputError, match="unsafe member name"):
        reader.read(1)
    assert reader.read(0).image.shape == reader.read(2).image.shape == (10, 14, 3)
    assert not (tmp_path / "evil.png").exists()


def test_bad_records_do_not_fail_the_reader(tmp_path):
    shard = write_tar(tmp_path / "s.tar", [
        ("dup.png", png(pixels())), ("dup.png", png(pixels())),
        ("badcls.png", png(pixels())), ("badcls.cls", b"cat"),
        ("badjson.png", png(pixels())), ("badjson.json", b"{not json"),
        ("strlabel.png", png(pixels())), ("strlabel.json", b'{"label": "7"}'),
        ("notimg.png", b"hello"),
        ("good.png", png(pixels())), ("good.cls", b"-1"),
    ])
    reader = WebDatasetReader(shard)
    expected = ["duplicate member", "not an integer label", "malformed .json",
                ".json label is not an integer", "notimg.png: not an image"]
    for i, reason in enumerate(expected):
        with pytest.raises(BadInputError, match=reason):
            reader.read(i)
    assert reader.read(5).label == -1


def test_several_shards_brace_pattern_and_duplicate_keys(tmp_path):
    for i in range(3):
        members = [(f"own{i}.png", png(pixels(i))), ("same.png", png(pixels(i)))]
        write_tar(tmp_path / f"shard-{i:06d}.tar", members)
    reader = WebDatasetReader(str(tmp_path / "shard-{000000..000002}.tar"))
    assert keys(reader) == ["own0", "same_shard-000000", "own1", "same_shard-000001", "own2",
                            "same_shard-000002"]
    assert int(reader.read(5).image[0, 0, 0]) == 2
    assert [p.name for p in WebDatasetReader(tmp_path).shards] == [f"shard-{i:06d}.tar" for i in range(3)]
    assert len(WebDatasetReader([tmp_path / "shard-000001.tar", tmp_path / "shard-000000.tar"])) == 4


def test_random_access_matches_sequential(tmp_path):
    arrays = [pixels() for _ in range(12)]
    shard = write_tar(tmp_path / "s.tar", [(f"{i:03d}.png", png(a)) for i, a in enumerate(arrays)])
    reader = WebDatasetReader(shard)
    for i in [11, 0, 7, 3, 3, 10]:
        np.testing.assert_array_equal(reader.read(i).image, arrays[i])


def test_truncated_shard_marks_the_cut_record(tmp_path):
    shard = write_tar(tmp_path / "s.tar", [("a.png", png(pixels())), ("b.png", png(pixels())),
                                           ("c.png", png(pixels()))])
    with tarfile.open(shard) as tf:
        cut = tf.getmember("b.png").offset_data + 10
    shard.write_bytes(shard.read_bytes()[:cut])
    reader = WebDatasetReader(shard)
    assert keys(reader) == ["a", "b"]
    assert reader.read(0).image.shape == (10, 14, 3)
    with pytest.raises(BadInputError, match="truncated"):
        reader.read(1)


def test_corrupt_header_is_reported_not_dropped(tmp_path):
    shard = write_tar(tmp_path / "s.tar", [("a.png", png(pixels())), ("b.png", png(pixels()))])
    with tarfile.open(shard) as tf:
        header = tf.getmember("b.png").offset
    data = bytearray(shard.read_bytes())
    data[header : header + 512] = b"\x07" * 512
    shard.write_bytes(bytes(data))
    reader = WebDatasetReader(shard)
    assert keys(reader) == ["a", "s/__unreadable__"]
    with pytest.raises(BadInputError, match="corrupt or truncated tar"):
        reader.read(1)


def test_compressed_or_foreign_shards(tmp_path):
    plain = write_tar(tmp_path / "a.tar", [("a.png", png(pixels()))])
    (tmp_path / "b.tar").write_bytes(gzip.compress(plain.read_bytes()))
    (tmp_path / "c.tar").write_bytes(b"definitely not a tar archive" * 40)
    reader = WebDatasetReader([tmp_path / "a.tar", tmp_path / "b.tar", tmp_path / "c.tar"])
    assert len(reader) == 3 and reader.read(0).image.shape == (10, 14, 3)
    with pytest.raises(BadInputError, match="gzip-compressed"):
        reader.read(1)
    with pytest.raises(BadInputError, match="unreadable tar"):
        reader.read(2)
    with pytest.raises(AugforgeError, match="shard not found"):
        WebDatasetReader(tmp_path / "missing-{0..1}.tar")


def test_construction_is_lazy_and_pickle_drops_the_index(tmp_path):
    shard = write_tar(tmp_path / "s.tar", [(f"{i}.png", png(pixels())) for i in range(5)])
    reader = WebDatasetReader(shard)
    assert reader._records is None
    assert len(reader) == 5
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._records is None and keys(clone) == keys(reader)


def test_expand_braces():
    assert expand_braces("s-{000..003}.tar") == [f"s-{i:03d}.tar" for i in range(4)]
    assert expand_braces("{a,b}/{8..10}") == ["a/8", "a/9", "a/10", "b/8", "b/9", "b/10"]
    assert expand_braces("{3..1}") == ["3", "2", "1"]
    assert expand_braces(os.path.join("plain", "path.tar")) == [os.path.join("plain", "path.tar")]
