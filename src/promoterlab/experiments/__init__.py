"""Experiments: sweeps, hyperparameter search, aggregated results, figures and reports."""
