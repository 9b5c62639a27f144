`timescale 1ns / 1ps
// PE lane group: PE output lanes, each adding or subtracting its SIMD inputs under 2-bit ternary codes
// (00 -> skip, 01 -> +x, 11 -> -x; 10 never stored). No multiplier: a select stage, then a pipelined
// adder tree per lane. Code of PE lane p, SIMD lane j sits at bits 2*(p*SIMD + j) of w (IR lane order).
// Latency: 1 + TREE_LAT cycles from (x, w) to sums; the pipeline never stalls.
module pf_pe_lanes #(
    parameter PE = 4,
    parameter SIMD = 4,
    parameter IN_BITS = 8,
    parameter SUM_W = IN_BITS + 1 + 2  // >= IN_BITS + 1 + clog2(SIMD)
) (
    input  wire                    clk,
    input  wire [SIMD*IN_BITS-1:0] x,
    input  wire [2*PE*SIMD-1:0]    w,
    output wire [PE*SUM_W-1:0]     sums
);
    function integer clog2;
        input integer value;
        integer v;
        begin
            clog2 = 0;
            for (v = value - 1; v > 0; v = v >> 1) clog2 = clog2 + 1;
        end
    endfunction

    genvar p, j;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_lane
            reg [SIMD*SUM_W-1:0] picked;
            for (j = 0; j < SIMD; j = j + 1) begin : g_simd
                wire [SUM_W-1:0] value = {{(SUM_W-IN_BITS){1'b0}}, x[j*IN_BITS +: IN_BITS]};
                wire [1:0] code = w[2*(p*SIMD+j) +: 2];
                always @(posedge clk)
                    picked[j*SUM_W +: SUM_W] <= (code == 2'b01) ? value :
                                                (code == 2'b11) ? (~value + {{(SUM_W-1){1'b0}}, 1'b1}) :
                                                {SUM_W{1'b0}};
            end
            pf_adder_tree #(.N(SIMD), .W(SUM_W), .H(clog2(SIMD)), .ROOT(1)) u_tree (
                .clk(clk), .leaves(picked), .sum(sums[p*SUM_W +: SUM_W]));
        end
    endgenerate
endmodule
