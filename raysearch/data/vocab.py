"""Caption vocabulary, as in seed 000 (Francis Dutil's preprocessing).

Lower-case, strip punctuation, drop English stop words, keep the words seen
at least `min_count` times; every other word maps to the unknown id. Id 0 is
padding, 1 is unknown, kept words start at 2 ordered by count (descending)
then alphabetically, so the same captions always give the same ids.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from raysearch.errors import DataError

PAD_ID = 0
UNKNOWN_ID = 1
FIRST_WORD_ID = 2
VOCAB_FORMAT = "raysearch-vocabulary"

_APOSTROPHES = re.compile(r"['\u2019`]")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words without punctuation, stop words included.

    Apostrophes are deleted rather than split on ("man's" -> "mans") so a
    possessive does not leave a stray "s"; all other punctuation separates.
    """
    return _NOT_WORD.sub(" ", _APOSTROPHES.sub("", text.lower())).split()


# NLTK's English stop-word list, fixed here so results do not depend on an
# NLTK download; normalised by `tokenize` so "don't" matches "dont".
_NLTK_ENGLISH = """
i me my myself we our ours ourselves you you're you've you'll you'd your yours
yourself yourselves he him his himself she she's her hers herself it it's its
itself they them their theirs themselves what which who whom this that that'll
these those am is are was were be been being have has had having do does did
doing a an the and but if or because as until while of at by for with about
against between into through during before after above below to from up down
in out on off over under again further then once here there when where why how
all any both each few more most other some such no nor not only own same so
than too very s t can will just don don't should should've now d ll m o re ve y
ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn
hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't
shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn
wouldn't
"""
STOP_WORDS: frozenset[str] = frozenset(word for raw in _NLTK_ENGLISH.split() for word in tokenize(raw))


def content_words(text: str) -> list[str]:
    """The words of `text` the vocabulary counts: tokens minus stop words."""
    return [word for word in tokenize(text) if word not in STOP_WORDS]


def _iter_captions(captions: Iterable[str] | Iterable[Sequence[str]]) -> Iterable[str]:
    for item in captions:
        if isinstance(item, str):
            yield item
        else:
            yield from item


@dataclass(frozen=True)
class Vocabulary:
    """Word <-> id mapping; build it with `Vocabulary.build`."""

    words: tuple[str, ...]
    counts: tuple[int, ...]
    min_count: int
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.words) != len(self.counts):
            raise ValueError("words and counts must have the same length")
        object.__setattr__(self, "_ids", {word: FIRST_WORD_ID + i for i, word in enumerate(self.words)})

    @classmethod
    def build(cls, captions: Iterable[str] | Iterable[Sequence[str]], min_count: int = 10) -> Vocabulary:
        """Count content words over all captions (strings or per-image lists of strings)."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counter: Counter[str] = Counter()
        for caption in _iter_captions(captions):
            counter.update(content_words(caption))
        kept = sorted((item for item in counter.items() if item[1] >= min_count), key=lambda wc: (-wc[1], wc[0]))
        return cls(tuple(w for w, _ in kept), tuple(c for _, c in kept), min_count)

    def __len__(self) -> int:
        """Number of ids, padding and unknown included (the embedding size)."""
        return FIRST_WORD_ID + len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._ids

    def id_of(self, word: str) -> int:
        return self._ids.get(word, UNKNOWN_ID)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(word, UNKNOWN_ID) for word in content_words(text)]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words for ids (padding dropped, unknown as "<unk>"): for debugging and previews."""
        out = []
        for i in ids:
            if i == PAD_ID:
                continue
            out.append(self.words[i - FIRST_WORD_ID] if i >= FIRST_WORD_ID else "<unk>")
        return out

    def tokens(self, captions: Sequence[str], length: int, count: int = 5) -> np.ndarray:
        """int64 [count, length]: the first `count` captions (cycled if fewer), padded/truncated."""
        if not captions:
            raise ValueError("tokens() needs at least one caption")
        if length < 1 or count < 1:
            raise ValueError(f"length and count must be >= 1, got length={length}, count={count}")
        out = np.full((count, length), PAD_ID, dtype=np.int64)
        for row in range(count):
            ids = self.encode(captions[row % len(captions)])[:length]
            out[row, : len(ids)] = ids
        return out

    def bag_of_words(self, captions: Sequence[str], count: int = 5) -> np.ndarray:
        """float32 [len(self)]: word presence (0/1) per caption, averaged over the first `count`.

        Seed 000's bag of words over 1 or 5 captions: each caption is a one-hot
        presence vector, then the vectors are averaged.
        """
        if not captions:
            raise ValueError("bag_of_words() needs at least one caption")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        used = captions[:count]
        out = np.zeros(len(self), dtype=np.float32)
        for caption in used:
            present = np.zeros(len(self), dtype=np.float32)
            present[self.encode(caption)] = 1.0
            out += present
        return out / len(used)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": VOCAB_FORMAT,
                "min_count": self.min_count,
                "words": list(self.words),
                "counts": list(self.counts),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"vocabulary: not JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
            raise DataError(f"vocabulary: 'format' must be {VOCAB_FORMAT!r}")
        words, counts, min_count = data.get("words"), data.get("counts"), data.get("min_count")
        if not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
            raise DataError("vocabulary: 'words' must be a list of strings")
        if not (isinstance(counts, list) and len(counts) == len(words) and all(isinstance(c, int) for c in counts)):
            raise DataError("vocabulary: 'counts' must be a list of integers, one per word")
        if not isinstance(min_count, int) or min_count < 1:
            raise DataError("vocabulary: 'min_count' must be an integer >= 1")
        return cls(tuple(words), tuple(counts), min_count)
