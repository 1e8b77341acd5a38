"""Converted channels on disk: load_tables gives what load_channel gave, and refuses damaged or hostile files."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nml2lut
from nml2lut import expr
from nml2lut.store import (
    StoreError,
    decode,
    dump_channel,
    dumps,
    encode,
    load_tables,
    npz_bytes,
    read_metadata,
    save_channel,
)
from tests.helpers import HH_K, write_nml

EXAMPLES = Path(__file__).resolve().parents[1] / "example_channels"
V = np.linspace(-0.12, 0.08, 2001)  # beyond the table range too: the clamping must survive


def _all_example_channels():
    for path in sorted(EXAMPLES.glob("*.nml")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield from nml2lut.load_channels(path, temperature="6.3degC")


@pytest.fixture(scope="module")
def examples():
    return list(_all_example_channels())


def _assert_same(a, b):
    assert a.id == b.id and a.name == b.name and a.mode == b.mode
    assert a.model == b.model
    assert str(a.equations) == str(b.equations)
    assert sorted(a.namespace) == sorted(b.namespace)
    assert a.code.initial == b.code.initial
    assert a.grid == b.grid and a.max_error == b.max_error and a.errors == b.errors
    if a.tables is not None:
        assert a.tables.names == b.tables.names and a.tables.breakpoints == b.tables.breakpoints
        assert np.array_equal(a.tables.values, b.tables.values) and np.array_equal(a.tables.slopes, b.tables.slopes)
    ca, cb = a.curves(V), b.curves(V)
    assert ca.keys() == cb.keys()
    for gate in ca:
        assert ca[gate].keys() == cb[gate].keys()
        for quantity in ca[gate]:
            assert np.array_equal(ca[gate][quantity], cb[gate][quantity]), (a.id, gate, quantity)


def test_every_example_channel_round_trips(examples, tmp_path):
    assert len(examples) >= 10
    for channel in examples:
        path = save_channel(channel, tmp_path / channel.id)
        assert path == tmp_path / f"{channel.id}.json" and (tmp_path / f"{channel.id}.npz").is_file()
        _assert_same(channel, load_tables(path))
        _assert_same(channel, load_tables(tmp_path / f"{channel.id}.npz"))  # either file names the pair


def test_loaded_tables_simulate_like_the_original(examples, tmp_path):
    from brian2 import Equations, NeuronGroup, ms, mV, run, start_scope

    na = next(c for c in examples if c.id == "hh_na")
    back = load_tables(save_channel(na, tmp_path / "na"), name="Na")
    assert "I_Na" in str(back.equations)
    traces = []
    for channel in (nml2lut.load_channel(EXAMPLES / "hh_na.channel.nml", name="Na", temperature="6.3degC"), back):
        start_scope()
        equations = Equations("dv/dt = -I_Na/(1*ufarad/cm**2) : volt") + channel.equations
        group = NeuronGroup(3, equations, namespace=channel.namespace, method="exponential_euler")
        group.v = [-70, -50, -30] * mV
        group.g_Na, group.E_Na = "120*msiemens/cm**2", 50 * mV
        channel.init(group)
        run(1 * ms)
        traces.append(np.asarray(group.v[:]))
    assert np.array_equal(traces[0], traces[1])


def test_name_is_kept_or_replaced(examples, tmp_path):
    channel = nml2lut.load_channel(EXAMPLES / "hh_k.channel.nml", name="K", temperature="6.3degC")
    path = save_channel(channel, tmp_path / "k")
    assert load_tables(path).name == "K"
    renamed = load_tables(path, name="Kdr")
    assert renamed.name == "Kdr" and "I_Kdr" in str(renamed.equations)


def test_bytes_are_deterministic(examples):
    channel = examples[0]
    assert dump_channel(channel, "x") == dump_channel(channel, "x")


def test_expression_trees_are_nested_lists(examples):
    data = json.loads(dump_channel(next(c for c in examples if c.id == "hh_na"), "na")[1])
    gate = data["model"]["gates"][0]
    assert gate["$type"] == "Gate"
    assert gate["inf"] == ["Binary", "/", ["Sym", "alpha"], ["Binary", "+", ["Sym", "alpha"], ["Sym", "beta"]]]


def test_encode_decode_generic_values():
    tree = expr.parse("a .gt. 1 .and. exp(-v) < 2")
    cond = expr.Cond(((expr.Sym("x"), expr.Num(1.0)),), None)
    for value in (tree, cond, {"a": (1, 2.5)}, [1, "x"], frozenset({1, 2}), float("nan"), float("-inf"), None):
        back = decode(encode(value))
        if isinstance(value, float) and np.isnan(value):
            assert np.isnan(back)
        else:
            assert back == value
    with pytest.raises(StoreError, match="cannot store a value of type object"):
        encode(object())
    with pytest.raises(StoreError, match="not a storable nml2lut class"):
        from dataclasses import make_dataclass

        encode(make_dataclass("Stranger", [("x", int)])(1))


def test_dumps_is_strict_json():
    assert json.loads(dumps({"b": [1, ["Num", 2.0]], "a": {"c": None}})) == {"a": {"c": None}, "b": [1, ["Num", 2.0]]}
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


def test_exact_mode_is_not_stored(tmp_path):
    channel = nml2lut.load_channel(write_nml(tmp_path, HH_K), mode="exact")
    with pytest.raises(StoreError, match="only lut-mode channels"):
        dump_channel(channel, "k")


# ---------------------------------------------------------------- damaged and hostile files
@pytest.fixture
def stored(tmp_path):
    channel = nml2lut.load_channel(write_nml(tmp_path, HH_K))
    return save_channel(channel, tmp_path / "out" / "k")


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _gate(data):
    return data["model"]["gates"][0]


HOSTILE_EDITS = {
    "unknown type": (lambda d: _gate(d).update({"$type": "Popen"}), "unknown type 'Popen'"),
    "unknown field": (lambda d: _gate(d).update(shell="rm -rf /"), "Gate has no field 'shell'"),
    "wrong field type": (lambda d: _gate(d).update(instances="4"), "expected int, found str"),
    "bad gate kind": (lambda d: _gate(d).update(kind="exec"), "unknown kind 'exec'"),
    "node where none fits": (lambda d: _gate(d).update(inf={"$type": "Channel"}), "expected"),
    "unknown node type": (lambda d: _gate(d).update(inf=["Lambda", "x"]), "expected an expression node"),
    "unknown function": (
        lambda d: _gate(d).update(inf=["Call", "system", [["Sym", "v"]]]),
        "unknown function 'system'",
    ),
    "invalid symbol name": (lambda d: _gate(d).update(inf=["Sym", "v); import os"]), "invalid symbol name"),
    "bad operator": (
        lambda d: _gate(d).update(inf=["Binary", "**", ["Num", 1.0], ["Num", 2.0]]),
        "unknown binary operator",
    ),
    "wrong node arity": (lambda d: _gate(d).update(inf=["Binary", "+", ["Num", 1.0]]), "has 3 fields, found 2"),
    "format": (lambda d: d.update(format="pickle"), "not an nml2lut channel file"),
    "format version": (lambda d: d.update(format_version=99), "format version 99"),
    "path in tables_file": (lambda d: d.update(tables_file="../../etc/passwd.npz"), "bad tables_file"),
    "checksum": (lambda d: d.update(tables_sha256="0" * 64), "checksum differs"),
    "unknown LoadedChannel field": (lambda d: d.update(loaded={"exec": 1}), "fields this nml2lut does not know"),
    "missing array": (lambda d: d["tables"].update(values={"$npz": "nothing"}), "missing from the .npz"),
    "grid too short": (lambda d: d["tables"]["grid"].update(n=3), "has shape"),
    "duplicate curve names": (lambda d: d["tables"].update(names=["n/inf", "n/inf"]), "duplicate curve names"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_EDITS))
def test_hostile_json_is_refused(stored, case):
    change, message = HOSTILE_EDITS[case]
    _edit(stored, change)
    with pytest.raises(StoreError, match=message):
        load_tables(stored)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"format": NaN}', "non-standard JSON constant NaN"),
        ('{"a": 1, "a": 2}', "duplicate JSON key 'a'"),
        ("[1, 2]", "expected a JSON object"),
        ("{" * 100_000, "not valid JSON"),
        ("\udcff", "not a readable JSON file"),
    ],
)
def test_malformed_json_is_refused(stored, text, message):
    stored.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(StoreError, match=message):
        load_tables(stored)


def test_deeply_nested_model_is_refused(stored):
    deep = ["Num", 1.0]
    for _ in range(2000):
        deep = ["Unary", "-", deep]
    _edit(stored, lambda d: _gate(d).update(inf=deep))
    with pytest.raises(StoreError, match="nested too deeply|deeper than"):
        load_tables(stored)


def _rewrite_npz(stored: Path, arrays: dict) -> None:
    data = npz_bytes(arrays)
    stored.with_suffix(".npz").write_bytes(data)
    import hashlib

    _edit(stored, lambda d: d.update(tables_sha256=hashlib.sha256(data).hexdigest()))


def test_npz_with_wrong_values_is_refused(stored):
    import numpy as np

    tables = load_tables(stored).tables
    _rewrite_npz(stored, {"values": tables.values * np.nan, "slopes": tables.slopes})
    with pytest.raises(StoreError, match="values holds NaN"):
        load_tables(stored)
    _rewrite_npz(stored, {"values": tables.values.astype(np.float32), "slopes": tables.slopes})
    with pytest.raises(StoreError, match="float64"):
        load_tables(stored)


def test_npz_with_objects_or_junk_is_refused(stored):
    import hashlib
    import io

    buffer = io.BytesIO()
    np.savez(buffer, values=np.array([object()], dtype=object))
    for data, message in (
        (buffer.getvalue(), "pickle|not numeric|not a readable"),
        (b"PK\x03\x04junk", "not a readable .npz"),
    ):
        stored.with_suffix(".npz").write_bytes(data)
        _edit(stored, lambda d, data=data: d.update(tables_sha256=hashlib.sha256(data).hexdigest()))
        with pytest.raises(StoreError, match=message):
            load_tables(stored)


def test_npz_bomb_is_refused(stored, monkeypatch):
    import nml2lut.store as store

    monkeypatch.setattr(store, "MAX_NPZ_BYTES", 1000)
    with pytest.raises(StoreError, match="larger than 1000"):
        load_tables(stored)


def test_missing_files_are_store_errors(stored):
    stored.with_suffix(".npz").unlink()
    with pytest.raises(StoreError, match="cannot read the tables"):
        load_tables(stored)
    stored.unlink()
    with pytest.raises(StoreError, match="not a readable JSON file"):
        read_metadata(stored)


def test_npz_members_have_no_timestamp(stored):
    with zipfile.ZipFile(stored.with_suffix(".npz")) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
