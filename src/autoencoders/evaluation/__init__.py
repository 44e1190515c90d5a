"""Evaluation: likelihoods, feature probes, disentanglement metrics.

:data:`EVALUATORS` names the extra evaluations an experiment can ask for in
``eval.metrics``. Each entry is ``name -> "module:function"`` (imported lazily); the
function has the signature ``fn(run, model) -> dict[str, float]`` and its keys (e.g.
``test/knn_error_k5``) land in the run's ``eval.json`` and report.
"""

EVALUATORS: dict[str, str] = {
    # logistic regression on model.features, C (and alpha) chosen on valid: test/logreg_error
    "logreg": "autoencoders.evaluation.features:logreg_evaluator",
    # k-nearest neighbours of test codes among train codes, k in eval.knn_k: test/knn_error_k5
    "knn": "autoencoders.evaluation.features:knn_evaluator",
}
