`timescale 1ns / 1ps
// Layer engine of a conv / linear layer. For each output pixel and each output fold it walks only the
// kept tiles of that fold in the CSR tile index (row_ptr, then the tiles' column folds, which the
// generator stores decoded as (k_y, k_x, channel chunk) so no divider is needed), reads one SIMD-wide
// input word per kept tile (zero in the padding), and the PE lanes add or subtract it under the tile's
// 2-bit codes. An empty fold costs one bubble cycle (its accumulators must still be cleared). After a
// fold's last tile its accumulators go to the requantizer and the output buffer while the walker is
// already on the next fold, so a layer takes out_pixels * sum_folds max(kept_f, 1) + FILL cycles,
// FILL = 11 + PE_LAT (see pyflow.hw.cycles). The pipeline never stalls: a layer starts an image only
// when its input bank is full and its output bank is free.
//
// Pipeline: walk -> S1 ROM read -> S1b ROM words again -> S2 input address -> S2b buffer row addresses ->
//           S3 input word -> PE lanes (PE_LAT) -> acc -> requant (5) -> write.
module pf_matrix_layer #(
    parameter C_IN_PAD = 8,
    parameter H_IN = 8,
    parameter W_IN = 8,
    parameter H_OUT = 8,
    parameter W_OUT = 8,
    parameter STRIDE = 1,
    parameter PAD = 1,
    parameter PE = 4,
    parameter SIMD = 4,
    parameter IN_BITS = 8,
    parameter OUT_BITS = 8,
    parameter ACC_BITS = 16,
    parameter SUM_W = 12,    // adder-tree width: min(IN_BITS + 1 + clog2(SIMD), ACC_BITS)
    parameter PE_LAT = 2,    // latency of pf_pe_lanes for this SIMD
    parameter M_BITS = 16,
    parameter RQ_W = 34,
    parameter SHIFT = 0,
    parameter IS_OUTPUT = 0,
    parameter SIGNED = 0,      // two's-complement output clamp (a residual branch's end)
    parameter RELU = 0,        // output layer: logits clamped at 0 (a model ending in ReLU)
    parameter OUT_FOLDS = 1,
    parameter PW = 1,        // clog2(OUT_FOLDS + 1): fold counter width
    parameter OUT_CHANNELS = 4,
    parameter OUT_STRIDE = 4,  // elements between two output pixels in the next buffer
    parameter ROM_DEPTH = 1,   // kept tiles + 1 (a zero sentinel the walker may point at)
    parameter TW = 1,          // clog2(ROM_DEPTH)
    parameter IN_AW = 6,
    parameter OUT_AW = 6,
    parameter MEM_DIR = "",
    parameter W_FILE = "w.mem",
    parameter IDX_FILE = "idx.mem",
    parameter PTR_FILE = "ptr.mem",
    parameter RQ_FILE = "rq.mem"
) (
    input  wire                       clk,
    input  wire                       rst,
    // input feature buffer (consumer side)
    input  wire                       in_full,
    output wire [IN_AW-1:0]           rd_base,
    input  wire [SIMD*IN_BITS-1:0]    rd_data,
    output wire                       in_done,
    // output feature buffer (producer side)
    input  wire                       out_free,
    output wire                       wr_en,
    output wire [OUT_AW-1:0]          wr_base,
    output wire [PE-1:0]              wr_mask,
    output wire [PE*OUT_BITS-1:0]     wr_data,
    output wire                       out_done,
    // counters of the last image: active cycles and cycles a kept tile was consumed
    output reg  [31:0]                cycles,
    output reg  [31:0]                busy
);
    localparam WB = 2 * PE * SIMD;
    localparam RQB = M_BITS + RQ_W;

    reg [WB-1:0]      w_rom   [0:ROM_DEPTH-1];
    reg [47:0]        idx_rom [0:ROM_DEPTH-1];  // {chunk, k_x, k_y}, 16 bits each
    reg [TW-1:0]      ptr_rom [0:OUT_FOLDS];
    reg [PE*RQB-1:0]  rq_rom  [0:OUT_FOLDS];    // lane p: {b (RQ_W), m (M_BITS)} at bits p*RQB
    initial begin
        $readmemh({MEM_DIR, W_FILE}, w_rom);
        $readmemh({MEM_DIR, IDX_FILE}, idx_rom);
        $readmemh({MEM_DIR, PTR_FILE}, ptr_rom);
        $readmemh({MEM_DIR, RQ_FILE}, rq_rom);
    end

    // ---------------------------------------------------------------- walker
    reg running, issuing, fold_first;
    reg [TW-1:0] t;
    reg [PW-1:0] fold;
    reg [15:0] oy, ox;
    reg [31:0] pix;
    reg [31:0] count, tiles;

    localparam [PW-1:0] LAST_FOLD = OUT_FOLDS - 1;
    localparam [15:0] LAST_Y = H_OUT - 1;
    localparam [15:0] LAST_X = W_OUT - 1;

    // The walker's control is registers: t_end = ptr_rom[fold + 1] (the current fold's end) and whether t is
    // a real tile and the fold's last, each computed with the state it describes, so the cycle's decision
    // is a few gates, not a ROM read, an increment and a compare (nextpnr found that path on ECP5).
    reg [TW-1:0] t_end;
    reg real_tile, last_tile;
    wire [PW-1:0] fold_next = fold + {{(PW-1){1'b0}}, 1'b1};
    wire [TW-1:0] t_next = t + {{(TW-1){1'b0}}, 1'b1};
    wire [31:0] fold_after = {{(32-PW){1'b0}}, fold} + 32'd2;  // only read when fold is not the last
    wire [TW-1:0] end_after = ptr_rom[fold_after > OUT_FOLDS ? OUT_FOLDS : fold_after];
    wire [TW-1:0] end_first = ptr_rom[1];
    wire last_fold = (fold == LAST_FOLD);
    wire last_pixel = (oy == LAST_Y) && (ox == LAST_X);
    wire image_last = last_tile && last_fold && last_pixel;
    wire start = !running && in_full && out_free;
    wire finish;

    always @(posedge clk) begin
        if (rst) begin
            running <= 1'b0;
            issuing <= 1'b0;
            cycles <= 32'd0;
            busy <= 32'd0;
        end else if (start) begin
            running <= 1'b1;
            issuing <= 1'b1;
            count <= 32'd0;
            tiles <= 32'd0;
        end else if (running) begin
            count <= count + 32'd1;
            if (issuing && real_tile) tiles <= tiles + 32'd1;
            if (issuing && image_last) issuing <= 1'b0;
            if (finish) begin
                running <= 1'b0;
                cycles <= count + 32'd1;
                busy <= tiles;
            end
        end
    end

    always @(posedge clk) begin
        if (start) begin
            t <= {TW{1'b0}};
            fold <= {PW{1'b0}};
            oy <= 16'd0;
            ox <= 16'd0;
            pix <= 32'd0;
            fold_first <= 1'b1;
        end else if (issuing) begin
            fold_first <= last_tile;
            if (!last_tile) begin
                t <= t_next;
            end else if (!last_fold) begin
                t <= t_end;
                fold <= fold_next;
            end else begin
                t <= {TW{1'b0}};
                fold <= {PW{1'b0}};
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

    always @(posedge clk) begin
        if (start || (issuing && last_tile && last_fold)) begin  // fold 0 at t = 0
            t_end <= end_first;
            real_tile <= end_first != {TW{1'b0}};
            last_tile <= ~|(end_first >> 1);  // end_first <= 1 (lint-clean at TW = 1)
        end else if (issuing && !last_tile) begin  // the fold's next tile
            last_tile <= (t_next + {{(TW-1){1'b0}}, 1'b1} == t_end);
        end else if (issuing) begin  // the next fold, from t = t_end
            t_end <= end_after;
            real_tile <= end_after != t_end;
            last_tile <= (end_after == t_end) || (end_after == t_end + {{(TW-1){1'b0}}, 1'b1});
        end
    end

    // ---------------------------------------------------------------- S1: ROM read
    reg v1, real1, first1, last1, end1;
    reg [PW-1:0] fold1;
    reg [15:0] oy1, ox1;
    reg [31:0] pix1;
    reg [WB-1:0] w1;
    reg [47:0] idx1;
    always @(posedge clk) begin
        v1 <= issuing && !rst;
        real1 <= real_tile;
        first1 <= fold_first;
        last1 <= last_tile;
        end1 <= image_last;
        fold1 <= fold;
        oy1 <= oy;
        ox1 <= ox;
        pix1 <= pix;
        w1 <= w_rom[t];
        idx1 <= idx_rom[t];
    end

    // ---------------------------------------------------------------- S1b: the ROM words registered again
    // A block-RAM ROM's read (DP16KD on ECP5) has a slow clock-to-out: S2's address arithmetic starts from
    // a fabric register instead (on digits the index ROM into the buffer's row adder was the critical path).
    reg v1b, real1b, first1b, last1b, end1b;
    reg [PW-1:0] fold1b;
    reg [15:0] oy1b, ox1b;
    reg [31:0] pix1b;
    reg [WB-1:0] w1b;
    reg [47:0] idx1b;
    always @(posedge clk) begin
        v1b <= v1 && !rst;
        {real1b, first1b, last1b, end1b, fold1b, oy1b, ox1b, pix1b, w1b, idx1b} <=
            {real1, first1, last1, end1, fold1, oy1, ox1, pix1, w1, idx1};
    end

    // ---------------------------------------------------------------- S2: input address, padding test
    wire [31:0] iyp = {16'd0, oy1b} * STRIDE + {16'd0, idx1b[15:0]};
    wire [31:0] ixp = {16'd0, ox1b} * STRIDE + {16'd0, idx1b[31:16]};
`ifdef PYFLOW_PLANTED_BUG
    // test only (tests/test_fuzz.py): with PAD >= 2 the last top-padding row of taps reads memory instead of 0
    wire [31:0] top_ok = (PAD >= 2) ? iyp + 32'd2 : iyp + 32'd1;
    wire in_range = (top_ok > PAD) && (iyp < H_IN + PAD) && (ixp + 32'd1 > PAD) && (ixp < W_IN + PAD);
`else
    wire in_range = (iyp + 32'd1 > PAD) && (iyp < H_IN + PAD) && (ixp + 32'd1 > PAD) && (ixp < W_IN + PAD);
`endif
    wire [31:0] in_addr = ((iyp - PAD) * W_IN + (ixp - PAD)) * C_IN_PAD + {16'd0, idx1b[47:32]} * SIMD;
    reg v2, use2, first2, last2, end2;
    reg [PW-1:0] fold2;
    reg [31:0] pix2;
    reg [WB-1:0] w2;
    always @(posedge clk) begin
        v2 <= v1b && !rst;
        use2 <= real1b && in_range;
        first2 <= first1b;
        last2 <= last1b;
        end2 <= end1b;
        fold2 <= fold1b;
        pix2 <= pix1b;
        w2 <= real1b ? w1b : {WB{1'b0}};
    end
    assign rd_base = in_addr[IN_AW-1:0];  // the buffer's pipelined read: the word arrives with S2b

    // ---------------------------------------------------------------- S2b: the buffer registers the rows
    reg v2b, use2b, first2b, last2b, end2b;
    reg [PW-1:0] fold2b;
    reg [31:0] pix2b;
    reg [WB-1:0] w2b;
    always @(posedge clk) begin
        v2b <= v2 && !rst;
        {use2b, first2b, last2b, end2b, fold2b, pix2b, w2b} <= {use2, first2, last2, end2, fold2, pix2, w2};
    end

    // ---------------------------------------------------------------- S3: input word
    localparam TAG = 3 + PW + 32;  // {valid, first, last/end, fold, pix} travel beside the PE lanes
    reg [SIMD*IN_BITS-1:0] x3;
    reg [WB-1:0] w3;
    reg [TAG:0] tag3;
    always @(posedge clk) begin
        x3 <= use2b ? rd_data : {SIMD*IN_BITS{1'b0}};
        w3 <= w2b;
        tag3 <= {v2b && !rst, first2b, last2b, end2b, fold2b, pix2b};
    end

    // ---------------------------------------------------------------- PE lanes
    wire [PE*SUM_W-1:0] sums;
    pf_pe_lanes #(.PE(PE), .SIMD(SIMD), .IN_BITS(IN_BITS), .SUM_W(SUM_W)) u_pe (
        .clk(clk), .x(x3), .w(w3), .sums(sums));

    // The valid bit is cleared under rst at every stage, as v1/v2/tag3 are: otherwise a reset shorter
    // than PE_LAT + 3 cycles leaves power-up garbage in flight that can fire a spurious write and finish
    // (RTL simulation hides it: `if (x)` takes the else branch; the synthesized netlist shows it as X).
    reg [TAG:0] tag_pipe [0:PE_LAT-1];
    integer s;
    // (Found twice: by the fuzzer, as a garbage logit with Verilator's random initial state, and by the
    // netlist view, as an X.)
    always @(posedge clk) begin
        tag_pipe[0] <= {tag3[TAG] && !rst, tag3[TAG-1:0]};
        for (s = 1; s < PE_LAT; s = s + 1) tag_pipe[s] <= {tag_pipe[s-1][TAG] && !rst, tag_pipe[s-1][TAG-1:0]};
    end
    wire [TAG:0] tag_pe = tag_pipe[PE_LAT-1];
    wire pe_valid = tag_pe[TAG];
    wire pe_first = tag_pe[TAG-1];
    wire pe_last = tag_pe[TAG-2];

    // ---------------------------------------------------------------- accumulate
    reg [PE*ACC_BITS-1:0] acc;
    reg acc_valid, acc_end;
    reg [PW-1:0] acc_fold;
    reg [31:0] acc_pix;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_acc
            wire [SUM_W-1:0] part = sums[p*SUM_W +: SUM_W];
            wire [ACC_BITS-1:0] part_ext;
            if (ACC_BITS > SUM_W) begin : g_ext
                assign part_ext = {{(ACC_BITS-SUM_W){part[SUM_W-1]}}, part};
            end else begin : g_same
                assign part_ext = part;
            end
            always @(posedge clk)
                if (pe_valid)
                    acc[p*ACC_BITS +: ACC_BITS] <= pe_first ? part_ext : acc[p*ACC_BITS +: ACC_BITS] + part_ext;
        end
    endgenerate
    always @(posedge clk) begin
        acc_valid <= pe_valid && pe_last && !rst;
        acc_end <= tag_pe[TAG-3];
        acc_fold <= tag_pe[32 +: PW];
        acc_pix <= tag_pe[31:0];
    end

    // ---------------------------------------------------------------- requantize, then write
    wire [PE*RQB-1:0] rq_word = rq_rom[acc_fold];
    wire [PE*M_BITS-1:0] rq_m;
    wire [PE*RQ_W-1:0] rq_b;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_rq
            assign rq_m[p*M_BITS +: M_BITS] = rq_word[p*RQB +: M_BITS];
            assign rq_b[p*RQ_W +: RQ_W] = rq_word[p*RQB + M_BITS +: RQ_W];
        end
    endgenerate
    pf_requant #(.LANES(PE), .ACC_BITS(ACC_BITS), .M_BITS(M_BITS), .RQ_W(RQ_W), .SHIFT(SHIFT),
                 .OUT_BITS(OUT_BITS), .IS_OUTPUT(IS_OUTPUT), .SIGNED(SIGNED),
                 .RELU(RELU)) u_rq (
        .clk(clk), .acc(acc), .m(rq_m), .b(rq_b), .y(wr_data));

    // The tags of a requantized fold ride beside pf_requant for its RQL cycles. The output address and mask
    // are computed in the first of them and registered, so the pixel x stride product (a multiplier on
    // ECP5) has a cycle of its own before the buffer's write port.
    localparam RQL = 5;  // pf_requant's latency (REQUANT_LATENCY in pyflow.hw.engines)
    localparam LW = 2 + OUT_AW + PE;  // one stage of the line: {valid, end, address, mask}
    reg rq_valid1, rq_end1;
    reg [PW-1:0] rq_fold1;
    reg [31:0] rq_pix1;
    reg [LW*(RQL-1)-1:0] rq_line;  // stages 2..RQL, stage k at bits (k-2)*LW
    wire [31:0] channel1 = {{(32-PW){1'b0}}, rq_fold1} * PE;
    wire [31:0] out_addr = rq_pix1 * OUT_STRIDE + channel1;
    wire [PE-1:0] mask1;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_mask
            assign mask1[p] = (channel1 + p) < OUT_CHANNELS;
        end
    endgenerate
    integer k;
    always @(posedge clk) begin
        rq_valid1 <= acc_valid && !rst;
        {rq_end1, rq_fold1, rq_pix1} <= {acc_end, acc_fold, acc_pix};
        rq_line <= {rq_line[LW*(RQL-2)-1:0], rq_valid1 && !rst, rq_end1, out_addr[OUT_AW-1:0], mask1};
        if (rst)
            for (k = 0; k < RQL - 1; k = k + 1) rq_line[k*LW + LW-1] <= 1'b0;
    end
    wire [LW-1:0] rq_out = rq_line[LW*(RQL-1)-1 -: LW];
    wire rq_valid = rq_out[LW-1];
    assign wr_en = rq_valid;
    assign wr_base = rq_out[PE +: OUT_AW];
    assign wr_mask = rq_out[PE-1:0];
    assign finish = rq_valid && rq_out[LW-2];
    assign in_done = finish;
    assign out_done = finish;

    wire unused_ok = &{1'b0, in_addr[31:IN_AW], out_addr[31:OUT_AW], tag_pe[TAG-3], 1'b0};
endmodule
