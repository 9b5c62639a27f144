`timescale 1ns / 1ps
// Requantizer, LANES in parallel, 5 cycles (REQUANT_LATENCY in pyflow.hw.engines): y = clamp((acc*m + b) >>> SHIFT, 0, 2^OUT_BITS - 1); with
// SIGNED = 1 (a residual branch's end, read by an add) the clamp is to [-2^(OUT_BITS-1), 2^(OUT_BITS-1) - 1]
// in two's complement; for the output layer (IS_OUTPUT = 1) y = acc*m + b as OUT_BITS-bit two's
// complement, clamped at 0 when RELU = 1 (a model ending in ReLU). The acc*m multiply lives here, outside the PE array (one per lane, once per output fold).
// Cycle 1 registers the operands, cycle 2 registers them again beside the multiplier, cycle 3 its product,
// cycle 4 registers the product again and adds the bias, cycle 5 the clamp. Yosys maps the multiply to a
// MULT18X18D on ECP5 without its internal registers, so the two extra stages are fabric flip-flops the
// placer puts by the DSP: without them the route into and out of it (6-7 ns beside its 3.9 ns) missed
// 100 MHz on digits for one placer seed in two.
module pf_requant #(
    parameter LANES = 1,
    parameter ACC_BITS = 16,  // signed accumulator
    parameter M_BITS = 16,    // signed multiplier
    parameter RQ_W = 34,      // signed width holding acc*m + b
    parameter SHIFT = 0,
    parameter OUT_BITS = 8,
    parameter IS_OUTPUT = 0,
    parameter SIGNED = 0,
    parameter RELU = 0
) (
    input  wire                      clk,
    input  wire [LANES*ACC_BITS-1:0] acc,
    input  wire [LANES*M_BITS-1:0]   m,
    input  wire [LANES*RQ_W-1:0]     b,
    output wire [LANES*OUT_BITS-1:0] y
);
    localparam [RQ_W-1:0] TOP = {{(RQ_W-OUT_BITS){1'b0}}, {OUT_BITS{1'b1}}};
    localparam [RQ_W-1:0] S_TOP = {{(RQ_W-OUT_BITS+1){1'b0}}, {(OUT_BITS-1){1'b1}}};  // 2^(OUT_BITS-1) - 1
    localparam [RQ_W-1:0] S_BOTTOM = ~S_TOP;  // -2^(OUT_BITS-1)

    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_lane
            reg signed [ACC_BITS-1:0] a, a2;
            reg signed [M_BITS-1:0] mm, mm2;
            reg signed [RQ_W-1:0] b_q, b_q2, b_q3;
            wire signed [RQ_W-1:0] a_ext = {{(RQ_W-ACC_BITS){a2[ACC_BITS-1]}}, a2};
            wire signed [RQ_W-1:0] m_ext = {{(RQ_W-M_BITS){mm2[M_BITS-1]}}, mm2};
            reg signed [RQ_W-1:0] product, product2;
            reg signed [RQ_W-1:0] bias;
            reg [OUT_BITS-1:0] result;
            wire signed [RQ_W-1:0] total = product2 + bias;
            always @(posedge clk) begin
                a <= acc[l*ACC_BITS +: ACC_BITS];
                mm <= m[l*M_BITS +: M_BITS];
                b_q <= b[l*RQ_W +: RQ_W];
                a2 <= a;
                mm2 <= mm;
                b_q2 <= b_q;
                product <= a_ext * m_ext;
                b_q3 <= b_q2;
                product2 <= product;
                bias <= b_q3;
            end
            if (IS_OUTPUT != 0) begin : g_logit
                always @(posedge clk) result <= (RELU != 0 && total[RQ_W-1]) ? {OUT_BITS{1'b0}} : total[OUT_BITS-1:0];
                wire unused_high = &{1'b0, total[RQ_W-1:OUT_BITS], 1'b0};
            end else if (SIGNED != 0) begin : g_signed
                wire signed [RQ_W-1:0] shifted = total >>> SHIFT;
                always @(posedge clk)
                    result <= (shifted < $signed(S_BOTTOM)) ? S_BOTTOM[OUT_BITS-1:0] :
                              (shifted > $signed(S_TOP)) ? S_TOP[OUT_BITS-1:0] : shifted[OUT_BITS-1:0];
            end else begin : g_clamp
                wire signed [RQ_W-1:0] shifted = total >>> SHIFT;
                always @(posedge clk)
                    result <= shifted[RQ_W-1] ? {OUT_BITS{1'b0}} :
                              (shifted > $signed(TOP)) ? {OUT_BITS{1'b1}} : shifted[OUT_BITS-1:0];
            end
            assign y[l*OUT_BITS +: OUT_BITS] = result;
        end
    endgenerate
endmodule
