"""Generate resources/concepts.json: the 1,000 ImageNet-1k classes of the encoder's shipped
classifier head as WordNet 3.0 concepts, with the WordNet hierarchy above them, so a word
finds photos with no network (core/organize/vocabulary.py reads it).

    apt-get download wordnet-base && dpkg-deb -x wordnet-base_*_all.deb /tmp/wn
    pip download --no-deps timm -d /tmp/timm && unzip -o /tmp/timm/timm-*.whl \
        'timm/data/_info/imagenet_synsets.txt' -d /tmp/timm
    python bench/make_concepts.py --wordnet /tmp/wn/usr/share/wordnet \
        --synsets /tmp/timm/timm/data/_info/imagenet_synsets.txt

Sources, both packages of a registry (nothing else is read):
- the class order: ``imagenet_synsets.txt`` of the PyPI package timm (the 1,000 WordNet ids
  in the classifier's output order, the sorted ids every ImageNet-1k head uses);
- names, glosses and the hierarchy: ``data.noun`` of Debian's ``wordnet-base`` (WordNet 3.0,
  whose noun offsets are the ImageNet ids).

The file holds: ``nodes``, the classes first (node i is class i) then every hypernym above
them, each with its WordNet id, its lemmas (synonyms) and its parents; ``glosses`` of the
classes; ``part_of``: words whose noun sense is a part of a node ("beach" is part of a
"shore"), mapped to those nodes; ``gloss_words``: nouns that a few classes' glosses use
("snow" in ski, snowmobile, snowplow), mapped to those classes.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

# A gloss word that more classes use than this says too little about any of them.
MAX_GLOSS_CLASSES = 12
_STOP = {"used", "use", "one", "two", "part", "parts", "form", "kind", "type", "sort", "any",
         "something", "thing", "things", "having", "made", "make", "usually", "often",
         "large", "small", "long", "short", "body", "end", "side", "top", "front", "back",
         "head", "line", "piece", "set", "group", "member", "light", "found", "area"}
_DEFAULT_OUT = Path(__file__).resolve().parents[1] / "resources" / "concepts.json"


def read_nouns(data_noun: Path) -> dict[str, tuple[list[str], list[str], list[str], str]]:
    """WordNet's noun synsets: offset -> (lemmas, hypernym offsets, part-holonym offsets,
    gloss), parsed from ``data.noun`` (format: wndb(5))."""
    out = {}
    for line in data_noun.read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue  # the licence header
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        offset, count = fields[0], int(fields[3], 16)
        lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
        at = 4 + 2 * count
        pointers = fields[at + 1: at + 1 + 4 * int(fields[at])]
        parents, part_of = [], []
        for i in range(0, len(pointers), 4):
            symbol, target, pos = pointers[i:i + 3]
            if pos == "n" and symbol in ("@", "@i"):
                parents.append(target)
            elif pos == "n" and symbol == "#p":
                part_of.append(target)
        out[offset] = (lemmas, parents, part_of, gloss.strip())
    return out


def build(nouns: dict, wnids: list[str]) -> dict:
    """The JSON document described in the module docstring."""
    order = [w[1:] for w in wnids]
    index = {offset: i for i, offset in enumerate(order)}
    queue = list(order)
    while queue:  # every hypernym above the classes, breadth first
        for parent in nouns[queue.pop(0)][1]:
            if parent not in index:
                index[parent] = len(order)
                order.append(parent)
                queue.append(parent)
    nodes = [{"id": f"n{o}", "names": nouns[o][0],
              "parents": [index[p] for p in nouns[o][1]]} for o in order]
    part_of: dict[str, set[int]] = {}
    for lemmas, _, wholes, _ in nouns.values():
        targets = {index[w] for w in wholes if w in index}
        for lemma in lemmas if targets else ():
            part_of.setdefault(lemma.lower(), set()).update(targets)
    glosses = [nouns[o][3] for o in order[:len(wnids)]]
    return {"about": __doc__.split("\n\n")[0].replace("\n", " "),
            "wordnet": "WordNet 3.0 (Debian wordnet-base)", "classes": len(wnids),
            "nodes": nodes, "glosses": glosses,
            "part_of": {w: sorted(t) for w, t in sorted(part_of.items())},
            "gloss_words": gloss_words(glosses, nouns)}


def gloss_words(glosses: list[str], nouns: dict) -> dict[str, list[int]]:
    """Nouns of WordNet (single words, 3+ letters) that at most ``MAX_GLOSS_CLASSES``
    classes' glosses use, mapped to those classes."""
    lexicon = {lemma.lower() for lemmas, *_ in nouns.values() for lemma in lemmas
               if lemma.isalpha()}
    found: dict[str, set[int]] = {}
    for c, gloss in enumerate(glosses):
        for word in re.findall(r"[a-z]{3,}", gloss.split(";")[0].lower()):
            if word not in _STOP and word in lexicon:
                found.setdefault(word, set()).add(c)
    return {w: sorted(c) for w, c in sorted(found.items()) if len(c) <= MAX_GLOSS_CLASSES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wordnet", type=Path, required=True,
                        help="the folder of WordNet 3.0's data.noun (Debian wordnet-base)")
    parser.add_argument("--synsets", type=Path, required=True,
                        help="timm's imagenet_synsets.txt (1,000 ids in class order)")
    parser.add_argument("--out", type=Path, default=_DEFAULT_OUT)
    args = parser.parse_args()
    wnids = args.synsets.read_text().split()
    if len(wnids) != 1000:
        raise SystemExit(f"{args.synsets} holds {len(wnids)} ids, not 1,000")
    doc = build(read_nouns(args.wordnet / "data.noun"), wnids)
    args.out.write_text(json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"{args.out}: {doc['classes']} classes, {len(doc['nodes'])} nodes, "
          f"{len(doc['part_of'])} part-of words, {len(doc['gloss_words'])} gloss words, "
          f"{args.out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
