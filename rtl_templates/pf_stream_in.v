`timescale 1ns / 1ps
// Input stream -> first feature buffer: one pixel channel value per beat, HWC order (channel innermost),
// C*H*W beats per image, written at pixel*C_PAD + c (channels C..C_PAD-1 are the zero padding).
module pf_stream_in #(
    parameter C = 1,
    parameter H = 8,
    parameter W = 8,
    parameter C_PAD = 1,
    parameter BITS = 8,
    parameter AW = 6
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            in_valid,
    output wire            in_ready,
    input  wire [BITS-1:0] in_data,
    input  wire            wr_free,
    output wire            wr_en,
    output wire [AW-1:0]   wr_base,
    output wire [BITS-1:0] wr_data,
    output wire            wr_done
);
    localparam [31:0] LAST_C = C - 1;
    localparam [31:0] LAST_P = H * W - 1;
    reg [31:0] c, pix;
    wire beat = in_valid && wr_free;
    wire [31:0] addr = pix * C_PAD + c;
    assign in_ready = wr_free;
    assign wr_en = beat;
    assign wr_base = addr[AW-1:0];
    assign wr_data = in_data;
    assign wr_done = beat && (c == LAST_C) && (pix == LAST_P);
    always @(posedge clk) begin
        if (rst) begin
            c <= 32'd0;
            pix <= 32'd0;
        end else if (beat) begin
            if (c != LAST_C) begin
                c <= c + 32'd1;
            end else begin
                c <= 32'd0;
                pix <= (pix == LAST_P) ? 32'd0 : pix + 32'd1;
            end
        end
    end
    wire unused_ok = &{1'b0, addr[31:AW], 1'b0};
endmodule
