"""What a run did, as typed results: the report written to report.json and shown by the
CLI and the window, and each check's measures and decision in words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# ... and keep at least this much of the start's neighbourhoods (an encoder that lost 0.10 of
# k-NN accuracy kept 0.23 of its start's neighbourhoods, one that stayed level kept 0.63).
MIN_OVERLAP = 0.5

# Why a check kept the start, in words (CheckResult.reasons holds the keys).
REASONS = {
    "agreement": "photos did not keep their neighbours more often than chance would give",
    "overlap": f"it kept less than {MIN_OVERLAP} of the starting encoder's neighbourhoods",
    "instance": "no more test photos found their own shot first than before",
    "instance_fell": "fewer test photos found their own shot first, beyond chance",
}

# The two similarities: "same scene" (core.learn.scene) and "same kind" (the map's embedding).
SIMILARITIES = ("scene", "kind")


# the report -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measures:
    """Label-free measures of one encoder on the check's sample (core.learn.check)."""

    neighbor_agreement: float  # higher is better
    alignment: float  # lower is better
    uniformity: float  # lower is better
    instance_recall: float | None = None  # a strong view finds its own photo first


@dataclass(frozen=True)
class CheckResult:
    """What the label-free check measured and decided for one similarity (core.learn.check)."""

    kept: str  # "adapted" or "start"
    after: Measures | None = None
    before: Measures | None = None
    overlap_with_start: float | None = None
    instance_gained: int = 0  # sample photos whose strong view finds itself only after
    instance_lost: int = 0  # ... only before
    reasons: tuple[str, ...] = ()  # why the start was kept (core.learn.check.REASONS)
    sample: int = 0  # photos in the check's sample
    similarity: str = "kind"  # "kind" (the map's embedding) or "scene" (core.learn.scene)

    def verdict(self) -> str:
        """One sentence for people: what changed for this similarity and what is used."""
        if self.before is None or self.after is None:
            return "Trained from scratch: keeping the trained encoder."
        better = self.kept == "adapted"
        if self.similarity == "scene":
            found = (f"{self._hits(self.after)} of {self.sample} test photos found their own "
                     f"shot first among all photos, {self._hits(self.before)} before")
            if better:
                return f"Same scene: better ({found}); Find similar uses what it learnt."
            outcome = "worse" if "instance_fell" in self.reasons else "no clear gain"
            return f"Same scene: {outcome} ({found}); Find similar keeps the untrained " \
                "descriptor."
        kept_neighbours = (f"reframed photos kept their nearest photos "
                           f"{self.before.neighbor_agreement:.0%} of the time before, "
                           f"{self.after.neighbor_agreement:.0%} after")
        if better:
            return f"Same kind of thing: better ({kept_neighbours}); the map uses what it learnt."
        if "agreement" in self.reasons:
            outcome = f"no clear gain ({kept_neighbours})"
        else:  # it helped, but moved the photos' neighbourhoods too far to be trusted
            outcome = (f"changed too much ({kept_neighbours}, but less than half of their "
                       "neighbourhoods stayed)")
        return f"Same kind of thing: {outcome}; the map stays as the untrained encoder made it."

    def _hits(self, measures: Measures) -> int:
        return round((measures.instance_recall or 0.0) * self.sample)

    def details(self) -> str:
        """The figures behind the verdict, for whoever wants them."""
        if self.before is None or self.after is None:
            return ""

        b, a = self.before, self.after
        text = (f"{self.similarity}: neighbour agreement {b.neighbor_agreement:.3f} -> "
                f"{a.neighbor_agreement:.3f}; own shot first {b.instance_recall or 0:.3f} -> "
                f"{a.instance_recall or 0:.3f} (+{self.instance_gained}/-{self.instance_lost} "
                f"of {self.sample}); alignment {b.alignment:.3f} -> {a.alignment:.3f}; "
                f"uniformity {b.uniformity:.3f} -> {a.uniformity:.3f}")
        if self.overlap_with_start is not None:
            text += f"; neighbourhoods kept from the start {self.overlap_with_start:.2f}"
        if self.reasons:
            text += " (" + "; ".join(REASONS.get(r, r) for r in self.reasons) + ")"
        return text

    def to_dict(self) -> dict:
        return {**asdict(self), "reasons": list(self.reasons), "verdict": self.verdict()}

    @classmethod
    def from_dict(cls, data: dict) -> CheckResult:
        def measures(d: dict | None) -> Measures | None:
            return None if d is None else Measures(**{f.name: d.get(f.name) for f in
                                                      fields(Measures) if f.name in d})
        return cls(kept=data.get("kept", "adapted"), after=measures(data.get("after")),
                   before=measures(data.get("before")),
                   overlap_with_start=data.get("overlap_with_start"),
                   instance_gained=int(data.get("instance_gained", 0)),
                   instance_lost=int(data.get("instance_lost", 0)),
                   reasons=tuple(data.get("reasons", ())), sample=int(data.get("sample", 0)),
                   similarity=data.get("similarity", "kind"))


def _section(cls, data: dict | None):
    """A section from its JSON: known fields only (reports of older versions lack some or
    carry others), defaults for the rest; None for a missing section."""
    if not data:
        return None
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class FailedFile:
    """A photo or folder that could not be read, and why (in words)."""

    path: str
    reason: str


@dataclass(frozen=True)
class PhotoCounts:
    """What a run or an update found in the folders and did with it."""

    found: int = 0
    new_or_changed: int = 0
    moved: int = 0  # found again elsewhere by content (not decoded again)
    missing: int = 0
    embedded: int = 0  # photos on the map
    failed: int = 0
    failed_files: tuple[FailedFile, ...] = ()
    content_unchanged: int = 0  # an update: rewritten files with the same pixels
    added_to_map: int = 0  # an update: photos placed on the existing map
    removed_from_map: int = 0  # an update: photos gone from the folders

    @classmethod
    def from_dict(cls, data: dict | None) -> PhotoCounts:
        counts = _section(cls, data) or cls()
        return replace(counts, failed_files=tuple(
            FailedFile(**f) if isinstance(f, dict) else f for f in counts.failed_files))


@dataclass(frozen=True)
class Embedding:
    """The map's vectors: the resolution the encoder saw, their width, the pass's speed."""

    resolution: int = 224
    dim: int = 0
    photos_per_s: float | None = None  # the starting encoder's pass (None when cached)


@dataclass(frozen=True)
class Training:
    """One training loop's figures (pixel training, or the "same kind" adapter)."""

    steps: int = 0
    epochs: float = 0.0
    images_per_s: float = 0.0
    resumed_from_step: int = 0
    first_loss: float | None = None
    last_loss: float | None = None


@dataclass(frozen=True)
class Adaptation:
    """The default adaptation's figures: the bank of views, both adapters' epochs, the budget
    and what was cut to keep it."""

    bank_photos: int = 0
    bank_photos_wanted: int = 0
    views: int = 0
    check_photos: int = 0
    bank_seconds: float = 0.0
    bank_resumed: bool = False
    epochs: float = 0.0  # the "same kind" adapter
    scene_epochs: float = 0.0  # the "same scene" map
    epoch_cap: float = 0.0
    budget_s: float | None = None
    seconds: float = 0.0
    cut: tuple[str, ...] = ()


@dataclass(frozen=True)
class Distributed:
    """Training under torchrun: the processes' figures."""

    processes: int
    steps: int
    epochs: float
    seconds: float
    images_per_s: float
    cancelled: bool = False


@dataclass(frozen=True)
class Update:
    """What an update (a rescan placed on the current map) did."""

    run: int
    stage_seconds: dict[str, float]
    images: PhotoCounts
    map_changed: bool

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Update:
        return cls(int(data.get("run", 0)), dict(data.get("stage_seconds", {})),
                   PhotoCounts.from_dict(data.get("images")), bool(data.get("map_changed")))


@dataclass(frozen=True)
class RunReport:
    """What a run did, as written to report.json and shown by the CLI and the window.

    ``state`` is "partial" for a large library's first photos, "map" while only the starting
    encoder's map exists (adaptation may still run) and "done" at the end. ``config`` is the
    run's TrainConfig (``TrainConfig.to_dict``)."""

    run: int
    state: str
    device: str
    config: dict[str, Any]
    stage_seconds: dict[str, float]
    images: PhotoCounts
    clusters: int
    embedding: Embedding
    training: Training | None = None
    adaptation: Adaptation | None = None
    check: CheckResult | None = None  # the map's "same kind" embedding
    scene_check: CheckResult | None = None  # the "same scene" descriptor (core.learn.scene)
    distributed: Distributed | None = None
    last_update: Update | None = None

    @property
    def kept(self) -> str:
        """Which encoder the map uses: "start", "adapted", or "start" while pending."""
        if self.check is not None:
            return self.check.kept
        return "start" if self.pretrained else "adapted"

    @property
    def backbone(self) -> str:
        return self.config.get("backbone", "efficientnet_lite0")

    @property
    def pretrained(self) -> bool:
        return bool(self.config.get("pretrained", True))

    @property
    def precision(self) -> str:
        """The precision the run embedded in, so photos embedded later match."""
        return self.config.get("precision", "auto")

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def cut(self) -> tuple[str, ...]:
        """What the run cut to keep its time budget, in words."""
        return () if self.adaptation is None else self.adaptation.cut

    def verdict(self) -> str:
        """What training changed, a sentence per similarity ("" before any check)."""
        return " ".join(c.verdict() for c in (self.check, self.scene_check) if c is not None)

    def details(self) -> str:
        return "\n".join(c.details() for c in (self.check, self.scene_check) if c is not None)

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in ("check", "scene_check"):
            check = getattr(self, name)
            data[name] = None if check is None else check.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RunReport:
        # Reports written before the check had a kept field (or with an empty check).
        checks = {name: CheckResult.from_dict(data[name]) if data.get(name) else None
                  for name in ("check", "scene_check")}
        last_update = data.get("last_update")
        return cls(
            run=int(data.get("run", 0)), state=data.get("state", "done"),
            device=data.get("device", ""), config=dict(data.get("config", {})),
            stage_seconds=dict(data.get("stage_seconds", {})),
            images=PhotoCounts.from_dict(data.get("images")),
            clusters=int(data.get("clusters", 0)),
            embedding=_section(Embedding, data.get("embedding")) or Embedding(),
            training=_section(Training, data.get("training")),
            adaptation=_with_cut(_section(Adaptation, data.get("adaptation"))),
            distributed=_section(Distributed, data.get("distributed")),
            last_update=Update.from_dict(last_update) if last_update else None, **checks)


def _with_cut(adaptation: Adaptation | None) -> Adaptation | None:
    return None if adaptation is None else replace(adaptation, cut=tuple(adaptation.cut))
