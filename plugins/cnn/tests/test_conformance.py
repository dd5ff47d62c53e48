"""The cnn plugin passes Coupler's conformance kit: the CNN round-trips each task (the kit's table has 16
model inputs, a 4x4 image) and image_folder loads a folder of images."""

from coupler.testing import check_plugin


def test_the_cnn_plugin_conforms(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * i, 200 if label == "cat" else 0, 90)).save(tmp_path / label / f"{i}.png")
    check_plugin("cnn", overrides={"cnn": ["model.width=8"], "image_folder": [f"data.path={tmp_path}"]})
