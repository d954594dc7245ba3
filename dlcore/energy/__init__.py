"""Energy-based models for chapter 5: RBMs, exact and AIS partition functions, DBNs, autoencoders."""

from dlcore.energy.ais import ais_log_partition, base_rate_bias
from dlcore.energy.exact import MAX_EXACT_UNITS, binary_states, exact_gradient, log_likelihood, log_partition
from dlcore.energy.gaussian import GaussianBernoulliRBM
from dlcore.energy.rbm import RBM

__all__ = [
    "RBM", "GaussianBernoulliRBM", "MAX_EXACT_UNITS", "binary_states", "log_partition", "log_likelihood",
    "exact_gradient", "ais_log_partition", "base_rate_bias",
]
