"""Data stage of the pipeline."""
