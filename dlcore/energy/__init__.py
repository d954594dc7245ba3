"""Energy-based models and autoencoders (chapter 5).

    rbm = RBM(784, 256, rng=0)                        # E(v, h) = −bᵀv − cᵀh − vᵀWh
    history = rbm.fit(X, epochs=10, lr=0.1, k=1, persistent=True)
    rbm.log_partition()                               # exact, tiny models only
    rbm.ais_log_partition(n_betas=10_000, n_runs=100) # annealed importance sampling, any size
    dbn = DBN([784, 500, 500]); dbn.pretrain(X); mlp = dbn.to_mlp(10)

Gradients (``cd_gradient``, ``exact_gradient``, ``Autoencoder.backward``) are gradients of the
loss to *minimise* (the negative log-likelihood for RBMs), so any dlcore optimizer applies them.
"""

from dlcore.energy.ais import ais_log_partition, base_rate_bias
from dlcore.energy.autoencoder import Autoencoder, StackedAutoencoder
from dlcore.energy.dbn import DBN
from dlcore.energy.exact import (
    MAX_EXACT_UNITS,
    binary_states,
    exact_gradient,
    log_likelihood,
    log_partition,
    model_expectations,
)
from dlcore.energy.gaussian import GaussianBernoulliRBM
from dlcore.energy.rbm import RBM

__all__ = [
    "RBM", "GaussianBernoulliRBM", "DBN", "Autoencoder", "StackedAutoencoder",
    "MAX_EXACT_UNITS", "binary_states", "log_partition", "log_likelihood", "exact_gradient", "model_expectations",
    "ais_log_partition", "base_rate_bias",
]
