"""The sklearn plugin passes Coupler's conformance kit: every model, each task it accepts, round trips."""

from coupler.testing import check_plugin


def test_the_sklearn_plugin_conforms():
    # model=sklearn takes any estimator by import path; the kit trains it with a decision tree. The ensembles train
    # few trees / iterations: the kit checks the contract (fit, save, reload, predict), not accuracy
    check_plugin("sklearn", overrides={"sklearn": ["model.estimator=sklearn.tree.DecisionTreeClassifier"],
                                       "random_forest": ["model.params.n_estimators=10"],
                                       "hist_gradient_boosting": ["model.params.max_iter=10"]})
