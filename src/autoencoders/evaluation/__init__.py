"""Evaluation: likelihoods, feature probes, disentanglement metrics."""
