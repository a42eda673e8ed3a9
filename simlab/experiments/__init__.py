"""The experiments simlab knows, by the name used on the command line and in YAML files.

A name with a space (``kept-units binomial``) is a command group and one of its subcommands.
"""

from __future__ import annotations

from simlab.errors import SimlabInputError
from simlab.experiments.base import Experiment
from simlab.experiments.batchnorm_grads import BatchnormGrads
from simlab.experiments.batchnorm_stats import BatchnormStats
from simlab.experiments.batchnorm_whiten import BatchnormWhiten
from simlab.experiments.dropout import Dropout
from simlab.experiments.kept_units import KeptBinomial, KeptPoissonLimit, KeptThinning
from simlab.experiments.propagation_correlation import PropagationCorrelation
from simlab.experiments.propagation_grads import PropagationGrads
from simlab.experiments.propagation_signal import PropagationSignal

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
