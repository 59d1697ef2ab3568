"""CoralBay: a self-supervised 3D CT foundation model as an eva plugin."""

__version__ = "0.1.0"
