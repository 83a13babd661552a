"""Labels, training, calibration, the score scale, the registry, explanations and publishing."""
