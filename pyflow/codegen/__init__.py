"""Code generation: HLS C++ and Verilog RTL, both rendered from the IR through one dict per layer."""
