"""DINO pretraining of CoralBay encoders on their concatenated multi-scale features."""
