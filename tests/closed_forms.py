"""closed_forms: an independent oracle for the channels in ``example_channels/``.

Every gate of every example channel is written here again, by hand, from the
published equations of its source paper -- in the paper's own units (mV, ms)
and, for Hodgkin & Huxley, in the paper's own sign convention -- and never by
reading the XML. A converter that reads the NeuroML files and agrees with these
functions has therefore read the files the way the papers meant them; the two
share no code, so they cannot share a mistake.

Layout
------
``CLOSED_FORMS[filename][channel_id][gate_id]`` is a callable
``(v_volts: np.ndarray, temperature_kelvin: float) -> dict``. The dict holds
``"inf"`` (dimensionless) and, except for instantaneous gates, ``"tau"`` in
seconds, both with the shape of ``v_volts``. The subgates of a fractional gate
are keyed ``"gate/subgate"``. A channel with no gates maps to an empty dict.

``tau`` includes the temperature scaling of the NeuroML file: it is the
unscaled time constant divided by the product of the gate's q10 factors, where
a ``q10ExpTemp`` factor is ``q10Factor ** ((T - T_exp) / 10 K)`` and a
``q10Fixed`` factor is constant. ``inf`` never depends on temperature.

``CONDUCTANCE_SCALING[filename][channel_id]`` is a callable
``(temperature_kelvin) -> float`` giving the channel's conductance factor
(the product of its ``q10ConductanceScaling`` factors, 1 when it has none).

``CHANNELS[filename][channel_id]`` is a `ChannelFacts`: conductance in S,
species, gate instances and, for fractional gates, the subgate fractions.

The forms ``w / (exp(w) - 1)`` and ``w / (1 - exp(-w))`` are evaluated through
`exprel`, which is accurate at and next to ``w = 0``.

Examples
--------
>>> import numpy as np
>>> gate = CLOSED_FORMS["hh_k.channel.nml"]["hh_k"]["n"]
>>> out = gate(np.array([-0.065]), 279.45)
>>> round(float(out["inf"][0]), 4)
0.3177
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CHANNELS",
    "CLOSED_FORMS",
    "CONDUCTANCE_SCALING",
    "ChannelFacts",
    "GateForm",
    "ZERO_CELSIUS",
    "exprel",
    "q10_exp_temp",
]

ZERO_CELSIUS = 273.15  # K

GateForm = Callable[[np.ndarray, float], dict[str, np.ndarray]]


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def exprel(z: np.ndarray) -> np.ndarray:
    """``(exp(z) - 1) / z``, equal to 1 at ``z = 0`` and accurate near it.

    ``w / (exp(w) - 1) == 1 / exprel(w)`` and
    ``w / (1 - exp(-w)) == 1 / exprel(-w)``.
    """
    z = np.asarray(z, dtype=float)
    small = np.abs(z) < 1e-8
    safe = np.where(small, 1.0, z)
    with np.errstate(over="ignore"):
        # Second-order Taylor series where z is tiny; expm1 is exact elsewhere.
        return np.where(small, 1.0 + z / 2.0 + z * z / 6.0, np.expm1(safe) / safe)


def q10_exp_temp(q10_factor: float, experimental_celsius: float, temperature_kelvin: float) -> float:
    """The q10ExpTemp factor ``q10_factor ** ((T - T_exp) / 10 K)``."""
    return q10_factor ** ((temperature_kelvin - (experimental_celsius + ZERO_CELSIUS)) / 10.0)


def _mv(v_volts: np.ndarray) -> np.ndarray:
    return np.asarray(v_volts, dtype=float) * 1e3


def _result(v_mv: np.ndarray, inf: np.ndarray, tau_ms: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Package a gate's values in SI, broadcast to the shape of the voltages."""
    out = {"inf": np.broadcast_to(np.asarray(inf, dtype=float), v_mv.shape).copy()}
    if tau_ms is not None:
        tau_s = np.asarray(tau_ms, dtype=float) * 1e-3
        out["tau"] = np.broadcast_to(tau_s, v_mv.shape).copy()
    return out


def _from_rates(v_mv: np.ndarray, alpha: np.ndarray, beta: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """inf and tau of a two-state gate with rates in 1/ms, tau divided by ``scale``."""
    total = alpha + beta
    return _result(v_mv, alpha / total, 1.0 / (total * scale))


@dataclass(frozen=True)
class ChannelFacts:
    """What the paper says about a channel besides its gates' kinetics.

    ``conductance`` is in siemens; ``instances`` maps gate id to exponent;
    ``fractions`` maps ``"gate/subgate"`` to fractional conductance.
    """

    conductance: float
    species: str | None
    instances: Mapping[str, int]
    fractions: Mapping[str, float] = field(default_factory=dict)


def _unity(temperature_kelvin: float) -> float:
    return 1.0


# --------------------------------------------------------------------------
# Hodgkin & Huxley (1952), J Physiol 117:500-544. Squid axon, 6.3 degC.
# Written in HH's own convention: u is the displacement from rest with
# depolarisation negative, u = -(V + 65 mV). Rates in 1/ms (eqs 12, 13, 20,
# 21, 23, 24 of the paper).
# --------------------------------------------------------------------------

HH_Q10 = 3.0
HH_TEMP_C = 6.3


def _hh_u(v_mv: np.ndarray) -> np.ndarray:
    return -(v_mv + 65.0)


def hh_alpha_m(v_mv: np.ndarray) -> np.ndarray:
    """alpha_m = 0.1 (u + 25) / (exp((u + 25)/10) - 1)."""
    w = (_hh_u(v_mv) + 25.0) / 10.0
    return 0.1 * 10.0 / exprel(w)


def hh_beta_m(v_mv: np.ndarray) -> np.ndarray:
    """beta_m = 4 exp(u/18)."""
    return 4.0 * np.exp(_hh_u(v_mv) / 18.0)


def hh_alpha_h(v_mv: np.ndarray) -> np.ndarray:
    """alpha_h = 0.07 exp(u/20)."""
    return 0.07 * np.exp(_hh_u(v_mv) / 20.0)


def hh_beta_h(v_mv: np.ndarray) -> np.ndarray:
    """beta_h = 1 / (exp((u + 30)/10) + 1)."""
    return 1.0 / (np.exp((_hh_u(v_mv) + 30.0) / 10.0) + 1.0)


def hh_alpha_n(v_mv: np.ndarray) -> np.ndarray:
    """alpha_n = 0.01 (u + 10) / (exp((u + 10)/10) - 1)."""
    w = (_hh_u(v_mv) + 10.0) / 10.0
    return 0.01 * 10.0 / exprel(w)


def hh_beta_n(v_mv: np.ndarray) -> np.ndarray:
    """beta_n = 0.125 exp(u/80)."""
    return 0.125 * np.exp(_hh_u(v_mv) / 80.0)


def _hh_gate(alpha: Callable, beta: Callable) -> GateForm:
    def gate(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
        v = _mv(v_volts)
        phi = q10_exp_temp(HH_Q10, HH_TEMP_C, temperature_kelvin)
        return _from_rates(v, alpha(v), beta(v), phi)

    return gate


# --------------------------------------------------------------------------
# Wang & Buzsaki (1996), J Neurosci 16:6402-6413. V in mV, rates in 1/ms.
# phi = 5 multiplies the h and n rates; m is instantaneous.
# --------------------------------------------------------------------------

WB_PHI = 5.0


def wb_alpha_m(v_mv: np.ndarray) -> np.ndarray:
    """alpha_m = -0.1 (V + 35) / (exp(-0.1 (V + 35)) - 1)."""
    w = -0.1 * (v_mv + 35.0)
    return 1.0 / exprel(w)


def wb_beta_m(v_mv: np.ndarray) -> np.ndarray:
    """beta_m = 4 exp(-(V + 60)/18)."""
    return 4.0 * np.exp(-(v_mv + 60.0) / 18.0)


def wb_alpha_h(v_mv: np.ndarray) -> np.ndarray:
    """alpha_h = 0.07 exp(-(V + 58)/20)."""
    return 0.07 * np.exp(-(v_mv + 58.0) / 20.0)


def wb_beta_h(v_mv: np.ndarray) -> np.ndarray:
    """beta_h = 1 / (exp(-0.1 (V + 28)) + 1)."""
    return 1.0 / (np.exp(-0.1 * (v_mv + 28.0)) + 1.0)


def wb_alpha_n(v_mv: np.ndarray) -> np.ndarray:
    """alpha_n = -0.01 (V + 34) / (exp(-0.1 (V + 34)) - 1)."""
    w = -0.1 * (v_mv + 34.0)
    return 0.1 / exprel(w)


def wb_beta_n(v_mv: np.ndarray) -> np.ndarray:
    """beta_n = 0.125 exp(-(V + 44)/80)."""
    return 0.125 * np.exp(-(v_mv + 44.0) / 80.0)


def wb_na_m(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    """m_inf = alpha_m / (alpha_m + beta_m); instantaneous, so no tau."""
    v = _mv(v_volts)
    alpha, beta = wb_alpha_m(v), wb_beta_m(v)
    return _result(v, alpha / (alpha + beta))


def wb_na_h(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    v = _mv(v_volts)
    return _from_rates(v, wb_alpha_h(v), wb_beta_h(v), WB_PHI)


def wb_k_n(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    v = _mv(v_volts)
    return _from_rates(v, wb_alpha_n(v), wb_beta_n(v), WB_PHI)


# --------------------------------------------------------------------------
# Traub & Miles (1991) delayed rectifier as in Brette et al. (2007),
# J Comput Neurosci 23:349-398, benchmark 3. V in mV, rates in 1/ms.
# --------------------------------------------------------------------------

TM_VT = -63.0  # mV
TM_FLOOR_MS = 0.5  # test variant only, not in the paper
TM_FLOOR_Q10 = 3.0  # test variant only
TM_FLOOR_TEMP_C = 36.0  # test variant only


def tm_alpha_n(v_mv: np.ndarray) -> np.ndarray:
    """alpha_n = 0.032 (15 - V + VT) / (exp((15 - V + VT)/5) - 1)."""
    w = (15.0 - v_mv + TM_VT) / 5.0
    return 0.032 * 5.0 / exprel(w)


def tm_beta_n(v_mv: np.ndarray) -> np.ndarray:
    """beta_n = 0.5 exp((10 - V + VT)/40)."""
    return 0.5 * np.exp((10.0 - v_mv + TM_VT) / 40.0)


def custom_kdr_n(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    v = _mv(v_volts)
    return _from_rates(v, tm_alpha_n(v), tm_beta_n(v), 1.0)


def custom_kdr_floor_n(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    """inf from the rates; tau = max(1/(alpha + beta), 0.5 ms) / q10."""
    v = _mv(v_volts)
    alpha, beta = tm_alpha_n(v), tm_beta_n(v)
    tau_unscaled = np.maximum(1.0 / (alpha + beta), TM_FLOOR_MS)
    q10 = q10_exp_temp(TM_FLOOR_Q10, TM_FLOOR_TEMP_C, temperature_kelvin)
    return _result(v, alpha / (alpha + beta), tau_unscaled / q10)


# --------------------------------------------------------------------------
# Huguenard & McCormick (1992), J Neurophysiol 68:1373-1383, I_A.
# V in mV, tau in ms, valid at 23 degC, temperature factor 2.8 per 10 K.
# --------------------------------------------------------------------------

HM_Q10 = 2.8
HM_TEMP_C = 23.0
HM_H1_FIXED_Q10 = 3.0  # test variant: q10_ka's h gate uses a fixed factor
HM_CONDUCTANCE_Q10 = 1.5  # test variant: q10_ka's conductance scaling


def hm_m1_inf(v_mv: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(v_mv + 60.0) / 8.5))


def hm_m2_inf(v_mv: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(v_mv + 36.0) / 20.0))


def hm_tau_m(v_mv: np.ndarray) -> np.ndarray:
    return 0.37 + 1.0 / (np.exp((v_mv + 35.8) / 19.7) + np.exp(-(v_mv + 79.7) / 12.7))


def hm_h_inf(v_mv: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp((v_mv + 78.0) / 6.0))


def hm_tau_h(v_mv: np.ndarray, switch_mv: float, plateau_ms: float) -> np.ndarray:
    """The exponential form below ``switch_mv``, ``plateau_ms`` at and above it."""
    below = 1.0 / (np.exp((v_mv + 46.0) / 5.0) + np.exp(-(v_mv + 238.0) / 37.5))
    return np.where(v_mv < switch_mv, below, plateau_ms)


def q10_ka_m(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    v = _mv(v_volts)
    return _result(v, hm_m1_inf(v), hm_tau_m(v) / q10_exp_temp(HM_Q10, HM_TEMP_C, temperature_kelvin))


def q10_ka_h(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    v = _mv(v_volts)
    return _result(v, hm_h_inf(v), hm_tau_h(v, -63.0, 19.0) / HM_H1_FIXED_Q10)


def q10_ka2_m(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    v = _mv(v_volts)
    return _result(v, hm_m2_inf(v), hm_tau_m(v) / q10_exp_temp(HM_Q10, HM_TEMP_C, temperature_kelvin))


def q10_ka2_h(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    v = _mv(v_volts)
    q10 = q10_exp_temp(HM_Q10, HM_TEMP_C, temperature_kelvin)
    return _result(v, hm_h_inf(v), hm_tau_h(v, -73.0, 60.0) / q10)


def q10_ka_conductance(temperature_kelvin: float) -> float:
    return q10_exp_temp(HM_CONDUCTANCE_Q10, HM_TEMP_C, temperature_kelvin)


# --------------------------------------------------------------------------
# Butera, Rinzel & Smith (1999), J Neurophysiol 82:382-397, model 1, I_NaP.
# V in mV, tau in ms.
# --------------------------------------------------------------------------


def inst_nap_m(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    """m_inf = 1/(1 + exp((V - theta_m)/sigma_m)), theta_m = -40, sigma_m = -6."""
    v = _mv(v_volts)
    return _result(v, 1.0 / (1.0 + np.exp((v + 40.0) / -6.0)))


def inst_nap_h(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    """theta_h = -48, sigma_h = 6, tau_h = 10000 / cosh((V - theta_h)/(2 sigma_h))."""
    v = _mv(v_volts)
    inf = 1.0 / (1.0 + np.exp((v + 48.0) / 6.0))
    return _result(v, inf, 10000.0 / np.cosh((v + 48.0) / 12.0))


# --------------------------------------------------------------------------
# Acker, Kopell & White (2003), J Comput Neurosci 15:71-90, I_h.
# V in mV, tau in ms. The q10 (3 from 36 degC) is a test addition.
# --------------------------------------------------------------------------

AKW_Q10 = 3.0
AKW_TEMP_C = 36.0


def frac_ih_fast(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    v = _mv(v_volts)
    inf = 1.0 / (1.0 + np.exp((v + 79.2) / 9.78))
    tau = 0.51 / (np.exp((v - 1.7) / 10.0) + np.exp(-(v + 340.0) / 52.0)) + 1.0
    return _result(v, inf, tau / q10_exp_temp(AKW_Q10, AKW_TEMP_C, temperature_kelvin))


def frac_ih_slow(v_volts: np.ndarray, temperature_kelvin: float) -> dict[str, np.ndarray]:
    v = _mv(v_volts)
    with np.errstate(over="ignore"):
        inf = 1.0 / (1.0 + np.exp((v + 2.83) / 15.9)) ** 58
    tau = 5.6 / (np.exp((v - 1.7) / 14.0) + np.exp(-(v + 260.0) / 43.0)) + 1.0
    return _result(v, inf, tau / q10_exp_temp(AKW_Q10, AKW_TEMP_C, temperature_kelvin))


# --------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------

CLOSED_FORMS: dict[str, dict[str, dict[str, GateForm]]] = {
    "hh_na.channel.nml": {
        "hh_na": {"m": _hh_gate(hh_alpha_m, hh_beta_m), "h": _hh_gate(hh_alpha_h, hh_beta_h)},
    },
    "hh_k.channel.nml": {"hh_k": {"n": _hh_gate(hh_alpha_n, hh_beta_n)}},
    "hh_leak.channel.nml": {"hh_leak": {}},
    "wb_na.channel.nml": {"wb_na": {"m": wb_na_m, "h": wb_na_h}},
    "wb_k.channel.nml": {"wb_k": {"n": wb_k_n}},
    "custom_kdr.channel.nml": {
        "custom_kdr": {"n": custom_kdr_n},
        "custom_kdr_floor": {"n": custom_kdr_floor_n},
    },
    "q10_ka.channel.nml": {
        "q10_ka": {"m": q10_ka_m, "h": q10_ka_h},
        "q10_ka2": {"m": q10_ka2_m, "h": q10_ka2_h},
    },
    "inst_nap.channel.nml": {"inst_nap": {"m": inst_nap_m, "h": inst_nap_h}},
    "frac_ih.channel.nml": {"frac_ih": {"m/fast": frac_ih_fast, "m/slow": frac_ih_slow}},
}

CONDUCTANCE_SCALING: dict[str, dict[str, Callable[[float], float]]] = {
    filename: {channel: _unity for channel in channels} for filename, channels in CLOSED_FORMS.items()
}
CONDUCTANCE_SCALING["q10_ka.channel.nml"]["q10_ka"] = q10_ka_conductance

_PS = 1e-12  # every example channel has the nominal conductance 10 pS

CHANNELS: dict[str, dict[str, ChannelFacts]] = {
    "hh_na.channel.nml": {"hh_na": ChannelFacts(10 * _PS, "na", {"m": 3, "h": 1})},
    "hh_k.channel.nml": {"hh_k": ChannelFacts(10 * _PS, "k", {"n": 4})},
    "hh_leak.channel.nml": {"hh_leak": ChannelFacts(10 * _PS, None, {})},
    "wb_na.channel.nml": {"wb_na": ChannelFacts(10 * _PS, "na", {"m": 3, "h": 1})},
    "wb_k.channel.nml": {"wb_k": ChannelFacts(10 * _PS, "k", {"n": 4})},
    "custom_kdr.channel.nml": {
        "custom_kdr": ChannelFacts(10 * _PS, "k", {"n": 4}),
        "custom_kdr_floor": ChannelFacts(10 * _PS, "k", {"n": 4}),
    },
    "q10_ka.channel.nml": {
        "q10_ka": ChannelFacts(10 * _PS, "k", {"m": 4, "h": 1}),
        "q10_ka2": ChannelFacts(10 * _PS, "k", {"m": 4, "h": 1}),
    },
    "inst_nap.channel.nml": {"inst_nap": ChannelFacts(10 * _PS, "na", {"m": 1, "h": 1})},
    "frac_ih.channel.nml": {
        "frac_ih": ChannelFacts(10 * _PS, "h", {"m": 1}, {"m/fast": 0.65, "m/slow": 0.35}),
    },
}
