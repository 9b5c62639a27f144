`timescale 1ns / 1ps
// Residual add engine: y = clamp((a*M_A + b*M_B + CC) >>> SHIFT, 0, 2^BITS - 1) on two feature maps of
// PIXELS pixels of C channels, LANES channels per cycle (LANES divides C). Each input is unsigned or, with
// A_SIGNED / B_SIGNED, two's complement (a residual branch's end). Both input buffers store a pixel as C
// consecutive elements, so group g of LANES channels sits at g*LANES in both. Cycles per image:
// PIXELS*C/LANES + 4. Pipeline: walk -> S0 buffer row addresses -> S1 input words -> S2 products ->
// S3 sum, shift and clamp -> write.
module pf_add_layer #(
    parameter C = 8,
    parameter PIXELS = 16,
    parameter LANES = 8,
    parameter BITS = 8,
    parameter A_SIGNED = 0,
    parameter B_SIGNED = 0,
    parameter M_BITS = 16,
    parameter SUM_W = 27,  // signed width of a*M_A + b*M_B + CC
    parameter signed [M_BITS-1:0] M_A = 1,
    parameter signed [M_BITS-1:0] M_B = 1,
    parameter signed [SUM_W-1:0] CC = 0,
    parameter SHIFT = 0,
    parameter OUT_STRIDE = 8,
    parameter IN_AW = 8,
    parameter OUT_AW = 8
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   a_full,
    input  wire                   b_full,
    output wire [IN_AW-1:0]       rd_base,
    input  wire [LANES*BITS-1:0]  a_data,
    input  wire [LANES*BITS-1:0]  b_data,
    output wire                   in_done,
    input  wire                   out_free,
    output wire                   wr_en,
    output wire [OUT_AW-1:0]      wr_base,
    output wire [LANES-1:0]       wr_mask,
    output wire [LANES*BITS-1:0]  wr_data,
    output wire                   out_done,
    output reg  [31:0]            cycles,
    output wire [31:0]            busy
);
    localparam GROUPS = C / LANES;
    localparam [31:0] LAST_G = GROUPS - 1;
    localparam [31:0] LAST_PIX = PIXELS - 1;
    localparam [SUM_W-1:0] TOP = {{(SUM_W-BITS){1'b0}}, {BITS{1'b1}}};

    reg running, issuing;
    reg [31:0] pix, grp, count;
    wire image_last = (grp == LAST_G) && (pix == LAST_PIX);
    wire start = !running && a_full && b_full && out_free;
    wire finish;

    always @(posedge clk) begin
        if (rst) begin
            running <= 1'b0;
            issuing <= 1'b0;
            cycles <= 32'd0;
        end else if (start) begin
            running <= 1'b1;
            issuing <= 1'b1;
            count <= 32'd0;
        end else if (running) begin
            count <= count + 32'd1;
            if (issuing && image_last) issuing <= 1'b0;
            if (finish) begin
                running <= 1'b0;
                cycles <= count + 32'd1;
            end
        end
    end
    assign busy = 32'd0;

    always @(posedge clk) begin
        if (start) begin
            pix <= 32'd0;
            grp <= 32'd0;
        end else if (issuing) begin
            if (grp != LAST_G) begin
                grp <= grp + 32'd1;
            end else begin
                grp <= 32'd0;
                pix <= pix + 32'd1;
            end
        end
    end

    // walk: both buffers get the address of group (pix, grp); their pipelined read answers in S1
    wire [31:0] in_addr = (pix * GROUPS + grp) * LANES;
    assign rd_base = in_addr[IN_AW-1:0];

    reg v0, v1, v2, v3, end0, end1, end2, end3;
    reg [31:0] pix0, pix1, pix2, grp0, grp1, grp2;
    reg [OUT_AW-1:0] addr3;  // the pixel x stride product gets a cycle of its own
    wire [31:0] out_addr = pix2 * OUT_STRIDE + grp2 * LANES;
    always @(posedge clk) begin
        v0 <= issuing && !rst;
        v1 <= v0 && !rst;
        v2 <= v1 && !rst;
        v3 <= v2 && !rst;
        end0 <= image_last;
        end1 <= end0;
        end2 <= end1;
        end3 <= end2;
        {pix0, grp0} <= {pix, grp};
        {pix1, grp1} <= {pix0, grp0};
        {pix2, grp2} <= {pix1, grp1};
        addr3 <= out_addr[OUT_AW-1:0];
    end

    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_lane
            wire [BITS-1:0] a_raw = a_data[l*BITS +: BITS];
            wire [BITS-1:0] b_raw = b_data[l*BITS +: BITS];
            // S1 -> S2: the input words, extended by their signedness, times the scalar multipliers
            wire signed [SUM_W-1:0] a_ext = {{(SUM_W-BITS){A_SIGNED != 0 ? a_raw[BITS-1] : 1'b0}}, a_raw};
            wire signed [SUM_W-1:0] b_ext = {{(SUM_W-BITS){B_SIGNED != 0 ? b_raw[BITS-1] : 1'b0}}, b_raw};
            reg signed [SUM_W-1:0] pa, pb;
            always @(posedge clk) begin
                pa <= a_ext * $signed({{(SUM_W-M_BITS){M_A[M_BITS-1]}}, M_A});
                pb <= b_ext * $signed({{(SUM_W-M_BITS){M_B[M_BITS-1]}}, M_B});
            end
            // S2 -> S3: sum, arithmetic shift, clamp to [0, 2^BITS - 1]
            wire signed [SUM_W-1:0] shifted = (pa + pb + CC) >>> SHIFT;
            reg [BITS-1:0] y;
            always @(posedge clk)
                y <= shifted[SUM_W-1] ? {BITS{1'b0}} : (shifted > $signed(TOP)) ? {BITS{1'b1}} : shifted[BITS-1:0];
            assign wr_data[l*BITS +: BITS] = y;
        end
    endgenerate

    assign wr_en = v3;
    assign wr_base = addr3;
    assign wr_mask = {LANES{1'b1}};
    assign finish = v3 && end3;
    assign in_done = finish;
    assign out_done = finish;

    wire unused_ok = &{1'b0, in_addr[31:IN_AW], out_addr[31:OUT_AW], 1'b0};
endmodule
