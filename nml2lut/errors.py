"""errors: the exception hierarchy, one class per stage of the pipeline.

Every exception nml2lut raises on bad input is a subclass of `Nml2LutError`,
and also of the matching builtin, so ``except ValueError`` keeps working for
callers who do not know this package.
"""

from __future__ import annotations

__all__ = [
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


class Nml2LutError(Exception):
    """Base class of every error nml2lut raises on bad input or bad use."""


class ParseError(Nml2LutError, ValueError):
    """The file is not well-formed XML, or not a NeuroML/LEMS document.

    Parameters
    ----------
    message : str
        What is wrong.
    path : str, optional
        The file the error is in.
    line : int, optional
        The line in that file (1-based), when known.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.detail = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class IncludeError(ParseError):
    """An ``<Include>`` names a missing file or closes a cycle."""


class UnitError(Nml2LutError, ValueError):
    """A quantity has an unknown unit, no unit, or the wrong dimension."""


class ExpressionError(Nml2LutError, ValueError):
    """A LEMS expression cannot be parsed or uses an unknown symbol or function."""


class ModelError(Nml2LutError, ValueError):
    """The file parses but does not describe a valid channel.

    For example a missing rate, a duplicate id, or a parameter with no value.
    """


class UnsupportedError(Nml2LutError, NotImplementedError):
    """A valid NeuroML feature that nml2lut does not (yet) support.

    Parameters
    ----------
    feature : str
        The name of the feature (an element or ComponentType name), so batch
        reports can count failures per feature.
    message : str
        What was found and where.
    """

    def __init__(self, feature: str, message: str):
        self.feature = feature
        super().__init__(f"unsupported: {feature}: {message}")


class TableError(Nml2LutError, ValueError):
    """A table cannot be built: a curve is NaN, infinite, or a time constant is not positive."""


class ChannelNotFoundError(Nml2LutError, LookupError):
    """The requested channel id is not in the file, or the choice is ambiguous."""
