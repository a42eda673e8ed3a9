"""The experiments simlab knows, by the name used on the command line and in YAML files.

A name with a space (``kept-units binomial``) is a command group and one of its subcommands.
"""

from __future__ import annotations

from simlab.errors import SimlabInputError
from simlab.experiments.base import Experiment
from simlab.experiments.batchnorm import BatchnormGrads, BatchnormStats, BatchnormWhiten
from simlab.experiments.dropout import Dropout
from simlab.experiments.kept_units import KeptBinomial, KeptPoissonLimit, KeptThinning
from simlab.experiments.propagation import (
    PropagationCorrelation,
    PropagationGrads,
    PropagationSignal,
)

REGISTRY: dict[str, Experiment] = {
    exp.name: exp
    for exp in (
        Dropout(),
        BatchnormStats(),
        BatchnormGrads(),
        BatchnormWhiten(),
        KeptBinomial(),
        KeptPoissonLimit(),
        KeptThinning(),
        PropagationSignal(),
        PropagationCorrelation(),
        PropagationGrads(),
    )
}


def get_experiment(name: str, where: str = "experiment") -> Experiment:
    """The registered experiment called ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise SimlabInputError(
            f"{where}: unknown experiment {name!r}; allowed: {', '.join(REGISTRY)}"
        ) from None
