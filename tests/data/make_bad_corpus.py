"""Write the bad-input corpus `tests/data/bad/` (and its README) deterministically.

    python tests/data/make_bad_corpus.py            # rewrite tests/data/bad/
    python tests/data/make_bad_corpus.py OUT_DIR    # write a copy elsewhere

Every file is built from fixed arrays (no random state, no clock), so a rerun with the same Pillow,
zlib and numpy writes the same bytes; tests/datasets/test_bad_corpus.py checks that. Entries a
git checkout cannot hold (non-UTF-8 names, FIFOs, dangling or looping symlinks, unreadable
permissions) are made at test time by `add_runtime_entries`. `CORPUS` and `RUNTIME` are the one
description of every entry: the README table is generated from them.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
BAD = HERE / "bad"
# 10^8 pixels declared: above the default max_pixels (89 478 485), below PIL's hard limit (twice that)
BOMB_SIDE = 10_000


@dataclass(frozen=True)
class Entry:
    """One corpus file: how it is made, what it is, what augforge does with it."""

    name: str
    make: Callable[[], bytes]
    what: str
    outcome: str


def picture(height: int, width: int) -> np.ndarray:
    """A fixed RGB test picture: gradients in R and G, a checker in B (orientation is visible)."""
    rows, cols = np.mgrid[0:height, 0:width]
    red = rows * 255 // max(height - 1, 1)
    green = cols * 255 // max(width - 1, 1)
    blue = ((rows // 4 + cols // 4) % 2) * 200
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


# --- the files ------------------------------------------------------------------------------------


def truncated_jpeg() -> bytes:
    data = encode(Image.fromarray(picture(48, 64)), "JPEG", quality=90)
    return data[: len(data) // 2]


def truncated_png() -> bytes:
    data = encode(Image.fromarray(picture(48, 64)), "PNG", compress_level=0)
    return data[: len(data) // 2]


def short_stream_png() -> bytes:
    """A 48x64 gray PNG whose complete zlib stream holds 10 of its 48 rows."""
    header = struct.pack(">IIBBBBB", 64, 48, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"".join(b"\0" + bytes(picture(48, 64)[r, :, 0]) for r in range(10)), 9)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def cut_with_eoi_jpeg() -> bytes:
    """The first half of a 48x64 JPEG's bytes with an end-of-image marker appended."""
    data = encode(Image.fromarray(picture(48, 64)), "JPEG", quality=90)
    return data[: len(data) // 2] + b"\xff\xd9"


def cmyk_jpeg() -> bytes:
    rgb = Image.fromarray(picture(32, 32))
    return encode(rgb.convert("CMYK"), "JPEG", quality=95)


def gray16_png() -> bytes:
    rows, cols = np.mgrid[0:24, 0:32]
    values = (rows * 2048 + cols * 37).astype(np.uint16)  # high bytes 0..184, low bytes vary
    return encode(Image.fromarray(values), "PNG")


def palette_png() -> bytes:
    index = (np.arange(16)[:, None] // 4 + np.arange(16)[None, :] // 4) % 4
    img = Image.fromarray(index.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 - 4) * 3)
    return encode(img, "PNG", transparency=0)  # index 0 (black) is fully transparent


def gray_png() -> bytes:
    return encode(Image.fromarray(picture(24, 32)[..., 0]), "PNG")


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the viewer rotates 90 degrees clockwise; stored 24 x 40
    return encode(Image.fromarray(picture(24, 40)), "JPEG", quality=95, exif=exif)


def animated_gif() -> bytes:
    frames = [Image.fromarray(np.full((16, 16, 3), colour, np.uint8)) for colour in
              ((250, 10, 10), (10, 250, 10), (10, 10, 250))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def bomb_png() -> bytes:
    """A 10 000 x 10 000 gray PNG header with one row of data: 10^8 pixels declared in under 100 bytes."""
    header = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 8, 0, 0, 0, 0)
    row = zlib.compress(b"\0" * (BOMB_SIDE + 1), 9)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", row) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def good_png(height: int = 32, width: int = 32) -> Callable[[], bytes]:
    return lambda: encode(Image.fromarray(picture(height, width)), "PNG")


def good_jpeg() -> bytes:
    return encode(Image.fromarray(picture(32, 32)), "JPEG", quality=90)


def float_npy() -> bytes:
    base = picture(16, 16).astype(np.float32) / np.float32(255)
    arrays = np.stack([base] * 4)
    arrays[1, 3, 5, 0] = np.nan
    arrays[2, 7, 2, 1] = np.inf
    arrays[3] = base * 255  # 0..255 floats: the [0, 1] convention is broken
    return npy(arrays)


def int64_npy() -> bytes:
    base = picture(16, 16).astype(np.int64)
    arrays = np.stack([base] * 3)
    arrays[1, 0, 0, 0] = 256
    arrays[2, 0, 0, 0] = -1
    return npy(arrays)


def bool_npy() -> bytes:
    return npy(np.stack([np.eye(16, dtype=bool), ~np.eye(16, dtype=bool)]))


def complex_npy() -> bytes:
    return npy(np.zeros((2, 16, 16), np.complex64))


def object_npy() -> bytes:
    array = np.empty(2, dtype=object)
    array[:] = [1, "two"]  # harmless objects: loading them would still need pickle
    return npy(array, allow_pickle=True)


CORPUS: tuple[Entry, ...] = (
    Entry("truncated.jpg", truncated_jpeg, "48x64 JPEG (q90) cut after half of its bytes",
          "quarantined: `truncated file` (PIL's LOAD_TRUNCATED_IMAGES stays False)"),
    Entry("truncated.png", truncated_png, "48x64 PNG (no compression) cut after half of its bytes",
          "quarantined: `truncated file`"),
    Entry("short_stream.png", short_stream_png, "48x64 PNG whose complete zlib stream holds 10 of 48 rows",
          "quarantined: `truncated file: PNG image data holds 650 of the 3120 bytes ...` (PIL alone "
          "would fill the missing rows with black)"),
    Entry("cut_with_eoi.jpg", cut_with_eoi_jpeg, "first half of a 48x64 JPEG plus an end-of-image marker",
          "converted, **known limitation**: the lost blocks come out gray (128); libjpeg only warns "
          "(premature end of data) and PIL does not expose the warning"),
    Entry("empty.jpg", lambda: b"", "zero bytes", "quarantined: `zero-byte file`"),
    Entry("text.jpg", lambda: b"this is not a picture\n", "a text file named .jpg",
          "quarantined: `not an image (or not one of JPEG, PNG, ...)`"),
    Entry("cmyk.jpg", cmyk_jpeg, "32x32 CMYK JPEG", "converted: RGB by PIL's CMYK -> RGB conversion"),
    Entry("gray16.png", gray16_png, "24x32 16-bit grayscale PNG (mode I;16)",
          "converted: high byte of each value (v >> 8), gray repeated in R, G, B"),
    Entry("palette_transparent.png", palette_png, "16x16 palette PNG, index 0 transparent (tRNS)",
          "converted: the palette colours; transparency dropped (black stays black)"),
    Entry("gray.png", gray_png, "24x32 8-bit grayscale PNG",
          "converted: value repeated in R, G, B (mode 'L' keeps one channel)"),
    Entry("exif_rotated.jpg", exif_rotated_jpeg, "24x40 JPEG with EXIF Orientation 6 (display rotated 90°)",
          "converted as stored: 24x40, EXIF orientation not applied (like torchvision and ImageNet-C)"),
    Entry("animated.gif", animated_gif, "16x16 GIF, 3 frames (red, green, blue)",
          "converted: first frame only (red)"),
    Entry("bomb.png", bomb_png, "PNG header declaring 10000x10000 pixels, one row of data (under 100 bytes)",
          "quarantined: `too many pixels ... > max_pixels=89478485` before any decoding. The limit is the "
          "input option `max_pixels` (CLI `--max-pixels`); raised to 10^8 the header passes and the file is "
          "refused as `truncated file` (its data holds one row), still before decoding"),
    Entry("dup.png", good_png(), "32x32 PNG, same stem as dup.jpg", "converted, key `dup_png`"),
    Entry("dup.jpg", good_jpeg, "32x32 JPEG, same stem as dup.png", "converted, key `dup_jpg`"),
    Entry("dup name.png", good_png(32, 40), "32x40 PNG whose key sanitizes to `dup_name`",
          "converted, key `dup_name_png` (first in sorted order)"),
    Entry("dup_name.png", good_png(40, 32), "40x32 PNG, same sanitized key as `dup name.png`",
          "converted, key `dup_name_png_2`"),
    Entry("float_nan_inf.npy", float_npy, "float32 (4, 16, 16, 3): [0] in [0, 1], [1] a NaN, [2] an inf, "
          "[3] values 0..255", "numpy reader: [0] converted (round(x * 255)); [1], [2] quarantined "
          "(`NaN`, `infinite`); [3] quarantined (`outside [0, 1]`)"),
    Entry("int64.npy", int64_npy, "int64 (3, 16, 16, 3): [0] in 0..255, [1] a 256, [2] a -1",
          "numpy reader: [0] converted exactly; [1], [2] quarantined (`outside 0..255`)"),
    Entry("bool.npy", bool_npy, "bool (2, 16, 16) masks", "numpy reader: converted, False -> 0, True -> 255"),
    Entry("complex.npy", complex_npy, "complex64 (2, 16, 16)",
          "numpy reader refuses the file when it opens (`cannot hold pictures`): no record is readable"),
    Entry("object.npy", object_npy, "object array (needs pickle to load)",
          "numpy reader refuses the file when it opens (`not a plain .npy`); nothing is unpickled"),
)

# Made by `add_runtime_entries` (a git checkout cannot hold them): name -> (what, outcome).
RUNTIME: dict[str, tuple[str, str]] = {
    "caf\\xe9.png (bytes name)": ("a good PNG whose name is Latin-1, not UTF-8",
                                  "converted; key `caf_` (undecodable bytes become '_')"),
    "\\xff\\xfe.jpg (bytes name)": ("a good JPEG with a name of two undecodable bytes",
                                    "converted; key `__`"),
    "dangling.png": ("symlink to a missing file",
                     "quarantined: `cannot read file: No such file or directory`"),
    "loop.png": ("symlink to itself", "quarantined: `cannot read file: Too many levels of symbolic links`"),
    "fifo.jpg": ("a named pipe (FIFO)", "quarantined: `not a regular file (FIFO)`; never opened for a "
                 "blocking read"),
    "noperm.png": ("a good PNG with mode 000", "quarantined: `cannot read file: Permission denied` (root "
                   "ignores permissions: tests drop to uid 65534 to check it)"),
}


def add_runtime_entries(folder: Path) -> dict[str, Path]:
    """Create the RUNTIME entries in `folder`; returns name -> path (non-UTF-8 names as bytes paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    for raw, data in ((b"caf\xe9.png", good_png(24, 24)()), (b"\xff\xfe.jpg", good_jpeg())):
        path = os.path.join(os.fsencode(folder), raw)
        with open(path, "wb") as fh:
            fh.write(data)
        made[raw.decode("latin-1")] = Path(os.fsdecode(path))
    (folder / "dangling.png").symlink_to(folder / "missing-target.png")
    (folder / "loop.png").symlink_to("loop.png")
    os.mkfifo(folder / "fifo.jpg")
    noperm = folder / "noperm.png"
    noperm.write_bytes(good_png(24, 24)())
    noperm.chmod(0)
    made.update({name: folder / name for name in ("dangling.png", "loop.png", "fifo.jpg", "noperm.png")})
    return made


def readme() -> str:
    """The corpus README: one table row per file."""
    lines = [
        "# Bad-input corpus",
        "",
        "Small hostile or unusual inputs for the readers and `augforge generate`. Generated by",
        "`python tests/data/make_bad_corpus.py` (do not edit by hand; this README is generated too).",
        "Checked by `tests/datasets/test_bad_corpus.py` (reader by reader) and",
        "`tests/pipelines/test_bad_input.py` (a whole `generate` run and the CLI summary).",
        "",
        "Rule: every file is either converted as written below or quarantined with the reason given;",
        "the job always finishes, and read = written + quarantined in `manifest.json` and the summary.",
        "Reasons are the text `quarantine.jsonl` holds (after the file name).",
        "",
        "| file | what it is | outcome |",
        "|---|---|---|",
    ]
    lines += [f"| `{e.name}` | {e.what} | {e.outcome} |" for e in CORPUS]
    lines += [
        "",
        "Made at test time by `add_runtime_entries` (git cannot hold them):",
        "",
        "| entry | what it is | outcome |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {what} | {outcome} |" for name, (what, outcome) in RUNTIME.items()]
    lines += [
        "",
        "The folder reader reads the picture files (`.npy` and this README are not pictures to it);",
        "the `.npy` files are inputs of the numpy reader (`reader: numpy`), one file per run.",
        "",
    ]
    return "\n".join(lines)


def write_corpus(folder: Path = BAD) -> list[Path]:
    """Write every CORPUS file and the README into `folder`; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in CORPUS:
        path = folder / entry.name
        path.write_bytes(entry.make())
        written.append(path)
    (folder / "README.md").write_text(readme(), encoding="utf-8")
    return [*written, folder / "README.md"]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else BAD
    paths = write_corpus(target)
    print(f"wrote {len(paths)} files ({sum(p.stat().st_size for p in paths)} bytes) to {target}")
