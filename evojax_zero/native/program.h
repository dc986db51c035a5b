// Programs as the interpreter sees them: op ids, operand kinds, the memory layout and the
// decoding of one function's (op, addr, data) rows into flat instructions (host and device).
#ifndef EVOJAX_ZERO_NATIVE_PROGRAM_H_
#define EVOJAX_ZERO_NATIVE_PROGRAM_H_

#include "common.h"

namespace evojax_zero {

// ------------------------------------------------------------------------------------
// Decoded instructions: operand addresses become offsets into one flat memory block
// [scalars S | vectors V*F | matrices M*F*F].
// ------------------------------------------------------------------------------------
template <typename T> struct Instr {
  int32_t op;
  int32_t a, b, o;   // memory offsets of in1, in2, out
  int32_t i0, i1;    // const-set indices
  T x, y;            // const value | (lo, hi) | (mean, stdev)
};

enum OpId : int32_t {
  NO_OP = 0, SCALAR_SUM = 1, SCALAR_DIFF = 2, SCALAR_PRODUCT = 3, SCALAR_DIVISION = 4,
  SCALAR_ABS = 5, SCALAR_RECIPROCAL = 6, SCALAR_SIN = 7, SCALAR_COS = 8, SCALAR_TAN = 9,
  SCALAR_ARCSIN = 10, SCALAR_ARCCOS = 11, SCALAR_ARCTAN = 12, SCALAR_EXP = 13, SCALAR_LOG = 14,
  SCALAR_HEAVYSIDE = 15, VECTOR_HEAVYSIDE = 16, MATRIX_HEAVYSIDE = 17,
  SCALAR_VECTOR_PRODUCT = 18, SCALAR_BROADCAST = 19, VECTOR_RECIPROCAL = 20, VECTOR_NORM = 21,
  VECTOR_ABS = 22, VECTOR_SUM = 23, VECTOR_DIFF = 24, VECTOR_PRODUCT = 25,
  VECTOR_DIVISION = 26, VECTOR_INNER_PRODUCT = 27, VECTOR_OUTER_PRODUCT = 28,
  SCALAR_MATRIX_PRODUCT = 29, MATRIX_RECIPROCAL = 30, MATRIX_VECTOR_PRODUCT = 31,
  VECTOR_COLUMN_BROADCAST = 32, VECTOR_ROW_BROADCAST = 33, MATRIX_NORM = 34,
  MATRIX_COLUMN_NORM = 35, MATRIX_ROW_NORM = 36, MATRIX_TRANSPOSE = 37, MATRIX_ABS = 38,
  MATRIX_SUM = 39, MATRIX_DIFF = 40, MATRIX_PRODUCT = 41, MATRIX_DIVISION = 42,
  MATRIX_MATRIX_PRODUCT = 43, SCALAR_MIN = 44, VECTOR_MIN = 45, MATRIX_MIN = 46,
  SCALAR_MAX = 47, VECTOR_MAX = 48, MATRIX_MAX = 49, VECTOR_MEAN = 50, MATRIX_MEAN = 51,
  MATRIX_ROW_MEAN = 52, MATRIX_ROW_ST_DEV = 53, VECTOR_ST_DEV = 54, MATRIX_ST_DEV = 55,
  SCALAR_CONST_SET = 56, VECTOR_CONST_SET = 57, MATRIX_CONST_SET = 58,
  SCALAR_UNIFORM_SET = 59, VECTOR_UNIFORM_SET = 60, MATRIX_UNIFORM_SET = 61,
  SCALAR_GAUSSIAN_SET = 62, VECTOR_GAUSSIAN_SET = 63, MATRIX_GAUSSIAN_SET = 64,
  NUM_OPS = 65,
};
// A pseudo-instruction of dead-code elimination (liveness.h): advance the lane's random
// stream by i0 draws (what a dead uniform op would have drawn).
constexpr int32_t RNG_SKIP = NUM_OPS;

// Operand kinds (0 none, 1 scalar, 2 vector, 3 matrix) of in1, in2, out for each op.
#define EVOJAX_ZERO_KINDS                                                                    \
  {                                                                                          \
    {0, 0, 0}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 0, 1}, {1, 0, 1}, {1, 0, 1},  \
    {1, 0, 1}, {1, 0, 1}, {1, 0, 1}, {1, 0, 1}, {1, 0, 1}, {1, 0, 1}, {1, 0, 1}, {1, 0, 1},  \
    {2, 0, 2}, {3, 0, 3}, {1, 2, 2}, {1, 0, 2}, {2, 0, 2}, {2, 0, 1}, {2, 0, 2}, {2, 2, 2},  \
    {2, 2, 2}, {2, 2, 2}, {2, 2, 2}, {2, 2, 1}, {2, 2, 3}, {1, 3, 3}, {3, 0, 3}, {3, 2, 2},  \
    {2, 0, 3}, {2, 0, 3}, {3, 0, 1}, {3, 0, 2}, {3, 0, 2}, {3, 0, 3}, {3, 0, 3}, {3, 3, 3},  \
    {3, 3, 3}, {3, 3, 3}, {3, 3, 3}, {3, 3, 3}, {1, 1, 1}, {2, 2, 2}, {3, 3, 3}, {1, 1, 1},  \
    {2, 2, 2}, {3, 3, 3}, {2, 0, 1}, {3, 0, 1}, {3, 0, 2}, {3, 0, 2}, {2, 0, 1}, {3, 0, 1},  \
    {0, 0, 1}, {0, 0, 2}, {0, 0, 3}, {0, 0, 1}, {0, 0, 2}, {0, 0, 3}, {0, 0, 1}, {0, 0, 2},  \
    {0, 0, 3},                                                                               \
  }
static const int8_t kKinds[NUM_OPS][3] = EVOJAX_ZERO_KINDS;
#if defined(__CUDACC__)
__device__ const int8_t kKindsDevice[NUM_OPS][3] = EVOJAX_ZERO_KINDS;  // the same table
#endif

EVOJAX_ZERO_HD inline int OpKind(int32_t op, int slot) {
#if defined(__CUDA_ARCH__)
  return kKindsDevice[op][slot];
#else
  return kKinds[op][slot];
#endif
}

struct Layout {
  int32_t S, V, M, F;
  EVOJAX_ZERO_HD int32_t vec0() const { return S; }
  EVOJAX_ZERO_HD int32_t mat0() const { return S + V * F; }
  EVOJAX_ZERO_HD int32_t total() const { return S + V * F + M * F * F; }
};

// Clamp an address into [0, n) so that malformed input can never touch memory outside
// the block (valid programs are unaffected).
EVOJAX_ZERO_HD inline int32_t ClampAddr(int32_t a, int32_t n) {
  return a < 0 ? 0 : (a >= n ? n - 1 : a);
}

EVOJAX_ZERO_HD inline int32_t Offset(const Layout& l, int kind, int32_t a) {
  switch (kind) {
    case 1: return ClampAddr(a, l.S);
    case 2: return l.vec0() + ClampAddr(a, l.V) * l.F;
    case 3: return l.mat0() + ClampAddr(a, l.M) * l.F * l.F;
    default: return 0;
  }
}

// FloatToIndex: (int)(float(F) * f) computed in float32, clamped to [0, F). A product
// outside the int32 range (or NaN) gives 0: what the x86-64 conversion (INT32_MIN, then
// clamped) always gave, spelled out so that the device (whose conversion saturates) agrees.
EVOJAX_ZERO_HD inline int32_t FloatToIndex(double f, int32_t F) {
  float p = static_cast<float>(F) * static_cast<float>(f);
  if (!(p > -2147483648.0f && p < 2147483648.0f)) return 0;
  int32_t i = static_cast<int32_t>(p);
  return i < 0 ? 0 : (i >= F ? F - 1 : i);
}

// Decode the first `size` instructions of one function. data rows: act, f0, f1, f2.
template <typename T>
EVOJAX_ZERO_HD int Decode(const Layout& l, const int32_t* op, const int32_t* addr,
                          const T* data, int32_t size, int32_t max_len, Instr<T>* out) {
  int n = 0;
  int32_t len = math::Min(math::Max(size, 0), max_len);
  for (int32_t i = 0; i < len; ++i) {
    int32_t o = op[i];
    if (o <= 0 || o >= NUM_OPS) continue;  // NO_OP (unknown ops are rejected in Python)
    Instr<T> I{};
    I.op = o;
    I.a = Offset(l, OpKind(o, 0), addr[3 * i + 0]);
    I.b = Offset(l, OpKind(o, 1), addr[3 * i + 1]);
    I.o = Offset(l, OpKind(o, 2), addr[3 * i + 2]);
    const T* d = data + 4 * i;
    switch (o) {
      case SCALAR_CONST_SET: I.x = d[0]; break;
      case VECTOR_CONST_SET: I.i0 = FloatToIndex(d[1], l.F); I.x = d[2]; break;
      case MATRIX_CONST_SET:
        I.i0 = FloatToIndex(d[1], l.F); I.i1 = FloatToIndex(d[2], l.F); I.x = d[3]; break;
      default: I.x = d[1]; I.y = d[2]; break;
    }
    out[n++] = I;
  }
  return n;
}

}  // namespace evojax_zero

#endif  // EVOJAX_ZERO_NATIVE_PROGRAM_H_
