// Dead-code elimination of one decoded program before it runs (host and device).
//
// Fitness depends only on the predictions (s1; v2 for multi-class tasks), so an instruction
// whose result can never reach a prediction is dropped before execution. Liveness is per
// address (scalar i, vector i, matrix i) over the real control flow of a run:
//
//   Setup once; per train step  v0 <- x, s0 <- 0 [, v1 <- 0], Predict, (s1 or v2 read and
//   rewritten: sigmoid / softmax), v0 <- x, s0 <- y [, v1 <- one-hot], Learn; per validation
//   example  v0 <- x, s0 <- 0 [, v1 <- 0], Predict.
//
// So after Learn comes a Predict, after Predict a Learn or a Predict (memory persists across
// examples and epochs), and s0, v0 (and v1 for multi-class tasks) are overwritten before
// either reads them. The live sets at the ends of Predict and Learn are the least fixed point
// of those equations (a few backward passes). Rules:
//   * an instruction is live iff the address it writes is live after it; a full write kills
//     the address, a partial write (VECTOR_CONST_SET, MATRIX_CONST_SET: one element) does not
//     (it reads the rest of its address);
//   * inputs are read before the output is written (in-place transposes, v = m @ v), so the
//     kill comes before the reads are added;
//   * random ops advance the lane's random stream, so a dead one is removed only when no live
//     random op can run after it (any in Predict/Learn, or later in Setup); otherwise a dead
//     uniform op becomes RNG_SKIP (the counter advanced by its number of draws: one per
//     element, none when lo >= hi) and a dead gaussian op stays (its draw count varies);
//   * programs with more than kMaxLiveSlots addresses are left as they are.
// Results are bit-identical with and without the pass (tests/test_native_dce.py).
#ifndef EVOJAX_ZERO_NATIVE_LIVENESS_H_
#define EVOJAX_ZERO_NATIVE_LIVENESS_H_

#include "common.h"
#include "program.h"

namespace evojax_zero {

constexpr int kLiveWords = 8;
constexpr int kMaxLiveSlots = 64 * kLiveWords;  // S + V + M addresses at most

// A set of addresses (slot s = scalar s, S + vector i, S + V + matrix i) in W 64-bit words:
// one word when S + V + M <= 64 (the usual case), kLiveWords otherwise.
template <int W> struct SlotSet {
  uint64_t w[W];
  EVOJAX_ZERO_HD void Clear() {
    for (int i = 0; i < W; ++i) w[i] = 0;
  }
  EVOJAX_ZERO_HD bool Has(int s) const { return (w[s >> 6] >> (s & 63)) & 1u; }
  EVOJAX_ZERO_HD void Add(int s) { w[s >> 6] |= uint64_t{1} << (s & 63); }
  EVOJAX_ZERO_HD void Remove(int s) { w[s >> 6] &= ~(uint64_t{1} << (s & 63)); }
  EVOJAX_ZERO_HD void AddAll(const SlotSet& o) {
    for (int i = 0; i < W; ++i) w[i] |= o.w[i];
  }
  EVOJAX_ZERO_HD void RemoveAll(const SlotSet& o) {
    for (int i = 0; i < W; ++i) w[i] &= ~o.w[i];
  }
  EVOJAX_ZERO_HD bool Equals(const SlotSet& o) const {
    for (int i = 0; i < W; ++i)
      if (w[i] != o.w[i]) return false;
    return true;
  }
};

// Decoded operand offsets to slots (F is a power of two: shifts, no divisions).
struct SlotMap {
  int32_t S, V, vec0, mat0;
  int shift_v, shift_m;  // log2(F), log2(F * F)
  EVOJAX_ZERO_HD int Of(int kind, int32_t off) const {
    switch (kind) {
      case 1: return off;
      case 2: return S + ((off - vec0) >> shift_v);
      default: return S + V + ((off - mat0) >> shift_m);
    }
  }
};

// The map of a layout; false when F is not a power of two (no elimination then).
EVOJAX_ZERO_HD inline bool MakeSlotMap(const Layout& l, SlotMap& m) {
  int shift = 0;
  while ((1 << shift) < l.F) ++shift;
  if ((1 << shift) != l.F) return false;
  m = SlotMap{l.S, l.V, l.vec0(), l.mat0(), shift, 2 * shift};
  return true;
}

EVOJAX_ZERO_HD inline bool IsPartialWrite(int32_t op) {
  return op == VECTOR_CONST_SET || op == MATRIX_CONST_SET;
}
EVOJAX_ZERO_HD inline bool IsRandomOp(int32_t op) {
  return op >= SCALAR_UNIFORM_SET && op <= MATRIX_GAUSSIAN_SET;
}

// Backwards through one function: `live` holds the slots live after it on entry, before it
// on return. Marks each instruction: op negated when dead, positive when live (the marks of
// the last pass count; Compact restores the ops).
template <int W, typename T>
EVOJAX_ZERO_HD void LiveBackward(const SlotMap& l, Instr<T>* code, int n, SlotSet<W>& live) {
  for (int i = n - 1; i >= 0; --i) {
    Instr<T>& I = code[i];
    const int32_t op = I.op < 0 ? -I.op : I.op;
    const int out = l.Of(OpKind(op, 2), I.o);
    if (!live.Has(out)) {
      I.op = -op;
      continue;
    }
    I.op = op;
    if (!IsPartialWrite(op)) live.Remove(out);
    const int ka = OpKind(op, 0), kb = OpKind(op, 1);
    if (ka) live.Add(l.Of(ka, I.a));
    if (kb) live.Add(l.Of(kb, I.b));
  }
}

// Drop the marked (dead) instructions of one function, or turn them into what keeps the
// random stream in step (see the top of this file). `draws_after`: a live random op may run
// after the end of this function. Returns the new length. `outcome` (optional, n entries):
// per instruction, kDropped, kLive, kKeptDraws (a dead gaussian op) or kSkipped (RNG_SKIP).
enum DceOutcome : int32_t { kDropped = 0, kLive = 1, kKeptDraws = 2, kSkipped = 3 };

template <typename T>
EVOJAX_ZERO_HD int Compact(const Layout& l, Instr<T>* code, int n, bool draws_after,
                           int32_t* outcome = nullptr) {
  // Whether a live random op follows instruction i within this function or later.
  bool later = draws_after;
  for (int i = n - 1; i >= 0; --i) {
    Instr<T>& I = code[i];
    const bool dead = I.op < 0;
    const int32_t op = dead ? -I.op : I.op;
    if (outcome) outcome[i] = dead ? kDropped : kLive;
    if (!dead) {
      later = later || IsRandomOp(op);
      continue;
    }
    I.op = NO_OP;
    if (!IsRandomOp(op) || !later) continue;
    if (op >= SCALAR_GAUSSIAN_SET) {
      I.op = op;  // a dead normal draw runs as is (its output is never read)
      if (outcome) outcome[i] = kKeptDraws;
    } else if (I.x < I.y) {  // uniform with a non-empty range: one draw per element
      const int kind = OpKind(op, 2);
      I.op = RNG_SKIP;
      I.i0 = kind == 1 ? 1 : (kind == 2 ? l.F : l.F * l.F);
      if (outcome) outcome[i] = kSkipped;
    }
  }
  int m = 0;
  for (int i = 0; i < n; ++i)
    if (code[i].op != NO_OP) code[m++] = code[i];
  return m;
}

template <int W, typename T>
EVOJAX_ZERO_HD void EliminateDeadCodeIn(const Layout& layout, const SlotMap& l,
                                        int32_t num_classes, Instr<T>* const* fn, int* len,
                                        int32_t* const* outcome) {
  SlotSet<W> killed, pred_out;
  killed.Clear();
  pred_out.Clear();
  killed.Add(0);                              // s0
  killed.Add(l.Of(2, layout.vec0()));         // v0
  if (num_classes > 0) {
    killed.Add(l.Of(2, layout.vec0() + 1 * layout.F));    // v1: the label vector
    pred_out.Add(l.Of(2, layout.vec0() + 2 * layout.F));  // v2: the prediction vector
  } else {
    pred_out.Add(1);  // s1
  }
  SlotSet<W> in_predict, in_learn, end_predict, end_learn;
  in_predict.Clear();
  in_learn.Clear();
  for (;;) {
    end_learn = in_predict;
    end_learn.RemoveAll(killed);
    SlotSet<W> new_learn = end_learn;
    LiveBackward(l, fn[2], len[2], new_learn);
    end_predict = new_learn;
    end_predict.AddAll(in_predict);
    end_predict.RemoveAll(killed);
    end_predict.AddAll(pred_out);
    SlotSet<W> new_predict = end_predict;
    LiveBackward(l, fn[1], len[1], new_predict);
    if (new_predict.Equals(in_predict) && new_learn.Equals(in_learn)) break;
    in_predict = new_predict;
    in_learn = new_learn;
  }
  // The last round ran from the fixed point, so its marks of Predict and Learn stand.
  SlotSet<W> live = end_learn;  // = what Predict reads of memory: Setup's live-out
  LiveBackward(l, fn[0], len[0], live);
  // Any live random op in Predict or Learn runs after every instruction (the loop repeats).
  bool loop_draws = false;
  for (int f = 1; f <= 2; ++f)
    for (int i = 0; i < len[f]; ++i) loop_draws = loop_draws || (fn[f][i].op > 0 &&
                                                                  IsRandomOp(fn[f][i].op));
  for (int f = 0; f < 3; ++f)
    len[f] = Compact(layout, fn[f], len[f], loop_draws, outcome ? outcome[f] : nullptr);
}

// Eliminate the dead code of a decoded program (setup, predict, learn) in place.
// num_classes > 0: the multi-class vector output branch. Updates len[]. `outcome`
// (optional): per function, one DceOutcome per decoded instruction (see Compact).
template <typename T>
EVOJAX_ZERO_HD void EliminateDeadCode(const Layout& l, int32_t num_classes, Instr<T>* const* fn,
                                      int* len, int32_t* const* outcome = nullptr) {
  SlotMap map;
  const int slots = l.S + l.V + l.M;
  if (slots > kMaxLiveSlots || !MakeSlotMap(l, map)) {
    if (outcome)
      for (int f = 0; f < 3; ++f)
        for (int i = 0; i < len[f]; ++i) outcome[f][i] = kLive;
    return;
  }
  if (slots <= 64) {
    EliminateDeadCodeIn<1, T>(l, map, num_classes, fn, len, outcome);
  } else {
    EliminateDeadCodeIn<kLiveWords, T>(l, map, num_classes, fn, len, outcome);
  }
}

}  // namespace evojax_zero

#endif  // EVOJAX_ZERO_NATIVE_LIVENESS_H_
