// Functional equivalence checking (FEC) as XLA FFI custom calls, so a whole generation of a
// search with FEC runs inside one jitted lax.scan (no host round trip per step).
//
// The cache is not hidden state: it is a pytree of arrays threaded through the scan
// (evojax_zero.fec.DeviceFEC), updated in place through input/output aliasing.
//
//   evojax_zero_fec_hash   : train_error [B,T,n], valid_error [B,T,m] (f32 or f64)
//                            -> uint32 [B,T,2] (low, high words of WellMixedHash)
//   evojax_zero_fec_lookup : nodes int32 [C,6], fitness F[C], table int32 [S], meta int32 [4],
//                            hashes uint32 [B,T,2]
//                            -> the 4 state arrays, source int32 [B,T], cached F [B,T]
//   evojax_zero_fec_fill   : the 4 state arrays, hashes, source int32 [B,T], per_task F [B,T]
//                            -> the 4 state arrays
//
// Semantics are fec_cache.cc's, exactly as evojax_zero/fec.py's FECCache (lookup_batch /
// fill): pairs are resolved in sequential order (b-major, t-minor); a miss inserts an entry
// (count 1) that is *pending* until fill writes the evaluated fitness; a hit increments the
// count, moves the entry to the most-recent end and forgets it when the count reaches
// forget_every; the least recently used entry is evicted beyond cache_size entries.
// source[i] = -1 (miss), -2 (cached[i] holds the fitness), or the flat index of the earlier
// miss of the same batch whose fitness is reused.
//
// Layout: node n (C = cache_size + 1 nodes) = {key_lo, key_hi, count, pending, prev, next};
// pending = -1 once the fitness is known. meta = {head (least recent), tail (most recent),
// size, free list head}. table: open addressing with linear probing (S a power of two,
// S >= 2 C), -1 = empty, backward-shift deletion; a key's home slot is
// (key * 0x9E3779B97F4A7C15) >> (64 - log2 S).
#include <cstdint>
#include <cstring>
#include <string>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace evojax_zero {
namespace {

constexpr uint64_t kMul = 0xc6a4a7935bd1e995ULL;

inline uint64_t ShiftMix(uint64_t v) { return v ^ (v >> 47); }

// libstdc++'s std::hash<double> (murmur _Hash_bytes over 8 bytes, seed 0xc70f6907); +-0 -> 0.
inline uint64_t StdHashDouble(double x) {
  if (x == 0.0) return 0;
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  uint64_t h = 0xc70f6907ULL ^ (8ULL * kMul);
  const uint64_t data = ShiftMix(bits * kMul) * kMul;
  h = (h ^ data) * kMul;
  h = ShiftMix(h) * kMul;
  return ShiftMix(h);
}

// The reference's HashCombine (Bob Jenkins' 64-bit mix).
inline uint64_t HashCombine(uint64_t seed, uint64_t value) {
  uint64_t a = 0x9E3779B9ULL, b = seed, c = value;
  a -= b; a -= c; a ^= (c >> 43);
  b -= c; b -= a; b ^= (a << 9);
  c -= a; c -= b; c ^= (b >> 8);
  a -= b; a -= c; a ^= (c >> 38);
  b -= c; b -= a; b ^= (a << 23);
  c -= a; c -= b; c ^= (b >> 5);
  a -= b; a -= c; a ^= (c >> 35);
  b -= c; b -= a; b ^= (a << 49);
  c -= a; c -= b; c ^= (b >> 11);
  a -= b; a -= c; a ^= (c >> 12);
  b -= c; b -= a; b ^= (a << 18);
  c -= a; c -= b; c ^= (b >> 22);
  return c;
}

template <typename F>
void HashAll(const F* train, const F* valid, int64_t B, int64_t T, int64_t n, int64_t m,
             double max_abs_error, uint64_t num_train_examples, uint32_t* out) {
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const int64_t pair = b * T + t;
      uint64_t seed = 42;
      // Errors are recorded up to (not including) the first NaN or > max_abs_error; the
      // validation errors only when training did not stop, likewise.
      bool stopped = false;
      for (int64_t j = 0; j < n; ++j) {
        const double e = static_cast<double>(train[pair * n + j]);
        if (!(e <= max_abs_error)) {
          stopped = true;
          break;
        }
        seed = HashCombine(seed, StdHashDouble(e));
      }
      if (!stopped) {
        for (int64_t j = 0; j < m; ++j) {
          const double e = static_cast<double>(valid[pair * m + j]);
          if (!(e <= max_abs_error)) break;
          seed = HashCombine(seed, StdHashDouble(e));
        }
      }
      seed = HashCombine(seed, static_cast<uint64_t>(t));
      seed = HashCombine(seed, num_train_examples);
      out[2 * pair] = static_cast<uint32_t>(seed);
      out[2 * pair + 1] = static_cast<uint32_t>(seed >> 32);
    }
  }
}

ffi::Error HashImpl(ffi::AnyBuffer train_error, ffi::AnyBuffer valid_error,
                    double max_abs_error, int64_t num_train_examples,
                    ffi::Result<ffi::AnyBuffer> hashes) {
  const auto td = train_error.dimensions();
  const auto vd = valid_error.dimensions();
  if (td.size() != 3 || vd.size() != 3 || td[0] != vd[0] || td[1] != vd[1]) {
    return ffi::Error::InvalidArgument(
        "evojax_zero fec_hash: train_error [B,T,n] and valid_error [B,T,m] expected");
  }
  const auto hd = hashes->dimensions();
  if (hashes->element_type() != ffi::DataType::U32 || hd.size() != 3 || hd[0] != td[0] ||
      hd[1] != td[1] || hd[2] != 2) {
    return ffi::Error::InvalidArgument("evojax_zero fec_hash: result must be uint32 [B,T,2]");
  }
  const ffi::DataType dt = train_error.element_type();
  if (valid_error.element_type() != dt) {
    return ffi::Error::InvalidArgument("evojax_zero fec_hash: error dtypes differ");
  }
  auto* out = static_cast<uint32_t*>(hashes->untyped_data());
  const uint64_t nte = static_cast<uint64_t>(num_train_examples);
  if (dt == ffi::DataType::F32) {
    HashAll(static_cast<const float*>(train_error.untyped_data()),
            static_cast<const float*>(valid_error.untyped_data()), td[0], td[1], td[2], vd[2],
            max_abs_error, nte, out);
  } else if (dt == ffi::DataType::F64) {
    HashAll(static_cast<const double*>(train_error.untyped_data()),
            static_cast<const double*>(valid_error.untyped_data()), td[0], td[1], td[2], vd[2],
            max_abs_error, nte, out);
  } else {
    return ffi::Error::InvalidArgument("evojax_zero fec_hash: errors must be f32 or f64");
  }
  return ffi::Error::Success();
}

enum : int { kLo = 0, kHi = 1, kCount = 2, kPending = 3, kPrev = 4, kNext = 5, kWidth = 6 };
enum : int { kHead = 0, kTail = 1, kSize = 2, kFree = 3 };

template <typename F>
struct Cache {
  int32_t* nodes;
  F* fitness;
  int32_t* table;
  int32_t* meta;
  int64_t num_nodes;
  int64_t mask;
  int shift;

  int32_t* Node(int32_t n) const { return nodes + static_cast<int64_t>(n) * kWidth; }
  uint64_t Key(int32_t n) const {
    const int32_t* p = Node(n);
    return static_cast<uint64_t>(static_cast<uint32_t>(p[kLo])) |
           (static_cast<uint64_t>(static_cast<uint32_t>(p[kHi])) << 32);
  }
  int64_t Home(uint64_t h) const {
    return static_cast<int64_t>((h * 0x9E3779B97F4A7C15ULL) >> shift);
  }
  // The slot holding h (found = true) or the empty slot where it would go.
  int64_t Probe(uint64_t h, bool* found) const {
    for (int64_t i = Home(h);; i = (i + 1) & mask) {
      const int32_t n = table[i];
      if (n < 0) {
        *found = false;
        return i;
      }
      if (Key(n) == h) {
        *found = true;
        return i;
      }
    }
  }
  void Unlink(int32_t n) {
    int32_t* p = Node(n);
    if (p[kPrev] >= 0) Node(p[kPrev])[kNext] = p[kNext]; else meta[kHead] = p[kNext];
    if (p[kNext] >= 0) Node(p[kNext])[kPrev] = p[kPrev]; else meta[kTail] = p[kPrev];
  }
  void PushBack(int32_t n) {
    int32_t* p = Node(n);
    p[kPrev] = meta[kTail];
    p[kNext] = -1;
    if (meta[kTail] >= 0) Node(meta[kTail])[kNext] = n; else meta[kHead] = n;
    meta[kTail] = n;
  }
  // Remove the entry at table slot `slot`: backward-shift deletion, unlink, free the node.
  void Remove(int64_t slot) {
    const int32_t n = table[slot];
    int64_t i = slot;
    table[i] = -1;
    for (int64_t j = (i + 1) & mask; table[j] >= 0; j = (j + 1) & mask) {
      const int64_t k = Home(Key(table[j]));
      // Move table[j] into the hole at i unless its home lies cyclically in (i, j].
      const bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
      if (!stays) {
        table[i] = table[j];
        table[j] = -1;
        i = j;
      }
    }
    Unlink(n);
    Node(n)[kNext] = meta[kFree];
    meta[kFree] = n;
    meta[kSize] -= 1;
  }
};

ffi::Error CheckState(const ffi::AnyBuffer& nodes, const ffi::AnyBuffer& fitness,
                      const ffi::AnyBuffer& table, const ffi::AnyBuffer& meta) {
  const auto nd = nodes.dimensions();
  const auto td = table.dimensions();
  if (nodes.element_type() != ffi::DataType::S32 || nd.size() != 2 || nd[1] != kWidth ||
      fitness.dimensions().size() != 1 || fitness.dimensions()[0] != nd[0] ||
      table.element_type() != ffi::DataType::S32 || td.size() != 1 ||
      meta.element_type() != ffi::DataType::S32 || meta.element_count() != 4) {
    return ffi::Error::InvalidArgument("evojax_zero fec: malformed cache state");
  }
  const int64_t S = td[0];
  if (S < 2 || (S & (S - 1)) != 0 || S < 2 * nd[0]) {
    return ffi::Error::InvalidArgument("evojax_zero fec: table size must be a power of 2 >= 2C");
  }
  return ffi::Error::Success();
}

// Copy an operand into its result unless XLA aliased them (then they are the same buffer).
void CopyIn(const ffi::AnyBuffer& in, ffi::Result<ffi::AnyBuffer>& out) {
  if (out->untyped_data() != in.untyped_data()) {
    std::memcpy(out->untyped_data(), in.untyped_data(), in.size_bytes());
  }
}

template <typename F>
Cache<F> MakeCache(ffi::Result<ffi::AnyBuffer>& nodes, ffi::Result<ffi::AnyBuffer>& fitness,
                   ffi::Result<ffi::AnyBuffer>& table, ffi::Result<ffi::AnyBuffer>& meta) {
  Cache<F> c;
  c.nodes = static_cast<int32_t*>(nodes->untyped_data());
  c.fitness = static_cast<F*>(fitness->untyped_data());
  c.table = static_cast<int32_t*>(table->untyped_data());
  c.meta = static_cast<int32_t*>(meta->untyped_data());
  c.num_nodes = nodes->dimensions()[0];
  const int64_t S = table->dimensions()[0];
  c.mask = S - 1;
  int log2 = 0;
  while ((int64_t{1} << log2) < S) ++log2;
  c.shift = 64 - log2;
  return c;
}

inline uint64_t HashAt(const uint32_t* hashes, int64_t i) {
  return static_cast<uint64_t>(hashes[2 * i]) | (static_cast<uint64_t>(hashes[2 * i + 1]) << 32);
}

template <typename F>
void Lookup(Cache<F> c, const uint32_t* hashes, int64_t num, int64_t cache_size,
            int64_t forget_every, int32_t* source, F* cached) {
  for (int64_t i = 0; i < num; ++i) {
    const uint64_t h = HashAt(hashes, i);
    bool found;
    const int64_t slot = c.Probe(h, &found);
    cached[i] = F(0);
    if (!found) {
      source[i] = -1;
      const int32_t n = c.meta[kFree];  // always available: size <= cache_size < C
      int32_t* p = c.Node(n);
      c.meta[kFree] = p[kNext];
      p[kLo] = static_cast<int32_t>(static_cast<uint32_t>(h));
      p[kHi] = static_cast<int32_t>(static_cast<uint32_t>(h >> 32));
      p[kCount] = 1;
      p[kPending] = static_cast<int32_t>(i);
      c.fitness[n] = F(0);
      c.table[slot] = n;
      c.PushBack(n);
      c.meta[kSize] += 1;
      if (c.meta[kSize] > cache_size) {
        bool f2;
        c.Remove(c.Probe(c.Key(c.meta[kHead]), &f2));
      }
      continue;
    }
    const int32_t n = c.table[slot];
    int32_t* p = c.Node(n);
    c.Unlink(n);
    c.PushBack(n);
    p[kCount] += 1;
    const int32_t pending = p[kPending];
    const F value = c.fitness[n];
    if (forget_every > 0 && p[kCount] >= forget_every) c.Remove(slot);
    if (pending >= 0) {
      source[i] = pending;
    } else {
      source[i] = -2;
      cached[i] = value;
    }
  }
}

template <typename F>
void Fill(Cache<F> c, const uint32_t* hashes, const int32_t* source, const F* per_task,
          int64_t num) {
  for (int64_t i = 0; i < num; ++i) {
    if (source[i] != -1) continue;
    bool found;
    const int64_t slot = c.Probe(HashAt(hashes, i), &found);
    if (!found) continue;
    int32_t* p = c.Node(c.table[slot]);
    if (p[kPending] >= 0) {
      c.fitness[c.table[slot]] = per_task[p[kPending]];
      p[kPending] = -1;
    }
  }
}

// Copy the cache state into its results (unless XLA aliased them) and run fn on a Cache<F>
// over the results, F being the fitness dtype; fn(cache, F{}) does the work.
template <typename Fn>
ffi::Error OnCacheResults(const ffi::AnyBuffer& nodes, const ffi::AnyBuffer& fitness,
                          const ffi::AnyBuffer& table, const ffi::AnyBuffer& meta,
                          ffi::Result<ffi::AnyBuffer>& nodes_out,
                          ffi::Result<ffi::AnyBuffer>& fitness_out,
                          ffi::Result<ffi::AnyBuffer>& table_out,
                          ffi::Result<ffi::AnyBuffer>& meta_out, const char* who, Fn&& fn) {
  CopyIn(nodes, nodes_out);
  CopyIn(fitness, fitness_out);
  CopyIn(table, table_out);
  CopyIn(meta, meta_out);
  if (fitness.element_type() == ffi::DataType::F32) {
    fn(MakeCache<float>(nodes_out, fitness_out, table_out, meta_out), float{});
  } else if (fitness.element_type() == ffi::DataType::F64) {
    fn(MakeCache<double>(nodes_out, fitness_out, table_out, meta_out), double{});
  } else {
    return ffi::Error::InvalidArgument(std::string(who) + ": fitness must be f32 or f64");
  }
  return ffi::Error::Success();
}

ffi::Error LookupImpl(ffi::AnyBuffer nodes, ffi::AnyBuffer fitness, ffi::AnyBuffer table,
                      ffi::AnyBuffer meta, ffi::AnyBuffer hashes, int64_t cache_size,
                      int64_t forget_every, ffi::Result<ffi::AnyBuffer> nodes_out,
                      ffi::Result<ffi::AnyBuffer> fitness_out,
                      ffi::Result<ffi::AnyBuffer> table_out,
                      ffi::Result<ffi::AnyBuffer> meta_out, ffi::Result<ffi::AnyBuffer> source,
                      ffi::Result<ffi::AnyBuffer> cached) {
  if (auto e = CheckState(nodes, fitness, table, meta); e.failure()) return e;
  if (cache_size < 1 || cache_size + 1 > nodes.dimensions()[0]) {
    return ffi::Error::InvalidArgument("evojax_zero fec_lookup: cache_size exceeds the nodes");
  }
  const int64_t num = source->element_count();
  if (hashes.element_type() != ffi::DataType::U32 || hashes.element_count() != 2 * num ||
      cached->element_count() != num || cached->element_type() != fitness.element_type()) {
    return ffi::Error::InvalidArgument("evojax_zero fec_lookup: hashes / results mismatch");
  }
  const auto* h = static_cast<const uint32_t*>(hashes.untyped_data());
  auto* src = static_cast<int32_t*>(source->untyped_data());
  return OnCacheResults(nodes, fitness, table, meta, nodes_out, fitness_out, table_out, meta_out,
                        "evojax_zero fec_lookup", [&](auto cache, auto tag) {
                          using F = decltype(tag);
                          Lookup(cache, h, num, cache_size, forget_every, src,
                                 static_cast<F*>(cached->untyped_data()));
                        });
}

ffi::Error FillImpl(ffi::AnyBuffer nodes, ffi::AnyBuffer fitness, ffi::AnyBuffer table,
                    ffi::AnyBuffer meta, ffi::AnyBuffer hashes, ffi::AnyBuffer source,
                    ffi::AnyBuffer per_task, ffi::Result<ffi::AnyBuffer> nodes_out,
                    ffi::Result<ffi::AnyBuffer> fitness_out,
                    ffi::Result<ffi::AnyBuffer> table_out,
                    ffi::Result<ffi::AnyBuffer> meta_out) {
  if (auto e = CheckState(nodes, fitness, table, meta); e.failure()) return e;
  const int64_t num = source.element_count();
  if (hashes.element_type() != ffi::DataType::U32 || hashes.element_count() != 2 * num ||
      source.element_type() != ffi::DataType::S32 || per_task.element_count() != num ||
      per_task.element_type() != fitness.element_type()) {
    return ffi::Error::InvalidArgument("evojax_zero fec_fill: hashes / source / fitness mismatch");
  }
  const auto* h = static_cast<const uint32_t*>(hashes.untyped_data());
  const auto* src = static_cast<const int32_t*>(source.untyped_data());
  return OnCacheResults(nodes, fitness, table, meta, nodes_out, fitness_out, table_out, meta_out,
                        "evojax_zero fec_fill", [&](auto cache, auto tag) {
                          using F = decltype(tag);
                          Fill(cache, h, src, static_cast<const F*>(per_task.untyped_data()),
                               num);
                        });
}

}  // namespace
}  // namespace evojax_zero

#define EVOJAX_FEC_EXPORT extern "C" __attribute__((visibility("default")))

EVOJAX_FEC_EXPORT XLA_FFI_Error* EvojaxZeroFecHash(XLA_FFI_CallFrame* call_frame);
EVOJAX_FEC_EXPORT XLA_FFI_Error* EvojaxZeroFecLookup(XLA_FFI_CallFrame* call_frame);
EVOJAX_FEC_EXPORT XLA_FFI_Error* EvojaxZeroFecFill(XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(EvojaxZeroFecHash, evojax_zero::HashImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Attr<double>("max_abs_error")
                                  .Attr<int64_t>("num_train_examples")
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(EvojaxZeroFecLookup, evojax_zero::LookupImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Attr<int64_t>("cache_size")
                                  .Attr<int64_t>("forget_every")
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(EvojaxZeroFecFill, evojax_zero::FillImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
