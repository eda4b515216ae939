"""Evaluation: embeddings and submissions, the ensemble, nearest neighbours."""
