"""attrs models of Cliniko's resources."""

from ._core import *  # noqa: F403
from ._core import __all__ as __all__
