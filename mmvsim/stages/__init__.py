"""Stages: pretraining and finetuning."""
