`timescale 1ns / 1ps
// Ping-pong feature-map buffer between two layers: two banks of DEPTH elements of BITS bits, a
// register file (fine for digits-sized networks; large maps would want block RAM banks). The producer
// fills bank wr_bank (WR_LANES masked elements per cycle from wr_base) and pulses wr_done; the consumer
// reads RD_LANES consecutive elements from rd_base of bank rd_bank (combinational) and pulses rd_done.
// So layer i writes image n while layer i+1 reads image n-1.
module pf_fmap_buf #(
    parameter DEPTH = 64,
    parameter BITS = 8,
    parameter WR_LANES = 1,
    parameter RD_LANES = 1,
    parameter AW = 6  // local address width, >= clog2(DEPTH)
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
    reg [BITS-1:0] mem0 [0:DEPTH-1];
    reg [BITS-1:0] mem1 [0:DEPTH-1];
    reg [1:0] full;
    reg wr_bank, rd_bank;

    assign wr_free = !full[wr_bank];
    assign rd_full = full[rd_bank];

    always @(posedge clk) begin
        if (rst) begin
            full <= 2'b00;
            wr_bank <= 1'b0;
            rd_bank <= 1'b0;
        end else begin
            if (wr_done) begin
                full[wr_bank] <= 1'b1;
                wr_bank <= !wr_bank;
            end
            if (rd_done) begin
                full[rd_bank] <= 1'b0;
                rd_bank <= !rd_bank;
            end
        end
    end

    genvar i;
    generate
        for (i = 0; i < WR_LANES; i = i + 1) begin : g_wr
            wire [31:0] sum = {{(32-AW){1'b0}}, wr_base} + i;
            wire [AW-1:0] addr = sum[AW-1:0];
            wire unused_sum = &{1'b0, sum[31:AW], 1'b0};
            always @(posedge clk) begin
                if (wr_en && wr_mask[i] && !wr_bank) mem0[addr] <= wr_data[i*BITS +: BITS];
                if (wr_en && wr_mask[i] && wr_bank) mem1[addr] <= wr_data[i*BITS +: BITS];
            end
        end
        for (i = 0; i < RD_LANES; i = i + 1) begin : g_rd
            wire [31:0] sum = {{(32-AW){1'b0}}, rd_base} + i;
            wire [AW-1:0] addr = sum[AW-1:0];
            wire unused_sum = &{1'b0, sum[31:AW], 1'b0};
            assign rd_data[i*BITS +: BITS] = rd_bank ? mem1[addr] : mem0[addr];
        end
    endgenerate
endmodule
