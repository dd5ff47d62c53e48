"""The ONNX graph of a scikit-learn model (``exporters=[onnx]``, ``coupler export --format onnx``), by skl2onnx.

The graph takes ``features`` (float32, rows x the run's model inputs: the core prepends the run's preprocessing,
``coupler.onnx_export``) and gives ``label`` (class codes) and ``probabilities`` (a column per class of the run, a
class absent from the training rows at 0), or ``prediction`` for regression. Estimators whose arithmetic float32
would round past the parity tolerance (linear models, SVMs, nearest neighbours: sums of many products) are
converted in double; trees compare float32 thresholds as scikit-learn does, so they stay in float32.
"""

from __future__ import annotations

import numpy as np

from coupler.errors import CouplerError

#: estimators converted with double-precision arithmetic (their float32 sums drift past 1e-5 in probability)
DOUBLE = ("LogisticRegression", "LinearRegression", "Ridge", "SVC", "SVR", "KNeighborsClassifier",
          "KNeighborsRegressor")
#: estimators skl2onnx has a converter for that fails with the pinned libraries (skl2onnx 1.20, onnx 1.23: the
#: histogram gradient boosting converter writes a boolean where ONNX takes an int): refused before any data is read
BROKEN = {"HistGradientBoostingClassifier": "skl2onnx 1.20's converter fails with onnx 1.23",
          "HistGradientBoostingRegressor": "skl2onnx 1.20's converter fails with onnx 1.23"}


def convertible(estimator) -> bool:
    """Whether skl2onnx has a converter for the estimator's class (imports skl2onnx: call it only to export)."""
    from coupler.onnx_export import require

    require("skl2onnx", install="coupler-sklearn[onnx]")
    from skl2onnx import get_model_alias

    if type(estimator).__name__ in BROKEN:
        return False
    try:
        get_model_alias(type(estimator))
    except RuntimeError:  # skl2onnx's word for "no converter registered"
        return False
    return True


def model_graph(estimator, task: str, n_features: int, n_classes: int):
    from onnx import TensorProto, compose, helper, numpy_helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    from coupler.onnx_export import ML_OPSET, OPSET

    if not convertible(estimator):
        raise CouplerError(f"skl2onnx has no converter for {type(estimator).__name__}")
    double = type(estimator).__name__ in DOUBLE
    kind = DoubleTensorType if double else FloatTensorType
    options = {id(estimator): {"zipmap": False}} if task != "regression" else None
    graph = to_onnx(estimator, initial_types=[("x", kind([None, n_features]))], options=options,
                    target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
    graph = compose.add_prefix(graph, "skl2onnx_")  # every name of its own apart from the contract's names
    nodes, initializers = list(graph.graph.node), list(graph.graph.initializer)
    outputs = [o.name for o in graph.graph.output]
    # the core feeds float32: cast to double in front of a double graph
    head = [helper.make_node("Cast", ["features"], ["skl2onnx_x"],
                             to=TensorProto.DOUBLE if double else TensorProto.FLOAT)]
    tail, result = [], []
    if task == "regression":
        tail.append(helper.make_node("Cast", [outputs[0]], ["prediction"], to=TensorProto.FLOAT))
        result.append(helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [None, 1]))
    else:
        label, scores = outputs[0], outputs[1] if len(outputs) > 1 else None
        tail.append(helper.make_node("Cast", [label], ["label"], to=TensorProto.INT64))
        result.append(helper.make_tensor_value_info("label", TensorProto.INT64, [None]))
        if scores is not None and hasattr(estimator, "predict_proba"):
            known = np.asarray(estimator.classes_).astype(int)
            if len(known) != n_classes:  # a class absent from training: its column at 0, as SklearnModel gives it
                spread = np.zeros((len(known), n_classes), dtype=np.float64 if double else np.float32)
                spread[np.arange(len(known)), known] = 1.0
                initializers.append(numpy_helper.from_array(spread, "class_spread"))
                tail.append(helper.make_node("MatMul", [scores, "class_spread"], ["scores_spread"]))
                scores = "scores_spread"
            tail.append(helper.make_node("Cast", [scores], ["probabilities"], to=TensorProto.FLOAT))
            result.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_classes]))
    body = helper.make_graph(head + nodes + tail, "sklearn_model",
                             [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_features])],
                             result, initializers)
    model = helper.make_model(body, opset_imports=list(graph.opset_import))
    model.ir_version = graph.ir_version
    return model
