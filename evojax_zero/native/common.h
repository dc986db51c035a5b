// Shared by the native CPU and CUDA backends: the host/device markers and the math wrappers.
//
// Everything a (program, task) run needs is marked EVOJAX_ZERO_HD, which is
// `__host__ __device__` under nvcc and nothing otherwise, so interpreter_cuda.cu runs the same
// code as the CPU backend. Math goes through namespace `math` (std:: on the host, CUDA's
// functions on the device: + - * / and sqrt are IEEE-exact on both, the transcendental
// functions may differ in the last bit).
#ifndef EVOJAX_ZERO_NATIVE_COMMON_H_
#define EVOJAX_ZERO_NATIVE_COMMON_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__CUDACC__)
#define EVOJAX_ZERO_INLINE __forceinline__
#define EVOJAX_ZERO_HD __host__ __device__
#define EVOJAX_ZERO_RESTRICT __restrict__
#define EVOJAX_ZERO_IVDEP
#else
// Small helpers must inline into the op loops (the compiler's heuristics sometimes decline).
#define EVOJAX_ZERO_INLINE inline __attribute__((always_inline))
#define EVOJAX_ZERO_HD
#define EVOJAX_ZERO_RESTRICT __restrict
// The lanes of one loop never depend on each other (see execute.h), so the host compiler
// may vectorise without run-time alias checks.
#define EVOJAX_ZERO_IVDEP _Pragma("GCC ivdep")
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

}  // namespace evojax_zero

#endif  // EVOJAX_ZERO_NATIVE_COMMON_H_
