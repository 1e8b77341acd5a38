"""steady: steady states and one-step transition matrices of kinetic schemes, as functions of voltage.

``.init(group)`` starts every gate at its steady state for the group's ``v``.
For a kinetic scheme that is the null vector of its rate matrix, which has no
closed form in general: it is computed here numerically on the table grid and
tabulated like any other curve (in ``exact`` mode too, where it serves only
the initial values).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import expr
from .errors import TableError
from .model import Gate

__all__ = ["occupancy_curves", "transition_curves"]


def _memoised(compute: Callable[[np.ndarray], np.ndarray], size: int = 8) -> Callable[[np.ndarray], np.ndarray]:
    """``compute`` on flattened voltages, remembering the last few results.

    Every column of a scheme comes from one matrix computation; the table
    builder asks for the columns one by one at the same voltages.
    """
    cache: dict[bytes, np.ndarray] = {}

    def cached(v: np.ndarray) -> np.ndarray:
        flat = np.atleast_1d(np.asarray(v, dtype=float)).ravel()
        key = flat.tobytes()
        if key not in cache:
            if len(cache) >= size:
                cache.pop(next(iter(cache)))
            cache[key] = compute(flat)
        return cache[key]

    return cached


def _steady_state(gate: Gate, v: np.ndarray) -> np.ndarray:
    """Occupancies (len(v), n_states) with p Q = 0 and sum(p) = 1."""
    n = len(gate.states)
    q = _rate_matrix(gate, v)
    system = np.transpose(q, (0, 2, 1)).copy()
    system[:, -1, :] = 1.0  # replace one balance equation by the normalisation
    rhs = np.zeros((v.size, n, 1))
    rhs[:, -1, 0] = 1.0
    try:
        occupancy = np.linalg.solve(system, rhs)[..., 0]
    except np.linalg.LinAlgError as err:
        raise TableError(f"{gate.element}: gateKS {gate.id!r} has no unique steady state ({err})") from err
    return np.clip(occupancy, 0.0, 1.0)


def occupancy_curves(gate: Gate) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """``{"<state>/inf": f(v)}`` for every state of a kinetic gate (one solve per distinct v)."""
    solved = _memoised(lambda v: _steady_state(gate, v))

    def column(k: int) -> Callable[[np.ndarray], np.ndarray]:
        return lambda v: solved(v)[:, k].reshape(np.shape(v))

    return {f"{st.id}/inf": column(k) for k, st in enumerate(gate.states)}


def _expm(m: np.ndarray) -> np.ndarray:
    """exp of a stack of square matrices: scaling and squaring with a degree-12 Taylor series."""
    norm = np.max(np.sum(np.abs(m), axis=-1), axis=-1)
    squarings = int(max(0, np.ceil(np.log2(max(float(np.max(norm)), 1e-300) / 0.25))))
    a = m / 2.0**squarings
    result = np.broadcast_to(np.eye(m.shape[-1]), m.shape).copy()
    term = result.copy()
    for k in range(1, 13):
        term = term @ a / k
        result += term
    for _ in range(squarings):
        result = result @ result
    return result


def _rate_matrix(gate: Gate, v: np.ndarray) -> np.ndarray:
    index = {st.id: k for k, st in enumerate(gate.states)}
    n = len(gate.states)
    q = np.zeros((v.size, n, n))
    with np.errstate(all="ignore"):
        for t in gate.transitions:
            a, b = index[t.source], index[t.target]
            rf = np.broadcast_to(expr.evaluate(t.rf, {"v": v}), v.shape)
            rr = np.broadcast_to(expr.evaluate(t.rr, {"v": v}), v.shape)
            q[:, a, b] += rf
            q[:, a, a] -= rf
            q[:, b, a] += rr
            q[:, b, b] -= rr
    if not np.all(np.isfinite(q)):
        raise TableError(f"{gate.element}: a transition rate of gateKS {gate.id!r} is not finite")
    return q


def transition_curves(gate: Gate, dt: float) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """``{"P/<i>/<j>": f(v)}``: the probability of moving from state i to j in one step ``dt``.

    ``P(v) = expm(Q(v) dt)`` is the exact update of the occupancies when v is
    constant over the step, whatever the stiffness of the scheme; its rows are
    probability vectors, and so are their linear interpolations, so the
    tabulated update keeps occupancies in [0, 1] summing to 1.
    """
    n = len(gate.states)

    def step(v: np.ndarray) -> np.ndarray:
        p = np.clip(_expm(_rate_matrix(gate, v) * dt), 0.0, 1.0)
        return p / p.sum(axis=-1, keepdims=True)

    solved = _memoised(step)

    def entry(i: int, j: int) -> Callable[[np.ndarray], np.ndarray]:
        return lambda v: solved(v)[:, i, j].reshape(np.shape(v))

    return {f"P/{i}/{j}": entry(i, j) for i in range(n) for j in range(n)}
