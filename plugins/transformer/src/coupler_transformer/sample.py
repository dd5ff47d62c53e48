"""A small, reproducible sentiment data set (no download): short reviews built from word lists, with negation
("not good" is negative), filler words and a little label noise. ``write_sentiment_csv(path)`` writes it for
``data=text_csv``::

    python -c "from coupler_transformer.sample import write_sentiment_csv; write_sentiment_csv('reviews.csv')"
"""

from __future__ import annotations

POSITIVE = ["good", "great", "excellent", "wonderful", "lovely", "superb", "fantastic", "pleasant", "brilliant",
            "delightful", "enjoyable", "charming"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "poor", "dreadful", "horrible", "dull", "disappointing",
            "mediocre", "annoying", "clumsy"]
SUBJECTS = ["the film", "this movie", "the plot", "the acting", "the soundtrack", "the ending", "the story",
            "the cast", "the script", "the book", "the show", "the director's work"]
FILLERS = ["honestly", "overall", "i think", "to be fair", "in my view", "frankly", "as expected", "again",
           "for the most part", "surprisingly"]
INTENSIFIERS = ["very", "really", "quite", "truly", "rather", "so"]


def make_sentiment(rows: int = 600, seed: int = 0, noise: float = 0.03):
    """A DataFrame ``text``, ``label`` (``positive``/``negative``): half of each, about a third negated."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(rows):
        positive = i % 2 == 0
        negated = rng.random() < 0.35
        # a negated sentence uses a word of the opposite polarity: "not bad" is positive
        words = NEGATIVE if positive == negated else POSITIVE
        parts = [str(rng.choice(SUBJECTS)), "was", "not" if negated else ""]
        if rng.random() < 0.5:
            parts.append(str(rng.choice(INTENSIFIERS)))
        parts.append(str(rng.choice(words)))
        sentence = " ".join(p for p in parts if p)
        if rng.random() < 0.5:
            sentence = f"{rng.choice(FILLERS)}, {sentence}" if rng.random() < 0.5 else f"{sentence}, {rng.choice(FILLERS)}"
        label = positive if rng.random() >= noise else not positive
        texts.append(sentence + rng.choice([".", "!", "."]))
        labels.append("positive" if label else "negative")
    return pd.DataFrame({"text": texts, "label": labels})


def write_sentiment_csv(path, rows: int = 600, seed: int = 0, noise: float = 0.03):
    """Write ``make_sentiment(rows, seed, noise)`` to ``path`` (CSV) and return the path."""
    make_sentiment(rows, seed, noise).to_csv(path, index=False)
    return path
