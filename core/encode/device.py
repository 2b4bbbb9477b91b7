"""Where the work runs: the device pick, the devices this machine has, how a model is
placed there (memory layout and autocast dtype), and how tensors travel to and from it
without stalling it. Training, embedding and the check all ask this module; nothing else
detects devices.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def _has_mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def pick_device(requested: str = "auto") -> torch.device:
    """cuda > mps > cpu for 'auto'; a clear error when a requested device is missing."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _has_mps() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available")
    if requested == "mps" and not _has_mps():
        raise ValueError("device 'mps' requested but Apple MPS is not available")
    return torch.device(requested)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return {"mps": "Apple MPS", "cpu": "CPU"}.get(device.type, device.type)


@dataclass(frozen=True)
class DeviceChoice:
    """A device the user can pick: the config value and what to show for it."""

    value: str  # "auto", "cpu", "cuda" or "mps" (TrainConfig.device)
    label: str  # e.g. "CPU", "CUDA: NVIDIA H100"


def available_devices() -> list[DeviceChoice]:
    """The devices this machine can train on, 'auto' first (labelled with what it picks)."""
    found = [DeviceChoice("auto", describe_device(pick_device("auto"))),
             DeviceChoice("cpu", "CPU")]
    if torch.cuda.is_available():
        found.append(DeviceChoice("cuda", describe_device(torch.device("cuda"))))
    if _has_mps():
        found.append(DeviceChoice("mps", "Apple MPS"))
    return found


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere oneDNN
    emulates it and bf16 would be slower than float32."""
    cpu = torch.cpu
    return any(getattr(cpu, name, lambda: False)()
               for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``device`` under ``precision`` ("auto" or "fp32"), None for
    plain float32. "auto" takes bf16 on CPUs that compute it in hardware: on this project's
    CPU it trains and embeds 2-3x faster at equal k-NN accuracy (docs/measurements.md)."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def uses_channels_last(device: torch.device) -> bool:
    """NHWC tensors: faster convolutions on CUDA and in oneDNN on the CPU (1.3x measured
    for float32 training on the CPU); MPS is left in its default layout."""
    return device.type in ("cuda", "cpu")


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device`` without making the host wait for the device. A CUDA copy
    from ordinary (pageable) memory first waits for every kernel queued on the stream; one
    from pinned memory with ``non_blocking`` does not (the caching host allocator keeps the
    pinned buffer until the copy is done). Elsewhere a plain ``.to``: on the CPU the same
    tensor, untouched."""
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    source = tensor if tensor.is_pinned() else tensor.pin_memory()
    return source.to(device, non_blocking=True)


class DeferredReads:
    """Tensors read back to the host without stalling the device. On CUDA each tensor is
    copied to pinned memory asynchronously and read ``lag`` puts later (an event says when
    it is there), so the device keeps computing while the host waits for nothing; elsewhere
    it is read at once. Each tensor travels with a tag of the caller's (a step, a count)."""

    def __init__(self, device: torch.device, lag: int = 1) -> None:
        self.lag = lag if device.type == "cuda" else 0
        self.pending: deque[tuple[torch.Tensor, torch.cuda.Event | None, object]] = deque()

    def put(self, tensor: torch.Tensor, tag: object) -> list[tuple[np.ndarray, object]]:
        """Queue ``tensor``; returns the (array, tag) pairs readable now, oldest first."""
        if not self.lag:
            return [(tensor.detach().cpu().numpy(), tag)]
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor.detach(), non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.pending.append((host, event, tag))
        return self.drain(keep=self.lag)

    def drain(self, keep: int = 0) -> list[tuple[np.ndarray, object]]:
        """Read all but the newest ``keep`` queued tensors."""
        ready = []
        while len(self.pending) > keep:
            host, event, tag = self.pending.popleft()
            event.synchronize()
            ready.append((host.numpy().copy(), tag))  # the pinned buffer goes back
        return ready


@dataclass(frozen=True)
class Placement:
    """How inputs must be prepared for a model placed on a device."""

    device: torch.device
    autocast: torch.dtype | None  # None: plain float32
    channels_last: bool

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A float image batch (N, 3, H, W) on the device in the model's memory layout."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocasting(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.autocast or torch.float32,
                              enabled=self.autocast is not None)


def place_model(model: nn.Module, device: torch.device, precision: str = "auto") -> Placement:
    """Move ``model`` to ``device`` in the memory layout its inputs will have there."""
    channels_last = uses_channels_last(device)
    model.to(device, memory_format=torch.channels_last if channels_last
             else torch.contiguous_format)
    return Placement(device, autocast_dtype(device, precision), channels_last)
