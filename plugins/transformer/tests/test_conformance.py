"""The transformer plugin passes Coupler's conformance kit: model=transformer round-trips every task on the kit's
tables (each row a sequence of one-feature steps) and on its text; model=hf_transformer round-trips the kit's
text with the packaged all-MiniLM-L6-v2 (tables are skipped: it reads text only); data=text_csv loads a CSV."""

from coupler.testing import check_plugin


def test_the_transformer_plugin_conforms(reviews_csv, minilm):
    check_plugin("transformer", overrides={
        "transformer": ["model.width=16", "model.heads=2", "model.depth=1"],
        "hf_transformer": [f"model.path={minilm}", "model.max_length=16", "model.batch_size=32"],
        "text_csv": [f"data.path={reviews_csv}"],
    })
