"""ImageFolderReader: labels from class folders, tar-safe unique keys, sorted order, bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augforge.core.errors import AugforgeError, BadInputError, InvalidParameterError
from augforge.datasets import ImageFolderReader, Reader

RNG = np.random.default_rng(3)


def picture(path: Path, value: int | None = None, size: tuple[int, int] = (12, 16)) -> np.ndarray:
    """Write an RGB picture (PNG lossless, JPEG otherwise) and return its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.full((*size, 3), value, np.uint8) if value is not None
           else RNG.integers(0, 256, (*size, 3), dtype=np.uint8))
    Image.fromarray(arr).save(path)
    return arr


def keys(reader: ImageFolderReader) -> list[str]:
    return [reader.key(i) for i in range(len(reader))]


def test_class_folders_give_sorted_labels_and_keys(tmp_path):
    pixels = {
        "cls_b/x.png": picture(tmp_path / "cls_b/x.png"),
        "cls_a/y.png": picture(tmp_path / "cls_a/y.png"),
        "cls_a/sub/z.png": picture(tmp_path / "cls_a/sub/z.png"),
    }
    (tmp_path / "cls_c").mkdir()  # empty class folder: keeps its label index, like torchvision
    picture(tmp_path / ".hidden/q.png")
    picture(tmp_path / "cls_a/.thumbs/t.png")
    (tmp_path / "cls_a/notes.txt").write_text("not a picture")

    reader = ImageFolderReader(tmp_path)
    assert isinstance(reader, Reader) and reader.kind == "folder"
    assert reader.layout == "classes"
    assert reader.classes == ["cls_a", "cls_b", "cls_c"]
    assert keys(reader) == ["cls_a/sub/z", "cls_a/y", "cls_b/x"]
    samples = [reader.read(i) for i in range(len(reader))]
    assert [s.label for s in samples] == [0, 0, 1]
    assert [s.source for s in samples] == ["cls_a/sub/z.png", "cls_a/y.png", "cls_b/x.png"]
    assert [s.meta["class_name"] for s in samples] == ["cls_a", "cls_a", "cls_b"]
    for s in samples:
        np.testing.assert_array_equal(s.image, pixels[s.source])
        assert s.meta["original_size"] == [12, 16]


def test_explicit_class_list_fixes_label_indices(tmp_path):
    picture(tmp_path / "dog/1.png")
    picture(tmp_path / "cat/2.png")
    reader = ImageFolderReader(tmp_path, classes=["zebra", "dog", "cat"])
    assert [reader.read(i).label for i in range(2)] == [2, 1]  # cat/2, dog/1
    with pytest.raises(AugforgeError, match="not in classes"):
        ImageFolderReader(tmp_path, classes=["dog"])


def test_flat_folder_has_no_labels(tmp_path):
    picture(tmp_path / "b.png")
    picture(tmp_path / "a.jpg")
    reader = ImageFolderReader(tmp_path)
    assert reader.layout == "flat" and reader.classes is None
    assert keys(reader) == ["a", "b"]
    assert reader.read(0).label is None and "class_name" not in reader.read(0).meta


def test_mixed_layout_is_ambiguous_unless_chosen(tmp_path):
    picture(tmp_path / "loose.png")
    picture(tmp_path / "cls/x.png")
    picture(tmp_path / "cls/deeper/y.png")
    with pytest.raises(AugforgeError, match="layout="):
        ImageFolderReader(tmp_path)
    classes = ImageFolderReader(tmp_path, layout="classes")
    assert keys(classes) == ["cls/deeper/y", "cls/x"] and classes.ignored == 1
    flat = ImageFolderReader(tmp_path, layout="flat")
    assert keys(flat) == ["cls/deeper/y", "cls/x", "loose"]
    assert all(flat.read(i).label is None for i in range(3))
    with pytest.raises(InvalidParameterError):
        ImageFolderReader(tmp_path, layout="flat", classes=["cls"])
    with pytest.raises(InvalidParameterError):
        ImageFolderReader(tmp_path, layout="nested")


def test_duplicate_stems_get_the_extension(tmp_path):
    jpg = picture(tmp_path / "a.jpg", 10)
    png = picture(tmp_path / "a.png", 20)
    picture(tmp_path / "b.png")
    reader = ImageFolderReader(tmp_path)
    assert keys(reader) == ["a_jpg", "a_png", "b"]
    assert abs(int(reader.read(0).image.mean()) - int(jpg.mean())) <= 1
    np.testing.assert_array_equal(reader.read(1).image, png)


def test_sanitized_collisions_stay_unique_and_deterministic(tmp_path):
    for name in ["a b.png", "a_b.png", "a.png", "a.jpg", "a_png.jpg", "my.photo (1).JPEG"]:
        picture(tmp_path / name)
    reader = ImageFolderReader(tmp_path)
    assert [reader._files[i] for i in range(len(reader))] == [
        "a b.png", "a.jpg", "a.png", "a_b.png", "a_png.jpg", "my.photo (1).JPEG"]
    # 'a.png' -> 'a_png' is taken by the file a_png.jpg, so it gets a counter.
    assert keys(reader) == ["a_b_png", "a_jpg", "a_png_2", "a_b_png_2", "a_png", "my_photo__1_"]
    assert len(set(keys(reader))) == len(reader)
    assert all("." not in k and not k.startswith("/") for k in keys(reader))


def test_unicode_names_are_nfc_normalised(tmp_path):
    picture(tmp_path / "cafe\u0301.png")  # NFD, as macOS stores it
    picture(tmp_path / "na\u00efve.png")  # NFC
    assert keys(ImageFolderReader(tmp_path)) == ["caf_", "na_ve"]


def test_order_does_not_depend_on_creation_order(tmp_path):
    names = [f"{c}/{n}.png" for c in ("b", "a", "c") for n in ("9", "10", "1", "Z", "z")]
    for root, order in ((tmp_path / "one", names), (tmp_path / "two", names[::-1])):
        for name in order:
            picture(root / name, 0, (8, 8))
    one, two = ImageFolderReader(tmp_path / "one"), ImageFolderReader(tmp_path / "two")
    assert keys(one) == keys(two) == sorted(keys(one))
    assert keys(one)[:5] == ["a/1", "a/10", "a/9", "a/Z", "a/z"]


def test_extensions_case_insensitive_and_configurable(tmp_path):
    picture(tmp_path / "A.JPG")
    picture(tmp_path / "b.bmp")
    picture(tmp_path / "c.webp")
    (tmp_path / "d.txt").write_text("x")
    assert keys(ImageFolderReader(tmp_path)) == ["A", "b", "c"]
    assert keys(ImageFolderReader(tmp_path, extensions=["png", ".bmp"])) == ["b"]


def test_bad_files_raise_bad_input_per_record(tmp_path):
    picture(tmp_path / "good.png")
    full = tmp_path / "full.jpg"
    picture(full, size=(64, 64))
    (tmp_path / "cut.jpg").write_bytes(full.read_bytes()[:-400])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello, not a jpeg")
    reader = ImageFolderReader(tmp_path)  # construction decodes nothing
    assert keys(reader) == ["cut", "empty", "full", "good", "text"]
    reasons = {"cut": "cut.jpg: truncated", "empty": "empty.png: zero-byte", "text": "text.jpg: not an image"}
    for i, key in enumerate(keys(reader)):
        if key in reasons:
            with pytest.raises(BadInputError, match=reasons[key]):
                reader.read(i)
        else:
            assert reader.read(i).image.shape[2] == 3


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(AugforgeError, match="not found"):
        ImageFolderReader(tmp_path / "nowhere")


def test_symlink_loops_are_followed_once(tmp_path):
    picture(tmp_path / "cls/x.png")
    (tmp_path / "cls/loop").symlink_to(tmp_path / "cls", target_is_directory=True)
    assert keys(ImageFolderReader(tmp_path)) == ["cls/x"]


def test_pickle_round_trip_reads_the_same(tmp_path):
    picture(tmp_path / "k1/a.png")
    picture(tmp_path / "k2/b.png")
    reader = ImageFolderReader(tmp_path)
    clone = pickle.loads(pickle.dumps(reader))
    assert keys(clone) == keys(reader) and clone.classes == reader.classes
    for i in range(len(reader)):
        np.testing.assert_array_equal(clone.read(i).image, reader.read(i).image)
