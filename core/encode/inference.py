"""Fast frozen-encoder features on CPUs without native bf16: the encoder is exported once to
ONNX (cached on disk, keyed by its weights and the resolution) and run by ONNX Runtime;
eager torch in float32 when that cannot be done, with the reason logged.

On a CPU where torch would run in float32 anyway (no AVX512-BF16/AMX, or ``--precision
fp32``) ONNX Runtime computes the same features several times faster (docs/measurements.md).
Only the encoder goes to ONNX; an adapter on its features stays in torch.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from photoatlas.core.encode.augment import resize_batch
from photoatlas.core.encode.batches import encode_rows
from photoatlas.core.encode.device import Placement, autocast_dtype
from photoatlas.core.encode.model import SimCLRModel
from photoatlas.core.jobs import CancelToken, ProgressCallback, Stage, no_progress
from photoatlas.core.storage import atomic_file

log = logging.getLogger(__name__)


ENGINES = ("onnx-int8", "onnx-fp32", "torch")


# Bump when the exported graph or its quantization changes: older cache files are then unused.
EXPORT_VERSION = 1


OPSET = 18


# Photos of the first batch checked against eager torch before a session is trusted.
PROBE_PHOTOS = 4


# Least cosine between a photo's ONNX and eager features for each engine to be trusted: fp32
# agrees to rounding; int8 loses a little (0.985-1.0 measured on real photos).
MIN_PROBE_COSINE = {"onnx-fp32": 0.999, "onnx-int8": 0.95}


# Photos the int8 ranges are calibrated on (the first ones given).
CALIBRATION_PHOTOS = 64


# core.encode.embed.embed_pixels takes the ONNX path from this many photos: a first export costs
# about 30 s once per weights and resolution, repaid after about 1,000 photos.
FAST_PATH_MIN_PHOTOS = 1000


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("PhotoAtlas", appauthor=False)) / "onnx"


def uses_fast_cpu_path(device: torch.device, precision: str = "auto") -> bool:
    """Whether frozen-encoder passes on ``device`` run in float32 on the CPU, where
    ``cpu_encoder`` is faster than eager torch."""
    return device.type == "cpu" and autocast_dtype(device, precision) is None


def weights_digest(encoder: nn.Module) -> str:
    """BLAKE2b of the encoder's class and every parameter and buffer (names, dtypes, shapes,
    values): an export is reused only for exactly these weights."""
    digest = hashlib.blake2b(type(encoder).__name__.encode(), digest_size=16)
    for name, tensor in sorted(encoder.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class _Trunk(nn.Module):
    """The encoder's ``features`` as a module's forward, for export."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(x)


def export_onnx(encoder: nn.Module, resolution: int, path: Path) -> None:
    """Write ``encoder.features`` as ONNX: float (N, 3, R, R) in [0, 1] -> (N, D), N dynamic."""
    was_training = encoder.training
    encoder.eval()
    example = torch.rand(2, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    try:
        # Unique names: two processes may build the same export in the shared cache.
        with atomic_file(path, ".onnx", shared=True) as tmp, torch.no_grad():
            program = torch.onnx.export(
                _Trunk(encoder).eval(), (example,),
                dynamo=True, input_names=["pixels"], output_names=["features"],
                dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=OPSET,
                verbose=False)
            program.save(str(tmp))
    finally:
        encoder.train(was_training)


def quantize_int8(fp32_path: Path, calibration: np.ndarray, path: Path) -> None:
    """Static int8 quantization (QDQ; per-channel int8 weights, uint8 activations) of an
    exported encoder, its activation ranges calibrated on float ``calibration`` (N, 3, R, R)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(calibration, max(1, len(calibration) // 16)))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {"pixels": np.ascontiguousarray(batch)}

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        prepared = Path(scratch) / "prepared.onnx"  # a step on the way
        quant_pre_process(str(fp32_path), str(prepared))
        with atomic_file(path, ".onnx", shared=True) as tmp:
            quantize_static(str(prepared), str(tmp), Batches(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


class FastEncoder:
    """``encoder.features`` as a callable on the CPU: a batch of uint8 pixels (N, 3, S, S)
    (resized to ``resolution`` as for embedding) or float pixels (N, 3, R, R) in [0, 1] ->
    (N, D) float32 features, not normalised.

    ``engine`` "onnx-fp32" or "onnx-int8" runs an ONNX Runtime session built from a cached
    export (made on the first call: tens of seconds once per weights and resolution; int8 is
    calibrated on the first ``CALIBRATION_PHOTOS`` photos given); "torch" is eager float32.
    The first batch is checked against eager torch; a cache file that is missing, unreadable
    or disagrees is rebuilt once, and when ONNX Runtime is missing or still fails the encoder
    runs in eager torch: ``engine`` then says "torch" and ``fallback_reason`` why.
    """

    def __init__(self, encoder: nn.Module, resolution: int, engine: str = "onnx-fp32",
                 cache_dir: Path | None = None, threads: int | None = None) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")
        self.encoder = encoder.eval()
        self.resolution = resolution
        self.engine = engine
        self.cache_dir = cache_dir or default_cache_dir()
        self.threads = threads or torch.get_num_threads()
        self.fallback_reason: str | None = None
        self.session = None
        self._channels_last = False

    def model_path(self, engine: str | None = None) -> Path:
        engine = engine or self.engine
        name = type(self.encoder).__name__.lower()
        return self.cache_dir / (f"{name}-{weights_digest(self.encoder)[:20]}-"
                                 f"{self.resolution}px-{engine.removeprefix('onnx-')}-"
                                 f"v{EXPORT_VERSION}.onnx")

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        x = self._prepare(pixels)
        if self.session is None and self.engine != "torch":
            self._start(x)
        if self.session is None:
            return self._eager(x)
        return self.session.run(None, {"pixels": x.numpy()})[0]

    def _prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.dtype == torch.uint8:
            return resize_batch(pixels.cpu(), self.resolution).contiguous()
        if pixels.shape[-2:] != (self.resolution, self.resolution):
            raise ValueError(f"float pixels must be (N, 3, {self.resolution}, "
                             f"{self.resolution}), got shape {tuple(pixels.shape)}")
        return pixels.cpu().float().contiguous()

    def _eager(self, x: torch.Tensor) -> np.ndarray:
        # Faster convolutions in oneDNN (core.encode.device.place_model).
        if not self._channels_last:
            self.encoder.to(memory_format=torch.channels_last)
            self._channels_last = True
        x = x.contiguous(memory_format=torch.channels_last)
        return self.encoder.features(x).float().numpy()

    def _start(self, x: torch.Tensor) -> None:
        """Open (building if needed) the session and check it on ``x``; else fall back."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            self._fall_back("onnxruntime is not installed")
            return
        probe = x[:PROBE_PHOTOS]
        expected = self.encoder.features(probe).float().numpy()
        problem = ""
        for attempt in range(2):
            try:
                session = self._session(x, rebuild=attempt > 0)
                got = session.run(None, {"pixels": probe.numpy()})[0]
                worst = float(_cosines(got, expected).min())
                if worst >= MIN_PROBE_COSINE[self.engine]:
                    self.session = session
                    return
                problem = f"its features disagree with eager torch (cosine {worst:.3f})"
            except Exception as exc:  # noqa: BLE001 - any failure here means: use torch
                problem = f"{type(exc).__name__}: {exc}"
            log.warning("ONNX encoder %s unusable (%s)%s", self.model_path(), problem,
                        "; rebuilding it" if attempt == 0 else "")
        self._fall_back(problem)

    def _fall_back(self, reason: str) -> None:
        self.fallback_reason = f"{self.engine} unavailable, eager torch float32 used: {reason}"
        log.warning(self.fallback_reason)
        self.engine = "torch"

    def _session(self, x: torch.Tensor, rebuild: bool):
        import onnxruntime as ort

        path = self.model_path()
        if rebuild or not path.is_file():
            fp32 = self.model_path("onnx-fp32")
            if rebuild or not fp32.is_file():
                log.info("exporting the encoder to %s", fp32)
                export_onnx(self.encoder, self.resolution, fp32)
            if self.engine == "onnx-int8":
                log.info("quantizing the encoder to %s", path)
                quantize_int8(fp32, x[:CALIBRATION_PHOTOS].numpy(), path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3  # errors only: its warnings are about graph rewrites
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cpu_encoder(encoder: nn.Module, resolution: int, engine: str = "onnx-fp32",
                cache_dir: Path | None = None) -> Callable[[torch.Tensor], np.ndarray]:
    """The fastest trusted way to run ``encoder.features`` on this CPU in float32 terms:
    see ``FastEncoder``."""
    return FastEncoder(encoder, resolution, engine, cache_dir)


@torch.no_grad()
def encoder_features_fast(encoder: nn.Module, pixels: np.ndarray, resolution: int,
                          batch_size: int = 64, cancel: CancelToken | None = None,
                          progress: ProgressCallback = no_progress, stage: Stage = Stage.EMBED
                          ) -> np.ndarray:
    """The encoder's pooled features of uint8 ``pixels`` (N, 3, S, S) on a CPU in float32
    terms, run by ``cpu_encoder``: (N, D) float32, not normalised."""
    fast = cpu_encoder(encoder.eval(), resolution)
    # The uint8 rows go to ``fast`` as they are: it resizes them as embedding does.
    on_cpu = Placement(torch.device("cpu"), None, False)
    out = encode_rows(lambda rows: torch.from_numpy(fast(rows)), pixels, lambda rows: rows,
                      on_cpu, batch_size, cancel, progress, stage)
    return out if len(out) else np.zeros((0, encoder.feature_dim), np.float32)


@torch.no_grad()
def unit_features(model: SimCLRModel, raw: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """The model's embeddings from its encoder's pooled features ``raw`` (N, D): through its
    adapter (if any), L2-normalised, float32 (N, D); on the CPU whatever device the model is
    on (the features are there already), in chunks, for bounded memory."""
    weight = None if model.adapter is None else model.adapter.weight.detach().float().cpu()
    out = np.empty_like(raw, dtype=np.float32)
    for start in range(0, len(raw), chunk):
        part = torch.from_numpy(np.ascontiguousarray(raw[start:start + chunk])).float()
        if weight is not None:  # SimCLRModel.adapt: the adapter on normalised features
            part = F.normalize(part, dim=1) @ weight.T
        out[start:start + chunk] = F.normalize(part, dim=1).numpy()
    return out
