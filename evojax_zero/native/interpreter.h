// AutoML-Zero program interpreter: the semantics of one (program, task) run, shared by the
// native CPU backend (interpreter.cc) and the CUDA backend (interpreter_cuda.cu).
//
// Semantics follow /work/shared/AUTOML_ZERO_REFERENCE.md (sections 1-3 and 7):
// memory wiped and Setup run once per (program, task); per epoch Train then Validate;
// fitness is the max over epochs of the validation fitness.
//
// The kernel returns per-epoch *scores*; the caller turns them into fitness in XLA:
//   score = the validation loss (sum of squared errors, or of 0/1 errors);
//   RMS_ERROR: fitness = FlipAndSquash(sqrt(score / Nv)); ACCURACY and multi-class
//   accuracy: 1 - score / Nv
//   (evaluated by XLA so that it is exactly the XLA evaluator's expression);
//   score = -1 (fitness 0) for an epoch not reached, stopped in training, or whose
//   validation saw an error that is NaN or > max_abs_error.
// fitness = max(0, max over epochs) = the reference's best-so-far over epochs.
//
// Templated on the feature size F (2, 4, 8, 16, 32) and the float type T (float, double).
// All arithmetic is done in T, in a fixed order, with no FMA contraction (the builds pass
// -ffp-contract=off / --fmad=false), so a result depends only on the inputs, never on threads
// or on how runs are grouped.
//
// Pieces: common.h (host/device markers, math), rng.h (random streams), program.h (op ids,
// layout, decoding), execute.h (instructions on a group of lanes), this file (a group's
// setup / train / validate), thread_pool.h (the CPU workers).
//
// A *group* is one program run on up to W tasks in lockstep, one lane per task (execute.h):
// lanes share the decoded code and the op dispatch; each lane has its own memory column,
// random stream, early stop and outputs, so each computes exactly what a run on its own
// would. The CPU backend groups the tasks of a batch; the CUDA backend runs groups of one.
#ifndef EVOJAX_ZERO_NATIVE_INTERPRETER_H_
#define EVOJAX_ZERO_NATIVE_INTERPRETER_H_

#include "common.h"
#include "execute.h"
#include "liveness.h"
#include "program.h"
#include "rng.h"

namespace evojax_zero {

// ------------------------------------------------------------------------------------
// The operands of one call.
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
  bool accuracy;             // binary accuracy (sigmoid of s1)
  int32_t num_classes;       // > 0: multi-class accuracy, the vector output branch (below)
  bool dce;                  // drop dead code before running (liveness.h); same results
  bool program_lanes;        // one task: run programs sharing Predict/Learn in lanes (CPU)
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
};

template <typename T> EVOJAX_ZERO_HD inline T Sigmoid(T x) {
  return T(1) / (T(1) + math::Exp(-x));
}

// The decoded code of one program: setup, predict, learn.
template <typename T> struct Code {
  const Instr<T>* fn[3];
  int len[3];
};

// Decode program p's three functions into out[f] (pb.fn[f].max_len entries each, lengths
// into len[f]) and, when pb.dce, drop their dead code (liveness.h).
template <typename T>
EVOJAX_ZERO_HD void DecodeProgram(const Problem<T>& pb, int64_t p, Instr<T>* const* out,
                                  int* len) {
  for (int f = 0; f < 3; ++f) {
    const FunctionArgs<T>& fa = pb.fn[f];
    const int64_t L = fa.max_len;
    len[f] = Decode<T>(pb.layout, fa.op + p * L, fa.addr + p * L * 3, fa.data + p * L * 4,
                       fa.size[p], static_cast<int32_t>(L), out[f]);
  }
  if (pb.dce) EliminateDeadCode<T>(pb.layout, pb.num_classes, out, len);
}

// Where a group runs: element k of lane l at mem[k * stride + l], mem_size elements per
// lane; `saved` holds mem_size elements per lane to set a lane's memory aside when its
// validation aborts while other lanes go on (may be null for groups of one lane).
template <typename T> struct GroupMemory {
  T* mem;
  int64_t stride;
  int64_t mem_size;
  T* saved;
};

// One lane's run: its task, outputs and progress.
template <typename T> struct Lane {
  int64_t p;          // program
  int64_t t;          // task
  bool live;          // not stopped in training
  int64_t steps_run;  // train steps run (a stopping step counts)
  T* tr_err;          // first-epoch trace rows of this (program, task), or null
  T* tr_pred;
  T* va_err;
  T* va_pred;
  T* ep_score;        // [epochs run]
};

// Start lane l on task t: its random stream and its outputs' initial values (NaN for trace
// rows, score -1 for every epoch).
template <typename T>
EVOJAX_ZERO_HD inline void StartLane(const Problem<T>& pb, int64_t p, int64_t t, Lane<T>& lane,
                                     Rng& rng, const ZigguratTables* zig) {
  const int64_t pt = p * pb.T_ + t;
  rng = Rng{SeedFromKey(pb.keys + pt * pb.key_words, pb.key_words), 0, zig};
  const int64_t N = pb.N;
  const int64_t n_first = math::Min(N, pb.num_train);
  const int64_t epochs_run = N > 0 ? (pb.num_train + N - 1) / N : 0;
  lane.p = p;
  lane.t = t;
  lane.live = true;
  lane.steps_run = 0;
  lane.tr_err = pb.train_error ? pb.train_error + pt * n_first : nullptr;
  lane.tr_pred = pb.train_prediction ? pb.train_prediction + pt * n_first : nullptr;
  lane.va_err = pb.valid_error ? pb.valid_error + pt * pb.num_valid : nullptr;
  lane.va_pred = pb.valid_prediction ? pb.valid_prediction + pt * pb.num_valid : nullptr;
  lane.ep_score = pb.epoch_score + pt * epochs_run;
  // Trace recording follows the reference: train_prediction for every step run (the
  // stopping step included), train_error only for steps that passed the early-stop check;
  // valid_prediction for every example validated, valid_error only up to an abort; no
  // validation after a training stop (NaN where nothing was recorded).
  const T nan = math::QuietNaN<T>();
  if (lane.tr_err) for (int64_t i = 0; i < n_first; ++i) lane.tr_err[i] = lane.tr_pred[i] = nan;
  if (lane.va_err)
    for (int64_t i = 0; i < pb.num_valid; ++i) lane.va_err[i] = lane.va_pred[i] = nan;
  for (int64_t i = 0; i < epochs_run; ++i) lane.ep_score[i] = T(-1);
}

// Lane l's inputs: the example's features into v0 and s0 = label (learn) or 0 (predict).
template <int F, typename T>
EVOJAX_ZERO_HD inline void LoadExample(const GroupMemory<T>& g, int32_t v0, int l, const T* x,
                                       T s0) {
  for (int k = 0; k < F; ++k) g.mem[(v0 + k) * g.stride + l] = x[k];
  g.mem[l] = s0;
}

// ------------------------------------------------------------------------------------
// The vector output branch (multi-class tasks with K = num_classes classes; the reference's
// kLabelsVectorAddress / kPredictionsVectorAddress, TruncatingSoftmax and Argmax; rules in
// docs/evaluator.md "Multi-class tasks"). Labels are class indices stored as floats; s0 stays
// 0; v1 holds the one-hot label during Learn and zeros during Predict; v2 is the prediction.
// ------------------------------------------------------------------------------------
constexpr int32_t kLabelsVector = 1;
constexpr int32_t kPredictionsVector = 2;

// v1 of lane l <- one-hot(cls) (all zeros for cls < 0: the label hidden from Predict).
template <int F, typename T>
EVOJAX_ZERO_HD inline void LoadLabelVector(const GroupMemory<T>& g, int32_t v0, int l,
                                           int32_t cls) {
  const int32_t v1 = v0 + kLabelsVector * F;
  for (int k = 0; k < F; ++k) g.mem[(v1 + k) * g.stride + l] = (k == cls) ? T(1) : T(0);
}

// The class index of a label (-1, i.e. no class, outside [0, K): rejected at the boundary).
template <typename T> EVOJAX_ZERO_HD inline int32_t ClassOf(T y, int32_t K) {
  return (y >= T(0) && y < T(K)) ? static_cast<int32_t>(y) : -1;
}

// p <- softmax of v[0..K) shifted by its max, zeros in p[K..F) (sum in the tree order).
template <int F, typename T>
EVOJAX_ZERO_HD inline void TruncatingSoftmax(const T* v, int32_t K, T* p) {
  T top = v[0];
  for (int k = 1; k < K; ++k) top = (top < v[k]) ? v[k] : top;  // a NaN makes all p NaN anyway
  T e[F], tmp[F];
  for (int k = 0; k < F; ++k) tmp[k] = e[k] = k < K ? math::Exp(v[k] - top) : T(0);
  const T total = TreeSumInPlace<F>(tmp);
  for (int k = 0; k < F; ++k) p[k] = k < K ? e[k] / total : T(0);
}

// Index of the last maximum (`>=` from index 0); NaN entries are never selected.
template <int F, typename T> EVOJAX_ZERO_HD inline int32_t Argmax(const T* p) {
  int32_t best = 0;
  T top = -math::Infinity<T>();
  for (int k = 0; k < F; ++k) {
    if (p[k] >= top) {
      best = k;
      top = p[k];
    }
  }
  return best;
}

// Lane l's prediction vector v2 into p after the truncating softmax (written back when
// `write`, as training does).
template <int F, typename T>
EVOJAX_ZERO_HD inline void PredictionProbabilities(const GroupMemory<T>& g, int32_t v0, int l,
                                                   int32_t K, bool write, T* p) {
  const int32_t v2 = v0 + kPredictionsVector * F;
  T v[F];
  for (int k = 0; k < F; ++k) v[k] = g.mem[(v2 + k) * g.stride + l];
  TruncatingSoftmax<F>(v, K, p);
  if (write)
    for (int k = 0; k < F; ++k) g.mem[(v2 + k) * g.stride + l] = p[k];
}

// The examples of a group's tasks laid out as its lanes read them (built once per call by
// the CPU backend, shared by every program; null on the device): for train step j of epoch e
// the features x[e][j][k][l] and labels y[e][j][l] of the example lane l's epoch order picks,
// and for validation example i x[i][k][l], y[i][l] (W lanes; ghost lanes repeat the last
// task). Loading an example is then one contiguous copy into v0 (whose F elements of all
// lanes are contiguous) instead of a gather per lane.
template <typename T> struct Feed {
  const T* train_x;  // [epochs run, N, F, W]
  const T* train_y;  // [epochs run, N, W]
  const T* valid_x;  // [num_valid, F, W]
  const T* valid_y;  // [num_valid, W]
};

// Features into v0 and s0 <- s0 of the W lanes from a feed row (x: [F][W], s0: [W] or null
// for zeros).
template <int F, int W, typename T>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE void LoadFeedRow(T* EVOJAX_ZERO_RESTRICT mem, int32_t v0,
                                                   const T* EVOJAX_ZERO_RESTRICT x,
                                                   const T* EVOJAX_ZERO_RESTRICT s0) {
  T* v = mem + static_cast<int64_t>(v0) * W;
  for (int k = 0; k < F * W; ++k) v[k] = x[k];
  if (s0) {
    for (int l = 0; l < W; ++l) mem[l] = s0[l];
  } else {
    for (int l = 0; l < W; ++l) mem[l] = T(0);
  }
}

// One training epoch of `steps` steps on the live lanes (Predict, early-stop check, Learn).
// Returns the number of lanes still live. The stride of g is W when W > 1 (CPU groups).
template <int F, int W, typename T>
EVOJAX_ZERO_HD int TrainEpoch(const Problem<T>& pb, const Code<T>& code, int64_t epoch,
                              int64_t steps, int nl, Lane<T>* lanes, Rng* rng,
                              const GroupMemory<T>& g, const Feed<T>* feed = nullptr) {
  const int64_t N = pb.N;
  const int64_t S = W > 1 ? W : g.stride;
  const int32_t v0 = pb.layout.vec0();
  const T max_err = static_cast<T>(pb.max_abs_error);
  const int32_t K = pb.num_classes;
  // Regression without traces: the early-stop check of all lanes at once.
  const bool plain = K == 0 && !pb.accuracy && !(epoch == 0 && pb.train_prediction);
  bool active[W];
  int live = 0;
  for (int l = 0; l < W; ++l) active[l] = false;
  for (int l = 0; l < nl; ++l) live += active[l] = lanes[l].live;
  for (int64_t j = 0; j < steps && live > 0; ++j) {
    const T* x[W];
    T y[W];
    const T* fx = nullptr;
    if (feed) {
      fx = feed->train_x + (epoch * N + j) * F * W;
      const T* fy = feed->train_y + (epoch * N + j) * W;
      for (int l = 0; l < W; ++l) y[l] = fy[l];
      LoadFeedRow<F, W>(g.mem, v0, fx, static_cast<const T*>(nullptr));
      if (K > 0)
        for (int l = 0; l < nl; ++l) LoadLabelVector<F>(g, v0, l, -1);
    } else {
      for (int l = 0; l < nl; ++l) {
        const int64_t t = lanes[l].t;
        int64_t idx = pb.epoch_order[(t * pb.E + epoch) * N + j];
        idx = idx < 0 ? 0 : (idx >= N ? N - 1 : idx);
        x[l] = pb.train_x + (t * N + idx) * F;
        y[l] = pb.train_y[t * N + idx];
        LoadExample<F>(g, v0, l, x[l], T(0));
        if (K > 0) LoadLabelVector<F>(g, v0, l, -1);
      }
      for (int l = nl; l < W; ++l) y[l] = T(0);
    }
    Execute<F, W>(code.fn[1], code.len[1], g.mem, S, rng, active);
    if (plain) {  // err = |y - s1|; stop where NaN or > max_err
      const T* s1 = g.mem + S;
      bool bad[W];
      bool any = false;
      for (int l = 0; l < W; ++l) bad[l] = !(math::Abs(y[l] - s1[l]) <= max_err);
      for (int l = 0; l < W; ++l) any |= active[l] & bad[l];
      if (any) {
        for (int l = 0; l < nl; ++l) {
          if (!(active[l] && bad[l])) continue;
          lanes[l].live = active[l] = false;
          lanes[l].steps_run += j + 1;
          --live;
        }
      }
    } else {
      for (int l = 0; l < nl; ++l) {
        Lane<T>& lane = lanes[l];
        if (!lane.live) continue;
        T pred, err;
        if (K > 0) {  // v2 <- softmax (written back); error = sum |one-hot - p|
          T p[F], d[F];
          PredictionProbabilities<F>(g, v0, l, K, true, p);
          const int32_t cls = ClassOf(y[l], K);
          for (int k = 0; k < F; ++k) d[k] = math::Abs(((k == cls) ? T(1) : T(0)) - p[k]);
          err = TreeSumInPlace<F>(d);
          pred = static_cast<T>(Argmax<F>(p));
        } else {
          T& s1 = g.mem[S + l];
          if (pb.accuracy) s1 = Sigmoid(T(s1));
          err = math::Abs(y[l] - s1);
          pred = s1;
        }
        if (epoch == 0 && lane.tr_pred) lane.tr_pred[j] = pred;
        if (math::IsNan(err) || err > max_err) {  // this and later epochs score -1
          lane.live = active[l] = false;
          lane.steps_run += j + 1;  // a stopping step counts
          --live;
          continue;
        }
        // As the reference, the error is recorded only once the early-stop check passed.
        if (epoch == 0 && lane.tr_err) lane.tr_err[j] = err;
      }
    }
    // Lanes that just stopped run Learn too; nothing of theirs is read again.
    if (feed) {
      LoadFeedRow<F, W>(g.mem, v0, fx, K > 0 ? static_cast<const T*>(nullptr) : y);
      if (K > 0)
        for (int l = 0; l < nl; ++l) LoadLabelVector<F>(g, v0, l, ClassOf(y[l], K));
    } else {
      for (int l = 0; l < nl; ++l) {
        LoadExample<F>(g, v0, l, x[l], K > 0 ? T(0) : y[l]);
        if (K > 0) LoadLabelVector<F>(g, v0, l, ClassOf(y[l], K));
      }
    }
    Execute<F, W>(code.fn[2], code.len[2], g.mem, S, rng, active);
  }
  for (int l = 0; l < nl; ++l)
    if (lanes[l].live) lanes[l].steps_run += steps;
  return live;
}

// Lane l's validation aborts: score -1; its memory and random stream set aside when other
// lanes go on (`active` counts the lanes still validating).
template <int W, typename T>
EVOJAX_ZERO_HD inline void AbortLane(int l, const GroupMemory<T>& g, int64_t S, const Rng* rng,
                                     bool* on, T* loss, bool* aside, Rng* rng_aside,
                                     int& active) {
  on[l] = false;
  loss[l] = T(-1);
  if (--active > 0) {  // the others go on: keep this lane's state as it is now
    T* keep = g.saved + l * g.mem_size;
    for (int64_t k = 0; k < g.mem_size; ++k) keep[k] = g.mem[k * S + l];
    rng_aside[l] = rng[l];
    aside[l] = true;
  }
}

// Validation after an epoch on the live lanes: each lane's epoch score (see the top of this
// file). A lane whose validation aborts stops validating; when other lanes go on, its memory
// and random stream are set aside and restored afterwards, so it continues training from
// exactly the state a run on its own would have.
template <int F, int W, typename T>
EVOJAX_ZERO_HD void ValidateEpoch(const Problem<T>& pb, const Code<T>& code, int64_t epoch,
                                  int nl, Lane<T>* lanes, Rng* rng, const GroupMemory<T>& g,
                                  const Feed<T>* feed = nullptr) {
  const int64_t Nv = pb.Nv;
  const int64_t S = W > 1 ? W : g.stride;
  const int32_t v0 = pb.layout.vec0();
  const T max_err = static_cast<T>(pb.max_abs_error);
  const int32_t K = pb.num_classes;
  const bool record = epoch == 0;
  // Regression without traces: losses and abort checks of all lanes at once.
  const bool plain = K == 0 && !pb.accuracy && !(record && pb.valid_prediction);
  T loss[W];
  bool on[W], aside[W];
  Rng rng_aside[W];
  int active = 0;
  for (int l = 0; l < W; ++l) {
    loss[l] = T(0);
    on[l] = false;
    aside[l] = false;
  }
  for (int l = 0; l < nl; ++l) active += on[l] = lanes[l].live;
  for (int64_t i = 0; i < pb.num_valid && active > 0; ++i) {
    T yrow[W];
    const T* y_of;
    if (feed) {
      LoadFeedRow<F, W>(g.mem, v0, feed->valid_x + i * F * W, static_cast<const T*>(nullptr));
      y_of = feed->valid_y + i * W;
    } else {
      for (int l = 0; l < nl; ++l) {
        LoadExample<F>(g, v0, l, pb.valid_x + (lanes[l].t * Nv + i) * F, T(0));
        yrow[l] = pb.valid_y[lanes[l].t * Nv + i];
      }
      for (int l = nl; l < W; ++l) yrow[l] = T(0);
      y_of = yrow;
    }
    if (K > 0)
      for (int l = 0; l < nl; ++l) LoadLabelVector<F>(g, v0, l, -1);
    Execute<F, W>(code.fn[1], code.len[1], g.mem, S, rng, on);
    if (plain) {  // loss += (y - s1)^2 on the lanes still on; abort where |e| NaN or > max
      const T* s1 = g.mem + S;
      bool bad[W];
      bool any = false;
      for (int l = 0; l < W; ++l) {
        const T e = y_of[l] - s1[l];
        const T sum = loss[l] + e * e;
        loss[l] = on[l] ? sum : loss[l];
        bad[l] = !(math::Abs(e) <= max_err);
      }
      for (int l = 0; l < W; ++l) any |= on[l] & bad[l];
      if (any)
        for (int l = 0; l < nl; ++l)
          if (on[l] && bad[l]) AbortLane<W>(l, g, S, rng, on, loss, aside, rng_aside, active);
      continue;
    }
    for (int l = 0; l < nl; ++l) {
      if (!on[l]) continue;
      Lane<T>& lane = lanes[l];
      const T y = y_of[l];
      T pred = g.mem[S + l];
      T abs_err;
      if (K > 0) {  // correct iff argmax(softmax(v2)) is the label; pred = that class
        T p[F];
        PredictionProbabilities<F>(g, v0, l, K, false, p);
        bool outside = false;
        for (int k = 0; k < F; ++k) outside = outside || p[k] < T(0) || p[k] > T(1);
        pred = static_cast<T>(Argmax<F>(p));
        const T e = outside ? math::Infinity<T>() : (pred == y ? T(0) : T(1));
        loss[l] += e;
        abs_err = math::Abs(e);
      } else if (pb.accuracy) {
        const T prob = Sigmoid(pred);
        T e;
        if (prob < T(0) || prob > T(1)) {
          e = math::Infinity<T>();
        } else {
          e = ((y > T(0.5)) == (prob > T(0.5))) ? T(0) : T(1);
        }
        loss[l] += e;
        abs_err = math::Abs(e);
      } else {
        const T e = y - pred;
        loss[l] += e * e;
        abs_err = math::Abs(e);
      }
      if (record && lane.va_pred) lane.va_pred[i] = pred;
      if (math::IsNan(abs_err) || abs_err > max_err) {
        AbortLane<W>(l, g, S, rng, on, loss, aside, rng_aside, active);
        continue;
      }
      if (record && lane.va_err) lane.va_err[i] = abs_err;  // only when the check passed
    }
  }
  for (int l = 0; l < nl; ++l) {
    if (aside[l]) {
      const T* keep = g.saved + l * g.mem_size;
      for (int64_t k = 0; k < g.mem_size; ++k) g.mem[k * S + l] = keep[k];
      rng[l] = rng_aside[l];
    }
    if (lanes[l].live) lanes[l].ep_score[epoch] = loss[l];
  }
}

// Run program p on tasks t0 .. t0 + nl - 1 (nl <= W lanes, memory wiped here) and write
// those pairs' outputs. The whole per-pair semantics; the CPU and CUDA drivers differ only
// in how many lanes a group has, where code and memory live and whether examples come
// from a Feed. For W > 1 the group's stride must be W; lanes nl .. W - 1 are ghosts.
//
// Program lanes (`pl` non-null, CPU): lane l runs program pl->p[l] on task t0, with its own
// Setup (pl->setup[l]); `code`'s Predict and Learn must be those of every lane's program.
template <typename T> struct ProgramLanes {
  const int64_t* p;               // [nl] programs
  const Instr<T>* const* setup;   // [nl] decoded Setup code
  const int* setup_len;           // [nl]
};

template <int F, int W, typename T>
EVOJAX_ZERO_HD void RunGroup(const Problem<T>& pb, int64_t p, int64_t t0, int nl,
                             const Code<T>& code, const GroupMemory<T>& g,
                             const ZigguratTables* zig, const Feed<T>* feed = nullptr,
                             const ProgramLanes<T>* pl = nullptr) {
  nl = W == 1 ? 1 : nl;
  const int64_t S = W > 1 ? W : g.stride;
  Lane<T> lanes[W];
  Rng rng[W];
  bool real[W];
  for (int l = 0; l < W; ++l) real[l] = l < nl;
  for (int l = 0; l < nl; ++l)
    StartLane(pb, pl ? pl->p[l] : p, pl ? t0 : t0 + l, lanes[l], rng[l], zig);
  if (W > 1) {
    for (int64_t k = 0; k < g.mem_size * W; ++k) g.mem[k] = T(0);
  } else {
    for (int64_t k = 0; k < g.mem_size; ++k) g.mem[k * S] = T(0);
  }
  if (pl) {
    for (int l = 0; l < nl; ++l)
      ExecuteOneLane<F, T, StridedMem<T>>(pl->setup[l], pl->setup_len[l],
                                          StridedMem<T>{g.mem + l, S}, rng[l]);
  } else {
    Execute<F, W>(code.fn[0], code.len[0], g.mem, S, rng, real);
  }

  const int64_t N = pb.N;
  const int64_t epochs_run = N > 0 ? (pb.num_train + N - 1) / N : 0;
  int64_t remaining = pb.num_train;
  for (int64_t epoch = 0; epoch < epochs_run; ++epoch) {
    const int64_t steps = math::Min(N, remaining);
    if (TrainEpoch<F, W>(pb, code, epoch, steps, nl, lanes, rng, g, feed) == 0) break;
    remaining -= N;
    ValidateEpoch<F, W>(pb, code, epoch, nl, lanes, rng, g, feed);
  }
  for (int l = 0; l < nl; ++l) {
    const int64_t pt = lanes[l].p * pb.T_ + lanes[l].t;
    if (pb.stopped) pb.stopped[pt] = lanes[l].live ? 0 : 1;
    if (pb.train_steps) pb.train_steps[pt] = static_cast<int32_t>(lanes[l].steps_run);
  }
}

}  // namespace evojax_zero

#endif  // EVOJAX_ZERO_NATIVE_INTERPRETER_H_
