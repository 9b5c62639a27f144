`timescale 1ns / 1ps
// Feature-map buffer between two layers: BANKS banks (images) of elements of BITS bits, used in turn.
// The producer fills bank wr_bank (WR_LANES masked consecutive elements per cycle from wr_base) and
// pulses wr_done; the consumer reads RD_LANES consecutive elements from rd_base of bank rd_bank and
// pulses rd_done. With two banks (ping-pong) layer i writes image n while layer i+1 reads image n-1; the
// skip buffer in front of a residual add has more (pyflow.hw.cycles.bank_plan). With REG_READ the read is
// pipelined: each lane's row address is registered, then the word (rd_data two cycles after rd_base), so
// the consumer's address arithmetic and the lane-row adders are one register stage and the memory read
// (distributed or block RAM) the next; without REG_READ the read is combinational.
//
// Storage is lane-interleaved: element e lives in lane memory e mod L at row e / L, L = 2^LB >= both
// lane counts. Any run of <= L consecutive elements touches each lane memory at most once, so every lane
// memory has one write port and one read port (distributed or block RAM) and the lanes are routed by
// two rotators instead of DEPTH-wide multiplexers. Rows are {image bank, e / L}.
module pf_fmap_buf #(
    parameter BITS = 8,
    parameter WR_LANES = 1,
    parameter RD_LANES = 1,
    parameter AW = 6,  // element address width, >= clog2(elements of one image)
    parameter LB = 0,  // log2 of the lane memories, 2^LB >= max(WR_LANES, RD_LANES)
    parameter RW = 6,  // row address width: rows of one image, max(1, clog2(ceil(elements / 2^LB)))
    parameter WR_AB = 0,  // every wr_base is a multiple of 2^WR_AB (<= LB): the write rotator only
    parameter RD_AB = 0,  // turns by those steps; likewise rd_base and 2^RD_AB
    parameter REG_READ = 1,
    parameter BANKS = 2,
    parameter BB = 1  // bank-number bits, 2^BB >= BANKS
) (
    input  wire                     clk,
    input  wire                     rst,
    // producer
    output wire                     wr_free,
    input  wire                     wr_en,
    input  wire [AW-1:0]            wr_base,
    input  wire [WR_LANES-1:0]      wr_mask,
    input  wire [WR_LANES*BITS-1:0] wr_data,
    input  wire                     wr_done,
    // consumer
    output wire                     rd_full,
    input  wire [AW-1:0]            rd_base,
    output wire [RD_LANES*BITS-1:0] rd_data,
    input  wire                     rd_done
);
    localparam L = 1 << LB;

    localparam [31:0] LAST_BANK32 = BANKS - 1;
    localparam [BB-1:0] LAST_BANK = LAST_BANK32[BB-1:0];

    reg [BANKS-1:0] full;
    reg [BB-1:0] wr_bank, rd_bank;

    assign wr_free = !full[wr_bank];
    assign rd_full = full[rd_bank];

    always @(posedge clk) begin
        if (rst) begin
            full <= {BANKS{1'b0}};
            wr_bank <= {BB{1'b0}};
            rd_bank <= {BB{1'b0}};
        end else begin
            if (wr_done) begin
                full[wr_bank] <= 1'b1;
                wr_bank <= (wr_bank == LAST_BANK) ? {BB{1'b0}} : wr_bank + 1'b1;
            end
            if (rd_done) begin
                full[rd_bank] <= 1'b0;
                rd_bank <= (rd_bank == LAST_BANK) ? {BB{1'b0}} : rd_bank + 1'b1;
            end
        end
    end

    // Element address -> (row, lane offset); a lane left of the offset is on the next row.
    localparam IW = LB > 0 ? LB : 1;
    wire [31:0] wr_addr = {{(32-AW){1'b0}}, wr_base};
    wire [31:0] rd_addr = {{(32-AW){1'b0}}, rd_base};
    wire [31:0] wr_row = wr_addr >> LB;
    wire [31:0] rd_row = rd_addr >> LB;
    wire [31:0] wr_off = wr_addr & (L - (1 << WR_AB));
    wire [31:0] rd_off = rd_addr & (L - (1 << RD_AB));

    // The write lanes padded to L (a lane beyond WR_LANES is never enabled).
    wire [L*BITS-1:0] wr_lanes_data;
    wire [L-1:0]      wr_lanes_mask;
    wire [L*BITS-1:0] lane_q;  // what every lane memory reads
    wire [31:0]       q_off;   // the lane offset lane_q belongs to
    reg [BB-1:0]      bank_q;  // rd_bank beside the registered row addresses
    always @(posedge clk) bank_q <= rd_bank;
    generate
        if (L > WR_LANES) begin : g_pad
            assign wr_lanes_data = {{((L-WR_LANES)*BITS){1'b0}}, wr_data};
            assign wr_lanes_mask = {{(L-WR_LANES){1'b0}}, wr_mask};
        end else begin : g_full
            assign wr_lanes_data = wr_data;
            assign wr_lanes_mask = wr_mask;
        end
    endgenerate

    genvar k;
    generate
        for (k = 0; k < L; k = k + 1) begin : g_lane
            reg [BITS-1:0] mem [0:(BANKS<<RW)-1];
            // write: lane memory k takes input lane (k - offset) mod L
            wire [31:0] w_lane = (k - wr_off) & (L - 1);
            wire [IW-1:0] wi = w_lane[IW-1:0];
            wire [31:0] w_row = wr_row + (k < wr_off ? 32'd1 : 32'd0);
            always @(posedge clk)
                if (wr_en && wr_lanes_mask[wi]) mem[{wr_bank, w_row[RW-1:0]}] <= wr_lanes_data[wi*BITS +: BITS];
            // read: row of lane memory k for this offset
            wire [31:0] r_row = rd_row + (k < rd_off ? 32'd1 : 32'd0);
            if (REG_READ) begin : g_reg
                reg [RW-1:0] row_q;
                reg [BITS-1:0] q;
                always @(posedge clk) begin
                    row_q <= r_row[RW-1:0];
                    q <= mem[{bank_q, row_q}];
                end
                assign lane_q[k*BITS +: BITS] = q;
            end else begin : g_comb
                assign lane_q[k*BITS +: BITS] = mem[{rd_bank, r_row[RW-1:0]}];
            end
            wire unused = &{1'b0, w_lane[31:IW], w_row[31:RW], r_row[31:RW], 1'b0};
        end
        // output lane k = lane memory (k + offset) mod L: a rotator (by the offset of the read's cycle)
        if (REG_READ) begin : g_off_reg
            reg [31:0] off_a, off_q;
            always @(posedge clk) begin
                off_a <= rd_off;
                off_q <= off_a;
            end
            assign q_off = off_q;
        end else begin : g_off_comb
            assign q_off = rd_off;
            wire unused_bank = &{1'b0, bank_q, 1'b0};  // only the registered read uses it
        end
        for (k = 0; k < RD_LANES; k = k + 1) begin : g_rot
            wire [31:0] src = (k + q_off) & (L - 1);
            wire [IW-1:0] si = src[IW-1:0];
            assign rd_data[k*BITS +: BITS] = lane_q[si*BITS +: BITS];
            wire unused = &{1'b0, src[31:IW], 1'b0};
        end
    endgenerate
endmodule
