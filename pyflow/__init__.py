"""pyflow: a trained PyTorch CNN to a sparse, ternary, add-only FPGA accelerator, proven bit-exact."""

__version__ = "0.1.0"
