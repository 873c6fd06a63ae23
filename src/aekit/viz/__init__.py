"""Looking inside an autoencoder (Géron ch. 15; TECHNIQUES.md section 5): matplotlib ``Figure`` objects built
without pyplot, so nothing needs a display. Every ``plot_*`` function works alone and returns a Figure;
:func:`aekit.viz.report.write_report` puts them all in one self-contained HTML file.

Models are read through ``model.encoder`` (a list of layers, the last giving the codings) and
``model.encode``: dense layers and conv layers are both handled.
"""

from .activations import layer_activations, plot_top_activating, top_activating
from .curves import plot_history
from .features import plot_features
from .latent import embed_2d, plot_latent_map
from .maximization import MaximizedInputs, maximize_activation, plot_activation_maximization
from .reconstructions import plot_reconstructions
from .samples import plot_samples

__all__ = [
    "MaximizedInputs", "embed_2d", "layer_activations", "maximize_activation", "plot_activation_maximization",
    "plot_features", "plot_history", "plot_latent_map", "plot_reconstructions", "plot_samples",
    "plot_top_activating", "top_activating",
]
