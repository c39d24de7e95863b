"""attrs models of Cliniko's resources and request bodies (generated from Cliniko's spec)."""

from ._generated import *  # noqa: F403
from ._generated import __all__ as __all__
