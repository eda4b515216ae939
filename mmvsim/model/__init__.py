"""Model: the single-stream video BERT and its pretraining tasks."""
