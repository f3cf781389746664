"""Learning-rate (and other hyperparameter) schedules: pure functions of the step count."""
