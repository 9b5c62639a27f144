"""The ECP5 PLL (EHXPLLL) settings that make the board's clock from its oscillator.

One output (CLKOP), fed back from itself (``FEEDBK_PATH = "CLKOP"``)::

    PFD  = f_in / CLKI_DIV            must lie in [3.125, 400] MHz
    f_out = PFD * CLKFB_DIV           in [3.125, 400] MHz
    VCO  = f_out * CLKOP_DIV          must lie in [400, 800] MHz

The chosen setting is the one nearest the asked frequency; among equally near ones the VCO nearest 600 MHz
(the middle of its range), then the smallest input divider (highest PFD). These are the limits Project
Trellis' ``ecppll`` uses and, but for ties, its choice (tests/test_pnr.py compares the two): ecppll compares
errors in single precision, so between two output dividers giving the same frequency its rounding noise can
pick the other one (25 -> 96.5 MHz: CLKOP_DIV 7, VCO 675 MHz; here 6, VCO 579 MHz; both in range, the same
clock). The coarse output phase is ``(CLKOP_DIV - 1) // 2``, as ecppll sets it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyflow.errors import PyflowError

PFD_MHZ = (3.125, 400.0)
OUT_MHZ = (3.125, 400.0)
VCO_MHZ = (400.0, 800.0)
VCO_MIDDLE_MHZ = 600.0
CLKI_DIVS, CLKFB_DIVS, CLKOP_DIVS = range(1, 129), range(1, 81), range(1, 129)


@dataclass(frozen=True)
class PllSetting:
    f_in_mhz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def pfd_mhz(self) -> float:
        return self.f_in_mhz / self.clki_div

    @property
    def f_out_mhz(self) -> float:
        return self.pfd_mhz * self.clkfb_div

    @property
    def vco_mhz(self) -> float:
        return self.f_out_mhz * self.clkop_div

    @property
    def clkop_cphase(self) -> int:
        return (self.clkop_div - 1) // 2

    def to_json(self) -> dict[str, float | int]:
        return {"f_in_mhz": self.f_in_mhz, "f_out_mhz": round(self.f_out_mhz, 6), "vco_mhz": round(self.vco_mhz, 6),
                "pfd_mhz": round(self.pfd_mhz, 6), "CLKI_DIV": self.clki_div, "CLKFB_DIV": self.clkfb_div,
                "CLKOP_DIV": self.clkop_div, "CLKOP_CPHASE": self.clkop_cphase}


def _within(value: float, limits: tuple[float, float]) -> bool:
    return limits[0] <= value <= limits[1]


def ecp5_pll(f_in_mhz: float, f_out_mhz: float) -> PllSetting:
    """The EHXPLLL setting nearest ``f_out_mhz`` from an ``f_in_mhz`` oscillator (see the module docstring)."""
    if not _within(f_out_mhz, OUT_MHZ):
        raise PyflowError(f"PLL: {f_out_mhz:g} MHz is outside the ECP5 PLL's output range "
                          f"[{OUT_MHZ[0]:g}, {OUT_MHZ[1]:g}] MHz")
    best: tuple[tuple[float, float, int], PllSetting] | None = None
    for clki in CLKI_DIVS:
        if not _within(f_in_mhz / clki, PFD_MHZ):
            continue
        for clkfb in CLKFB_DIVS:
            out = f_in_mhz / clki * clkfb
            if not _within(out, OUT_MHZ):
                continue
            low = max(1, int(VCO_MHZ[0] // out))  # only the output dividers that can put the VCO in range
            for clkop in range(low, min(CLKOP_DIVS.stop, int(VCO_MHZ[1] // out) + 2)):
                if not _within(out * clkop, VCO_MHZ):
                    continue
                key = (round(abs(out - f_out_mhz), 9), abs(out * clkop - VCO_MIDDLE_MHZ), clki)
                if best is None or key < best[0]:
                    best = key, PllSetting(f_in_mhz, clki, clkfb, clkop)
    if best is None:
        raise PyflowError(f"PLL: no ECP5 PLL setting makes {f_out_mhz:g} MHz from {f_in_mhz:g} MHz")
    return best[1]
