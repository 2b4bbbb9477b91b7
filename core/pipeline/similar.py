"""Photos similar to any file, in the library or not, by "scene" or "kind"."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photoatlas.core.atlas.search import NeighborIndex
from photoatlas.core.encode.device import pick_device
from photoatlas.core.encode.embed import adapt_embeddings, embed_pixels
from photoatlas.core.encode.encoder_files import run_encoder
from photoatlas.core.learn.scene import load_scene_space
from photoatlas.core.library.library import CACHE_SIZE, Library


def similar_to_file(library: Library, image: Path, k: int, by: str = "scene"
                    ) -> list[tuple[str, float]]:
    """The ``k`` catalogued photos most similar to ``image`` (in the library or any file),
    best first, as (path, cosine similarity), by "scene" (same scene or object) or "kind"
    (same kind of thing). A catalogued photo is not its own match."""
    from photoatlas.core.library.decode import load_rgb, square_pixels

    if k < 1:
        raise ValueError("k must be at least 1")
    run = library.current_run()
    library_vectors = run.descriptors(by)
    image = Path(image).expanduser()
    if not image.exists():
        raise FileNotFoundError(f"{image} does not exist")
    resolved = str(image.resolve())
    known = np.flatnonzero(run.paths == resolved)
    if len(known):
        query = library_vectors[known[:1]]
    else:
        device = pick_device("auto")
        model, resolution = run_encoder(library, run.run_id, device)
        pixels = square_pixels(load_rgb(image, CACHE_SIZE), CACHE_SIZE)[None]
        base = embed_pixels(model.without_adapter(), pixels, resolution, device,
                            precision=run.precision)
        space = load_scene_space(library.run_dir(run.run_id))
        query = (space.describe(base) if by == "scene" and space is not None
                 else adapt_embeddings(model, base))
    # One query: exact search (milliseconds) beats building an approximate index (seconds).
    exact = NeighborIndex(library_vectors, exact_limit=None)
    idx, scores = exact.query(query, k + len(known))
    pairs = [(str(run.paths[i]), float(s)) for i, s in zip(idx[0], scores[0], strict=True)
             if str(run.paths[i]) != resolved]
    return pairs[:k]
