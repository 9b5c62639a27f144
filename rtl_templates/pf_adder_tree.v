`timescale 1ns / 1ps
// Pipelined adder tree: the sum of N signed W-bit leaves, as a recursive binary tree of height H
// (N <= 2^H; the left subtree always holds 2^(H-1) leaves, missing leaves are zero). A node is
// registered when its height is even, and the root always is, so every path crosses the same registers:
// latency TREE_LAT = max(1, ceil(H/2)) cycles (pyflow.hw.sizing.tree_latency mirrors it).
module pf_adder_tree #(
    parameter N = 8,
    parameter W = 12,
    parameter H = 3,
    parameter ROOT = 1
) (
    input  wire           clk,
    input  wire [N*W-1:0] leaves,
    output wire [W-1:0]   sum
);
    generate
        if (H == 0) begin : g_leaf
            if (ROOT != 0) begin : g_reg
                reg [W-1:0] r;
                always @(posedge clk) r <= leaves[W-1:0];
                assign sum = r;
            end else begin : g_wire
                assign sum = leaves[W-1:0];
                wire unused_clk = clk;
            end
        end else begin : g_node
            localparam HALF = 1 << (H - 1);
            localparam NL = (N < HALF) ? N : HALF;
            localparam NR = N - NL;
            wire [W-1:0] left, right;
            pf_adder_tree #(.N(NL), .W(W), .H(H - 1), .ROOT(0)) u_left (
                .clk(clk), .leaves(leaves[NL*W-1:0]), .sum(left));
            if (NR > 0) begin : g_right
                pf_adder_tree #(.N(NR), .W(W), .H(H - 1), .ROOT(0)) u_right (
                    .clk(clk), .leaves(leaves[N*W-1:NL*W]), .sum(right));
            end else begin : g_empty
                assign right = {W{1'b0}};
            end
            if ((H % 2 == 0) || (ROOT != 0)) begin : g_reg
                reg [W-1:0] r;
                always @(posedge clk) r <= left + right;
                assign sum = r;
            end else begin : g_wire
                assign sum = left + right;
            end
        end
    endgenerate
endmodule
