"""A tar writer for shards: the bytes of `webdataset.TarWriter(encoder=False, ...)`, without its cost.

webdataset's TarWriter goes through `tarfile` for every member (a TarInfo copy, a PAX header
check, a fresh 512-byte header), which costs about as much as PNG-encoding a 32 x 32 picture.
Shard members differ only in name and size, so this writer builds one header with `tarfile`
and patches those two fields and the checksum per member. Names `tarfile` would write
differently (not ASCII, longer than 100 bytes) and sizes beyond the octal field go through
`tarfile` itself, so the output is byte-identical to TarWriter's in every case
(tests/pipelines/test_tario.py compares them).
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 20 blocks: tarfile pads the archive end to a whole record
_NAME = slice(0, 100)
_SIZE = slice(124, 136)
_CHECKSUM = slice(148, 156)
_MAX_SIZE = 8**11  # 11 octal digits


class ShardTarWriter:
    """Writes samples `{ext: bytes}` as `<key>.<ext>` members (extensions in sorted order), as
    TarWriter(fileobj, encoder=False, mtime=, user=, group=, mode=) does."""

    def __init__(self, fh: BinaryIO, *, mtime: int, user: str, group: str, mode: int) -> None:
        self.fh = fh
        self.offset = 0
        self._info = {"mtime": mtime, "uname": user, "gname": group, "mode": mode}
        template = bytearray(self._tarbuf("", 0))
        if len(template) != BLOCK:
            raise ValueError("user or group name needs a PAX header; use a short ASCII name")
        template[_CHECKSUM] = b" " * 8
        self._template = bytes(template)
        self._base_sum = sum(template) - sum(template[_NAME]) - sum(template[_SIZE])

    def _tarbuf(self, name: str, size: int) -> bytes:
        """The header `tarfile` writes for this member (TarWriter's tarfile stream: PAX format)."""
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = self._info["mtime"]
        info.mode = self._info["mode"]
        info.uname = self._info["uname"]
        info.gname = self._info["gname"]
        return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")

    def _header(self, name: str, size: int) -> bytes:
        if len(name) > 100 or not name.isascii() or size >= _MAX_SIZE:
            return self._tarbuf(name, size)
        raw = name.encode("ascii")
        size_field = b"%011o\0" % size
        header = bytearray(self._template)
        header[0 : len(raw)] = raw
        header[_SIZE] = size_field
        checksum = self._base_sum + sum(raw) + sum(size_field)
        header[_CHECKSUM] = b"%06o\0 " % checksum
        return bytes(header)

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """One sample: its members `<key>.<ext>`, extensions sorted like TarWriter."""
        parts = []
        for ext in sorted(members):
            data = members[ext]
            header = self._header(f"{key}.{ext}", len(data))
            pad = -len(data) % BLOCK
            parts += (header, data, b"\0" * pad)
            self.offset += len(header) + len(data) + pad
        self.fh.write(b"".join(parts))

    def close(self) -> None:
        """The end-of-archive blocks and the padding to a whole record (the file stays open)."""
        end = 2 * BLOCK
        end += -(self.offset + end) % RECORD
        self.fh.write(b"\0" * end)
        self.offset += end
