"""Experiments: ablation grids, their runner and their report."""
