"""Every error path of reading a channel file gets a specific nml2lut error naming the place."""

from __future__ import annotations

import time

import pytest

from nml2lut import (
    ChannelNotFoundError,
    ExpressionError,
    IncludeError,
    ModelError,
    Nml2LutError,
    ParseError,
    UnitError,
    UnsupportedError,
    load_channel,
)
from tests.helpers import HH_K, neuroml, write, write_nml


def load(path, **kwargs):
    return load_channel(path, mode="exact", **kwargs)


def custom_rate(value: str, extra: str = "") -> str:
    return f"""
<ComponentType name="myRate" extends="baseVoltageDepRate">
  <Constant name="TIME_SCALE" dimension="time" value="1 ms"/>
  <Constant name="VOLT_SCALE" dimension="voltage" value="1 mV"/>
  {extra}
  <Dynamics>
    <DerivedVariable name="V" dimension="none" value="v / VOLT_SCALE"/>
    <DerivedVariable name="r" dimension="per_time" exposure="r" value="{value}"/>
  </Dynamics>
</ComponentType>
<ionChannelHH id="c" conductance="10pS">
  <gateHHrates id="n" instances="1">
    <forwardRate type="myRate"/>
    <reverseRate type="HHExpRate" rate="0.125per_ms" midpoint="-65mV" scale="-80mV"/>
  </gateHHrates>
</ionChannelHH>
"""


def test_python_code_in_an_expression_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    path = write_nml(tmp_path, custom_rate(code))
    with pytest.raises(ExpressionError, match="myRate"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("exp(V / TIME_SCALE", ExpressionError, "unclosed '\\('"),
        ("foo(V) / TIME_SCALE", ExpressionError, "foo"),
        ("undefined_name / TIME_SCALE", ExpressionError, "undefined_name"),
        ("V", UnitError, "'r' of type 'myRate' is a none, expected a per_time"),
        ("exp(v) / TIME_SCALE", UnitError, "voltage"),
    ],
)
def test_bad_custom_expressions(tmp_path, value, error, message):
    path = write_nml(tmp_path, custom_rate(value))
    with pytest.raises(error, match=message) as info:
        load(path)
    assert "test.channel.nml" in str(info.value)


def test_external_entity_is_neither_expanded_nor_fetched(tmp_path):
    secret = write(tmp_path, "secret.txt", "TOP-SECRET")
    text = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE neuroml [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        '<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="x"><notes>&xxe;</notes>'
        + HH_K
        + "</neuroml>"
    )
    path = write(tmp_path, "xxe.nml", text)
    with pytest.raises(ParseError, match="entit") as info:
        load(path)
    assert "TOP-SECRET" not in str(info.value)


def test_billion_laughs_is_refused_quickly(tmp_path):
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{"&lol" + (str(i - 1) if i > 1 else "") + ";" * 1}' * 1 + '">' for i in range(1, 10)
    )
    text = f'<?xml version="1.0"?><!DOCTYPE neuroml [{entities}]><neuroml id="x"><notes>&lol9;</notes></neuroml>'
    path = write(tmp_path, "lol.nml", text)
    start = time.perf_counter()
    with pytest.raises(ParseError):
        load(path)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<neuroml><ionChannelHH id='a'></neuroml>", "not well-formed"),
        ("", "not well-formed"),
        ("<html/>", "root element is <html>"),
    ],
)
def test_malformed_documents(tmp_path, text, message):
    path = write(tmp_path, "bad.nml", text)
    with pytest.raises(ParseError, match=message) as info:
        load(path)
    assert "bad.nml" in str(info.value)


def test_malformed_xml_error_names_the_line(tmp_path):
    path = write(tmp_path, "bad.nml", neuroml("<ionChannelHH id='a'>\n<gateHHrates>\n</ionChannelHH>"))
    with pytest.raises(ParseError) as info:
        load(path)
    assert info.value.line is not None and info.value.line >= 3


def test_non_utf8_bytes_are_a_parse_error(tmp_path):
    path = tmp_path / "latin.nml"
    path.write_bytes(neuroml(HH_K).replace("species", "sp\xe9cies").encode("latin-1"))
    with pytest.raises(ParseError, match="not well-formed"):
        load(path)


def test_declared_latin1_encoding_is_read(tmp_path):
    text = neuroml(HH_K.replace("species", 'notes_caf\xe9="x" species')).replace("UTF-8", "ISO-8859-1")
    path = tmp_path / "latin.nml"
    path.write_bytes(text.encode("latin-1"))
    assert load(path).id == "k"


def test_file_too_large_is_refused_before_parsing(tmp_path, monkeypatch):
    import nml2lut.parse.xmlread as xmlread

    path = write_nml(tmp_path, HH_K)
    with pytest.raises(ParseError, match="larger than the limit"):
        xmlread.read_xml(path, max_bytes=100)


def test_deep_nesting_is_refused(tmp_path):
    body = "<notes>" * 5000 + "</notes>" * 5000
    path = write_nml(tmp_path, body)
    with pytest.raises(ParseError):
        load(path)


def test_missing_include(tmp_path):
    path = write_nml(tmp_path, '<include href="nowhere.nml"/>' + HH_K)
    with pytest.raises(IncludeError, match="nowhere.nml") as info:
        load(path)
    assert info.value.line == 3


def test_include_cycle(tmp_path):
    write_nml(tmp_path, '<include href="a.nml"/>', name="b.nml")
    path = write_nml(tmp_path, '<include href="b.nml"/>' + HH_K, name="a.nml")
    with pytest.raises(IncludeError, match="cycle: a.nml -> b.nml -> a.nml"):
        load(path)


def test_url_include_is_not_fetched(tmp_path):
    path = write_nml(tmp_path, '<include href="http://example.org/x.nml"/>' + HH_K)
    with pytest.raises(IncludeError, match="not fetched"):
        load(path)


def test_core_includes_are_satisfied_by_builtins(tmp_path):
    path = write_nml(tmp_path, '<include href="Cells.xml"/><include href="NeuroMLCoreDimensions.xml"/>' + HH_K)
    assert load(path).id == "k"


def test_channel_in_an_included_file_is_found(tmp_path):
    write_nml(tmp_path, HH_K, name="k.nml")
    path = write_nml(tmp_path, '<include href="k.nml"/>', name="top.nml")
    assert load(path, channel_id="k").model.source.endswith("k.nml")


@pytest.mark.parametrize(
    ("old", "new", "error", "message"),
    [
        ('midpoint="-55mV"', 'midpoint="-55"', UnitError, "no unit"),
        ('midpoint="-55mV"', 'midpoint="-55 parsecs"', UnitError, "unknown unit 'parsecs'"),
        ('midpoint="-55mV"', 'midpoint="-55ms"', UnitError, "expected a voltage"),
        ('midpoint="-55mV"', 'midpoint="NaN"', UnitError, "not a number"),
        ('rate="0.1per_ms"', 'rate="1e400per_ms"', UnitError, "not a finite"),
        ('midpoint="-55mV" ', "", ModelError, "parameter 'midpoint'"),
        ('type="HHExpLinearRate"', 'type="NoSuchRate"', ModelError, "unknown ComponentType 'NoSuchRate'"),
        ('type="HHExpLinearRate"', 'type="fixedTimeCourse"', ModelError, "not a baseVoltageDepRate"),
        ('instances="4"', 'instances="2.5"', ModelError, "whole number"),
        ('instances="4"', "", ModelError, "without instances"),
        ('<gateHHrates id="n"', '<gateHHrates', ModelError, "without an id"),
        ("<forwardRate", "<fooRate", UnsupportedError, "fooRate"),
        ('<gateHHrates id="n" instances="4">', '<gateKS id="n" instances="4">', UnsupportedError,
         "unknown transition type 'forwardRate'"),
        ('conductance="10pS"', 'conductance="10mV"', UnitError, "expected a conductance"),
    ],
)
def test_bad_channel_definitions(tmp_path, old, new, error, message):
    text = HH_K.replace(old, new)
    if "gateKS" in new:
        text = text.replace("</gateHHrates>", "</gateKS>")
    assert text != HH_K
    path = write_nml(tmp_path, text)
    with pytest.raises(error, match=message) as info:
        load(path)
    assert isinstance(info.value, Nml2LutError)
    assert "test.channel.nml" in str(info.value)


def test_gate_without_a_reverse_rate(tmp_path):
    path = write_nml(tmp_path, HH_K.replace('<reverseRate type="HHExpRate" rate="0.125per_ms" midpoint="-65mV" scale="-80mV"/>', ""))
    with pytest.raises(ModelError, match="needs a <reverseRate>"):
        load(path)


def test_duplicate_channel_ids(tmp_path):
    path = write_nml(tmp_path, HH_K + HH_K)
    with pytest.raises(ModelError, match="duplicate channel id"):
        load(path)


def test_duplicate_gate_ids(tmp_path):
    gate = HH_K[HH_K.index("<gateHHrates"): HH_K.index("</ionChannelHH>")]
    path = write_nml(tmp_path, HH_K.replace("</ionChannelHH>", gate + "</ionChannelHH>"))
    with pytest.raises(ModelError, match="duplicate gate id 'n'"):
        load(path)


def test_channel_choice_errors_list_the_ids(tmp_path):
    path = write_nml(tmp_path, HH_K + HH_K.replace('id="k"', 'id="k2"'))
    with pytest.raises(ChannelNotFoundError, match="k, k2"):
        load(path)
    with pytest.raises(ChannelNotFoundError, match="no channel 'na'.*k, k2"):
        load(path, channel_id="na")
    assert load(path, channel_id="k2").id == "k2"


def test_q10_channel_needs_a_temperature(tmp_path):
    text = HH_K.replace('<gateHHrates id="n" instances="4">',
                        '<gateHHrates id="n" instances="4"><q10Settings type="q10Fixed" fixedQ10="3"/>')
    # q10Fixed does not depend on temperature: loads without one.
    assert load(write_nml(tmp_path, text)).id == "k"
    text = text.replace('type="q10Fixed" fixedQ10="3"', 'type="q10ExpTemp" q10Factor="3" experimentalTemp="6.3degC"')
    path = write_nml(tmp_path, text)
    with pytest.raises(ModelError, match="temperature"):
        load(path)
    with pytest.raises(UnitError, match="temperature"):
        load(path, temperature=34)
    assert load(path, temperature="34degC").temperature == pytest.approx(307.15)


def test_circular_derived_variables(tmp_path):
    extra = ""
    text = custom_rate("V2 / TIME_SCALE", extra).replace(
        '<DerivedVariable name="V" dimension="none" value="v / VOLT_SCALE"/>',
        '<DerivedVariable name="V" dimension="none" value="V2"/><DerivedVariable name="V2" dimension="none" value="V"/>',
    )
    path = write_nml(tmp_path, text)
    with pytest.raises(ModelError, match="circular"):
        load(path)


def test_state_variable_in_a_rate_is_unsupported(tmp_path):
    text = custom_rate("1 / TIME_SCALE").replace(
        "<Dynamics>", '<Dynamics><StateVariable name="s" dimension="none"/>'
    )
    with pytest.raises(UnsupportedError, match="StateVariable"):
        load(write_nml(tmp_path, text))


def test_unknown_requirement_is_unsupported(tmp_path):
    text = custom_rate("foo / TIME_SCALE", '<Requirement name="foo" dimension="none"/>')
    with pytest.raises(UnsupportedError, match="requirement foo"):
        load(write_nml(tmp_path, text))


def test_negative_tau_is_a_table_error(tmp_path):
    from nml2lut import TableError

    body = """
<ionChannelHH id="c" conductance="10pS">
  <gateHHtauInf id="n" instances="1">
    <timeCourse type="fixedTimeCourse" tau="-1ms"/>
    <steadyState type="HHSigmoidVariable" rate="1" midpoint="-50mV" scale="5mV"/>
  </gateHHtauInf>
</ionChannelHH>"""
    with pytest.raises(TableError, match="tau must be positive"):
        load_channel(write_nml(tmp_path, body))
    with pytest.raises(TableError, match="tau must be positive"):
        load_channel(write_nml(tmp_path, body.replace("-1ms", "0ms")))


def test_zero_scale_is_a_table_error(tmp_path):
    from nml2lut import TableError

    path = write_nml(tmp_path, HH_K.replace('scale="-80mV"', 'scale="0mV"'))
    with pytest.raises(TableError, match="not finite|positive"):
        load_channel(path)
