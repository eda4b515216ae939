"""Training: the loop, its callbacks and what every stage shares."""
