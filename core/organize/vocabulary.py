"""Words -> the encoder's ImageNet classes, through WordNet, offline.

resources/concepts.json (made by bench/make_concepts.py from Debian's WordNet 3.0 and timm's
class list) holds the 1,000 classes of the shipped classifier head and every WordNet hypernym
above them. A word matches, in this order:
1. a class or a hypernym named by it (a lemma: the name or a synonym): every class under it,
   weight 1 ("dog" -> the 120 breeds, "vehicle" -> cars, trucks, boats...);
2. only when 1 finds nothing: the classes under what its noun sense is a part of ("beach" ->
   part of a shore -> seashore, lakeside) and the classes whose gloss uses it ("snow" -> ski,
   snowmobile, snowplow), weight ``LOOSE_WEIGHT``.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import numpy as np

# Classes found through a part-of relation or a gloss count less than named ones.
LOOSE_WEIGHT = 0.6


NUM_CLASSES = 1000


@dataclass(frozen=True)
class WordMatch:
    """What one word (or phrase) matches: ``weights`` (1000,) float32 per class, 0 for
    classes it does not match; ``via`` says how ("name", "part of shore", "gloss")."""

    word: str
    weights: np.ndarray
    via: str

    @property
    def classes(self) -> np.ndarray:
        return np.flatnonzero(self.weights > 0)


class Vocabulary:
    """The concepts of the shipped classifier: names, hierarchy and word look-up."""

    def __init__(self, doc: dict) -> None:
        self.nodes: list[dict] = doc["nodes"]
        self.num_classes: int = doc["classes"]
        self.glosses: list[str] = doc["glosses"]
        self._part_of: dict[str, list[int]] = doc["part_of"]
        self._gloss_words: dict[str, list[int]] = doc["gloss_words"]
        children: list[list[int]] = [[] for _ in self.nodes]
        for i, node in enumerate(self.nodes):
            for parent in node["parents"]:
                children[parent].append(i)
        self._children = children
        self._by_name: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for name in node["names"]:
                self._by_name.setdefault(name.lower(), []).append(i)

    def class_name(self, c: int) -> str:
        """The first WordNet lemma of class ``c`` ("seashore", "church")."""
        return self.nodes[c]["names"][0]

    def classes_under(self, nodes: list[int]) -> np.ndarray:
        """The class ids (sorted) of ``nodes`` and of every node below them."""
        seen, stack = set(), list(nodes)
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self._children[n])
        return np.array(sorted(n for n in seen if n < self.num_classes), np.int64)

    def match(self, word: str) -> WordMatch | None:
        """The classes ``word`` matches (see the module docstring), None when it matches
        none. Case, surrounding spaces, underscores and a plural "s" do not matter."""
        for form in _forms(word):
            weights = np.zeros(self.num_classes, np.float32)
            if form in self._by_name:
                weights[self.classes_under(self._by_name[form])] = 1.0
                return WordMatch(form, weights, "name")
            wholes = self._part_of.get(form, [])
            glossed = self._gloss_words.get(form, [])
            if wholes or glossed:
                weights[self.classes_under(wholes)] = LOOSE_WEIGHT
                weights[glossed] = LOOSE_WEIGHT
                via = [f"part of {self.nodes[w]['names'][0]}" for w in wholes]
                return WordMatch(form, weights, ", ".join(via + ["gloss"] * bool(glossed)))
        return None

    @cache  # noqa: B019 - one vocabulary per process (see ``vocabulary``)
    def known_words(self) -> tuple[str, ...]:
        """Every word that matches something, sorted: for a completer."""
        words = set(self._by_name) | set(self._part_of) | set(self._gloss_words)
        return tuple(sorted(w for w in words if self.match(w) is not None))

    def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        """Known words starting with ``prefix``, shortest first."""
        p = prefix.strip().lower()
        hits = [w for w in self.known_words() if w.startswith(p)]
        return sorted(hits, key=lambda w: (len(w), w))[:limit]

    def near(self, word: str, limit: int = 5) -> list[str]:
        """Known words spelt like ``word`` (a typo's likely meaning), else known words
        starting with its first three letters."""
        close = difflib.get_close_matches(word.strip().lower(), self.known_words(), limit, 0.75)
        return close or self.suggest(word.strip()[:3], limit)


def _forms(word: str) -> list[str]:
    """The word as typed, then its singular forms ("churches" -> "church")."""
    w = " ".join(word.strip().lower().replace("_", " ").split())
    forms = [w]
    if w.endswith("ies"):
        forms.append(w[:-3] + "y")
    if w.endswith("es"):
        forms.append(w[:-2])
    if w.endswith("s") and not w.endswith("ss"):
        forms.append(w[:-1])
    return forms


@cache
def vocabulary() -> Vocabulary:
    """The shipped vocabulary (read once per process)."""
    path = files("photoatlas.resources").joinpath("concepts.json")
    return Vocabulary(json.loads(path.read_text(encoding="utf-8")))
