"""The bad-input corpus (tests/data/bad/), reader by reader: each file converted as its README says
or refused with its reason; the corpus is reproducible and its README matches its files."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from augforge.core.errors import BadInputError, InvalidInputError
from augforge.datasets import ImageFolderReader, NumpyArrayReader, open_reader
from augforge.datasets.decode import DEFAULT_MAX_PIXELS
from augforge.pipelines.recipe import load_recipe
from tests.data.make_bad_corpus import (
    BAD,
    CORPUS,
    RUNTIME,
    add_runtime_entries,
    picture,
    readme,
    write_corpus,
)

PICTURES = [e.name for e in CORPUS if not e.name.endswith(".npy")]

# key -> expected failure reason (a fragment) for every file the folder reader refuses
QUARANTINED = {
    "truncated_jpg": "truncated.jpg: truncated file",
    "truncated_png": "truncated.png: truncated file",
    "short_stream": "short_stream.png: truncated file: PNG image data holds 650 of the 3120 bytes",
    "empty": "empty.jpg: zero-byte file",
    "text": "text.jpg: not an image",
    "bomb": f"bomb.png: too many pixels: 10000x10000 = 100000000 > max_pixels={DEFAULT_MAX_PIXELS}",
    "dangling": "dangling.png: cannot read file: No such file or directory",
    "loop": "loop.png: cannot read file: Too many levels of symbolic links",
    "fifo": "fifo.jpg: not a regular file (FIFO)",
    "_broken": "broken.jpg: not an image",
}
CONVERTED = {  # key -> (source, shape)
    "animated": ("animated.gif", (16, 16, 3)),
    "caf_": ("caf\udce9.png", (24, 24, 3)),
    "cmyk": ("cmyk.jpg", (32, 32, 3)),
    "cut_with_eoi": ("cut_with_eoi.jpg", (48, 64, 3)),
    "dup_jpg": ("dup.jpg", (32, 32, 3)),
    "dup_png": ("dup.png", (32, 32, 3)),
    "dup_name_png": ("dup name.png", (32, 40, 3)),
    "dup_name_png_2": ("dup_name.png", (40, 32, 3)),
    "exif_rotated": ("exif_rotated.jpg", (24, 40, 3)),
    "gray": ("gray.png", (24, 32, 3)),
    "gray16": ("gray16.png", (24, 32, 3)),
    "noperm": ("noperm.png", (24, 24, 3)),  # root reads it; test_unreadable_file_without_root drops root
    "palette_transparent": ("palette_transparent.png", (16, 16, 3)),
    "__": ("\udcff\udcfe.jpg", (32, 32, 3)),
}


def build_folder(folder: Path) -> Path:
    """The committed pictures plus the entries made at test time, flat in `folder`."""
    folder.mkdir(parents=True)
    for name in PICTURES:
        shutil.copyfile(BAD / name, folder / name)
    add_runtime_entries(folder)
    return folder


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return build_folder(tmp_path / "in")


def outcomes(reader: ImageFolderReader) -> Iterator[tuple[str, np.ndarray | None, str, str]]:
    """(key, image or None, source, reason) for every record."""
    for i in range(len(reader)):
        try:
            sample = reader.read(i)
        except BadInputError as exc:
            yield reader.key(i), None, "", str(exc)
        else:
            yield sample.key, sample.image, sample.source, ""


def test_corpus_is_reproducible_small_and_documented(tmp_path):
    written = write_corpus(tmp_path / "again")
    committed = sorted(p.name for p in BAD.iterdir())
    assert committed == sorted(p.name for p in written), "run: python tests/data/make_bad_corpus.py"
    for path in written:
        assert path.read_bytes() == (BAD / path.name).read_bytes(), f"{path.name} differs from a regeneration"
    assert sum(p.stat().st_size for p in BAD.iterdir()) < 300_000
    text = (BAD / "README.md").read_text(encoding="utf-8")
    assert text == readme()
    for name in [e.name for e in CORPUS] + list(RUNTIME):
        assert f"| `{name}` |" in text


def test_every_picture_is_converted_or_refused_with_its_reason(corpus):
    (corpus / os.fsdecode(b"\xe9broken.jpg")).write_bytes(b"not a picture either")
    reader = ImageFolderReader(corpus)
    assert reader.layout == "flat"
    seen = {key: (image, source, reason) for key, image, source, reason in outcomes(reader)}
    assert len(seen) == len(reader) == len(QUARANTINED) + len(CONVERTED)
    for key, fragment in QUARANTINED.items():
        image, _, reason = seen[key]
        assert image is None and fragment in reason, (key, reason)
    for key, (source, shape) in CONVERTED.items():
        image, got_source, reason = seen[key]
        assert reason == "" and got_source == source and image.shape == shape and image.dtype == np.uint8, key
    by_key = {key: image for key, (image, _, _) in seen.items()}
    # conversions, exactly where the rule is exact
    gray = picture(24, 32)[..., 0]
    np.testing.assert_array_equal(by_key["gray"], np.repeat(gray[..., None], 3, axis=2))
    rows, cols = np.mgrid[0:24, 0:32]
    high = ((rows * 2048 + cols * 37) >> 8).astype(np.uint8)
    np.testing.assert_array_equal(by_key["gray16"], np.repeat(high[..., None], 3, axis=2))
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    index = (np.arange(16)[:, None] // 4 + np.arange(16)[None, :] // 4) % 4
    np.testing.assert_array_equal(by_key["palette_transparent"], palette[index])
    assert (by_key["animated"] == [250, 10, 10]).all()  # the first of three frames
    cmyk_error = np.abs(by_key["cmyk"].astype(int) - picture(32, 32)).mean()
    assert cmyk_error < 1.0  # CMYK JPEG q95 back to RGB: the picture, not inverted channels
    # the documented limitation: a cut JPEG that still ends with EOI decodes, its lost blocks gray
    cut = by_key["cut_with_eoi"]
    assert (cut[-16:] == 128).all() and (cut[:8] != 128).mean() > 0.5


def test_exif_orientation_is_not_applied():
    stored = Image.open(BAD / "exif_rotated.jpg")
    assert stored.getexif()[0x0112] == 6 and ImageOps.exif_transpose(stored).size == (24, 40)  # (w, h)
    reader = open_reader("folder", BAD, extensions=[".jpg"])
    key = [reader.key(i) for i in range(len(reader))].index("exif_rotated")
    image = reader.read(key).image
    assert image.shape == (24, 40, 3)  # as stored (the transposed picture would be 40 x 24)
    assert np.abs(image.astype(int) - picture(24, 40)).mean() < 20  # JPEG loss only, same orientation


def test_pixel_limit_is_a_reader_and_recipe_option(tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("bomb.png", "dup.png"):
        shutil.copyfile(BAD / name, folder / name)
    recipe = load_recipe({"input": {"reader": "folder", "path": str(folder), "options": {"max_pixels": 1000}},
                          "ops": ["contrast@1"]})
    reader = open_reader(recipe.input.reader, recipe.input.path, **recipe.input.options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # max_pixels decides; PIL's DecompressionBombWarning stays quiet
        with pytest.raises(BadInputError, match=r"bomb\.png: too many pixels: 10000x10000 = 100000000 > "
                                                r"max_pixels=1000"):
            reader.read(0)
        with pytest.raises(BadInputError, match=rf"max_pixels={DEFAULT_MAX_PIXELS}"):
            open_reader("folder", folder).read(0)
    with pytest.raises(BadInputError, match=r"dup\.png: too many pixels: 32x32 = 1024 > max_pixels=1000"):
        reader.read(1)
    assert open_reader("folder", folder, max_pixels=1024).read(1).image.shape == (32, 32, 3)
    # raised above the bomb's 10^8 pixels, the header passes; its one row of data is then refused
    # before any decoding (no 10^8-pixel allocation)
    with pytest.raises(BadInputError, match="truncated file: PNG image data holds 10001 of the 100010000"):
        open_reader("folder", folder, max_pixels=10**8).read(0)


def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    reader = ImageFolderReader(tmp_path)
    previous = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("reading a FIFO blocked"))
    signal.alarm(10)
    try:
        with pytest.raises(BadInputError, match=r"pipe\.png: not a regular file \(FIFO\)"):
            reader.read(0)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _read_as(folder: Path, uid: int | None) -> str:
    """The reason reading the folder's one picture fails, read in a forked child running as `uid`
    (None: as this user). Forked, not exec'ed: the interpreter may live where `uid` cannot go."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, read, report, exit without running pytest's cleanup
        status = 1
        try:
            os.close(rfd)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            try:
                ImageFolderReader(folder).read(0)
                message = "read without error"
            except BadInputError as exc:
                message = str(exc)
            os.write(wfd, message.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as fh:
        message = fh.read().decode()
    _, status = os.waitpid(pid, 0)
    assert status == 0
    return message


def test_unreadable_file_without_root():
    """chmod 000 only stops a non-root reader: as root, the read runs in a child dropped to nobody."""
    folder = Path(tempfile.mkdtemp(prefix="augforge-noperm-"))  # not below pytest's 0700 tmp_path
    try:
        folder.chmod(0o755)
        add_runtime_entries(folder)
        keep = folder / "noperm.png"
        for entry in list(folder.iterdir()):
            if entry != keep:
                entry.unlink()
        uid = 65534 if os.geteuid() == 0 else None
        assert _read_as(folder, uid) == "noperm.png: cannot read file: Permission denied"
    finally:
        shutil.rmtree(folder)


def test_keys_stay_unique_and_do_not_depend_on_creation_order(tmp_path):
    first = build_folder(tmp_path / "a")
    second = tmp_path / "b"
    second.mkdir()
    add_runtime_entries(second)
    for name in reversed(PICTURES):  # other creation (directory listing) order
        shutil.copyfile(BAD / name, second / name)
    keys_a = [ImageFolderReader(first).key(i) for i in range(len(ImageFolderReader(first)))]
    keys_b = [ImageFolderReader(second).key(i) for i in range(len(ImageFolderReader(second)))]
    assert keys_a == keys_b and len(set(keys_a)) == len(keys_a)
    assert all(k.replace("_", "").replace("-", "").isalnum() or set(k) == {"_"} for k in keys_a)
    # the same file name in two class folders: the class folder keeps the keys apart
    classes = tmp_path / "classes"
    for cls in ("cat", "dog"):
        (classes / cls).mkdir(parents=True)
        shutil.copyfile(BAD / "dup.png", classes / cls / "dup.png")
        shutil.copyfile(BAD / "dup.jpg", classes / cls / "dup.jpg")
    reader = ImageFolderReader(classes)
    assert [reader.key(i) for i in range(len(reader))] == ["cat/dup_jpg", "cat/dup_png", "dog/dup_jpg",
                                                          "dog/dup_png"]


def test_numpy_files_convert_or_quarantine_per_picture():
    floats = NumpyArrayReader(BAD / "float_nan_inf.npy")
    assert len(floats) == 4
    np.testing.assert_array_equal(floats.read(0).image, picture(16, 16))  # x / 255 * 255, rounded back
    for index, reason in ((1, "1 NaN and 0 infinite"), (2, "0 NaN and 1 infinite"),
                          (3, r"values 0\.\.255 lie outside \[0, 1\]")):
        with pytest.raises(BadInputError, match=rf"float_nan_inf\.npy\[{index}\]: float32 .*{reason}"):
            floats.read(index)
    ints = NumpyArrayReader(BAD / "int64.npy")
    np.testing.assert_array_equal(ints.read(0).image, picture(16, 16))
    with pytest.raises(BadInputError, match=r"int64\.npy\[1\]: int64 values 0\.\.256 lie outside 0\.\.255"):
        ints.read(1)
    with pytest.raises(BadInputError, match=r"int64\.npy\[2\]: int64 values -1\.\.255"):
        ints.read(2)
    masks = NumpyArrayReader(BAD / "bool.npy")
    np.testing.assert_array_equal(masks.read(0).image[..., 0], np.eye(16, dtype=np.uint8) * 255)
    np.testing.assert_array_equal(masks.read(1).image[..., 1], (1 - np.eye(16, dtype=np.uint8)) * 255)
    with pytest.raises(InvalidInputError, match="complex64, which cannot hold pictures"):
        NumpyArrayReader(BAD / "complex.npy")
    with pytest.raises(InvalidInputError, match=r"not a plain \.npy array"):
        NumpyArrayReader(BAD / "object.npy")
