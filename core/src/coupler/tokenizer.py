"""``Vocabulary``: the word- or character-level tokenizer of a text data set, fitted on the training rows only.

Ids: 0 pads, 1 is any token outside the vocabulary, 2.. are the training rows' most frequent tokens (ties in
alphabetical order, so a fit is deterministic). Its state is plain JSON, saved in ``preprocessor.json``.
"""

from __future__ import annotations

import re
from collections import Counter

from coupler.errors import ConfigError

PAD, UNKNOWN = 0, 1
LEVELS = ("word", "char")
WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def check_settings(settings: dict) -> dict:
    """The tokenizer settings of a text ``Dataset`` (``level``, ``vocab_size``, ``length``, ``lowercase``), checked
    and with their defaults."""
    settings = {"level": "word", "vocab_size": 20000, "length": 128, "lowercase": True, **(settings or {})}
    unknown = sorted(set(settings) - {"level", "vocab_size", "length", "lowercase"})
    if unknown:
        raise ConfigError(f"data.{unknown[0]}", settings[unknown[0]], "nothing: the tokenizer takes level, vocab_size, "
                                                                      "length, lowercase")
    if settings["level"] not in LEVELS:
        raise ConfigError("data.level", settings["level"], "word or char")
    for key, low in (("vocab_size", 3), ("length", 1)):
        value = settings[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"data.{key}", value, f"a whole number of at least {low}")
    if not isinstance(settings["lowercase"], bool):
        raise ConfigError("data.lowercase", settings["lowercase"], "true or false")
    return settings


def is_missing(text) -> bool:
    """Whether a text cell is missing: None, NaN, NaT or pandas' NA (whose comparisons have no truth value)."""
    if text is None:
        return True
    try:
        return bool(text != text)
    except TypeError:  # pandas.NA != pandas.NA is NA
        return True


class Vocabulary:
    def __init__(self, level: str = "word", vocab_size: int = 20000, length: int = 128, lowercase: bool = True):
        self.level, self.vocab_size, self.length, self.lowercase = level, vocab_size, length, lowercase
        self.tokens: list[str] = []  # id 2 + i is tokens[i]
        self._ids: dict[str, int] = {}

    @property
    def size(self) -> int:
        """The number of ids, padding and unknown included (an embedding's row count)."""
        return len(self.tokens) + 2

    def split(self, text) -> list[str]:
        text = "" if is_missing(text) else str(text)  # a missing text is empty
        if self.lowercase:
            text = text.lower()
        return WORD.findall(text) if self.level == "word" else list(text)

    def fit(self, texts) -> Vocabulary:
        counts = Counter(token for text in texts for token in self.split(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        self.tokens = [token for token, _ in ranked[: self.vocab_size - 2]]
        self._ids = {token: i + 2 for i, token in enumerate(self.tokens)}
        return self

    def encode(self, texts):
        """An int64 array (rows, length): each text's first ``length`` token ids, padded with 0."""
        import numpy as np

        texts = list(texts)
        ids = np.zeros((len(texts), self.length), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = [self._ids.get(token, UNKNOWN) for token in self.split(text)[: self.length]]
            ids[row, : len(tokens)] = tokens
        return ids

    def state(self) -> dict:
        return {"level": self.level, "vocab_size": self.vocab_size, "length": self.length,
                "lowercase": self.lowercase, "tokens": self.tokens}

    @classmethod
    def from_state(cls, state: dict) -> Vocabulary:
        self = cls(state["level"], state["vocab_size"], state["length"], state["lowercase"])
        self.tokens = list(state["tokens"])
        self._ids = {token: i + 2 for i, token in enumerate(self.tokens)}
        return self
