// pyflow HLS layer library: the loops, pragmas and adder trees of every generated project live here, once.
//
// Generated code only declares one configuration struct per layer (sizes, folding, bit widths and the
// packed ROMs) and calls pyflow::run_layer<Config>(in, out) for each layer (pyflow::add_layer<Config>(a, b,
// out) for a residual add, pyflow::fork for a layer read by two) inside a DATAFLOW region.
//
// Data layout (pyflow/ir/model.py): feature maps are HWC arrays of activations, channel innermost.
// W[M, N] has columns (k_y, k_x, c) with c innermost and C_in padded to a multiple of SIMD; tile (r, f)
// holds rows r*PE.. and columns f*SIMD..; a kept tile is one PE*SIMD*2-bit word with the code of PE lane p,
// SIMD lane j at bits 2*(p*SIMD + j); codes 00 -> 0, 01 -> +1, 11 -> -1. The tile index is CSR over
// output folds: the kept tiles of fold r are rows row_ptr[r] .. row_ptr[r+1]-1, column folds ascending.
//
// Integer contract: hidden layers y = clamp((acc*m + b) >> shift, 0, 2^out_bits - 1) with an arithmetic
// shift; the output layer returns acc*m + b as int32 logits. The PE array only adds and subtracts; the
// requantizer's acc*m is outside it. A residual branch's last layer is signed: it clamps to
// [-2^(out_bits-1), 2^(out_bits-1) - 1] and stores ap_int<out_bits>; only adds read it, and an add returns
// clamp((a*m_a + b*m_b + c) >> shift, 0, 2^out_bits - 1).
#ifndef PYFLOW_HLS_H
#define PYFLOW_HLS_H

// The ap_types headers' default constructors read their own uninitialised storage (clearUnusedBits()),
// which GCC reports at those header lines wherever they are inlined: silence that for the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <ap_int.h>
#pragma GCC diagnostic pop

namespace pyflow {

static const int M_BITS = 16;  // signed width of a requantization multiplier

// Layer kinds, named like the IR's `kind` field; run_layer dispatches on them.
struct conv_tag {};
struct linear_tag {};
struct maxpool_tag {};
struct avgpool_tag {};
struct flatten_tag {};

// Activation type of a layer output: unsigned activations, or signed logits for the output layer. (A
// signed hidden layer's configuration names ap_int<OUT_BITS> itself.)
template <int BITS, bool LOGITS>
struct activation {
    typedef ap_uint<BITS> type;
};
template <int BITS>
struct activation<BITS, true> {
    typedef ap_int<BITS> type;
};

// Saturation of a wide signed value to the range of activation type T: [0, 2^W - 1] for ap_uint<W>,
// [-2^(W-1), 2^(W-1) - 1] for ap_int<W> (two's complement, a residual branch). WIDE must hold 2^W.
template <class T>
struct saturate;
template <int W>
struct saturate<ap_uint<W> > {
    template <class WIDE>
    static ap_uint<W> apply(WIDE value) {
#pragma HLS INLINE
        const WIDE top = (WIDE(1) << W) - 1;
        return value < 0 ? ap_uint<W>(0) : (value > top ? ap_uint<W>(top) : ap_uint<W>(value));
    }
};
template <int W>
struct saturate<ap_int<W> > {
    template <class WIDE>
    static ap_int<W> apply(WIDE value) {
#pragma HLS INLINE
        const WIDE top = (WIDE(1) << (W - 1)) - 1, bottom = -top - 1;
        return value < bottom ? ap_int<W>(bottom) : (value > top ? ap_int<W>(top) : ap_int<W>(value));
    }
};

// Balanced adder tree over N values: log2(N) levels of adders, no multiplier.
template <int N>
struct adder_tree {
    template <class T>
    static T sum(const T values[]) {
#pragma HLS INLINE
        return adder_tree<N / 2>::sum(values) + adder_tree<N - N / 2>::sum(values + N / 2);
    }
};
template <>
struct adder_tree<1> {
    template <class T>
    static T sum(const T values[]) {
#pragma HLS INLINE
        return values[0];
    }
};

// C simulation speed, and why it keeps the Vitis semantics. The PE array's inner loops (PE x SIMD lanes per
// tile, one tile per cycle) are where C simulation spends its time; there the library works on plain C integers
// of fixed width rather than on an ap_int per lane: a 64-bit ROM chunk is an `unsigned long long`, a lane's
// code is two bits shifted out of it, a term and a PE lane's SIMD-wide sum are an `int` (a `long long` for an
// accumulator wider than 32 bits). These are fixed-width integer types that Vitis HLS synthesizes as they are,
// chosen by the layer's widths, never by __SYNTHESIS__: C simulation and synthesis compile the same code. Every
// value they hold is the value the ap_int form held, because lane_sum proves the width sufficient at compile
// time, so C simulation and hardware stay bit-identical. The accumulators, feature buffers and requantizer
// keep their ap_int widths; the lane terms and adder trees are still adds and negations only. (Whether
// Vitis narrows the int adders to the bits their IN_BITS+1-bit operands reach, as its bit-width reduction
// does for sign-extended operands, is a resource question for csynth: there is no Vitis on this machine.)
// Measured on VGG-small (benchmarks/hls_speed.py, one process): the per-lane ap_int form ran ~1.4 s per
// image, mostly in the temporaries of an ap_int ternary_term that g++ did not inline; this form ~0.12 s.

// The type of one PE lane's SIMD-wide sum: its magnitude is at most the accumulator's, so an integer of
// ACC_BITS or more bits holds it exactly.
template <int ACC_BITS, bool FITS_INT = (ACC_BITS <= 32)>
struct lane_sum {
    typedef int type;
};
template <int ACC_BITS>
struct lane_sum<ACC_BITS, false> {
    static_assert(ACC_BITS <= 64, "a PE lane's sum must fit a long long: ACC_BITS <= 64");
    typedef long long type;
};

// One ternary term: +x, -x or 0 selected by a 2-bit code, never a multiply: the low bit keeps x (an AND), the
// high bit negates it (two's complement: flip, add one). Without branches, so g++ does not mispredict on
// random codes; code 10 (invalid, refused when the IR is loaded) gives 0 as 00 does.
template <class T>
T ternary_term(unsigned code, T x) {
#pragma HLS INLINE
    const T keep = -T(code & 1u), negate = -T(code >> 1);  // all ones, or zero
    return ((x & keep) ^ negate) - negate;
}

// The packed word of kept tile t, as its WORD_CHUNKS 64-bit ROM chunks (chunk k holds bits 64k..64k+63).
template <class CFG>
void tile_word(unsigned t, unsigned long long word[CFG::WORD_CHUNKS]) {
#pragma HLS INLINE
    for (unsigned k = 0; k < CFG::WORD_CHUNKS; ++k) {
#pragma HLS UNROLL
        word[k] = CFG::words[t][k];
    }
}

// The 2-bit code of lane i (= p*SIMD + j): bits 2i, 2i+1 of the word, never straddling two chunks.
inline unsigned lane_code(const unsigned long long word[], unsigned lane) {
#pragma HLS INLINE
    return unsigned(word[lane / 32] >> (2 * (lane % 32))) & 3u;
}

// One SIMD-wide input word for column fold f at output pixel (oy, ox): zero in the padding and in the
// padded channels c >= C_IN.
template <class CFG>
void read_input(const typename CFG::in_t in[], unsigned f, unsigned oy, unsigned ox,
                ap_uint<CFG::IN_BITS> x[CFG::SIMD]) {
#pragma HLS INLINE
    const unsigned pos = f / CFG::CHUNKS, chunk = f % CFG::CHUNKS;
    const int iy = int(oy * CFG::STRIDE + pos / CFG::KERNEL) - int(CFG::PADDING);
    const int ix = int(ox * CFG::STRIDE + pos % CFG::KERNEL) - int(CFG::PADDING);
    const bool inside = iy >= 0 && iy < int(CFG::H_IN) && ix >= 0 && ix < int(CFG::W_IN);
    const unsigned base = inside ? (unsigned(iy) * CFG::W_IN + unsigned(ix)) * CFG::C_IN : 0;
    for (unsigned j = 0; j < CFG::SIMD; ++j) {
#pragma HLS UNROLL
        const unsigned c = chunk * CFG::SIMD + j;
        x[j] = (inside && c < CFG::C_IN) ? ap_uint<CFG::IN_BITS>(in[base + c]) : ap_uint<CFG::IN_BITS>(0);
    }
}

// The PE array on one kept tile: every PE lane adds or subtracts its SIMD inputs in an adder tree.
template <class CFG>
void pe_array(const unsigned long long word[CFG::WORD_CHUNKS], const ap_uint<CFG::IN_BITS> x[CFG::SIMD],
              ap_int<CFG::ACC_BITS> acc[CFG::PE]) {
#pragma HLS INLINE
    typedef typename lane_sum<CFG::ACC_BITS>::type sum_t;
    sum_t value[CFG::SIMD];  // each input once as an int (zero-extended, IN_BITS < 32), shared by the PE lanes
#pragma HLS ARRAY_PARTITION variable=value type=complete
    for (unsigned j = 0; j < CFG::SIMD; ++j) {
#pragma HLS UNROLL
        value[j] = sum_t(x[j].to_uint());
    }
    // g++ does not unroll this loop by itself (its body is the SIMD loop, already unrolled); unrolled, every
    // lane's chunk and shift are constants: ~25 % faster C simulation on VGG-small. For Vitis HLS the hint
    // repeats the HLS UNROLL below, so the hardware is the same either way.
#pragma GCC unroll 64
    for (unsigned p = 0; p < CFG::PE; ++p) {
#pragma HLS UNROLL
        sum_t terms[CFG::SIMD];
#pragma HLS ARRAY_PARTITION variable=terms type=complete
        for (unsigned j = 0; j < CFG::SIMD; ++j) {
#pragma HLS UNROLL
            terms[j] = ternary_term(lane_code(word, p * CFG::SIMD + j), value[j]);
        }
        acc[p] += adder_tree<CFG::SIMD>::sum(terms);
    }
}

// Requantizer of a hidden layer: (acc*m + b) >> shift (arithmetic) saturated to the range of its out_t:
// [0, 2^out_bits - 1], or [-2^(out_bits-1), 2^(out_bits-1) - 1] for a signed layer (out_t = ap_int).
template <class CFG, bool LOGITS>
struct requantizer {
    static typename CFG::out_t apply(ap_int<CFG::ACC_BITS> acc, unsigned o) {
#pragma HLS INLINE
        typedef ap_int<CFG::ACC_BITS + M_BITS + 1> wide_t;
        const wide_t scaled = wide_t(acc * ap_int<M_BITS>(CFG::m[o])) + wide_t(CFG::b[o]);
        return saturate<typename CFG::out_t>::apply(wide_t(scaled >> CFG::SHIFT));
    }
};

// Requantizer of the output layer: acc*m + b as signed logits (no shift, no clamp).
template <class CFG>
struct requantizer<CFG, true> {
    static typename CFG::out_t apply(ap_int<CFG::ACC_BITS> acc, unsigned o) {
#pragma HLS INLINE
        typedef ap_int<CFG::ACC_BITS + M_BITS + 1> wide_t;
        const wide_t logit = wide_t(acc * ap_int<M_BITS>(CFG::m[o])) + wide_t(CFG::b[o]);
        return typename CFG::out_t(CFG::RELU && logit < 0 ? wide_t(0) : logit);  // RELU: a model ending in ReLU
    }
};

// The sparse ternary layer engine (conv and linear): for each output pixel and output fold, walk only
// the kept tiles of that fold, one tile per cycle, then requantize the PE accumulators.
template <class CFG>
void matrix_layer(const typename CFG::in_t in[CFG::IN_SIZE], typename CFG::out_t out[CFG::OUT_SIZE]) {
    ap_int<CFG::ACC_BITS> acc[CFG::PE];
#pragma HLS ARRAY_PARTITION variable=acc type=complete
    ap_uint<CFG::IN_BITS> x[CFG::SIMD];
#pragma HLS ARRAY_PARTITION variable=x type=complete
    unsigned long long word[CFG::WORD_CHUNKS];
#pragma HLS ARRAY_PARTITION variable=word type=complete
    for (unsigned pixel = 0; pixel < CFG::H_OUT * CFG::W_OUT; ++pixel) {
        const unsigned oy = pixel / CFG::W_OUT, ox = pixel % CFG::W_OUT;
        for (unsigned r = 0; r < CFG::OUT_FOLDS; ++r) {
            for (unsigned p = 0; p < CFG::PE; ++p) {
#pragma HLS UNROLL
                acc[p] = 0;
            }
            for (unsigned t = CFG::row_ptr[r]; t < unsigned(CFG::row_ptr[r + 1]); ++t) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=0 max=CFG::COL_FOLDS
                read_input<CFG>(in, CFG::col_idx[t], oy, ox, x);
                tile_word<CFG>(t, word);
                pe_array<CFG>(word, x, acc);
            }
            for (unsigned p = 0; p < CFG::PE; ++p) {
#pragma HLS UNROLL
                const unsigned o = r * CFG::PE + p;
                if (o < CFG::C_OUT) out[pixel * CFG::C_OUT + o] = requantizer<CFG, CFG::IS_OUTPUT>::apply(acc[p], o);
            }
        }
    }
}

// Max pooling: integer compares over the window (activations are unsigned, so 0 is the identity).
template <class CFG>
void maxpool_layer(const typename CFG::in_t in[CFG::IN_SIZE], typename CFG::out_t out[CFG::OUT_SIZE]) {
    for (unsigned pixel = 0; pixel < CFG::H_OUT * CFG::W_OUT; ++pixel) {
        const unsigned oy = pixel / CFG::W_OUT, ox = pixel % CFG::W_OUT;
        for (unsigned c = 0; c < CFG::C_IN; ++c) {
#pragma HLS PIPELINE II=1
            typename CFG::out_t best = 0;
            for (unsigned k = 0; k < CFG::KERNEL * CFG::KERNEL; ++k) {
#pragma HLS UNROLL
                const unsigned iy = oy * CFG::STRIDE + k / CFG::KERNEL, ix = ox * CFG::STRIDE + k % CFG::KERNEL;
                const typename CFG::in_t value = in[(iy * CFG::W_IN + ix) * CFG::C_IN + c];
                if (value > best) best = value;
            }
            out[pixel * CFG::C_IN + c] = best;
        }
    }
}

// Average pooling: window sum, then the scalar requantization clamp((sum*m + b) >> shift, 0, 2^bits - 1).
template <class CFG>
void avgpool_layer(const typename CFG::in_t in[CFG::IN_SIZE], typename CFG::out_t out[CFG::OUT_SIZE]) {
    typedef ap_int<CFG::SUM_BITS + M_BITS + 1> wide_t;
    for (unsigned pixel = 0; pixel < CFG::H_OUT * CFG::W_OUT; ++pixel) {
        const unsigned oy = pixel / CFG::W_OUT, ox = pixel % CFG::W_OUT;
        for (unsigned c = 0; c < CFG::C_IN; ++c) {
#pragma HLS PIPELINE II=1
            ap_uint<CFG::SUM_BITS> sum = 0;
            for (unsigned k = 0; k < CFG::KERNEL * CFG::KERNEL; ++k) {
#pragma HLS UNROLL
                const unsigned iy = oy * CFG::STRIDE + k / CFG::KERNEL, ix = ox * CFG::STRIDE + k % CFG::KERNEL;
                sum += in[(iy * CFG::W_IN + ix) * CFG::C_IN + c];
            }
            const wide_t scaled = wide_t(wide_t(sum) * ap_int<M_BITS>(CFG::M)) + wide_t(CFG::B);
            out[pixel * CFG::C_IN + c] = saturate<typename CFG::out_t>::apply(wide_t(scaled >> CFG::SHIFT));
        }
    }
}

// Flatten: (C, H, W) -> (H*W*C, 1, 1) keeps the HWC memory order, so it is a plain copy between buffers.
template <class CFG>
void flatten_layer(const typename CFG::in_t in[CFG::IN_SIZE], typename CFG::out_t out[CFG::OUT_SIZE]) {
    for (unsigned i = 0; i < CFG::IN_SIZE; ++i) {
#pragma HLS PIPELINE II=1
        out[i] = in[i];
    }
}

// Residual add: y = clamp((a*m_a + b*m_b + c) >> shift, 0, 2^out_bits - 1) element by element; in_a_t and
// in_b_t are ap_int for a signed branch, ap_uint otherwise.
template <class CFG>
void add_layer(const typename CFG::in_a_t a[CFG::IN_SIZE], const typename CFG::in_b_t b[CFG::IN_SIZE],
               typename CFG::out_t out[CFG::OUT_SIZE]) {
    typedef ap_int<CFG::SUM_BITS> wide_t;
    for (unsigned i = 0; i < CFG::IN_SIZE; ++i) {
#pragma HLS PIPELINE II=1
        const wide_t sum = wide_t(a[i]) * ap_int<M_BITS>(CFG::M_A) + wide_t(b[i]) * ap_int<M_BITS>(CFG::M_B) +
                           wide_t(CFG::C);
        out[i] = saturate<typename CFG::out_t>::apply(wide_t(sum >> CFG::SHIFT));
    }
}

// A fork: one feature array copied into two, because a DATAFLOW channel has one producer and one
// consumer. A process of its own rather than layers that write two outputs: the layer engines keep one
// output each, and a layer read by N others feeds a chain of N - 1 forks.
template <class T, unsigned SIZE>
void fork(const T in[SIZE], T first[SIZE], T second[SIZE]) {
    for (unsigned i = 0; i < SIZE; ++i) {
#pragma HLS PIPELINE II=1
        first[i] = in[i];
        second[i] = in[i];
    }
}

template <class CFG>
void run_layer(conv_tag, const typename CFG::in_t in[], typename CFG::out_t out[]) { matrix_layer<CFG>(in, out); }
template <class CFG>
void run_layer(linear_tag, const typename CFG::in_t in[], typename CFG::out_t out[]) { matrix_layer<CFG>(in, out); }
template <class CFG>
void run_layer(maxpool_tag, const typename CFG::in_t in[], typename CFG::out_t out[]) { maxpool_layer<CFG>(in, out); }
template <class CFG>
void run_layer(avgpool_tag, const typename CFG::in_t in[], typename CFG::out_t out[]) { avgpool_layer<CFG>(in, out); }
template <class CFG>
void run_layer(flatten_tag, const typename CFG::in_t in[], typename CFG::out_t out[]) { flatten_layer<CFG>(in, out); }

// One layer of the network, dispatched on its configuration's kind.
template <class CFG>
void run_layer(const typename CFG::in_t in[CFG::IN_SIZE], typename CFG::out_t out[CFG::OUT_SIZE]) {
    run_layer<CFG>(typename CFG::kind(), in, out);
}

}  // namespace pyflow

#endif  // PYFLOW_HLS_H
