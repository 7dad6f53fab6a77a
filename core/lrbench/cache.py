"""Content-keyed, checksummed, atomically written store of raw outputs.

An entry is ``<root>/<kind>/<key[:2]>/<key>.npz`` plus ``<key>.json`` holding the sha256 of the npz bytes and the
description the key was hashed from. The json is written last, so an entry without it is incomplete (a killed run) and
is simply recomputed; an entry whose checksum fails is reported and recomputed. A file lock per key keeps two runs that
share a cache from computing or writing the same entry at once.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from filelock import FileLock

log = logging.getLogger("lrbench")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def content_key(description: Any) -> str:
    """sha256 of the canonical JSON of everything that determines a result."""
    return hashlib.sha256(canonical_json(description).encode()).hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


_sha256_memo: dict[tuple[str, int, int, int, int], str] = {}


def file_sha256_memo(path: str | Path) -> str:
    """:func:`file_sha256`, remembered for this process by (resolved path, device, inode, size, mtime_ns).

    Cache keys hash the same checkpoints at every planning and method construction; a file rewritten or replaced gets
    a new mtime or inode and is hashed again. (Cache entries are verified with :func:`file_sha256` itself.)
    """
    resolved = Path(path).expanduser().resolve()
    st = resolved.stat()
    key = (str(resolved), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _sha256_memo:
        _sha256_memo[key] = file_sha256(resolved)
    return _sha256_memo[key]


def _umask() -> int:
    """The process umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target: readers see old or new, never half.

    The file gets the mode a plain ``open(path, "w")`` would (0o666 minus the umask), not mkstemp's private 0o600, so
    others can read a shared run directory or cache.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class Cache:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        self.hits = 0
        self.misses = 0

    def _paths(self, kind: str, key: str) -> tuple[Path, Path]:
        base = self.root / kind / key[:2]
        return base / f"{key}.npz", base / f"{key}.json"

    def lock(self, kind: str, key: str) -> FileLock:
        data, _ = self._paths(kind, key)
        data.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(data.with_suffix(".lock")))

    def contains(self, kind: str, key: str) -> bool:
        """A complete entry exists (its checksum is verified when it is read)."""
        return self._paths(kind, key)[1].is_file()

    def get(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays, its checksum verified; None (and the entry dropped) when absent or corrupt."""
        data_path, meta_path = self._paths(kind, key)
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            raw = data_path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != meta["sha256"]:
                raise ValueError("checksum mismatch")
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except Exception as exc:
            log.warning("cache entry %s/%s is corrupt (%s); recomputing", kind, key[:12], exc)
            meta_path.unlink(missing_ok=True)
            return None

    def discard(self, kind: str, key: str) -> None:
        """Drop an entry (its json first, so it reads as absent at once)."""
        data_path, meta_path = self._paths(kind, key)
        meta_path.unlink(missing_ok=True)
        data_path.unlink(missing_ok=True)

    def put(self, kind: str, key: str, arrays: dict[str, np.ndarray], description: Any = None) -> None:
        data_path, meta_path = self._paths(kind, key)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        raw = buf.getvalue()
        atomic_write_bytes(data_path, raw)
        meta = {"sha256": hashlib.sha256(raw).hexdigest(), "description": description}
        atomic_write_text(meta_path, canonical_json(meta))

    def get_or_compute(
        self, kind: str, description: Any, compute: Callable[[], dict[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        key = content_key(description)
        with self.lock(kind, key):
            found = self.get(kind, key)
            if found is not None:
                self.hits += 1
                return found
            self.misses += 1
            arrays = compute()
            self.put(kind, key, arrays, description)
            return arrays
