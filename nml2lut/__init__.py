"""nml2lut: NeuroML2 ion channels as fast Brian2 models with lookup tables.

Pipeline: NeuroML2 file -> parse -> channel model -> tables on a voltage grid
-> Brian2 equations and an interpolating lookup Function.

>>> import nml2lut
>>> na = nml2lut.load_channel("example_channels/hh_na.channel.nml", name="Na",
...                           temperature="6.3degC")  # doctest: +SKIP
"""

from ._version import __version__

from . import stepper as _stepper

_stepper.register()

METHOD = _stepper.METHOD_NAME
"""The integration method to pass to ``NeuronGroup(..., method=nml2lut.METHOD)`` with nml2lut channels.

``"nml2lut_exponential_euler"``, a Brian2 state updater that nml2lut
registers when imported (`nml2lut.stepper`): exponential Euler, except that
the gates of nml2lut channels (default ``gating="ode"``, ``lut`` mode) are
stepped as ``x <- a(v)*x + b(v)`` with ``a = exp(-dt/tau)`` and
``b = inf*(1 - a)`` tabulated for the group's dt, in the same pass over the
neurons, with no ``exp`` per gate.  The result is exponential Euler's to the
tables' accuracy.  Gates loaded with ``gating="step"`` and kinetic schemes are
stepped by their own tabulated update (installed by ``.init(group)``)
whatever the method; ``"exponential_euler"`` remains a valid choice.
"""

from .channel import LoadedChannel, load_channel, load_channels
from .sharing import share_grid
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
    "share_grid",
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
