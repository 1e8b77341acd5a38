"""nml2lut: NeuroML2 ion channels as fast Brian2 models with lookup tables.

Pipeline: NeuroML2 file -> parse -> channel model -> tables on a voltage grid
-> Brian2 equations and an interpolating lookup Function.

>>> import nml2lut
>>> na = nml2lut.load_channel("example_channels/hh_na.channel.nml", name="Na",
...                           temperature="6.3degC")  # doctest: +SKIP
"""

from ._version import __version__

METHOD = "exponential_euler"
"""The integration method to pass to ``NeuronGroup(..., method=nml2lut.METHOD)`` with nml2lut channels.

It integrates the voltage and any gate in ``gating="ode"`` form; gates loaded
with ``gating="step"`` and kinetic schemes are stepped by their own tabulated
update (installed by ``.init(group)``) whatever the method.
"""

from .channel import LoadedChannel, load_channel, load_channels
from .cell import LoadedCell, load_cell
from .lems import run_lems
from .codec import StoreError
from .store import load_tables, save_channel
from .tabulate import Tabulated, TabulatedPiece, lookup_function, tabulate
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
    "METHOD",
    "load_channel",
    "load_channels",
    "load_cell",
    "LoadedCell",
    "run_lems",
    "load_tables",
    "tabulate",
    "lookup_function",
    "Tabulated",
    "TabulatedPiece",
    "save_channel",
    "StoreError",
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
