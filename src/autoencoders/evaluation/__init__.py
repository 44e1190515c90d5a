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
    # dSprites ground-truth metrics on the posterior mean (eval.votes_*, eval.mig_points):
    # test/beta_vae_metric, test/factor_vae_metric (accuracy %), test/mig
    "beta_vae_metric": "autoencoders.evaluation.disentanglement:beta_vae_evaluator",
    "factor_vae_metric": "autoencoders.evaluation.disentanglement:factor_vae_evaluator",
    "mig": "autoencoders.evaluation.disentanglement:mig_evaluator",
    # the three metrics for raw pixels, PCA, FastICA and an untrained copy of the model
    # (eval.baselines): baseline/<name>/beta_vae_metric, ...
    "disentanglement_baselines": "autoencoders.evaluation.disentanglement:baselines_evaluator",
}
