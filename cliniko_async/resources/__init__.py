"""Resource declarations: one class per API resource, one descriptor per operation."""

from ._core import *  # noqa: F403
from ._core import __all__ as __all__
