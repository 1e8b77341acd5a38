"""parse: NeuroML2/LEMS files -> `nml2lut.model.Channel` (the only XML importer)."""

from .channels import ChannelSource, Library, read_library

__all__ = ["ChannelSource", "Library", "read_library"]
