"""``photoatlas search --library DIR WORDS...``: photos by words (core/organize/word_search.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from photoatlas.core.library.library import Library


def add_search_command(sub: argparse._SubParsersAction) -> None:
    se = sub.add_parser("search", help="photos that show WORDS (e.g. dog, beach, church), "
                        "from the classes the encoder's ImageNet head knows, offline")
    se.add_argument("--library", type=Path, required=True,
                    help="library folder (catalog, cache, runs)")
    se.add_argument("words", nargs="*", help="what to look for; leave out with --known")
    se.add_argument("-k", type=int, default=20, help="how many photos to list")
    se.add_argument("--known", metavar="PREFIX", nargs="?", const="",
                    help="list the known words (starting with PREFIX) instead")
    se.add_argument("--json", action="store_true", help="print JSON instead of a list")


def search_command(args: argparse.Namespace) -> int:
    from photoatlas.core.organize.vocabulary import vocabulary
    from photoatlas.core.organize.word_search import search_library

    if args.known is not None:
        vocab = vocabulary()
        words = vocab.suggest(args.known, limit=100_000) if args.known else vocab.known_words()
        print("\n".join(words))
        return 0
    if not args.words:
        raise ValueError("give the words to look for, e.g. 'photoatlas search --library DIR "
                         "dog' (--known lists the words)")
    if args.k < 1:
        raise ValueError("-k must be at least 1")
    with Library(args.library, create=False) as library:
        result = search_library(library, args.words, limit=args.k)
    if args.json:
        print(json.dumps({"words": result.query.explain(vocabulary()).splitlines(),
                          "unknown": list(result.query.unknown),
                          "photos": [{"path": p, "score": round(float(s), 4),
                                      "concept": round(float(c), 4)}
                                     for p, s, c in zip(result.paths, result.scores,
                                                        result.concept, strict=True)]},
                         indent=2))
        return 0 if result.query.ok else 1
    print(result.query.explain(vocabulary()))
    if not result.query.ok:
        return 1
    for path, score in zip(result.paths, result.scores, strict=True):
        print(f"{score:.3f}  {path}")
    if not result.paths:
        print("no photo shows it clearly")
    if result.unscored:
        print(f"({result.unscored} photos of the map have no class scores: an encoder "
              "without a classifier (ResNet), or photos embedded before words were indexed "
              "('photoatlas index' again adds them))")
    return 0
