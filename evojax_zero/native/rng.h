// Counter-based random numbers of the *_UNIFORM_SET / *_GAUSSIAN_SET ops (host and device).
#ifndef EVOJAX_ZERO_NATIVE_RNG_H_
#define EVOJAX_ZERO_NATIVE_RNG_H_

#include "common.h"

namespace evojax_zero {

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

}  // namespace evojax_zero

#endif  // EVOJAX_ZERO_NATIVE_RNG_H_
