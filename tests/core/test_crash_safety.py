"""SIGKILL real processes at random points of scan, decode, training, embedding and the map:
the library must open cleanly every time, and the next run must finish (training resumes
from its checkpoint)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photoatlas.core.library.library import CATALOG_NAME, Library

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

REPO = Path(__file__).resolve().parents[2]
# Three photos: below four the map needs no UMAP, whose compilation alone takes ~20 s in
# every fresh process; the map stage and the writes after it still run.
INDEX_ARGS = ["--from-scratch", "--backbone", "resnet18_half", "--resolution", "32",
              "--batch-size", "8", "--device", "cpu", "--checkpoint-every", "0.2"]
EPOCHS = ["--epochs", "40"]
# Training by time, for the resume test: the kill lands during training however fast the
# machine is, and the resumed run trains what is left of the budget.
THREE_SECONDS = ["--minutes", "0.05"]


def _photos(root: Path, count: int, size: int = 64) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        rng = np.random.default_rng(i)
        pixels = np.clip(rng.integers(0, 256, 3) + rng.normal(0, 40, (size, size, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(root / f"p{i:03d}.jpg", quality=90)
    return root


class _Process:
    """A subprocess whose stderr (tqdm stage bars) is collected on a thread."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, *args], cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.started = time.monotonic()
        self.err = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self.proc.stderr.read1(4096):
            self.err += chunk

    def wait_for(self, text: str, timeout: float = 120) -> bool:
        """True once ``text`` appeared on stderr; False if the process ended first."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.err:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return text.encode() in self.err
            time.sleep(0.02)
        return True

    def kill(self) -> bool:
        """SIGKILL it; True if it was still running."""
        running = self.proc.poll() is None
        if running:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join()
        return running

    def finish(self, timeout: float = 240) -> int:
        code = self.proc.wait(timeout)
        self._reader.join()
        return code


def _index(photos: Path, library: Path, *extra: str, budget: list[str] = EPOCHS) -> _Process:
    return _Process(["-m", "photoatlas.core.cli", "index", str(photos), "--library", str(library),
                     *INDEX_ARGS, *budget, *extra])


def _assert_opens_cleanly(library: Path) -> None:
    if not (library / CATALOG_NAME).exists():
        return  # killed before it made anything: the next run creates the library
    with Library(library, create=False) as lib:  # also proves the dead holder's lock is gone
        conn = lib.catalog.conn
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        cache_rows = [r.cache_row for r in lib.catalog.images(status="ok")]
        assert all(0 <= r < lib.pixels.rows for r in cache_rows)
        if lib.catalog.get_meta("current_run") is not None:
            run = lib.current_run()
            assert len(run.image_ids) == len(run.embeddings) == len(run.xy)


def _checkpoint_step(library: Path) -> int:
    steps = [int(torch.load(p, map_location="cpu", weights_only=True)["step"])
             for p in library.glob("runs/*/checkpoint.pt")]
    return max(steps, default=0)


# The CLI's index, killing itself (SIGKILL) at the first or last progress event of a stage.
_KILL_IN_STAGE = """
import os, signal, sys
import photoatlas.core.cli.commands as cli
stage, when = sys.argv[1:3]
show = cli.TqdmProgress.__call__
def call(self, event):
    show(self, event)
    if event.stage == stage and (when == "first" or event.done >= event.total):
        print(f"killed in {stage} ({when})", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
cli.TqdmProgress.__call__ = call
sys.exit(cli.main(sys.argv[3:]))
"""


def _unfinished_runs(library: Path) -> int:
    with Library(library, create=False) as lib:
        return lib.catalog.conn.execute(
            "SELECT COUNT(*) FROM runs WHERE finished_at IS NULL").fetchone()[0]


def test_killed_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 3)
    library = tmp_path / "library"
    first = _index(photos, library, budget=THREE_SECONDS)
    deadline = time.monotonic() + 120
    while not list(library.glob("runs/*/checkpoint.pt")) and time.monotonic() < deadline:
        assert first.proc.poll() is None, first.err.decode(errors="replace")
        time.sleep(0.02)
    time.sleep(random.Random(0).uniform(0.1, 0.4))
    assert first.kill(), "the kill should land during training"
    _assert_opens_cleanly(library)
    saved = _checkpoint_step(library)
    assert saved > 0

    report_path = tmp_path / "report.json"
    second = _index(photos, library, "--report", str(report_path), budget=THREE_SECONDS)
    assert second.finish() == 0, second.err.decode(errors="replace")
    training = json.loads(report_path.read_text())["training"]
    assert training["resumed_from_step"] == saved
    assert training["steps"] > saved


def test_kills_at_random_points_then_a_run_finishes(tmp_path: Path) -> None:
    rng = random.Random(3)
    photos = _photos(tmp_path / "photos", 3, size=400)
    library = tmp_path / "library"
    # Random moments from start-up through scan, decode and training ...
    for _ in range(2):
        process = _index(photos, library)
        process.wait_for("decode", timeout=60)
        time.sleep(rng.uniform(0.0, 2.0))
        process.kill()
        _assert_opens_cleanly(library)
    # ... and in the stages after training, which last milliseconds here: the process kills
    # itself at the first and at the last progress event of the stage, so each kill is known
    # to land there.
    for stage in ("embed", "map"):
        for when in ("first", "last"):
            killed = _Process(["-c", _KILL_IN_STAGE, stage, when, "index", str(photos),
                               "--library", str(library), *INDEX_ARGS, *EPOCHS])
            assert killed.finish() == -signal.SIGKILL, killed.err.decode(errors="replace")
            assert f"killed in {stage} ({when})".encode() in killed.err
            _assert_opens_cleanly(library)
            assert _unfinished_runs(library) > 0  # the kill came before the run's end
    report_path = tmp_path / "report.json"
    last = _index(photos, library, "--report", str(report_path))
    assert last.finish() == 0, last.err.decode(errors="replace")
    report = json.loads(report_path.read_text())
    assert report["images"]["embedded"] == 3 and report["training"]["steps"] == 40
    _assert_opens_cleanly(library)


_SCAN_AND_DECODE = """
import sys
from pathlib import Path
from photoatlas.core.library.cache import decode_pending
from photoatlas.core.library.library import Library
from photoatlas.core.library.scan import scan_folders
def report(event):
    print(f"decoded {event.done} of {event.total}", file=sys.stderr, flush=True)
with Library(Path(sys.argv[1])) as library:
    scan_folders(library.catalog, [Path(sys.argv[2])])
    decode_pending(library.catalog, library.pixels, library.thumb_dir, progress=report,
                   workers=2)
    print(library.catalog.counts().get("ok", 0))
"""
_DECODED = re.compile(rb"decoded (\d+) of (\d+)")


def test_kills_during_scan_and_decode_lose_nothing(tmp_path: Path) -> None:
    rng = random.Random(7)
    photos = _photos(tmp_path / "photos", 600, size=160)
    library = tmp_path / "library"
    interrupted = 0
    for _ in range(5):
        process = _Process(["-c", _SCAN_AND_DECODE, str(library), str(photos)])
        # Kill once a random share of what is left has been decoded: the kill lands in the
        # middle of decoding however fast or loaded the machine is.
        share = rng.uniform(0.0, 0.5)
        while process.proc.poll() is None:
            counts = _DECODED.findall(bytes(process.err))
            if counts and int(counts[-1][0]) >= share * int(counts[0][1]):
                break
            time.sleep(0.005)
        interrupted += process.kill()
        _assert_opens_cleanly(library)
    assert interrupted >= 3
    done = subprocess.run([sys.executable, "-c", _SCAN_AND_DECODE, str(library), str(photos)],
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "600"
    with Library(library, create=False) as lib:
        rows = sorted(r.cache_row for r in lib.catalog.images(status="ok"))
        assert len(set(rows)) == 600  # every photo has its own whole row of pixels
        pixels = lib.pixels.array()
        first = lib.catalog.images(status="ok")[0]
        assert pixels[first.cache_row].std() > 10  # a real photo, not zeros
