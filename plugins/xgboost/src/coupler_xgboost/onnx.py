"""The ONNX graph of an XGBoost model (``exporters=[onnx]``, ``coupler export --format onnx``), by onnxmltools.

onnxmltools converts the booster's trees into ai.onnx.ml's TreeEnsemble operators, missing values following each
split's default branch as XGBoost's do. The graph takes ``features`` (float32, the run's raw numeric columns: an
XGBoost run reads a frame, unscaled, missing values kept) and gives ``label`` and ``probabilities`` or
``prediction`` (``coupler.onnx_export``). XGBoost's native categorical splits have no converter: a run with
categorical columns and ``exporters=[onnx]`` is refused before it fits (``OnnxExporter.check_data``), and
``coupler export`` of such a run is refused here.
"""

from __future__ import annotations

from coupler.errors import CouplerError


def model_graph(booster, task: str, n_features: int, n_classes: int):
    from coupler.onnx_export import require

    require("onnxmltools", install="coupler-xgboost[onnx]")
    import onnxmltools
    from onnx import TensorProto, compose, helper
    from onnxmltools.convert.common.data_types import FloatTensorType

    from coupler.onnx_export import ML_OPSET

    if booster.feature_types and "c" in booster.feature_types:
        raise CouplerError("the XGBoost model splits on categorical columns natively, which onnxmltools cannot "
                           "convert; export a run without categorical columns (data.features=[...]), or train "
                           "model=random_forest or model=mlp, which read them one-hot encoded")
    booster = booster.copy()
    booster.feature_names = None  # onnxmltools reads features by position (f0, f1, ...)
    booster.feature_types = None
    graph = onnxmltools.convert_xgboost(booster, initial_types=[("x", FloatTensorType([None, n_features]))],
                                        target_opset=15)  # the newest onnxmltools 1.16 converts to (the core converts up)
    graph = compose.add_prefix(graph, "xgboost_")  # every name of its own apart from the contract's names
    outputs = [o.name for o in graph.graph.output]
    nodes = [helper.make_node("Identity", ["features"], ["xgboost_x"]), *graph.graph.node]
    if task == "regression":
        tail = [helper.make_node("Identity", [outputs[0]], ["prediction"])]
        result = [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [None, 1])]
    else:
        tail = [helper.make_node("Cast", [outputs[0]], ["label"], to=TensorProto.INT64),
                helper.make_node("Identity", [outputs[1]], ["probabilities"])]
        result = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                  helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_classes])]
    body = helper.make_graph(nodes + tail, "xgboost_model",
                             [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_features])],
                             result, list(graph.graph.initializer))
    imports = [o for o in graph.opset_import if o.domain not in ("ai.onnx.ml",)]
    model = helper.make_model(body, opset_imports=[*imports, helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
    model.ir_version = graph.ir_version
    return model
