"""nml2lut: NeuroML2 ion channels as fast Brian2 models with lookup tables.

Pipeline: NeuroML2 file -> parse -> channel model -> tables on a voltage grid
-> Brian2 equations and an interpolating lookup Function.

>>> import nml2lut
>>> na = nml2lut.load_channel("example_channels/hh_na.channel.nml", name="Na",
...                           temperature="6.3degC")  # doctest: +SKIP
"""

from ._version import __version__
from .channel import LoadedChannel, load_channel, load_channels
from .errors import (
    ChannelNotFoundError,
    ExpressionError,
    IncludeError,
    ModelError,
    Nml2LutError,
    ParseError,
    TableError,
    UnitError,
    UnsupportedError,
)

__all__ = [
    "__version__",
    "load_channel",
    "load_channels",
    "LoadedChannel",
    "Nml2LutError",
    "ParseError",
    "IncludeError",
    "UnitError",
    "ExpressionError",
    "ModelError",
    "UnsupportedError",
    "TableError",
    "ChannelNotFoundError",
]
