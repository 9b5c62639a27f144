`timescale 1ns / 1ps
// Logit buffer -> output stream: N signed BITS-bit logits per image, one per beat, HWC order;
// out_last marks the image's last logit.
module pf_stream_out #(
    parameter N = 10,
    parameter BITS = 32,
    parameter AW = 4
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            rd_full,
    output wire [AW-1:0]   rd_base,
    input  wire [BITS-1:0] rd_data,
    output wire            rd_done,
    output wire            out_valid,
    input  wire            out_ready,
    output wire [BITS-1:0] out_data,
    output wire            out_last
);
    localparam [31:0] LAST = N - 1;
    reg [31:0] i;
    wire beat = rd_full && out_ready;
    assign out_valid = rd_full;
`ifdef PYFLOW_PLANT_X
    // test only (tests/test_fuzz.py): beat number PYFLOW_PLANT_X of every image is X, which the bench must report
    assign out_data = (i == `PYFLOW_PLANT_X) ? {BITS{1'bx}} : rd_data;
`else
    assign out_data = rd_data;
`endif
    assign out_last = (i == LAST);
    assign rd_base = i[AW-1:0];
    assign rd_done = beat && out_last;
    always @(posedge clk) begin
        if (rst) i <= 32'd0;
        else if (beat) i <= out_last ? 32'd0 : i + 32'd1;
    end
    wire unused_ok = &{1'b0, i[31:AW], 1'b0};
endmodule
