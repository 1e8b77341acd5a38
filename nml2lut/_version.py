"""The version of nml2lut, read by setup.py and by the package."""

__version__ = "0.1.0"
