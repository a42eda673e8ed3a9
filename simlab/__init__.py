"""simlab: check the theory of deep learning against massive Monte Carlo simulation.

From Python: ``simlab.run("dropout", p=[0.1, 0.5], samples=1e6, claims=[...])`` returns a
:class:`simlab.api.Result` (see :mod:`simlab.api`).
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["Result", "SimlabInputError", "__version__", "run", "run_file"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the command line imports this package before it is ready to turn a
    # Ctrl-C during NumPy's import into a quiet exit, so nothing heavy may load here.
    if name in ("run", "run_file", "Result"):
        from simlab import api

        return getattr(api, name)
    if name == "SimlabInputError":
        from simlab.errors import SimlabInputError

        return SimlabInputError
    raise AttributeError(f"module 'simlab' has no attribute {name!r}")
