"""Model families; importing this package registers each of them."""

from . import dense  # noqa: F401  (registers "dense")
from . import hashing  # noqa: F401  (registers "hashing")
from . import classifier  # noqa: F401  (registers "classifier")
from . import variational  # noqa: F401  (registers "vae")
from . import adversarial  # noqa: F401  (registers "aae")
from . import gsn  # noqa: F401  (registers "gsn")
from . import conv  # noqa: F401  (registers "conv")
from .base import AEOutput, AutoencoderModule, build_model
from .conv import ConvAutoencoder
from .dense import DenseAutoencoder

__all__ = ["AEOutput", "AutoencoderModule", "ConvAutoencoder", "DenseAutoencoder", "build_model"]
