`timescale 1ns / 1ps
// Unit harness of the pooling engine: an input ping-pong buffer the bench fills element by element,
// pf_pool_layer, and its write port exposed (the bench collects the output map from it).
module tb_pool #(
    parameter C = 3,
    parameter H_IN = 6,
    parameter W_IN = 6,
    parameter H_OUT = 3,
    parameter W_OUT = 3,
    parameter KERNEL = 2,
    parameter STRIDE = 2,
    parameter BITS = 8,
    parameter IS_MAX = 1,
    parameter SUM_BITS = 10,
    parameter RQ_W = 28,
    parameter M = 1,
    parameter B = 0,
    parameter SHIFT = 0,
    parameter IN_AW = 7,
    parameter OUT_AW = 5,
    parameter LB = 2,  // input buffer lane memories (pyflow.codegen.rtl.lane_banks)
    parameter RW = 4
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                in_en,
    input  wire [IN_AW-1:0]    in_addr,
    input  wire [BITS-1:0]     in_data,
    input  wire                in_done,
    output wire                wr_en,
    output wire [OUT_AW-1:0]   wr_base,
    output wire [C*BITS-1:0]   wr_data,
    output wire                out_done,
    output wire [31:0]         cycles
);
    wire wr_free, rd_full, rd_done;
    wire [IN_AW-1:0] rd_base;
    wire [C*BITS-1:0] rd_data;
    wire [C-1:0] wr_mask;
    wire [31:0] busy;
    pf_fmap_buf #(.BITS(BITS), .WR_LANES(1), .RD_LANES(C), .AW(IN_AW), .LB(LB), .RW(RW)) u_buf (
        .clk(clk), .rst(rst), .wr_free(wr_free), .wr_en(in_en), .wr_base(in_addr), .wr_mask(1'b1),
        .wr_data(in_data), .wr_done(in_done), .rd_full(rd_full), .rd_base(rd_base), .rd_data(rd_data),
        .rd_done(rd_done));
    pf_pool_layer #(.C(C), .W_IN(W_IN), .H_OUT(H_OUT), .W_OUT(W_OUT), .KERNEL(KERNEL), .STRIDE(STRIDE),
                    .BITS(BITS), .IS_MAX(IS_MAX), .SUM_BITS(SUM_BITS), .M_BITS(16), .RQ_W(RQ_W), .M(M), .B(B),
                    .SHIFT(SHIFT), .OUT_STRIDE(C), .IN_AW(IN_AW), .OUT_AW(OUT_AW)) u_pool (
        .clk(clk), .rst(rst), .in_full(rd_full), .rd_base(rd_base), .rd_data(rd_data), .in_done(rd_done),
        .out_free(1'b1), .wr_en(wr_en), .wr_base(wr_base), .wr_mask(wr_mask), .wr_data(wr_data),
        .out_done(out_done), .cycles(cycles), .busy(busy));
    wire unused_ok = &{1'b0, wr_free, wr_mask, busy, 1'b0};
endmodule
