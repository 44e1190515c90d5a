"""Evaluation: likelihoods, feature probes, disentanglement metrics.

The extra evaluations an experiment can ask for in ``eval.metrics`` are registered in
:data:`autoencoders.registry.EVALUATORS` (``name -> Evaluator``: the ``"module:function"``
of a function ``fn(run, model) -> dict[str, float]``, the model capabilities it needs and a
description of each key it writes to the run's ``eval.json``).
"""
