"""Shared helpers for tests: inline NeuroML documents."""

from __future__ import annotations

from pathlib import Path

NEUROML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="doc">\n'
NEUROML_TAIL = "\n</neuroml>\n"


def neuroml(body: str) -> str:
    """A NeuroML2 document around ``body``."""
    return NEUROML_HEAD + body + NEUROML_TAIL


def write(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``folder/name`` and return the path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def write_nml(folder: Path, body: str, name: str = "test.channel.nml") -> Path:
    """Write a NeuroML2 document with ``body`` inside its root."""
    return write(folder, name, neuroml(body))


HH_K = """
<ionChannelHH id="k" conductance="10pS" species="k">
  <gateHHrates id="n" instances="4">
    <forwardRate type="HHExpLinearRate" rate="0.1per_ms" midpoint="-55mV" scale="10mV"/>
    <reverseRate type="HHExpRate" rate="0.125per_ms" midpoint="-65mV" scale="-80mV"/>
  </gateHHrates>
</ionChannelHH>
"""
