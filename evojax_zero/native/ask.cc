// The search's ask (tournament selection + mutation of B children) as XLA FFI custom calls,
// bit-identical to the jitted XLA ask (evojax_zero.engine.EvolutionEngine.ask with
// evojax_zero.search.mutation.mutate) for float32 programs and 32-bit default ints.
//
// The random numbers are jax.random's: threefry2x32 keys split and bits drawn exactly as
// evojax_zero/engine/keytree.py computes them (jax_threefry_partitionable), and jax.random's
// randint / uniform arithmetic on those bits. Only the draws a child actually uses are hashed
// (the XLA ask computes every declared draw of every child, e.g. all L rows of
// RANDOMIZE_COMPONENT_FUNCTION). Normal draws need erf_inv and exp, which are left to XLA so
// the values stay XLA's: evojax_zero_ask_normal_bits returns the bits of the five normal
// draws of ALTER_PARAM per child, XLA turns them into exp(normal) factors, and
// evojax_zero_ask takes those factors.
//
//   evojax_zero_ask_normal_bits : key uint32[2] -> uint32[B, 5]
//       (act, lsf[0], lsf[1], lsf[2], ls1 normal bits of each child's ALTER_PARAM draws)
//   evojax_zero_ask : key uint32[2], fitness f32[P], for setup, predict, learn: op int32[P,L],
//       addr int32[P,L,3], data f32[P,L,4], size int32[P]; scales f32[B,5] (exp(normal)),
//       types int32[K] (mutation types), op_table int32[3,Q], op_count int32[3],
//       bounds int32[3,2] (size min/max, reference sense), mutable int32[3] (0/1)
//     -> the children (the 12 program arrays with leading B) and parents int32[B].
//     Attributes: tournament, num_scalars, num_vectors, num_matrices, mutate_prob (f64).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace evojax_zero {
namespace ask {
namespace {

// ---- jax.random on threefry2x32 keys (keytree.py) -----------------------------------------

struct Key {
  uint32_t a, b;
};

inline uint32_t Rotl(uint32_t x, uint32_t r) { return (x << r) | (x >> (32 - r)); }

inline void Threefry(Key k, uint32_t c0, uint32_t c1, uint32_t* o0, uint32_t* o1) {
  static constexpr uint32_t kRot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
  const uint32_t ks[3] = {k.a, k.b, k.a ^ k.b ^ 0x1BD11BDAu};
  uint32_t x0 = c0 + ks[0], x1 = c1 + ks[1];
  for (int g = 0; g < 5; ++g) {
    const uint32_t* rot = kRot[g % 2];
    for (int j = 0; j < 4; ++j) {
      x0 += x1;
      x1 = Rotl(x1, rot[j]);
      x1 ^= x0;
    }
    x0 += ks[(g + 1) % 3];
    x1 += ks[(g + 2) % 3] + static_cast<uint32_t>(g + 1);
  }
  *o0 = x0;
  *o1 = x1;
}

// split(key, n)[i]
inline Key Split(Key k, uint32_t i) {
  Key r;
  Threefry(k, 0, i, &r.a, &r.b);
  return r;
}

// bits(key, shape, uint32) element i (flattened)
inline uint32_t Bits(Key k, uint32_t i = 0) {
  uint32_t h0, h1;
  Threefry(k, 0, i, &h0, &h1);
  return h0 ^ h1;
}

// randint_draw(node, int32, shape): the bits of its two sub-keys, element i.
struct IntDraw {
  uint32_t hi, lo;
};
inline IntDraw RandintDraw(Key node, uint32_t i = 0) {
  return {Bits(Split(node, 0), i), Bits(Split(node, 1), i)};
}

// jax.random.randint's arithmetic (int32).
inline int32_t Randint(IntDraw d, int32_t lo, int32_t hi) {
  uint32_t span = static_cast<uint32_t>(hi) - static_cast<uint32_t>(lo);
  if (hi <= lo) span = 1;
  uint32_t mult = (uint32_t{1} << 16) % span;
  mult = (mult * mult) % span;
  const uint32_t off = ((d.hi % span) * mult + (d.lo % span)) % span;
  return static_cast<int32_t>(static_cast<uint32_t>(lo) + off);
}

// randint(randint_draw(node), lo, hi) without hashing when the range has one value (the
// arithmetic gives lo whatever the bits).
inline int32_t RandintAt(Key node, int32_t lo, int32_t hi) {
  if (hi <= lo || static_cast<uint32_t>(hi) - static_cast<uint32_t>(lo) == 1) return lo;
  return Randint(RandintDraw(node), lo, hi);
}

// Bits(key, i) for i in [0, n): one loop of independent hashes (vectorised by the compiler).
void BitsRange(Key k, uint32_t n, uint32_t* out) {
  static constexpr uint32_t kRot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
  const uint32_t ks[3] = {k.a, k.b, k.a ^ k.b ^ 0x1BD11BDAu};
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t x0 = ks[0], x1 = i + ks[1];
    for (int g = 0; g < 5; ++g) {
      for (int j = 0; j < 4; ++j) {
        const uint32_t r = kRot[g % 2][j];
        x0 += x1;
        x1 = (x1 << r) | (x1 >> (32 - r));
        x1 ^= x0;
      }
      x0 += ks[(g + 1) % 3];
      x1 += ks[(g + 2) % 3] + static_cast<uint32_t>(g + 1);
    }
    out[i] = x0 ^ x1;
  }
}

// jax.random.uniform's arithmetic (float32).
inline float Uniform(uint32_t bits, float lo, float hi) {
  const uint32_t f = (bits >> 9) | 0x3F800000u;
  float x;
  std::memcpy(&x, &f, sizeof(x));
  x = x - 1.0f;
  const float span = hi - lo;
  const float prod = x * span;
  const float v = prod + lo;
  return v > lo ? v : (std::isnan(v) ? v : lo);  // jnp.maximum(lo, v)
}

inline float Minimum(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::nanf("");
  return a < b ? a : b;
}
inline float Maximum(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::nanf("");
  return a > b ? a : b;
}

// ---- ops (evojax_zero.program.ops, mirrored by tables passed from Python) -------------------

constexpr int kSC = 56, kVC = 57, kMC = 58;  // SCALAR/VECTOR/MATRIX_CONST_SET

struct Spec {
  int32_t in_hi[4];   // by operand kind: 1, S, V, M
  int32_t out_lo[4];  // 0, 1, 1, 0
  const int32_t* in1_kind;
  const int32_t* in2_kind;
  const int32_t* out_kind;
  const int32_t* category;  // 0 no-op, 1 one input, 2 two inputs, 3 data op
  const uint8_t* is_uniform;
  const uint8_t* is_gaussian;
};

struct Row {
  int32_t op = 0;
  int32_t addr[3] = {0, 0, 0};
  float data[4] = {0, 0, 0, 0};
};

// _instruction_draws(node) / _instruction(d, op)
Row Instruction(Key node, int32_t op, const Spec& s) {
  Row r;
  r.op = op;
  r.addr[0] = RandintAt(Split(node, 0), 0, s.in_hi[s.in1_kind[op]]);
  r.addr[1] = RandintAt(Split(node, 1), 0, s.in_hi[s.in2_kind[op]]);
  r.addr[2] = RandintAt(Split(node, 2), s.out_lo[s.out_kind[op]], s.in_hi[s.out_kind[op]]);
  if (s.category[op] != 3) return r;  // no data
  const Key kd = Split(node, 3);
  const Key ka = Split(kd, 0), k0 = Split(kd, 1), k1d = Split(kd, 2);
  const bool unif = s.is_uniform[op], gauss = s.is_gaussian[op];
  float f0 = 0.0f, f1 = 0.0f, f2 = 0.0f, a = 0.0f;
  if (op == kSC) a = Uniform(Bits(ka), std::nextafter(-1.0f, 1.0f), 1.0f);
  if (op == kVC || op == kMC) {
    f0 = Uniform(Bits(k0, 0), 0.0f, 1.0f);
  } else if (unif || gauss) {
    f0 = Uniform(Bits(k1d, 0), -1.0f, 1.0f);
  }
  if (op == kVC) {
    f1 = Uniform(Bits(k1d, 1), -1.0f, 1.0f);
  } else if (op == kMC || gauss) {
    f1 = Uniform(Bits(k0, 1), 0.0f, 1.0f);
  } else if (unif) {
    f1 = Uniform(Bits(k1d, 1), -1.0f, 1.0f);
  }
  if (op == kMC) f2 = Uniform(Bits(k1d, 2), -1.0f, 1.0f);
  r.data[0] = a;
  r.data[1] = f0;
  r.data[2] = f1;
  r.data[3] = f2;
  return r;
}

// _row_draws(node) / _row(d, ops)
Row RandomRow(Key node, const int32_t* ops, int32_t num_ops, const Spec& s) {
  const Key ko = Split(node, 0), ki = Split(node, 1);
  const int32_t op = ops[Randint(RandintDraw(ko), 0, num_ops)];
  return Instruction(ki, op, s);
}

// Factors exp(normal) of one child's ALTER_PARAM draws, in the order of the normal bits.
enum { kAct = 0, kLsf0 = 1, kLsf1 = 2, kLsf2 = 3, kLs1 = 4, kNumNormals = 5 };

// _alter_data_from(d, op, data): `kd` is the alter-data node.
void AlterData(Key kd, int32_t op, float* data, const float* scale, const Spec& s) {
  const Key kc = Split(kd, 0), k1 = Split(kd, 1), k2 = Split(kd, 2);
  const IntDraw c = RandintDraw(kc);
  const int32_t c2 = Randint(c, 0, 2), c3 = Randint(c, 0, 3);
  float f[3] = {data[1], data[2], data[3]};
  auto lsf = [&](Key node, float x, float sc) {
    const bool flip = Uniform(Bits(Split(node, 0)), 0.0f, 1.0f) < 0.1f;
    return flip ? -x : x * sc;
  };
  float act = data[0];
  if (op == kSC) act = lsf(k1, data[0], scale[kAct]);
  const bool unif = s.is_uniform[op], gauss = s.is_gaussian[op];
  float nf[3] = {f[0], f[1], f[2]};
  if (op == kVC) {
    if (c2 == 0) {
      nf[0] = Uniform(Bits(k1), 0.0f, 1.0f);
    } else {
      nf[1] = lsf(Split(k2, 1), f[1], scale[kLsf1]);
    }
  } else if (op == kMC) {
    if (c3 == 0) {
      nf[0] = Uniform(Bits(k1), 0.0f, 1.0f);
    } else if (c3 == 1) {
      nf[1] = Uniform(Bits(k1), 0.0f, 1.0f);
    } else {
      nf[2] = lsf(Split(k2, 2), f[2], scale[kLsf2]);
    }
  } else if (gauss) {
    if (c2 == 0) {
      nf[0] = lsf(Split(k2, 0), f[0], scale[kLsf0]);
    } else {
      nf[1] = f[1] * scale[kLs1];
    }
  } else if (unif) {
    if (c2 == 0) {
      nf[0] = lsf(Split(k2, 0), f[0], scale[kLsf0]);
    } else {
      nf[1] = lsf(Split(k2, 1), f[1], scale[kLsf1]);
    }
    const float lo = Minimum(nf[0], nf[1]), hi = Maximum(nf[0], nf[1]);
    nf[0] = lo;
    nf[1] = hi;
  }
  data[0] = act;
  data[1] = nf[0];
  data[2] = nf[1];
  data[3] = nf[2];
}

// _alter_param(d, op, addr, data): `ka` is the alter node.
void AlterParam(Key ka, Row* row, const float* scale, const Spec& s) {
  const Key kc = Split(ka, 0), kA = Split(ka, 1), kb = Split(ka, 2), kd = Split(ka, 3);
  const int32_t op = row->op;
  const int32_t cat = s.category[op];
  if (cat == 0) return;  // NO_OP: nothing to alter
  const IntDraw c = RandintDraw(kc);
  const int32_t c2 = Randint(c, 0, 2), c3 = Randint(c, 0, 3);
  const bool set_in1 = (cat == 1 && c2 == 0) || (cat == 2 && c3 == 0);
  const bool set_in2 = cat == 2 && c3 == 1;
  const bool set_out = (cat == 1 && c2 == 1) || (cat == 2 && c3 == 2) || (cat == 3 && c2 == 0);
  const bool alter_data = cat == 3 && c2 == 1;
  if (set_in1) row->addr[0] = RandintAt(kA, 0, s.in_hi[s.in1_kind[op]]);
  if (set_in2) row->addr[1] = RandintAt(kA, 0, s.in_hi[s.in2_kind[op]]);
  if (set_out) row->addr[2] = RandintAt(kb, s.out_lo[s.out_kind[op]], s.in_hi[s.out_kind[op]]);
  if (alter_data) AlterData(kd, op, row->data, scale, s);
}

// The normal bits of one child's ALTER_PARAM draws (node = the child's mutation key).
void NormalBits(Key child, uint32_t* out) {
  const Key k_one = Split(Split(child, 1), 0);
  const Key ka = Split(k_one, 3);
  const Key kd = Split(ka, 3);
  const Key k1 = Split(kd, 1), k2 = Split(kd, 2);
  out[kAct] = Bits(Split(k1, 1));
  for (int j = 0; j < 3; ++j) out[kLsf0 + j] = Bits(Split(Split(k2, j), 1));
  out[kLs1] = Bits(k2);
}

// ---- one function as a row buffer ------------------------------------------------------------

struct Fn {
  std::vector<Row> rows;  // Lmax + 1 rows (one spare for insert)
  int32_t size = 0;
};

void Insert(Fn* f, int32_t pos, const Row& r, int32_t len) {
  // rows [0, len) -> [0, len + 1) with r at pos
  for (int32_t i = len; i > pos; --i) f->rows[i] = f->rows[i - 1];
  f->rows[pos] = r;
  f->size += 1;
}

void Remove(Fn* f, int32_t pos, int32_t len) {
  for (int32_t i = pos; i < len - 1; ++i) f->rows[i] = f->rows[i + 1];
  if (pos < len) f->rows[len - 1] = Row();
  f->size -= 1;
}

void Randomize(Fn* f, Key node, const int32_t* ops, int32_t num_ops, int32_t L, const Spec& s) {
  for (int32_t r = 0; r < L; ++r) {
    f->rows[r] = r < f->size ? RandomRow(Split(node, r), ops, num_ops, s) : Row();
  }
}

struct Tables {
  const int32_t* types;
  int32_t num_types;
  const int32_t* op_table;  // [3, Q]
  int32_t Q;
  const int32_t* op_count;  // [3]
  const int32_t* bounds;    // [3, 2]
  int32_t mutable_fns[3];   // indices of the mutable functions, in order
  int32_t num_mutable;
  bool has_rand_all;
  float mutate_prob;
};

// One child: mutate(key, parent) of evojax_zero.search.mutation, on fns[3] (each L_f rows).
void MutateChild(Key child, Fn* fns, const int32_t* L, int32_t Lmax, const Tables& t,
                 const float* scale, const Spec& s) {
  const Key kch = Split(child, 0), km = Split(child, 1);
  const Key k_prob = Split(kch, 0), k_type = Split(kch, 1), k_fn = Split(kch, 2);
  bool do_mutate = true;
  if (t.mutate_prob < 1.0f) do_mutate = Uniform(Bits(k_prob), 0.0f, 1.0f) < t.mutate_prob;
  const int32_t mtype = t.types[Randint(RandintDraw(k_type), 0, t.num_types)];
  const int32_t n_mut = t.num_mutable > 0 ? t.num_mutable : 1;
  const int32_t chosen = Randint(RandintDraw(k_fn), 0, n_mut);
  if (t.num_mutable == 0 || !do_mutate) return;
  const Key k_one = Split(km, 0), k_all = Split(km, 1);
  if (mtype == 7) {  // RANDOMIZE_ALGORITHM: every mutable function
    for (int32_t j = 0; j < t.num_mutable; ++j) {
      const int32_t fi = t.mutable_fns[j];
      Randomize(&fns[fi], Split(k_all, j), t.op_table + fi * t.Q, t.op_count[fi], Lmax, s);
    }
    return;
  }
  const int32_t fi = t.mutable_fns[chosen];
  Fn& f = fns[fi];
  const int32_t* ops = t.op_table + fi * t.Q;
  const int32_t num_ops = t.op_count[fi];
  const int32_t lo = t.bounds[2 * fi], hi = t.bounds[2 * fi + 1];
  const Key kp = Split(k_one, 0), kr = Split(k_one, 1), kq = Split(k_one, 2),
            ka = Split(k_one, 3);
  const int32_t size = f.size;
  const IntDraw pos_draw = RandintDraw(kp);
  const int32_t pos = Randint(pos_draw, 0, size > 1 ? size : 1);
  const int32_t ins_pos = Randint(pos_draw, 0, size + 1);
  switch (mtype) {
    case 0:  // ALTER_PARAM
      if (size > 0) AlterParam(ka, &f.rows[pos], scale, s);
      break;
    case 1:  // RANDOMIZE_INSTRUCTION
      if (size > 0) f.rows[pos] = RandomRow(kr, ops, num_ops, s);
      break;
    case 2:  // RANDOMIZE_COMPONENT_FUNCTION
      Randomize(&f, ka, ops, num_ops, Lmax, s);
      break;
    case 4:  // INSERT_INSTRUCTION
      if (size < hi - 1) {
        Insert(&f, ins_pos, RandomRow(kr, ops, num_ops, s), Lmax);
        f.rows[Lmax] = Row();
      }
      break;
    case 5:  // REMOVE_INSTRUCTION
      if (size > lo) Remove(&f, pos, Lmax);
      break;
    case 6: {  // TRADE_INSTRUCTION: insert into Lmax + 1 rows, then remove
      Insert(&f, ins_pos, RandomRow(kr, ops, num_ops, s), Lmax);
      const int32_t q = Randint(RandintDraw(kq), 0, f.size);
      Remove(&f, q, Lmax + 1);
      break;
    }
    default:  // IDENTITY
      break;
  }
  (void)L;
}

ffi::Error CheckF32(const ffi::AnyBuffer& b, const char* what) {
  if (b.element_type() != ffi::DataType::F32) {
    return ffi::Error::InvalidArgument(std::string("evojax_zero ask: ") + what +
                                       " must be float32");
  }
  return ffi::Error::Success();
}

template <typename T>
const T* In(const ffi::AnyBuffer& b) {
  return static_cast<const T*>(b.untyped_data());
}
template <typename T>
T* Out(ffi::Result<ffi::AnyBuffer>& b) {
  return static_cast<T*>(b->untyped_data());
}

ffi::Error NormalBitsImpl(ffi::AnyBuffer key, ffi::Result<ffi::AnyBuffer> out) {
  if (key.element_type() != ffi::DataType::U32 || key.element_count() != 2 ||
      out->element_type() != ffi::DataType::U32 || out->dimensions().size() != 2 ||
      out->dimensions()[1] != kNumNormals) {
    return ffi::Error::InvalidArgument("evojax_zero ask_normal_bits: bad operands");
  }
  const uint32_t* k = In<uint32_t>(key);
  const int64_t B = out->dimensions()[0];
  const Key k_mut = Split({k[0], k[1]}, 1);
  uint32_t* o = Out<uint32_t>(out);
  for (int64_t i = 0; i < B; ++i) NormalBits(Split(k_mut, static_cast<uint32_t>(i)), o + 5 * i);
  return ffi::Error::Success();
}

ffi::Error AskImpl(ffi::AnyBuffer key, ffi::AnyBuffer fitness, ffi::AnyBuffer s_op,
                   ffi::AnyBuffer s_addr, ffi::AnyBuffer s_data, ffi::AnyBuffer s_size,
                   ffi::AnyBuffer p_op, ffi::AnyBuffer p_addr, ffi::AnyBuffer p_data,
                   ffi::AnyBuffer p_size, ffi::AnyBuffer l_op, ffi::AnyBuffer l_addr,
                   ffi::AnyBuffer l_data, ffi::AnyBuffer l_size, ffi::AnyBuffer scales,
                   ffi::AnyBuffer types, ffi::AnyBuffer op_table, ffi::AnyBuffer op_count,
                   ffi::AnyBuffer bounds, ffi::AnyBuffer mutable_fns, ffi::AnyBuffer op_info,
                   int64_t tournament, int64_t num_scalars, int64_t num_vectors,
                   int64_t num_matrices, double mutate_prob,
                   ffi::Result<ffi::AnyBuffer> o_s_op, ffi::Result<ffi::AnyBuffer> o_s_addr,
                   ffi::Result<ffi::AnyBuffer> o_s_data, ffi::Result<ffi::AnyBuffer> o_s_size,
                   ffi::Result<ffi::AnyBuffer> o_p_op, ffi::Result<ffi::AnyBuffer> o_p_addr,
                   ffi::Result<ffi::AnyBuffer> o_p_data, ffi::Result<ffi::AnyBuffer> o_p_size,
                   ffi::Result<ffi::AnyBuffer> o_l_op, ffi::Result<ffi::AnyBuffer> o_l_addr,
                   ffi::Result<ffi::AnyBuffer> o_l_data, ffi::Result<ffi::AnyBuffer> o_l_size,
                   ffi::Result<ffi::AnyBuffer> parents) {
  for (const ffi::AnyBuffer* b : {&fitness, &s_data, &p_data, &l_data, &scales}) {
    if (auto e = CheckF32(*b, "fitness, program data and scales"); e.failure()) return e;
  }
  if (key.element_type() != ffi::DataType::U32 || key.element_count() != 2) {
    return ffi::Error::InvalidArgument("evojax_zero ask: key must be uint32[2]");
  }
  const int64_t P = fitness.element_count();
  const int64_t B = parents->element_count();
  const int64_t T = tournament;
  if (P < 1 || B < 1 || T < 1 || op_table.dimensions().size() != 2 ||
      op_info.element_count() != 6 * 65) {
    return ffi::Error::InvalidArgument("evojax_zero ask: bad shapes");
  }
  const ffi::AnyBuffer* ops_in[3] = {&s_op, &p_op, &l_op};
  const ffi::AnyBuffer* addr_in[3] = {&s_addr, &p_addr, &l_addr};
  const ffi::AnyBuffer* data_in[3] = {&s_data, &p_data, &l_data};
  const ffi::AnyBuffer* size_in[3] = {&s_size, &p_size, &l_size};
  ffi::Result<ffi::AnyBuffer>* ops_out[3] = {&o_s_op, &o_p_op, &o_l_op};
  ffi::Result<ffi::AnyBuffer>* addr_out[3] = {&o_s_addr, &o_p_addr, &o_l_addr};
  ffi::Result<ffi::AnyBuffer>* data_out[3] = {&o_s_data, &o_p_data, &o_l_data};
  ffi::Result<ffi::AnyBuffer>* size_out[3] = {&o_s_size, &o_p_size, &o_l_size};
  int32_t L[3];
  for (int f = 0; f < 3; ++f) {
    auto d = ops_in[f]->dimensions();
    if (d.size() != 2 || d[0] != P) {
      return ffi::Error::InvalidArgument("evojax_zero ask: op arrays must be [P, L]");
    }
    L[f] = static_cast<int32_t>(d[1]);
  }
  const int32_t* info = In<int32_t>(op_info);  // in1, in2, out kinds, category, unif, gauss
  std::vector<uint8_t> unif(65), gauss(65);
  for (int i = 0; i < 65; ++i) {
    unif[i] = info[4 * 65 + i] != 0;
    gauss[i] = info[5 * 65 + i] != 0;
  }
  Spec s;
  s.in_hi[0] = 1;
  s.in_hi[1] = static_cast<int32_t>(num_scalars);
  s.in_hi[2] = static_cast<int32_t>(num_vectors);
  s.in_hi[3] = static_cast<int32_t>(num_matrices);
  s.out_lo[0] = 0;
  s.out_lo[1] = 1;
  s.out_lo[2] = 1;
  s.out_lo[3] = 0;
  s.in1_kind = info;
  s.in2_kind = info + 65;
  s.out_kind = info + 2 * 65;
  s.category = info + 3 * 65;
  s.is_uniform = unif.data();
  s.is_gaussian = gauss.data();
  Tables t;
  t.types = In<int32_t>(types);
  t.num_types = static_cast<int32_t>(types.element_count());
  t.op_table = In<int32_t>(op_table);
  t.Q = static_cast<int32_t>(op_table.dimensions()[1]);
  t.op_count = In<int32_t>(op_count);
  t.bounds = In<int32_t>(bounds);
  t.num_mutable = 0;
  t.has_rand_all = false;
  int32_t Lmax = 0;
  const int32_t* mut = In<int32_t>(mutable_fns);
  for (int f = 0; f < 3; ++f) {
    if (mut[f]) {
      t.mutable_fns[t.num_mutable++] = f;
      if (L[f] > Lmax) Lmax = L[f];
    }
  }
  t.mutate_prob = static_cast<float>(mutate_prob);
  if (mutate_prob >= 1.0) t.mutate_prob = 1.0f;
  const uint32_t* k = In<uint32_t>(key);
  const Key root{k[0], k[1]};
  const Key k_sel = Split(root, 0), k_mut = Split(root, 1);
  // The tournaments' draws: randint(bits of split(k_sel)[0], bits of split(k_sel)[1]).
  std::vector<uint32_t> sel_hi(B * T), sel_lo(B * T);
  BitsRange(Split(k_sel, 0), static_cast<uint32_t>(B * T), sel_hi.data());
  BitsRange(Split(k_sel, 1), static_cast<uint32_t>(B * T), sel_lo.data());
  const float* fit = In<float>(fitness);
  const float* sc = In<float>(scales);
  int32_t* par = Out<int32_t>(parents);
  Fn fns[3];
  for (int f = 0; f < 3; ++f) fns[f].rows.resize((Lmax > L[f] ? Lmax : L[f]) + 1);
  for (int64_t b = 0; b < B; ++b) {
    // Tournament: T uniform draws with replacement, first maximum wins.
    int32_t best = -1;
    float best_f = 0.0f;
    for (int64_t j = 0; j < T; ++j) {
      const uint32_t i = static_cast<uint32_t>(b * T + j);
      const int32_t d = Randint({sel_hi[i], sel_lo[i]}, 0, static_cast<int32_t>(P));
      const float v = fit[d];
      if (best < 0 || v > best_f || (std::isnan(v) && !std::isnan(best_f))) {
        best = d;
        best_f = v;
      }
    }
    par[b] = best;
    for (int f = 0; f < 3; ++f) {
      Fn& fn = fns[f];
      const int32_t* op = In<int32_t>(*ops_in[f]) + best * L[f];
      const int32_t* ad = In<int32_t>(*addr_in[f]) + best * L[f] * 3;
      const float* da = In<float>(*data_in[f]) + best * L[f] * 4;
      for (size_t r = 0; r < fn.rows.size(); ++r) {
        Row& row = fn.rows[r];
        if (static_cast<int32_t>(r) < L[f]) {
          row.op = op[r];
          std::memcpy(row.addr, ad + 3 * r, sizeof(row.addr));
          std::memcpy(row.data, da + 4 * r, sizeof(row.data));
        } else {
          row = Row();
        }
      }
      fn.size = In<int32_t>(*size_in[f])[best];
    }
    MutateChild(Split(k_mut, static_cast<uint32_t>(b)), fns, L, Lmax, t, sc + 5 * b, s);
    for (int f = 0; f < 3; ++f) {
      const Fn& fn = fns[f];
      int32_t* op = Out<int32_t>(*ops_out[f]) + b * L[f];
      int32_t* ad = Out<int32_t>(*addr_out[f]) + b * L[f] * 3;
      float* da = Out<float>(*data_out[f]) + b * L[f] * 4;
      for (int32_t r = 0; r < L[f]; ++r) {
        op[r] = fn.rows[r].op;
        std::memcpy(ad + 3 * r, fn.rows[r].addr, sizeof(fn.rows[r].addr));
        std::memcpy(da + 4 * r, fn.rows[r].data, sizeof(fn.rows[r].data));
      }
      Out<int32_t>(*size_out[f])[b] = fn.size;
    }
  }
  return ffi::Error::Success();
}

}  // namespace
}  // namespace ask
}  // namespace evojax_zero

#define EVOJAX_ASK_EXPORT extern "C" __attribute__((visibility("default")))

#ifndef EVOJAX_ZERO_BUILD_ID
#define EVOJAX_ZERO_BUILD_ID "unknown"
#endif
EVOJAX_ASK_EXPORT const char* evojax_zero_build_id() { return EVOJAX_ZERO_BUILD_ID; }
EVOJAX_ASK_EXPORT const char* evojax_zero_probe() { return ""; }

EVOJAX_ASK_EXPORT XLA_FFI_Error* EvojaxZeroAskNormalBits(XLA_FFI_CallFrame* call_frame);
EVOJAX_ASK_EXPORT XLA_FFI_Error* EvojaxZeroAsk(XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(EvojaxZeroAskNormalBits, evojax_zero::ask::NormalBitsImpl,
                              ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(EvojaxZeroAsk, evojax_zero::ask::AskImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // key
                                  .Arg<ffi::AnyBuffer>()  // fitness
                                  .Arg<ffi::AnyBuffer>()  // setup op, addr, data, size
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()  // predict
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()  // learn
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()  // scales
                                  .Arg<ffi::AnyBuffer>()  // types
                                  .Arg<ffi::AnyBuffer>()  // op_table
                                  .Arg<ffi::AnyBuffer>()  // op_count
                                  .Arg<ffi::AnyBuffer>()  // bounds
                                  .Arg<ffi::AnyBuffer>()  // mutable
                                  .Arg<ffi::AnyBuffer>()  // op_info
                                  .Attr<int64_t>("tournament")
                                  .Attr<int64_t>("num_scalars")
                                  .Attr<int64_t>("num_vectors")
                                  .Attr<int64_t>("num_matrices")
                                  .Attr<double>("mutate_prob")
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
