`timescale 1ns / 1ps
// UART, 8 data bits, no parity, one stop bit, least significant bit first; CLKS clock cycles per bit.

// Receiver: the line is synchronized through two flip-flops, a start bit is checked at its middle and every
// data bit is sampled at its middle; valid pulses for one cycle with the byte in data. A stop bit that is
// not high (a framing error) drops the byte and pulses frame_error instead.
module pf_uart_rx #(
    parameter CLKS = 868
) (
    input  wire       clk,
    input  wire       rst,
    input  wire       rx,
    output reg        valid,
    output reg  [7:0] data,
    output reg        frame_error
);
    localparam CW = $clog2(CLKS + 1);
    localparam [31:0] FULL32 = CLKS - 1;
    localparam [31:0] HALF32 = (CLKS - 1) / 2;
    wire [CW-1:0] FULL = FULL32[CW-1:0];
    wire [CW-1:0] HALF = HALF32[CW-1:0];
    reg [1:0] sync;
    reg busy;
    reg [3:0] bit_no;  // 0: start bit, 1-8: data bits, 9: stop bit
    reg [CW-1:0] count;
    wire line = sync[1];
    always @(posedge clk) begin
        sync <= {sync[0], rx};
        valid <= 1'b0;
        frame_error <= 1'b0;
        if (rst) begin
            sync <= 2'b11;
            busy <= 1'b0;
            bit_no <= 4'd0;
            count <= {CW{1'b0}};
        end else if (!busy) begin
            if (!line) begin  // a falling edge: the start bit begins
                busy <= 1'b1;
                bit_no <= 4'd0;
                count <= HALF;
            end
        end else if (count != 0) begin
            count <= count - 1'b1;
        end else begin
            count <= FULL;
            if (bit_no == 4'd0) begin
                if (line) busy <= 1'b0;  // a glitch, not a start bit
            end else if (bit_no <= 4'd8) begin
                data <= {line, data[7:1]};
            end else begin
                busy <= 1'b0;
                valid <= line;
                frame_error <= !line;
            end
            bit_no <= bit_no + 4'd1;
        end
    end
endmodule

// Transmitter: takes a byte when valid && ready, then drives start, 8 data and stop bits.
module pf_uart_tx #(
    parameter CLKS = 868
) (
    input  wire       clk,
    input  wire       rst,
    input  wire       valid,
    output wire       ready,
    input  wire [7:0] data,
    output wire       tx
);
    localparam CW = $clog2(CLKS + 1);
    localparam [31:0] FULL32 = CLKS - 1;
    wire [CW-1:0] FULL = FULL32[CW-1:0];
    reg [9:0] frame;  // stop, data[7:0], start: shifted out from bit 0
    reg [3:0] left;   // bits still to send
    reg [CW-1:0] count;
    assign ready = (left == 4'd0);
    assign tx = ready ? 1'b1 : frame[0];
    always @(posedge clk) begin
        if (rst) begin
            left <= 4'd0;
            count <= {CW{1'b0}};
            frame <= 10'h3ff;
        end else if (ready) begin
            if (valid) begin
                frame <= {1'b1, data, 1'b0};
                left <= 4'd10;
                count <= FULL;
            end
        end else if (count != 0) begin
            count <= count - 1'b1;
        end else begin
            count <= FULL;
            frame <= {1'b1, frame[9:1]};
            left <= left - 4'd1;
        end
    end
endmodule
