"""GGUF precision variants (F16, Q8_0, Q4_K_M, Q2_K) built once from a model's source GGUF.

Each variant is written to a temporary file beside its final name and moved into place with
os.replace under an fcntl lock, so two workers asking at once build it once and no reader ever
sees a partial file. Names carry a fingerprint of the source, so a changed source gets new variants.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import mmap
import os
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import ModelLoadError
from worker.settings import available_cores

GGUF_MAGIC = b"GGUF"

FILE_TYPE_IDS: dict[str, int] = {"F16": 1, "Q8_0": 7, "Q2_K": 10, "Q4_K_M": 15}
"""llama.cpp's LLAMA_FTYPE values (the GGUF key general.file_type) for the types we build."""

FINGERPRINT_BYTES = 1 << 20


@dataclass(frozen=True)
class Variant:
    """A variant file on disk and how this call got it."""

    path: Path
    gguf_type: str
    source: Path
    built: bool
    seconds: float

    @property
    def size_bytes(self) -> int:
        """Size of the variant file."""
        return self.path.stat().st_size


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `path` (created if needed) across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def temp_path_for(target: Path) -> Path:
    """A temporary name in the target's directory, unique to this process and thread."""
    return target.with_name(f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")


def check_gguf(path: Path) -> None:
    """Raise ModelLoadError unless `path` is a readable file that starts with the GGUF magic."""
    if not path.exists():
        raise ModelLoadError(f"GGUF file {path} does not exist: check the path in the models file")
    if not path.is_file():
        raise ModelLoadError(f"GGUF path {path} is not a file: point the models file at a .gguf file")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelLoadError(f"GGUF file {path} cannot be read ({exc}): check its permissions") from exc
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF file (it does not start with 'GGUF'): it is corrupt or another format; "
            "replace it with a valid .gguf file"
        )


def remove_stale_temps(target: Path) -> None:
    """Delete temporary files a crashed builder left for `target` (call only while holding its lock)."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def source_fingerprint(source: Path) -> str:
    """A short content fingerprint of a source file: its size and its first and last MiB.

    Hashing a whole multi-GB file on every request would cost seconds; the ends and the size change
    whenever the model does.
    """
    st = source.stat()
    return _fingerprint(source, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _fingerprint(source: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256(str(size).encode())
    with open(source, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            handle.seek(max(size - FINGERPRINT_BYTES, FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return digest.hexdigest()[:12]


SCALAR_FORMATS: dict[int, str] = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
STRING_TYPE, ARRAY_TYPE = 8, 9


class _HeaderReader:
    """Sequential little-endian reads over a memory-mapped GGUF header."""

    def __init__(self, data: mmap.mmap, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"header ends early at byte {self.pos}")
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.unpack("Q")
        if self.pos + length > len(self.data):
            raise ValueError(f"string of {length} bytes runs past the end of the file")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype == STRING_TYPE:
            return self.string()
        if vtype == ARRAY_TYPE:
            etype, count = self.unpack("I"), self.unpack("Q")
            if etype in SCALAR_FORMATS and count <= 4096:
                return [self.unpack(SCALAR_FORMATS[etype]) for _ in range(count)]
            if etype in SCALAR_FORMATS:  # long numeric arrays (token scores) are skipped, not kept
                self.pos += struct.calcsize("<" + SCALAR_FORMATS[etype]) * count
            else:
                for _ in range(count):
                    self.value(etype)
            return None
        if vtype not in SCALAR_FORMATS:
            raise ValueError(f"unknown metadata value type {vtype} at byte {self.pos}")
        return self.unpack(SCALAR_FORMATS[vtype])


@functools.lru_cache(maxsize=64)
def _read_metadata(path: Path, size: int, mtime_ns: int) -> dict[str, Any]:
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        reader = _HeaderReader(data, path)
        if data[:4] != GGUF_MAGIC:
            raise ValueError("no GGUF magic")
        reader.pos = 4
        version = reader.unpack("I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        reader.unpack("Q")  # tensor count
        kv_count = reader.unpack("Q")
        meta: dict[str, Any] = {}
        for _ in range(kv_count):
            key = reader.string()
            meta[key] = reader.value(reader.unpack("I"))
        return meta


def gguf_metadata(path: Path) -> dict[str, Any]:
    """A GGUF file's metadata key/values (long arrays such as the vocabulary left out), cached per file version.

    Parsing only the header takes milliseconds where gguf.GGUFReader takes seconds on a 262k-token vocabulary.
    """
    check_gguf(path)
    st = path.stat()
    try:
        return _read_metadata(path, st.st_size, st.st_mtime_ns)
    except (ValueError, OSError, struct.error) as exc:
        raise ModelLoadError(
            f"GGUF file {path} cannot be parsed ({exc}): it is corrupt or truncated; replace it with a valid .gguf file"
        ) from exc


def source_file_type(source: Path) -> str | None:
    """The GGUF type name (e.g. 'Q4_K_M') recorded in a file's general.file_type, if it is one we build."""
    value = gguf_metadata(source).get("general.file_type")
    return next((name for name, ident in FILE_TYPE_IDS.items() if ident == value), None)


def variant_path(source: Path, gguf_type: str, directory: Path) -> Path:
    """Where the variant of `source` at `gguf_type` lives (built or not)."""
    stem = source.name[: -len(".gguf")] if source.name.endswith(".gguf") else source.name
    return directory / f"{stem}-{source_fingerprint(source)}.{gguf_type}.gguf"


def existing_variant(source: Path, gguf_type: str, directory: Path) -> Path | None:
    """The variant file if it is already on disk (or the source itself when it has that type)."""
    check_gguf(source)
    target = variant_path(source, gguf_type, directory)
    if target.exists():
        return target
    return source if source_file_type(source) == gguf_type else None


def build_once(target: Path, ready: Callable[[Path], bool], write: Callable[[Path], None]) -> bool:
    """Make `target` by `write(temporary path)` unless `ready(target)`: once across processes (a lock file) and
    atomically (the temporary file is moved into place only when `write` returns); whether this call built it."""
    if ready(target):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.with_name(target.name + ".lock")):
        if ready(target):  # another process built it while we waited for the lock
            return False
        remove_stale_temps(target)
        tmp = temp_path_for(target)
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return True


def ensure_variant(source: Path | str, gguf_type: str, directory: Path, nthread: int | None = None) -> Variant:
    """Return the variant of `source` at `gguf_type`, building it with llama.cpp if it is not on disk yet."""
    if gguf_type not in FILE_TYPE_IDS:
        raise ValueError(f"unknown GGUF type {gguf_type!r}: allowed are {', '.join(FILE_TYPE_IDS)}")
    src = Path(source)
    check_gguf(src)
    if source_file_type(src) == gguf_type:
        return Variant(src, gguf_type, src, built=False, seconds=0.0)
    target = variant_path(src, gguf_type, directory)
    started = time.perf_counter()
    threads = nthread or available_cores()
    built = build_once(target, Path.exists, lambda tmp: quantize(src, tmp, gguf_type, threads))
    return Variant(target, gguf_type, src, built=built, seconds=time.perf_counter() - started if built else 0.0)


def quantize(source: Path, output: Path, gguf_type: str, nthread: int) -> None:
    """Write `source` re-quantized to `gguf_type` at `output` with llama_model_quantize."""
    import llama_cpp

    quiet_llama_logs()
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = nthread
    params.ftype = FILE_TYPE_IDS[gguf_type]
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(output).encode(), params)
    if rc != 0 or not output.exists() or output.stat().st_size == 0:
        raise ModelLoadError(
            f"building the {gguf_type} variant of {source} failed (llama_model_quantize returned {rc}): "
            f"check that the file is a valid GGUF model and that {output.parent} has free disk space"
        )


def quiet_llama_logs() -> None:
    """Keep llama.cpp's per-tensor info lines off stderr unless the user configured its logger."""
    logger = logging.getLogger("llama-cpp-python")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
