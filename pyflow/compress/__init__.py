"""Compression stage (PyTorch): PE-tile pruning, trainable ternarization, WPC, export to the IR.

The public API lives in :mod:`pyflow.compress.api`; :mod:`pyflow.ir.metrics` and
:mod:`pyflow.compress.config` are torch-free. Layer naming is documented in :mod:`pyflow.compress.chain`.
"""
