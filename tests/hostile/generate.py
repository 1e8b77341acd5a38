"""Write a set of hostile and broken NeuroML files, each with the failure nml2lut must report for it.

Used by tests/test_hostile.py; also runnable to make a set by hand::

    python -m tests.hostile.generate DIR

``HOSTILE`` maps each file name to what converting it must give: the error
type and category, and whether the error belongs to the file (it cannot be
read) or to its channel (the file is read, the channel fails).  ``GOOD`` is
a valid channel file written beside them, which must convert intact.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="doc">\n'
TAIL = "\n</neuroml>\n"


class Expected(NamedTuple):
    type: str  # the exception class name in the report ("" when the file converts)
    category: str
    level: str  # "file" (read at file level: XML, includes, ComponentTypes), "channel", or "converted"


def channel(rate: str = 'rate="0.1per_ms" midpoint="-55mV" scale="10mV"', cid: str = "k", inside: str = "") -> str:
    return f"""<ionChannelHH id="{cid}" conductance="10pS" species="k">
  <gateHHrates id="n" instances="4">{inside}
    <forwardRate type="HHExpLinearRate" {rate}/>
    <reverseRate type="HHExpRate" rate="0.125per_ms" midpoint="-65mV" scale="-80mV"/>
  </gateHHrates>
</ionChannelHH>"""


def doc(body: str) -> str:
    return HEAD + body + TAIL


def custom_rate(value: str) -> str:
    """A channel whose forward rate is a custom ComponentType with the expression ``value``."""
    return doc(f"""<ComponentType name="myRate" extends="baseVoltageDepRate">
  <Constant name="TIME_SCALE" dimension="time" value="1 ms"/>
  <Constant name="VOLT_SCALE" dimension="voltage" value="1 mV"/>
  <Dynamics>
    <DerivedVariable name="r" dimension="per_time" exposure="r" value="{value}"/>
  </Dynamics>
</ComponentType>
<ionChannelHH id="k" conductance="10pS" species="k">
  <gateHHrates id="n" instances="4">
    <forwardRate type="myRate"/>
    <reverseRate type="HHExpRate" rate="0.125per_ms" midpoint="-65mV" scale="-80mV"/>
  </gateHHrates>
</ionChannelHH>""")


def tau_inf(tau: str) -> str:
    return doc(f"""<ionChannelHH id="k" conductance="10pS">
  <gateHHtauInf id="n" instances="1">
    <timeCourse type="fixedTimeCourse" tau="{tau}"/>
    <steadyState type="HHSigmoidVariable" rate="1" midpoint="-50mV" scale="5mV"/>
  </gateHHtauInf>
</ionChannelHH>""")


GOOD = "good.channel.nml"

# name -> (content, expected); content is str (UTF-8) or bytes, or a callable writing the file.
_BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE neuroml [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
    + ']>\n<neuroml id="x"><notes>&lol9;</notes></neuroml>\n'
)
HOSTILE: dict[str, tuple[object, Expected]] = {
    "malformed.nml": (
        HEAD + '<ionChannelHH id="k" conductance="10pS">\n  <gateHHrates id="n"',
        Expected("ParseError", "parse", "file"),
    ),
    "non_utf8.nml": (
        doc(channel()).encode("utf-8").replace(b'species="k"', b'species="\xff\xfe\xfa"'),
        Expected("ParseError", "parse", "file"),
    ),
    "latin1_declared_utf8.nml": (
        doc(channel()).replace("10pS", "10pS").encode() + b"<!-- caf\xe9 -->",
        Expected("ParseError", "parse", "file"),
    ),
    "empty.nml": ("", Expected("ParseError", "parse", "file")),
    "binary.nml": (bytes(range(256)) * 64, Expected("ParseError", "parse", "file")),
    "wrong_root.nml": ('<?xml version="1.0"?>\n<html><body/></html>\n', Expected("ParseError", "parse", "file")),
    "deep_nesting.nml": (
        HEAD + "<notes>" * 100_000 + "</notes>" * 100_000 + TAIL,
        Expected("ParseError", "parse", "file"),
    ),
    "billion_laughs.nml": (_BILLION_LAUGHS, Expected("ParseError", "parse", "file")),
    "external_entity.nml": (
        '<?xml version="1.0"?>\n<!DOCTYPE neuroml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        '<neuroml id="x"><notes>&xxe;</notes></neuroml>\n',
        Expected("ParseError", "parse", "file"),
    ),
    "external_parameter_entity.nml": (
        '<?xml version="1.0"?>\n<!DOCTYPE neuroml [<!ENTITY % ext SYSTEM '
        '"http://127.0.0.1:9/evil.dtd"> %ext;]>\n<neuroml id="x"/>\n',
        Expected("ParseError", "parse", "file"),
    ),
    # A DTD reference without entities is harmless: it must convert, without fetching (port 9 would refuse).
    "dtd_fetch.nml": (
        '<?xml version="1.0"?>\n<!DOCTYPE neuroml SYSTEM "http://127.0.0.1:9/neuroml.dtd">\n'
        + doc(channel()).split("\n", 1)[1],
        Expected("", "", "converted"),
    ),
    "include_url.nml": (doc('<include href="http://127.0.0.1:9/x.nml"/>'), Expected("IncludeError", "include", "file")),
    "include_missing.nml": (
        doc('<include href="no_such_file.nml"/>\n' + channel()),
        Expected("IncludeError", "include", "file"),
    ),
    "include_cycle_a.nml": (doc('<include href="include_cycle_b.nml"/>'), Expected("IncludeError", "include", "file")),
    "include_cycle_b.nml": (doc('<include href="include_cycle_a.nml"/>'), Expected("IncludeError", "include", "file")),
    "include_self.nml": (doc('<include href="include_self.nml"/>'), Expected("IncludeError", "include", "file")),
    "include_directory.nml": (doc('<include href="."/>'), Expected("IncludeError", "include", "file")),
    "include_etc_passwd.nml": (doc('<include href="/etc/passwd"/>'), Expected("ParseError", "parse", "file")),
    "duplicate_ids.nml": (doc(channel() + "\n" + channel()), Expected("ModelError", "model", "file")),
    "unknown_gate_child.nml": (
        doc(channel(inside="\n    <wibble/>")),
        Expected("UnsupportedError", "unsupported", "channel"),
    ),
    "unknown_channel_child.nml": (
        doc(channel().replace("</ionChannelHH>", "<fooBar/></ionChannelHH>")),
        Expected("ModelError", "model", "channel"),
    ),
    "unknown_unit.nml": (
        doc(channel('rate="0.1per_fortnight" midpoint="-55mV" scale="10mV"')),
        Expected("UnitError", "unit", "channel"),
    ),
    "missing_unit.nml": (
        doc(channel('rate="0.1" midpoint="-55mV" scale="10mV"')),
        Expected("UnitError", "unit", "channel"),
    ),
    "wrong_dimension.nml": (
        doc(channel('rate="0.1mV" midpoint="-55mV" scale="10mV"')),
        Expected("UnitError", "unit", "channel"),
    ),
    "nan_parameter.nml": (
        doc(channel('rate="NaNper_ms" midpoint="-55mV" scale="10mV"')),
        Expected("UnitError", "unit", "channel"),
    ),
    "inf_parameter.nml": (
        doc(channel('rate="infper_ms" midpoint="-55mV" scale="10mV"')),
        Expected("UnitError", "unit", "channel"),
    ),
    "huge_parameter.nml": (
        doc(channel('rate="1e308per_ms" midpoint="-55mV" scale="10mV"')),
        Expected("UnitError", "unit", "channel"),
    ),
    "zero_scale.nml": (
        doc(channel('rate="0.1per_ms" midpoint="-55mV" scale="0mV"')),
        Expected("TableError", "table", "channel"),
    ),
    "missing_attribute.nml": (
        doc(channel('rate="0.1per_ms" midpoint="-55mV"')),
        Expected("ModelError", "model", "channel"),
    ),
    "negative_tau.nml": (tau_inf("-1ms"), Expected("TableError", "table", "channel")),
    "zero_tau.nml": (tau_inf("0ms"), Expected("TableError", "table", "channel")),
    "python_expression.nml": (
        custom_rate("__import__('os').system('touch pwned')"),
        Expected("ExpressionError", "expression", "file"),
    ),
    "unbalanced_parentheses.nml": (
        custom_rate("exp((v/VOLT_SCALE)/TIME_SCALE"),
        Expected("ExpressionError", "expression", "file"),
    ),
    "unknown_function.nml": (
        custom_rate("system(v/VOLT_SCALE)/TIME_SCALE"),
        Expected("ExpressionError", "expression", "file"),
    ),
    "undefined_symbol.nml": (
        custom_rate("exp(v/nowhere)/TIME_SCALE"),
        Expected("ExpressionError", "expression", "channel"),
    ),
    "huge_expression.nml": (
        custom_rate("+".join(["v/VOLT_SCALE"] * 3000) + "/TIME_SCALE"),
        Expected("ExpressionError", "expression", "file"),
    ),
    "deep_expression.nml": (
        custom_rate("(" * 400 + "v/VOLT_SCALE" + ")" * 400 + "/TIME_SCALE"),
        Expected("ExpressionError", "expression", "file"),
    ),
    "huge_instances.nml": (
        doc(channel().replace('instances="4"', 'instances="1e9"')),
        Expected("ModelError", "model", "channel"),
    ),
    # Channel ids are file names in the output: a hostile id must stay inside its folder.
    "path_traversal_id.nml": (doc(channel(cid="../../../../tmp/escaped")), Expected("", "", "converted")),
}
HUGE = "huge_100MB.nml"
"""Over the parser's size limit (64 MiB): refused before it is read."""


def write_huge(path: Path, size: int = 100 * 1024 * 1024) -> None:
    chunk = ("<!-- " + "x" * 1000 + " -->\n").encode()
    with open(path, "wb") as handle:
        handle.write(HEAD.encode())
        written = len(HEAD)
        while written < size:
            handle.write(chunk)
            written += len(chunk)
        handle.write(TAIL.encode())


def write_good(folder: Path) -> Path:
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / GOOD
    path.write_text(doc(channel(cid="good_k")), encoding="utf-8")
    return path


def write_hostile(folder: str | Path, *, huge: bool = True) -> dict[str, Expected]:
    """Write every hostile file (and the good one) into ``folder``; return the expectations by file name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (content, outcome) in HOSTILE.items():
        data = content if isinstance(content, bytes) else str(content).encode("utf-8")
        (folder / name).write_bytes(data)
        expected[name] = outcome
    if huge:
        write_huge(folder / HUGE)
        expected[HUGE] = Expected("ParseError", "parse", "file")
    write_good(folder)
    expected[GOOD] = Expected("", "", "converted")
    return expected


if __name__ == "__main__":  # pragma: no cover
    for name, outcome in write_hostile(sys.argv[1]).items():
        print(f"{name}: {outcome.type or 'converts'}")
