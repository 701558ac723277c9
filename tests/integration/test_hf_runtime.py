"""The transformers + bitsandbytes backend on CPU, with an HF checkpoint made from the bundled GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.backends.base import Decoding
from worker.backends.hf import TransformersBackend, checkpoint_params
from worker.errors import JobCancelled
from worker.registry import ModelSpec

pytestmark = pytest.mark.model

PROMPT = "Text: Plants use sunlight, water and carbon dioxide to make their own food.\nSimple:"


@pytest.fixture(scope="module")
def hf_spec(hf_checkpoint: Path) -> ModelSpec:
    return ModelSpec("gemma-3-270m-hf", 0.27, None, hf_checkpoint, backend="transformers")


def test_checkpoint_is_a_plain_safetensors_model(hf_checkpoint: Path) -> None:
    counts = checkpoint_params(hf_checkpoint)
    assert counts is not None
    embed, other = counts
    assert 150e6 < embed < 200e6 and 80e6 < other < 120e6, "Gemma 3 270M: ~168M embedding + ~100M other weights"


@pytest.mark.parametrize("level", ["fp16", "int8", "int4"])
def test_level_loads_and_generates(hf_spec: ModelSpec, level: str) -> None:
    backend = TransformersBackend("cpu")
    assert level in backend.supported_levels(hf_spec)
    estimate = backend.estimate_bytes(hf_spec, level)
    model = backend.load(hf_spec, level)
    try:
        assert (model.level, model.backend) == (level, "transformers")
        quantized = getattr(model.model.config, "quantization_config", None)
        assert (quantized is None) == (level == "fp16")
        assert 0.7 * estimate < model.size_bytes < 1.3 * estimate, (estimate, model.size_bytes)
        generation = model.generate(PROMPT, Decoding(8, ("\n\n",)))
    finally:
        model.close()
    assert generation.text.strip(), f"{level} produced no text"
    assert sum(c.isalpha() for c in generation.text) >= 3
    assert 0 < generation.tokens_out <= 8 and generation.tokens_in > 10


def test_int2_is_not_a_transformers_level(hf_spec: ModelSpec) -> None:
    assert "int2" not in TransformersBackend("cpu").supported_levels(hf_spec)
    assert "int2" not in hf_spec.levels(), "an HF-only model has no int2"


def test_cancellation(hf_spec: ModelSpec) -> None:
    model = TransformersBackend("cpu").load(hf_spec, "fp16")
    try:
        with pytest.raises(JobCancelled):
            model.generate(PROMPT, Decoding(32, should_stop=lambda: True))
    finally:
        model.close()
