`timescale 1ns / 1ps
// Board I/O of the accelerator: UART bytes in, one input element per byte (HWC order, as pyflow_top takes
// them); logits out as OUT_BITS/8 bytes each, least significant byte first. The host sends one image and
// waits for its logits before the next (pyflow serial): a byte that arrives while the previous one has not
// been taken is an overrun — it is dropped and the sticky overrun flag (an LED) says so.
module pf_board_io #(
    parameter IN_BITS = 8,
    parameter OUT_BITS = 32,
    parameter CLKS = 868  // clock cycles per UART bit
) (
    input  wire                clk,
    input  wire                rst,
    input  wire                uart_rx,
    output wire                uart_tx,
    output wire                in_valid,
    input  wire                in_ready,
    output wire [IN_BITS-1:0]  in_data,
    input  wire                out_valid,
    output wire                out_ready,
    input  wire [OUT_BITS-1:0] out_data,
    input  wire                out_last,
    output reg                 overrun,
    output reg                 framing,
    output reg                 in_flight
);
    localparam [31:0] BYTES = OUT_BITS / 8;
    wire rx_valid, rx_frame_error;
    wire [7:0] rx_data;
    pf_uart_rx #(.CLKS(CLKS)) u_rx (.clk(clk), .rst(rst), .rx(uart_rx), .valid(rx_valid), .data(rx_data),
                                    .frame_error(rx_frame_error));

    // one byte held until the stream takes it
    reg [7:0] held;
    reg held_valid;
    assign in_valid = held_valid;
    assign in_data = held[IN_BITS-1:0];
    always @(posedge clk) begin
        if (rst) begin
            held_valid <= 1'b0;
            overrun <= 1'b0;
            framing <= 1'b0;
        end else begin
            if (in_valid && in_ready) held_valid <= 1'b0;
            if (rx_valid) begin
                if (held_valid && !in_ready) overrun <= 1'b1;
                else begin
                    held <= rx_data;
                    held_valid <= 1'b1;
                end
            end
            if (rx_frame_error) framing <= 1'b1;
        end
    end

    // logits: one word latched, sent a byte at a time
    reg [OUT_BITS-1:0] word;
    reg [3:0] left;
    wire tx_ready;
    assign out_ready = (left == 4'd0);
    always @(posedge clk) begin
        if (rst) begin
            left <= 4'd0;
            in_flight <= 1'b0;
        end else begin
            if (rx_valid) in_flight <= 1'b1;
            if (out_valid && out_ready) begin
                word <= out_data;
                left <= BYTES[3:0];
                if (out_last) in_flight <= 1'b0;
            end else if (left != 0 && tx_ready) begin
                word <= word >> 8;
                left <= left - 4'd1;
            end
        end
    end
    pf_uart_tx #(.CLKS(CLKS)) u_tx (.clk(clk), .rst(rst), .valid(left != 0), .ready(tx_ready), .data(word[7:0]),
                                    .tx(uart_tx));
endmodule
