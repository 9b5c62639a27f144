"""Simulation of the generated projects against the golden model (C simulation, RTL simulation)."""
