"""Live readings of the machine: the only module that measures memory, devices and queue load."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

from worker.contracts import LoadReading, MemoryReading
from worker.policy import LEVELS
from worker.queues import jobs_running, queue_depth

if TYPE_CHECKING:
    import redis

DEVICES = ("cpu", "cuda", "mps")


def process_rss_bytes() -> int:
    """Resident memory of this process."""
    return int(psutil.Process().memory_info().rss)


def system_memory() -> MemoryReading:
    """System RAM as psutil reads it (available counts reclaimable page cache as free)."""
    vm = psutil.virtual_memory()
    return MemoryReading(
        pool="system", total_bytes=int(vm.total), available_bytes=int(vm.available), process_bytes=process_rss_bytes()
    )


def cuda_memory(index: int = 0) -> MemoryReading:
    """GPU memory as the CUDA driver reports it, including other processes' use."""
    import torch

    free, total = torch.cuda.mem_get_info(index)
    return MemoryReading(
        pool=f"cuda:{index}",
        total_bytes=int(total),
        available_bytes=int(free),
        process_bytes=int(torch.cuda.memory_reserved(index)),
    )


def cuda_used_bytes(index: int = 0) -> int:
    """GPU memory in use on the device (every process): a load's delta is what it placed there."""
    import torch

    free, total = torch.cuda.mem_get_info(index)
    return int(total - free)


def footprint_reader(device: str) -> Callable[[], int]:
    """What a model load adds to: GPU memory in use on CUDA, else this process's resident memory."""
    return cuda_used_bytes if device == "cuda" else process_rss_bytes


def mps_memory() -> MemoryReading:
    """Apple unified memory: weights share system RAM with everything else."""
    return system_memory().model_copy(update={"pool": "unified"})


def installed(module: str) -> bool:
    """Whether a module can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def detect_device(requested: str | None = None) -> str:
    """The device weights will live on: the one asked for (DYNAQUANT_DEVICE), else CUDA, MPS, then CPU."""
    choice = (requested or "auto").lower()
    if choice != "auto":
        if choice not in DEVICES:
            raise ValueError(f"unknown device {choice!r}: allowed are auto, {', '.join(DEVICES)}")
        return choice
    if installed("torch"):
        import torch

        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
    return "cpu"


def memory_reader(device: str) -> Callable[[], MemoryReading]:
    """The memory probe for a device's weight pool."""
    return {"cuda": cuda_memory, "mps": mps_memory}.get(device, system_memory)


def backend_capabilities(device: str, has_module: Callable[[str], bool] = installed) -> dict[str, dict[str, bool]]:
    """Levels each installed backend can run on the device."""
    caps: dict[str, dict[str, bool]] = {}
    if has_module("llama_cpp"):
        caps["gguf"] = {level: True for level in LEVELS}
    if has_module("transformers") and has_module("torch"):
        bnb = has_module("bitsandbytes") and device in ("cpu", "cuda")
        caps["transformers"] = {"fp16": True, "int8": bnb, "int4": bnb, "int2": False}
    return caps


def merge_capabilities(per_backend: dict[str, dict[str, bool]]) -> dict[str, bool]:
    """A level is available when any installed backend runs it."""
    return {level: any(c.get(level, False) for c in per_backend.values()) for level in LEVELS}


def load_reader(client: redis.Redis, queues: Sequence[str]) -> Callable[[], LoadReading]:
    """A probe that reads the load of the queues from Redis in one round trip."""

    def read() -> LoadReading:
        return LoadReading(queued=queue_depth(client, queues), running=jobs_running(client))

    return read


@dataclass
class Probes:
    """Every outside fact the manager reads, as functions a test can replace."""

    device: str
    memory: Callable[[], MemoryReading]
    load: Callable[[], LoadReading]
    capabilities: dict[str, dict[str, bool]]
    footprint: Callable[[], int] = process_rss_bytes
    """Bytes a model load adds to (measured before and after it), see footprint_reader."""


def idle_load() -> LoadReading:
    """Load when no broker is configured: nothing queued, nothing running."""
    return LoadReading(queued=0, running=0)


def live_probes(device: str | None = None, client: redis.Redis | None = None, queues: Sequence[str] = ()) -> Probes:
    """Probes that read this machine and, when a Redis client is given, the queues' load."""
    dev = detect_device(device)
    load = load_reader(client, queues) if client is not None and queues else idle_load
    return Probes(
        device=dev,
        memory=memory_reader(dev),
        load=load,
        capabilities=backend_capabilities(dev),
        footprint=footprint_reader(dev),
    )
