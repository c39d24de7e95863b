"""Resource declarations: one class per API resource, one descriptor per operation."""

from ._generated import *  # noqa: F403
from ._generated import __all__ as __all__
