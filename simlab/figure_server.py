"""Preloaded by the fork server that starts the figure workers (see
:func:`simlab.fork_server.worker_context`).

Importing this module warms the server up: every import a figure needs, the font cache,
mathtext's parser and the Agg canvas, the signals a worker ignores and BLAS held to one
thread. Each worker is then a fork of a warm process: what a spawned worker paid for itself
(about a CPU-second on this machine) is paid once per run, not once per worker. It imports
what a figure job needs to be unpickled and drawn (every experiment and its figure module,
:mod:`simlab.drawing`), not the command line: the parent's ``__main__``, which a worker imports as
multiprocessing does for a spawned one, is the light :mod:`simlab.__main__` (the ``simlab``
command and ``python -m simlab`` alike).

Not scipy.stats (~0.7 CPU-s, a third of the warm-up, paid while the run's first experiment
simulates on both cores): the figures only draw, and the theory they draw comes with their data
or from scipy.special (tests/test_figure_server.py draws every figure of ``simlab check`` with
scipy.stats out of reach).
"""

import simlab.experiments  # noqa: F401
from simlab.drawing import _warm_up

_warm_up()
