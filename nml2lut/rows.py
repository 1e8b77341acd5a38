"""rows: the tables of several lookup functions on one grid, read from one array in C++.

Each 1-D lookup function (`nml2lut.lookup`) has its own array: grid point
``i`` of column ``k`` at ``2*(i*n_columns + k)``.  A cell of seven channels
on one grid (`nml2lut.share_grid`) then reads seven arrays per neuron and
step: seven base pointers competing for registers in Brian2's loop, and
seven places in memory.  `share_rows` gives the functions one array instead,
row ``i`` holding point ``i`` of every function's columns, those the loop
reads first, so the compiled loop computes one row address per neuron and
step and reads every value near it.  Measured on model (b) of ``benchmarks/`` (10,000 cells,
8 channels, 1 s, ``cpp_standalone``, Brian2's profiling, 3 alternating runs):
state update 7.3-7.4 s with one array per channel, 5.7-5.8 s with one array
for the cell.

Only the C++ implementation (``cpp_standalone``) changes: the functions'
generated code reads the shared array at their columns' places in each row; the
array belongs to one more Brian2 `Function`, made here and never called,
that every member names as a dependency, so that Brian2 declares and loads
it once per code object.  Cython and numpy keep each function's own table.
A function with gate steps (`nml2lut.lookup.LookupFunction`) gets its step
columns for the dt of the code that reads it, as on its own: the shared
array is made per dt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import brian2
import numpy as np

from .errors import TableError
from .lookup import (
    _CPP,
    _RESERVED_PREFIX,
    LookupFunction,
    LookupTable,
    _digest,
    _owner_dt,
    _render,
    make_lookup_function,
    table_for,
)

__all__ = ["share_rows"]


class _SharedRows:
    """One array for the tables of `functions` (all on one grid), per dt."""

    def __init__(self, functions: Sequence[LookupFunction]) -> None:
        self.functions = list(functions)
        digest = hashlib.sha256(" ".join(map(_name, self.functions)).encode()).hexdigest()[:10]
        self.name = f"{_RESERVED_PREFIX}rows_{digest}"
        self._arrays: dict[str, tuple[np.ndarray, list[list[int]]]] = {}
        self.holder = self._holder()

    def key(self, owner) -> str:
        """The array's name in the generated code: one per dt when a member has gate steps."""
        dt = _owner_dt(owner)
        if dt is None or not any(f.steps for f in self.functions):
            return f"{self.name}_values"
        return f"{self.name}_values_dt{_digest(dt)}"

    def layout(self, owner) -> tuple[np.ndarray, list[list[int]]]:
        """The shared array for `owner` and, per function and column, the place of its value in a row.

        A row holds (value, slope) pairs: first the columns a loop integrated
        by `nml2lut.METHOD` reads (gate steps, instantaneous curves), then the
        inf and tau columns that the gate steps replace, which only other
        integrators and ``init`` read: the hot part of a row is short.
        """
        key = self.key(owner)
        if key not in self._arrays:
            tables = [table_for(f, owner) for f in self.functions]
            columns = [(j, k) for j, t in enumerate(tables) for k in range(t.n_columns)]
            # stable: the read columns keep their order, the replaced ones follow
            order = sorted(columns, key=lambda jk: _replaced(self.functions[jk[0]], tables[jk[0]], jk[1]))
            places = [[0] * t.n_columns for t in tables]
            for place, (j, k) in enumerate(order):
                places[j][k] = 2 * place
            pairs = [np.stack([tables[j].values[:, k], tables[j].slopes[:, k]], axis=-1) for j, k in order]
            self._arrays[key] = (np.ascontiguousarray(np.hstack(pairs)).reshape(-1), places)
        return self._arrays[key]

    def row(self, owner) -> int:
        array, _ = self.layout(owner)
        return array.size // self.functions[0].table.n_points

    def _holder(self) -> brian2.Function:
        """The Function that carries the array (see the module docstring); calling it is an error."""

        def pyfunc():
            raise TableError(
                f"{self.name} holds the tables of {len(self.functions)} lookup functions; it is not called"
            )

        pyfunc.__name__ = self.name
        holder = brian2.Function(pyfunc, arg_units=[], return_unit=1, return_type="float", stateless=True)
        members = ", ".join(map(_name, self.functions))
        holder.implementations.add_dynamic_implementation(
            "cpp",
            code=lambda owner: f"// {self.name}: the tables of {members}, one row per grid point\n",
            namespace=lambda owner: {self.key(owner): self.layout(owner)[0]},
            name=self.name,
        )
        return holder

    def member(self, k: int) -> LookupFunction:
        """A copy of function `k` (same name, table and steps) whose C++ code reads the shared array."""
        original = self.functions[k]
        name = _name(original)
        function = make_lookup_function(original.table, name, steps=original.steps)

        def code(owner) -> str:
            places = self.layout(owner)[1][k]
            return _render(_CPP, table_for(function, owner), name, self.key(owner), row=self.row(owner), places=places)

        function.implementations.add_dynamic_implementation(
            "cpp", code=code, namespace=lambda owner: {}, dependencies={self.name: self.holder}, name=name
        )
        return function


def _name(function: LookupFunction) -> str:
    return function.pyfunc.__name__


def _replaced(function: LookupFunction, table: LookupTable, k: int) -> bool:
    """Whether column `k` of `table` is the inf or tau of a gate whose step columns `table` also holds."""
    has_steps = table.n_columns > function.table.n_columns
    return has_steps and any(k in pair for pair in function.steps)


def share_rows(functions: Sequence[LookupFunction]) -> list[LookupFunction]:
    """Copies of `functions` whose compiled C++ code reads all their tables from one array, a row per grid point.

    Parameters
    ----------
    functions : sequence of LookupFunction
        1-D lookup functions on the same grid (as `nml2lut.share_grid` leaves
        the channels of a cell), with distinct names.

    Returns
    -------
    list of LookupFunction
        In the same order, each with the name, table and gate steps of the
        original; use them in place of the originals (in one group, not beside
        them).  The originals are not changed.

    Raises
    ------
    TableError
        A function is not a 1-D `LookupFunction`, two have the same name, or
        their grids differ.
    """
    functions = list(functions)
    for f in functions:
        if not isinstance(f, LookupFunction):
            raise TableError(f"share_rows needs 1-D lookup functions, got {type(f).__name__}")
    names = [_name(f) for f in functions]
    if len(set(names)) != len(names):
        raise TableError(f"share_rows: a function is given twice ({', '.join(sorted(names))})")
    grids = {(f.table.x_min, f.table.x_max, f.table.n_points) for f in functions}
    if len(grids) > 1:
        raise TableError(f"share_rows: the functions {', '.join(names)} are not on one grid: {sorted(grids)}")
    shared = _SharedRows(functions)
    return [shared.member(k) for k in range(len(functions))]
