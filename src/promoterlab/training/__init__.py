"""Training stage of the pipeline."""
