// AutoML-Zero program interpreter (native CPU backend of evojax_zero).
//
// Plain C++17, no XLA dependency: ffi.cc wraps it as an XLA FFI custom call.
// Semantics follow /work/shared/AUTOML_ZERO_REFERENCE.md (sections 1-3 and 7):
// memory wiped and Setup run once per (program, task); per epoch Train then Validate;
// fitness is the max over epochs of the validation fitness.
//
// The kernel returns per-epoch *scores*; the caller turns them into fitness in XLA:
//   score = the validation loss (sum of squared errors, or of 0/1 errors);
//   RMS_ERROR: fitness = FlipAndSquash(sqrt(score / Nv)); ACCURACY: 1 - score / Nv
//   (evaluated by XLA so that it is exactly the XLA evaluator's expression);
//   score = -1 (fitness 0) for an epoch not reached, stopped in training, or whose
//   validation saw an error that is NaN or > max_abs_error.
// fitness = max(0, max over epochs) = the reference's best-so-far over epochs.
//
// Templated on the feature size F (2, 4, 8, 16, 32) and the float type T (float, double).
// All arithmetic is done in T, in a fixed order, with no FMA contraction (the build passes
// -ffp-contract=off), so a result depends only on the inputs, never on threads.
//
// Host and device: everything a per-(program, task) run needs (random numbers, decoding,
// Execute, RunPair) is marked EVOJAX_ZERO_HD, which is `__host__ __device__` under nvcc and
// nothing otherwise, so interpreter_cuda.cu runs this same code in a CUDA kernel (one thread
// per pair; built with --fmad=false, the device analogue of -ffp-contract=off). Math goes
// through the wrappers in namespace `math` (std:: on the host, CUDA's functions on the device:
// + - * / and sqrt are IEEE-exact on both, the transcendental functions may differ in the last
// bit). The CPU-only driver (Executor with std::vector, EvaluateAll with std::thread) is not
// compiled by nvcc.
#ifndef EVOJAX_ZERO_NATIVE_INTERPRETER_H_
#define EVOJAX_ZERO_NATIVE_INTERPRETER_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if !defined(__CUDACC__)
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>
#endif

#if defined(__CUDACC__)
#define EVOJAX_ZERO_HD __host__ __device__
#define EVOJAX_ZERO_RESTRICT __restrict__
#else
#define EVOJAX_ZERO_HD
#define EVOJAX_ZERO_RESTRICT __restrict
#endif

namespace evojax_zero {

// ------------------------------------------------------------------------------------
// Math and small helpers usable on host and device. On the host these are exactly the
// std:: calls the CPU backend always made (same overloads, so the same bits).
// ------------------------------------------------------------------------------------
namespace math {

#if defined(__CUDA_ARCH__)
#define EVOJAX_ZERO_UNARY(Name, stdfn, devd, devf)                      \
  EVOJAX_ZERO_HD inline double Name(double x) { return ::devd(x); }     \
  EVOJAX_ZERO_HD inline float Name(float x) { return ::devf(x); }
#else
#define EVOJAX_ZERO_UNARY(Name, stdfn, devd, devf)                      \
  EVOJAX_ZERO_HD inline double Name(double x) { return std::stdfn(x); } \
  EVOJAX_ZERO_HD inline float Name(float x) { return std::stdfn(x); }
#endif
EVOJAX_ZERO_UNARY(Abs, abs, fabs, fabsf)
EVOJAX_ZERO_UNARY(Sqrt, sqrt, sqrt, sqrtf)
EVOJAX_ZERO_UNARY(Sin, sin, sin, sinf)
EVOJAX_ZERO_UNARY(Cos, cos, cos, cosf)
EVOJAX_ZERO_UNARY(Tan, tan, tan, tanf)
EVOJAX_ZERO_UNARY(Asin, asin, asin, asinf)
EVOJAX_ZERO_UNARY(Acos, acos, acos, acosf)
EVOJAX_ZERO_UNARY(Atan, atan, atan, atanf)
EVOJAX_ZERO_UNARY(Exp, exp, exp, expf)
EVOJAX_ZERO_UNARY(Log, log, log, logf)
#undef EVOJAX_ZERO_UNARY

template <typename T> EVOJAX_ZERO_HD inline bool IsNan(T x) {
#if defined(__CUDA_ARCH__)
  return x != x;  // IEEE comparison (no fast-math in the CUDA build)
#else
  return std::isnan(x);
#endif
}

template <typename T> EVOJAX_ZERO_HD inline T QuietNaN();
template <> EVOJAX_ZERO_HD inline double QuietNaN<double>() {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(0x7FF8000000000000LL);
#else
  return std::numeric_limits<double>::quiet_NaN();
#endif
}
template <> EVOJAX_ZERO_HD inline float QuietNaN<float>() {
#if defined(__CUDA_ARCH__)
  return __int_as_float(0x7FC00000);
#else
  return std::numeric_limits<float>::quiet_NaN();
#endif
}

template <typename T> EVOJAX_ZERO_HD inline T Infinity();
template <> EVOJAX_ZERO_HD inline double Infinity<double>() {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(0x7FF0000000000000LL);
#else
  return std::numeric_limits<double>::infinity();
#endif
}
template <> EVOJAX_ZERO_HD inline float Infinity<float>() {
#if defined(__CUDA_ARCH__)
  return __int_as_float(0x7F800000);
#else
  return std::numeric_limits<float>::infinity();
#endif
}

// std::min / std::max for integers (constexpr host functions are not callable on the device).
template <typename I> EVOJAX_ZERO_HD inline I Min(I a, I b) { return (b < a) ? b : a; }
template <typename I> EVOJAX_ZERO_HD inline I Max(I a, I b) { return (a < b) ? b : a; }

}  // namespace math

// ------------------------------------------------------------------------------------
// Counter-based random numbers (for the *_UNIFORM_SET / *_GAUSSIAN_SET ops).
// Stream of one (program, task) execution: splitmix64 at positions 1, 2, 3, ... of the
// 64-bit seed folded from that pair's key words. Draws happen in program order, so the
// values do not depend on thread scheduling.
// ------------------------------------------------------------------------------------
EVOJAX_ZERO_HD inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

EVOJAX_ZERO_HD inline uint64_t SeedFromKey(const uint32_t* words, int64_t n) {
  uint64_t seed = 0x6A09E667F3BCC908ULL;
  for (int64_t i = 0; i < n; ++i) seed = Mix64(seed ^ (static_cast<uint64_t>(words[i]) + 
                                                    (static_cast<uint64_t>(i) << 32)));
  return seed;
}

// Standard normal: Marsaglia & Tsang's ziggurat (128 layers). The layer index and the
// 32-bit value come from disjoint bits of one 64-bit draw (avoiding the original's
// correlation between them); about 99% of values cost one draw and one multiply.
struct ZigguratTables {
  uint32_t kn[128];
  double wn[128], fn[128];
  ZigguratTables() {
    const double m1 = 2147483648.0;
    double dn = 3.442619855899, tn = dn;
    const double vn = 9.91256303526217e-3;
    const double q = vn / std::exp(-0.5 * dn * dn);
    kn[0] = static_cast<uint32_t>((dn / q) * m1);
    kn[1] = 0;
    wn[0] = q / m1;
    wn[127] = dn / m1;
    fn[0] = 1.0;
    fn[127] = std::exp(-0.5 * dn * dn);
    for (int i = 126; i >= 1; --i) {
      dn = std::sqrt(-2.0 * std::log(vn / dn + std::exp(-0.5 * dn * dn)));
      kn[i + 1] = static_cast<uint32_t>((dn / tn) * m1);
      tn = dn;
      fn[i] = std::exp(-0.5 * dn * dn);
      wn[i] = dn / m1;
    }
  }
};

// The host's tables (the CUDA backend copies these very bytes to the device, so both draw
// the same normals).
inline const ZigguratTables& Ziggurat() {
  static const ZigguratTables tables;  // thread-safe one-time initialisation
  return tables;
}

struct Rng {
  uint64_t seed;
  uint64_t counter;
  const ZigguratTables* zig;  // Ziggurat() on the host, a device copy of it in CUDA
  EVOJAX_ZERO_HD inline uint64_t Next() {
    return Mix64(seed + (++counter) * 0x9E3779B97F4A7C15ULL);
  }
};

// Uniform in the open interval (0, 1).
template <typename T> EVOJAX_ZERO_HD inline T UniformOpen01(Rng& rng);
template <> EVOJAX_ZERO_HD inline double UniformOpen01<double>(Rng& rng) {
  return (static_cast<double>(rng.Next() >> 12) + 0.5) * 0x1.0p-52;
}
template <> EVOJAX_ZERO_HD inline float UniformOpen01<float>(Rng& rng) {
  return (static_cast<float>(rng.Next() >> 41) + 0.5f) * 0x1.0p-23f;
}

// absl::Uniform(IntervalOpen, lo, hi) returns lo when the range is empty (lo >= hi).
template <typename T> EVOJAX_ZERO_HD inline T UniformSet(Rng& rng, T lo, T hi) {
  if (!(lo < hi)) return lo;
  T r = lo + (hi - lo) * UniformOpen01<T>(rng);
  // Keep the draw inside the open interval despite rounding.
  return (r > lo && r < hi) ? r : lo;
}

EVOJAX_ZERO_HD inline double StandardNormal(Rng& rng) {
  const ZigguratTables& z = *rng.zig;
  for (;;) {
    const uint64_t bits = rng.Next();
    const int32_t hz = static_cast<int32_t>(static_cast<uint32_t>(bits));
    const int iz = static_cast<int>((bits >> 32) & 127);
    const uint32_t ahz = hz < 0 ? static_cast<uint32_t>(-static_cast<int64_t>(hz))
                                : static_cast<uint32_t>(hz);
    const double x = hz * z.wn[iz];
    if (ahz < z.kn[iz]) return x;
    if (iz == 0) {  // tail beyond r
      const double r = 3.442619855899;
      double tx, ty;
      do {
        tx = -math::Log(UniformOpen01<double>(rng)) / r;
        ty = -math::Log(UniformOpen01<double>(rng));
      } while (ty + ty < tx * tx);
      return hz > 0 ? r + tx : -r - tx;
    }
    if (z.fn[iz] + UniformOpen01<double>(rng) * (z.fn[iz - 1] - z.fn[iz]) <
        math::Exp(-0.5 * x * x)) {
      return x;
    }
  }
}

// mean + stdev * z with z ~ N(0, 1), computed in T. stdev 0 gives exactly the mean.
template <typename T> EVOJAX_ZERO_HD inline T GaussianSet(Rng& rng, T mean, T stdev) {
  return mean + stdev * static_cast<T>(StandardNormal(rng));
}

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

// ------------------------------------------------------------------------------------
// Memory views. The interpreter addresses one (program, task) pair's memory block through
// a view `Mem`: a plain pointer (CPU: the block is contiguous), or StridedMem (CUDA: element
// k of thread j's block lives at base[k * stride + j], so that the threads of a warp touching
// the same address touch adjacent words). Both give the same values; only the layout differs.
// ------------------------------------------------------------------------------------
template <typename T> struct StridedMem {
  T* base;         // element 0 of this block
  int64_t stride;  // distance between consecutive elements
  EVOJAX_ZERO_HD T& operator[](int64_t k) const { return base[k * stride]; }
  EVOJAX_ZERO_HD T& operator*() const { return *base; }
  EVOJAX_ZERO_HD StridedMem operator+(int64_t k) const { return {base + k * stride, stride}; }
};

// The parameter type of a view: a raw pointer keeps its `restrict` (the CPU code's original
// signature, so the compiler still knows memory does not alias the program).
template <typename Mem> struct Restricted { using type = Mem; };
template <typename T> struct Restricted<T*> { using type = T* EVOJAX_ZERO_RESTRICT; };

// dst[0..N) = src[0..N) (src: a local array). std::memcpy on the host, as always.
template <int N, typename T> EVOJAX_ZERO_HD inline void CopyIn(T* dst, const T* src) {
#if defined(__CUDA_ARCH__)
  for (int k = 0; k < N; ++k) dst[k] = src[k];
#else
  std::memcpy(dst, src, sizeof(T) * N);
#endif
}
template <int N, typename T> EVOJAX_ZERO_HD inline void CopyIn(StridedMem<T> dst, const T* src) {
  for (int k = 0; k < N; ++k) dst[k] = src[k];
}

// ------------------------------------------------------------------------------------
// Executing instructions.
// ------------------------------------------------------------------------------------
template <typename T> EVOJAX_ZERO_HD inline T ScalarMin(T a, T b) { return (b < a) ? b : a; }
template <typename T> EVOJAX_ZERO_HD inline T ScalarMax(T a, T b) { return (a < b) ? b : a; }
template <typename T> EVOJAX_ZERO_HD inline T MatrixMin(T a, T b) { return (a < b) ? a : b; }
template <typename T> EVOJAX_ZERO_HD inline T MatrixMax(T a, T b) { return (a > b) ? a : b; }

// Summation order: a fixed pairwise tree over a power-of-two axis, halves added
// elementwise (x[k] += x[k + h] for h = n/2, n/4, ..., 1). This is the order of the XLA
// evaluator's _tree_sum (and of Eigen's packet reductions), so float64 sums agree bit for bit.
template <int N, typename T>
EVOJAX_ZERO_HD inline T TreeSumInPlace(T* x) {
  for (int h = N / 2; h >= 1; h /= 2)
    for (int k = 0; k < h; ++k) x[k] += x[k + h];
  return x[0];
}

template <int N, typename T, typename V>
EVOJAX_ZERO_HD inline T Sum(V v) {
  T tmp[N];
  for (int k = 0; k < N; ++k) tmp[k] = v[k];
  return TreeSumInPlace<N>(tmp);
}

template <int N, typename T, typename U, typename V>
EVOJAX_ZERO_HD inline T Dot(U u, V v) {
  T tmp[N];
  for (int k = 0; k < N; ++k) tmp[k] = u[k] * v[k];
  return TreeSumInPlace<N>(tmp);
}

// Column sums of an F x F row-major block (tree over rows); result in x[0..F).
template <int F, typename T>
EVOJAX_ZERO_HD inline void ColumnTreeSumInPlace(T* x) {
  for (int h = F / 2; h >= 1; h /= 2)
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < F; ++c) x[r * F + c] += x[(r + h) * F + c];
}

// Run n decoded instructions on one memory block (viewed through Mem, see above).
template <int F, typename T, typename Mem>
EVOJAX_ZERO_HD inline void ExecuteOn(const Instr<T>* EVOJAX_ZERO_RESTRICT prog, int n,
                                     typename Restricted<Mem>::type mem, Rng& rng) {
  constexpr int FF = F * F;
  for (int i = 0; i < n; ++i) {
    const Instr<T>& I = prog[i];
    const Mem a = mem + I.a;
    const Mem b = mem + I.b;
    const Mem o = mem + I.o;
    switch (I.op) {
      case SCALAR_SUM: *o = *a + *b; break;
      case SCALAR_DIFF: *o = *a - *b; break;
      case SCALAR_PRODUCT: *o = *a * *b; break;
      case SCALAR_DIVISION: *o = *a / *b; break;
      case SCALAR_ABS: *o = math::Abs(*a); break;
      case SCALAR_RECIPROCAL: *o = T(1) / *a; break;
      case SCALAR_SIN: *o = math::Sin(*a); break;
      case SCALAR_COS: *o = math::Cos(*a); break;
      case SCALAR_TAN: *o = math::Tan(*a); break;
      case SCALAR_ARCSIN: *o = math::Asin(*a); break;
      case SCALAR_ARCCOS: *o = math::Acos(*a); break;
      case SCALAR_ARCTAN: *o = math::Atan(*a); break;
      case SCALAR_EXP: *o = math::Exp(*a); break;
      case SCALAR_LOG: *o = math::Log(*a); break;
      case SCALAR_HEAVYSIDE: *o = (*a >= T(0)) ? T(1) : T(0); break;
      case VECTOR_HEAVYSIDE:
        for (int k = 0; k < F; ++k) o[k] = (a[k] > T(0)) ? T(1) : T(0);
        break;
      case MATRIX_HEAVYSIDE:
        for (int k = 0; k < FF; ++k) o[k] = (a[k] > T(0)) ? T(1) : T(0);
        break;
      case SCALAR_VECTOR_PRODUCT: {
        const T s = *a;
        for (int k = 0; k < F; ++k) o[k] = s * b[k];
        break;
      }
      case SCALAR_BROADCAST: {
        const T s = *a;
        for (int k = 0; k < F; ++k) o[k] = s;
        break;
      }
      case VECTOR_RECIPROCAL:
        for (int k = 0; k < F; ++k) o[k] = T(1) / a[k];
        break;
      case VECTOR_NORM: *o = math::Sqrt(Dot<F, T>(a, a)); break;
      case VECTOR_ABS:
        for (int k = 0; k < F; ++k) o[k] = math::Abs(a[k]);
        break;
      case VECTOR_SUM:
        for (int k = 0; k < F; ++k) o[k] = a[k] + b[k];
        break;
      case VECTOR_DIFF:
        for (int k = 0; k < F; ++k) o[k] = a[k] - b[k];
        break;
      case VECTOR_PRODUCT:
        for (int k = 0; k < F; ++k) o[k] = a[k] * b[k];
        break;
      case VECTOR_DIVISION:
        for (int k = 0; k < F; ++k) o[k] = a[k] / b[k];
        break;
      case VECTOR_INNER_PRODUCT: *o = Dot<F, T>(a, b); break;
      case VECTOR_OUTER_PRODUCT:
        for (int r = 0; r < F; ++r)
          for (int c = 0; c < F; ++c) o[r * F + c] = a[r] * b[c];
        break;
      case SCALAR_MATRIX_PRODUCT: {
        const T s = *a;
        for (int k = 0; k < FF; ++k) o[k] = s * b[k];
        break;
      }
      case MATRIX_RECIPROCAL:
        for (int k = 0; k < FF; ++k) o[k] = T(1) / a[k];
        break;
      case MATRIX_VECTOR_PRODUCT: {
        T tmp[F];
        for (int r = 0; r < F; ++r) tmp[r] = Dot<F, T>(a + r * F, b);
        for (int r = 0; r < F; ++r) o[r] = tmp[r];
        break;
      }
      case VECTOR_COLUMN_BROADCAST:
        for (int r = 0; r < F; ++r)
          for (int c = 0; c < F; ++c) o[r * F + c] = a[r];
        break;
      case VECTOR_ROW_BROADCAST:
        for (int r = 0; r < F; ++r)
          for (int c = 0; c < F; ++c) o[r * F + c] = a[c];
        break;
      case MATRIX_NORM: *o = math::Sqrt(Dot<FF, T>(a, a)); break;
      case MATRIX_COLUMN_NORM: {
        T tmp[FF];
        for (int k = 0; k < FF; ++k) tmp[k] = a[k] * a[k];
        ColumnTreeSumInPlace<F>(tmp);
        for (int c = 0; c < F; ++c) o[c] = math::Sqrt(tmp[c]);
        break;
      }
      case MATRIX_ROW_NORM:
        for (int r = 0; r < F; ++r) o[r] = math::Sqrt(Dot<F, T>(a + r * F, a + r * F));
        break;
      case MATRIX_TRANSPOSE: {
        T tmp[FF];
        for (int r = 0; r < F; ++r)
          for (int c = 0; c < F; ++c) tmp[c * F + r] = a[r * F + c];
        CopyIn<FF>(o, tmp);
        break;
      }
      case MATRIX_ABS:
        for (int k = 0; k < FF; ++k) o[k] = math::Abs(a[k]);
        break;
      case MATRIX_SUM:
        for (int k = 0; k < FF; ++k) o[k] = a[k] + b[k];
        break;
      case MATRIX_DIFF:
        for (int k = 0; k < FF; ++k) o[k] = a[k] - b[k];
        break;
      case MATRIX_PRODUCT:
        for (int k = 0; k < FF; ++k) o[k] = a[k] * b[k];
        break;
      case MATRIX_DIVISION:
        for (int k = 0; k < FF; ++k) o[k] = a[k] / b[k];
        break;
      case MATRIX_MATRIX_PRODUCT: {
        // out[r][c] = tree-sum over k of a[r][k] * b[k][c]; all inputs read first.
        T res[FF];
        T prod[FF];
        for (int r = 0; r < F; ++r) {
          for (int k = 0; k < F; ++k)
            for (int c = 0; c < F; ++c) prod[k * F + c] = a[r * F + k] * b[k * F + c];
          ColumnTreeSumInPlace<F>(prod);
          for (int c = 0; c < F; ++c) res[r * F + c] = prod[c];
        }
        CopyIn<FF>(o, res);
        break;
      }
      case SCALAR_MIN: *o = ScalarMin(*a, *b); break;
      case VECTOR_MIN:
        for (int k = 0; k < F; ++k) o[k] = ScalarMin(a[k], b[k]);
        break;
      case MATRIX_MIN:
        for (int k = 0; k < FF; ++k) o[k] = MatrixMin(a[k], b[k]);
        break;
      case SCALAR_MAX: *o = ScalarMax(*a, *b); break;
      case VECTOR_MAX:
        for (int k = 0; k < F; ++k) o[k] = ScalarMax(a[k], b[k]);
        break;
      case MATRIX_MAX:
        for (int k = 0; k < FF; ++k) o[k] = MatrixMax(a[k], b[k]);
        break;
      case VECTOR_MEAN: *o = Sum<F, T>(a) / T(F); break;
      case MATRIX_MEAN: *o = Sum<FF, T>(a) / T(FF); break;
      case MATRIX_ROW_MEAN: {
        T tmp[F];
        for (int r = 0; r < F; ++r) tmp[r] = Sum<F, T>(a + r * F) / T(F);
        for (int r = 0; r < F; ++r) o[r] = tmp[r];
        break;
      }
      case MATRIX_ROW_ST_DEV: {
        T tmp[F];
        for (int r = 0; r < F; ++r) {
          const T mean = Sum<F, T>(a + r * F) / T(F);
          tmp[r] = math::Sqrt(Dot<F, T>(a + r * F, a + r * F) / T(F) - mean * mean);
        }
        for (int r = 0; r < F; ++r) o[r] = tmp[r];
        break;
      }
      case VECTOR_ST_DEV: {
        const T mean = Sum<F, T>(a) / T(F);
        *o = math::Sqrt(Dot<F, T>(a, a) / T(F) - mean * mean);
        break;
      }
      case MATRIX_ST_DEV: {
        const T mean = Sum<FF, T>(a) / T(FF);
        *o = math::Sqrt(Dot<FF, T>(a, a) / T(FF) - mean * mean);
        break;
      }
      case SCALAR_CONST_SET: *o = I.x; break;
      case VECTOR_CONST_SET: o[I.i0] = I.x; break;
      case MATRIX_CONST_SET: o[I.i0 * F + I.i1] = I.x; break;
      case SCALAR_UNIFORM_SET: *o = UniformSet(rng, I.x, I.y); break;
      case VECTOR_UNIFORM_SET:
        for (int k = 0; k < F; ++k) o[k] = UniformSet(rng, I.x, I.y);
        break;
      case MATRIX_UNIFORM_SET:
        for (int k = 0; k < FF; ++k) o[k] = UniformSet(rng, I.x, I.y);
        break;
      case SCALAR_GAUSSIAN_SET: *o = GaussianSet(rng, I.x, I.y); break;
      case VECTOR_GAUSSIAN_SET:
        for (int k = 0; k < F; ++k) o[k] = GaussianSet(rng, I.x, I.y);
        break;
      case MATRIX_GAUSSIAN_SET:
        for (int k = 0; k < FF; ++k) o[k] = GaussianSet(rng, I.x, I.y);
        break;
      default: break;
    }
  }
}

// The CPU backend's entry point (contiguous memory, restrict-qualified as it always was).
template <int F, typename T>
inline void Execute(const Instr<T>* EVOJAX_ZERO_RESTRICT prog, int n,
                    T* EVOJAX_ZERO_RESTRICT mem, Rng& rng) {
  ExecuteOn<F, T, T*>(prog, n, mem, rng);
}

// ------------------------------------------------------------------------------------
// One (program, task) pair.
// ------------------------------------------------------------------------------------
template <typename T> struct FunctionArgs {
  const int32_t* op;    // [P, L]
  const int32_t* addr;  // [P, L, 3]
  const T* data;        // [P, L, 4]
  const int32_t* size;  // [P]
  int64_t max_len;      // L
};

template <typename T> struct Problem {
  Layout layout;
  int64_t P, T_, N, Nv, E;   // programs, tasks, train examples, valid examples, task epochs
  int64_t num_train;         // train steps actually run: min(requested, N * E)
  int64_t num_valid;         // validated examples (<= Nv); the divisor stays Nv
  double max_abs_error;
  bool accuracy;
  FunctionArgs<T> fn[3];     // setup, predict, learn
  const T* train_x;          // [T, N, F]
  const T* train_y;          // [T, N]
  const T* valid_x;          // [T, Nv, F]
  const T* valid_y;          // [T, Nv]
  const int32_t* epoch_order;  // [T, E, N]
  const uint32_t* keys;      // [P, T, K]
  int64_t key_words;         // K
  // Outputs ([P, T, ...]); only epoch_score is required.
  T* epoch_score;            // [P, T, E'] (E' = epochs run), see the top of this file
  T* train_error;            // [P, T, n] (n = first-epoch train steps), or null
  T* train_prediction;       // [P, T, n], or null
  T* valid_error;            // [P, T, num_valid], or null
  T* valid_prediction;       // [P, T, num_valid], or null
  uint8_t* stopped;          // [P, T], or null
  int32_t* train_steps;      // [P, T] train steps run (a stopping step counts), or null
  int64_t num_threads;
};

template <typename T> EVOJAX_ZERO_HD inline T Sigmoid(T x) {
  return T(1) / (T(1) + math::Exp(-x));
}

// The programs' decoded code for one pair: setup, predict, learn.
template <typename T> struct Code {
  const Instr<T>* fn[3];
  int len[3];
};

// Validation after an epoch (see the top of this file for the score).
template <int F, typename T, typename Mem>
EVOJAX_ZERO_HD T ValidatePair(const Problem<T>& pb, int64_t t, const Code<T>& code, Mem mem,
                              Rng& rng, T* va_err, T* va_pred) {
  const int64_t Nv = pb.Nv;
  const T* vx = pb.valid_x + t * Nv * F;
  const T* vy = pb.valid_y + t * Nv;
  const T max_err = static_cast<T>(pb.max_abs_error);
  const Mem s0 = mem + 0;
  const Mem s1 = mem + 1;
  const Mem v0 = mem + pb.layout.vec0();
  const Instr<T>* predict = code.fn[1];
  const int np = code.len[1];
  T loss = T(0);
  for (int64_t i = 0; i < pb.num_valid; ++i) {
    CopyIn<F>(v0, vx + i * F);
    *s0 = T(0);
    ExecuteOn<F, T, Mem>(predict, np, mem, rng);
    const T y = vy[i];
    const T pred = *s1;
    T abs_err;
    if (pb.accuracy) {
      const T prob = Sigmoid(pred);
      T e;
      if (prob < T(0) || prob > T(1)) {
        e = math::Infinity<T>();
      } else {
        e = ((y > T(0.5)) == (prob > T(0.5))) ? T(0) : T(1);
      }
      loss += e;
      abs_err = math::Abs(e);
    } else {
      const T e = y - pred;
      loss += e * e;
      abs_err = math::Abs(e);
    }
    if (va_pred) va_pred[i] = pred;
    if (math::IsNan(abs_err) || abs_err > max_err) return T(-1);
    if (va_err) va_err[i] = abs_err;  // recorded only when the check passed
  }
  return loss;  // fitness is computed by the caller (see the top of this file)
}

// Run program p on task t (memory block `mem` of mem_size elements, wiped here) and write
// that pair's outputs. The whole per-pair semantics; the CPU and CUDA drivers differ only in
// where code and memory live.
template <int F, typename T, typename Mem>
EVOJAX_ZERO_HD void RunPair(const Problem<T>& pb, int64_t p, int64_t t, const Code<T>& code,
                            Mem mem, int64_t mem_size, const ZigguratTables* zig) {
  const Layout& l = pb.layout;
  const int64_t pt = p * pb.T_ + t;
  Rng rng{SeedFromKey(pb.keys + pt * pb.key_words, pb.key_words), 0, zig};

  const int64_t N = pb.N;
  const int64_t n_first = math::Min(N, pb.num_train);
  const int64_t epochs_run = N > 0 ? (pb.num_train + N - 1) / N : 0;
  T* tr_err = pb.train_error ? pb.train_error + pt * n_first : nullptr;
  T* tr_pred = pb.train_prediction ? pb.train_prediction + pt * n_first : nullptr;
  T* va_err = pb.valid_error ? pb.valid_error + pt * pb.num_valid : nullptr;
  T* va_pred = pb.valid_prediction ? pb.valid_prediction + pt * pb.num_valid : nullptr;
  T* ep_score = pb.epoch_score + pt * epochs_run;
  const T nan = math::QuietNaN<T>();
  if (tr_err) for (int64_t i = 0; i < n_first; ++i) tr_err[i] = tr_pred[i] = nan;
  if (va_err) for (int64_t i = 0; i < pb.num_valid; ++i) va_err[i] = va_pred[i] = nan;
  // Trace recording follows the reference: train_prediction for every step run (the
  // stopping step included), train_error only for steps that passed the early-stop check;
  // valid_prediction for every example validated, valid_error only up to an abort; no
  // validation after a training stop (NaN where nothing was recorded).
  for (int64_t i = 0; i < epochs_run; ++i) ep_score[i] = T(-1);

  for (int64_t k = 0; k < mem_size; ++k) mem[k] = T(0);
  ExecuteOn<F, T, Mem>(code.fn[0], code.len[0], mem, rng);

  const T* tx = pb.train_x + t * N * F;
  const T* ty = pb.train_y + t * N;
  const int32_t* order = pb.epoch_order + t * pb.E * N;
  const T max_err = static_cast<T>(pb.max_abs_error);
  const Mem s0 = mem + 0;
  const Mem s1 = mem + 1;
  const Mem v0 = mem + l.vec0();
  const Instr<T>* predict = code.fn[1];
  const Instr<T>* learn = code.fn[2];
  const int np = code.len[1], nl = code.len[2];

  bool stopped = false;
  int64_t steps_run = 0;
  int64_t remaining = pb.num_train;
  for (int64_t epoch = 0; epoch < epochs_run; ++epoch) {
    const int64_t steps = math::Min(N, remaining);
    const int32_t* ord = order + epoch * N;
    bool ok = true;
    for (int64_t j = 0; j < steps; ++j) {
      int64_t idx = ord[j];
      idx = idx < 0 ? 0 : (idx >= N ? N - 1 : idx);
      const T* x = tx + idx * F;
      const T y = ty[idx];
      CopyIn<F>(v0, x);
      *s0 = T(0);
      ExecuteOn<F, T, Mem>(predict, np, mem, rng);
      if (pb.accuracy) *s1 = Sigmoid(T(*s1));
      const T err = math::Abs(y - *s1);
      ++steps_run;
      if (epoch == 0 && tr_pred) tr_pred[j] = *s1;
      if (math::IsNan(err) || err > max_err) { ok = false; break; }
      // As the reference, the error is recorded only once the early-stop check passed.
      if (epoch == 0 && tr_err) tr_err[j] = err;
      CopyIn<F>(v0, x);
      *s0 = y;
      ExecuteOn<F, T, Mem>(learn, nl, mem, rng);
    }
    if (!ok) {
      stopped = true;
      break;  // this and later epochs score -1: first epoch -> fitness 0, else best so far
    }
    remaining -= N;
    ep_score[epoch] = ValidatePair<F, T, Mem>(pb, t, code, mem, rng,
                                              epoch == 0 ? va_err : nullptr,
                                              epoch == 0 ? va_pred : nullptr);
  }
  if (pb.stopped) pb.stopped[pt] = stopped ? 1 : 0;
  if (pb.train_steps) pb.train_steps[pt] = static_cast<int32_t>(steps_run);
}

#if !defined(__CUDACC__)
// ------------------------------------------------------------------------------------
// CPU driver: an Executor per worker thread (its own decoded code and memory block).
// ------------------------------------------------------------------------------------
template <int F, typename T> class Executor {
 public:
  explicit Executor(const Problem<T>& pb) : pb_(pb), mem_(pb.layout.total() + 8) {
    for (int f = 0; f < 3; ++f) code_[f].resize(std::max<int64_t>(pb.fn[f].max_len, 1));
  }

  void Run(int64_t p, int64_t t) {
    const Problem<T>& pb = pb_;
    Code<T> code;
    for (int f = 0; f < 3; ++f) {
      const FunctionArgs<T>& fa = pb.fn[f];
      const int64_t L = fa.max_len;
      code.len[f] = Decode<T>(pb.layout, fa.op + p * L, fa.addr + p * L * 3,
                              fa.data + p * L * 4, fa.size[p], static_cast<int32_t>(L),
                              code_[f].data());
      code.fn[f] = code_[f].data();
    }
    RunPair<F, T, T*>(pb, p, t, code, mem_.data(), static_cast<int64_t>(mem_.size()),
                      &Ziggurat());
  }

 private:
  const Problem<T>& pb_;
  std::vector<T> mem_;
  std::vector<Instr<T>> code_[3];
};

// Evaluate all P * T pairs, split over pb.num_threads worker threads in fixed chunks.
// Each pair writes only its own outputs, so results are independent of the thread count.
template <int F, typename T> void EvaluateAll(const Problem<T>& pb) {
  const int64_t total = pb.P * pb.T_;
  if (total <= 0) return;
  int64_t nt = std::max<int64_t>(1, std::min<int64_t>(pb.num_threads, total));
  std::atomic<int64_t> next{0};
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(16, total / (nt * 8)));
  auto worker = [&]() {
    Executor<F, T> ex(pb);
    for (;;) {
      const int64_t start = next.fetch_add(chunk, std::memory_order_relaxed);
      if (start >= total) break;
      const int64_t end = std::min(total, start + chunk);
      for (int64_t i = start; i < end; ++i) ex.Run(i / pb.T_, i % pb.T_);
    }
  };
  if (nt == 1) {
    worker();
    return;
  }
  std::vector<std::thread> threads;
  threads.reserve(nt - 1);
  for (int64_t k = 0; k + 1 < nt; ++k) threads.emplace_back(worker);
  worker();
  for (auto& th : threads) th.join();
}

// Dispatch on the runtime feature size. Returns false for an unsupported F.
template <typename T> bool EvaluateDispatch(const Problem<T>& pb) {
  switch (pb.layout.F) {
    case 2: EvaluateAll<2, T>(pb); return true;
    case 4: EvaluateAll<4, T>(pb); return true;
    case 8: EvaluateAll<8, T>(pb); return true;
    case 16: EvaluateAll<16, T>(pb); return true;
    case 32: EvaluateAll<32, T>(pb); return true;
    default: return false;
  }
}
#endif  // !defined(__CUDACC__)

}  // namespace evojax_zero

#endif  // EVOJAX_ZERO_NATIVE_INTERPRETER_H_
