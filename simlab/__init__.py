"""simlab: check the theory of deep learning against massive Monte Carlo simulation."""

__version__ = "0.1.0"
