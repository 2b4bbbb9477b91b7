"""The encoder a run keeps (encoder.pt): tensors only, the installed weights named by their
fingerprint when unchanged, and loading it back for a run."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import torch

from photoatlas.core.encode.model import SimCLRModel, build_model
from photoatlas.core.library.library import Library
from photoatlas.core.library.runs import ENCODER_NAME
from photoatlas.core.storage import RunFileError, load_tensors, save_torch_atomic

# the encoder ------------------------------------------------------------------------------
# Backbones whose pretrained weights come with the install (offline): a run whose encoder
# still holds them names them (by fingerprint) instead of keeping a 19 MB copy.
SHIPPED_WEIGHTS = ("efficientnet_lite0",)


def _fingerprint(state: dict[str, torch.Tensor]) -> str:
    """BLAKE2b of every tensor's name and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().view(-1).view(torch.uint8)
                      .numpy().tobytes())
    return digest.hexdigest()


@functools.cache
def _shipped_fingerprint(backbone: str) -> str:
    return _fingerprint(build_model(backbone, True, 224).encoder.state_dict())


def save_encoder(path: Path, model: SimCLRModel, backbone: str, pretrained: bool,
                 train_resolution: int, resolution: int) -> None:
    """The kept encoder (+ adapter) and the resolution its embeddings are made at. An
    encoder with the installed weights unchanged (the start, or frozen under an adapter) is
    stored as their fingerprint."""
    encoder = model.encoder.state_dict()
    fingerprint = _fingerprint(encoder)
    shipped = (pretrained and backbone in SHIPPED_WEIGHTS
               and fingerprint == _shipped_fingerprint(backbone))
    save_torch_atomic({"backbone": backbone, "pretrained": pretrained,
                       "train_resolution": train_resolution, "resolution": resolution,
                       "encoder": None if shipped else encoder,
                       "encoder_fingerprint": fingerprint,
                       "adapter": None if model.adapter is None else model.adapter.state_dict()},
                      path)


def load_encoder(path: Path, device: torch.device) -> tuple[SimCLRModel, int]:
    """The encoder saved by ``save_encoder``, on ``device`` in eval mode, and its resolution."""
    state = load_tensors(path)
    shipped = state["encoder"] is None
    model = build_model(state["backbone"], state["pretrained"], state["train_resolution"],
                        load_weights=shipped)
    if not shipped:
        model.encoder.load_state_dict(state["encoder"])
    elif _fingerprint(model.encoder.state_dict()) != state.get("encoder_fingerprint"):
        raise RunFileError(f"{path} was made with other {state['backbone']} weights than "
                           "the installed ones; index the library again")
    if state.get("adapter") is not None:  # encoders saved before adapters existed have none
        model.add_adapter()
        model.adapter.load_state_dict(state["adapter"])
    return model.to(device).eval(), int(state["resolution"])


def run_encoder(library: Library, run_id: int, device: torch.device
                ) -> tuple[SimCLRModel, int]:
    """The encoder a run kept, and the resolution its embeddings were made at."""
    return load_encoder(library.run_dir(run_id) / ENCODER_NAME, device)
