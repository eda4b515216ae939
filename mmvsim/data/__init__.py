"""Data: the competition's records, the synthetic generator and the training store."""
