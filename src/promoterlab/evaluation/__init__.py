"""Evaluation stage of the pipeline."""
