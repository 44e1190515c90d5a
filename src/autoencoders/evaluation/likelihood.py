"""Test-set lower bound and importance-weighted log-likelihood, batched.

The estimators live with the model contract they are written on
(:mod:`autoencoders.models.estimators`, so that models, the trainer and evaluation all
depend downwards on them); this module is their place in the evaluation API.
"""

from ..models.estimators import average_loss_terms, iw_log_likelihood

__all__ = ["average_loss_terms", "iw_log_likelihood"]
