`timescale 1ns / 1ps
// Pooling engine: for each output pixel it reads the KERNEL x KERNEL window one input pixel (all C
// channels) per cycle and keeps a running max (IS_MAX = 1) or sum; an average-pool sum is then
// requantized with the scalar m, b, SHIFT (pf_requant). Cycles per image: out_pixels * KERNEL^2 + 9.
// Pipeline: walk -> S1 address -> S1b buffer row addresses -> S2 input pixel -> window max/sum -> requant or delay (3) -> write.
module pf_pool_layer #(
    parameter C = 4,
    parameter W_IN = 8,
    parameter H_OUT = 4,
    parameter W_OUT = 4,
    parameter KERNEL = 2,
    parameter STRIDE = 2,
    parameter BITS = 8,
    parameter IS_MAX = 1,
    parameter SUM_BITS = 10,
    parameter M_BITS = 16,
    parameter RQ_W = 28,
    parameter signed [M_BITS-1:0] M = 1,
    parameter signed [RQ_W-1:0] B = 0,
    parameter SHIFT = 0,
    parameter OUT_STRIDE = 4,
    parameter IN_AW = 8,
    parameter OUT_AW = 6
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire                 in_full,
    output wire [IN_AW-1:0]     rd_base,
    input  wire [C*BITS-1:0]    rd_data,
    output wire                 in_done,
    input  wire                 out_free,
    output wire                 wr_en,
    output wire [OUT_AW-1:0]    wr_base,
    output wire [C-1:0]         wr_mask,
    output wire [C*BITS-1:0]    wr_data,
    output wire                 out_done,
    output reg  [31:0]          cycles,
    output wire [31:0]          busy
);
    localparam [15:0] LAST_K = KERNEL - 1;
    localparam [15:0] LAST_Y = H_OUT - 1;
    localparam [15:0] LAST_X = W_OUT - 1;

    reg running, issuing;
    reg [15:0] oy, ox, ky, kx;
    reg [31:0] pix, count;
    wire window_last = (ky == LAST_K) && (kx == LAST_K);
    wire image_last = window_last && (oy == LAST_Y) && (ox == LAST_X);
    wire start = !running && in_full && out_free;
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
            {oy, ox, ky, kx} <= 64'd0;
            pix <= 32'd0;
        end else if (issuing) begin
            if (kx != LAST_K) begin
                kx <= kx + 16'd1;
            end else begin
                kx <= 16'd0;
                if (ky != LAST_K) begin
                    ky <= ky + 16'd1;
                end else begin
                    ky <= 16'd0;
                    pix <= pix + 32'd1;
                    if (ox == LAST_X) begin
                        ox <= 16'd0;
                        oy <= oy + 16'd1;
                    end else begin
                        ox <= ox + 16'd1;
                    end
                end
            end
        end
    end

    // S1: input address
    wire [31:0] iy = {16'd0, oy} * STRIDE + {16'd0, ky};
    wire [31:0] ix = {16'd0, ox} * STRIDE + {16'd0, kx};
    wire [31:0] in_addr = (iy * W_IN + ix) * C;
    reg v1, first1, last1, end1;
    reg [31:0] pix1;
    always @(posedge clk) begin
        v1 <= issuing && !rst;
        first1 <= (ky == 16'd0) && (kx == 16'd0);
        last1 <= window_last;
        end1 <= image_last;
        pix1 <= pix;
    end
    assign rd_base = in_addr[IN_AW-1:0];  // the buffer's pipelined read: the pixel arrives with S1b

    // S1b: the buffer registers the rows
    reg v1b, first1b, last1b, end1b;
    reg [31:0] pix1b;
    always @(posedge clk) begin
        v1b <= v1 && !rst;
        {first1b, last1b, end1b, pix1b} <= {first1, last1, end1, pix1};
    end

    // S2: input pixel
    reg v2, first2, last2, end2;
    reg [31:0] pix2;
    reg [C*BITS-1:0] x2;
    always @(posedge clk) begin
        v2 <= v1b && !rst;
        first2 <= first1b;
        last2 <= last1b;
        end2 <= end1b;
        pix2 <= pix1b;
        x2 <= rd_data;
    end

    // window max / sum, then requantize (avg) or delay (max) by the same RQL cycles; the output address is
    // computed from the window's pixel and registered (the pixel x stride product gets a cycle of its own)
    localparam RQL = 5;  // pf_requant's latency (REQUANT_LATENCY in pyflow.hw.engines)
    localparam QW = 2 + OUT_AW;  // one stage of the line: {valid, end, address}
    reg a_valid, a_end;
    reg [31:0] a_pix;
    reg [QW*RQL-1:0] q_line;  // stages 1..RQL, stage k at bits (k-1)*QW
    wire [31:0] out_addr = a_pix * OUT_STRIDE;
    integer k;
    always @(posedge clk) begin
        a_valid <= v2 && last2 && !rst;
        a_end <= end2;
        a_pix <= pix2;
        q_line <= {q_line[QW*(RQL-1)-1:0], a_valid && !rst, a_end, out_addr[OUT_AW-1:0]};
        if (rst)
            for (k = 0; k < RQL; k = k + 1) q_line[k*QW + QW-1] <= 1'b0;
    end
    wire [QW-1:0] q_out = q_line[QW*RQL-1 -: QW];
    wire q_valid = q_out[QW-1];

    genvar c;
    generate
        if (IS_MAX != 0) begin : g_max
            reg [C*BITS-1:0] best;
            reg [C*BITS*RQL-1:0] delay;  // the window's maximum, RQL cycles
            for (c = 0; c < C; c = c + 1) begin : g_lane
                wire [BITS-1:0] x = x2[c*BITS +: BITS];
                wire [BITS-1:0] y = best[c*BITS +: BITS];
                always @(posedge clk)
                    if (v2) best[c*BITS +: BITS] <= (first2 || x > y) ? x : y;
            end
            always @(posedge clk) delay <= {delay[C*BITS*(RQL-1)-1:0], best};
            assign wr_data = delay[C*BITS*RQL-1 -: C*BITS];
        end else begin : g_avg
            reg [C*(SUM_BITS+1)-1:0] sum;
            wire [C*M_BITS-1:0] ms;
            wire [C*RQ_W-1:0] bs;
            for (c = 0; c < C; c = c + 1) begin : g_lane
                wire [SUM_BITS:0] x = {{(SUM_BITS+1-BITS){1'b0}}, x2[c*BITS +: BITS]};
                wire [SUM_BITS:0] y = sum[c*(SUM_BITS+1) +: SUM_BITS+1];
                always @(posedge clk)
                    if (v2) sum[c*(SUM_BITS+1) +: SUM_BITS+1] <= first2 ? x : x + y;
                assign ms[c*M_BITS +: M_BITS] = M;
                assign bs[c*RQ_W +: RQ_W] = B;
            end
            pf_requant #(.LANES(C), .ACC_BITS(SUM_BITS+1), .M_BITS(M_BITS), .RQ_W(RQ_W), .SHIFT(SHIFT),
                         .OUT_BITS(BITS), .IS_OUTPUT(0)) u_rq (
                .clk(clk), .acc(sum), .m(ms), .b(bs), .y(wr_data));
        end
    endgenerate

    assign wr_en = q_valid;
    assign wr_base = q_out[OUT_AW-1:0];
    assign wr_mask = {C{1'b1}};
    assign finish = q_valid && q_out[QW-2];
    assign in_done = finish;
    assign out_done = finish;

    wire unused_ok = &{1'b0, in_addr[31:IN_AW], out_addr[31:OUT_AW], 1'b0};
endmodule
