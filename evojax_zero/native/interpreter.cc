// The native CPU backend: interpreter.h's groups run by the threads of thread_pool.h, exported
// as XLA FFI handlers through ffi_binding.h (the CUDA backend shares that binding).
//
// Work split: the tasks of one program form groups of up to kMaxLanes lanes run in lockstep
// (sizes balanced: 10 tasks make one group of 10, 20 tasks two of 10); a work item is one
// (program, group). Threads: $EVOJAX_ZERO_NUM_THREADS, else the CPUs this process may run on,
// capped so that each thread gets at least kMinEvalsPerThread (program, task) evaluations.
// Every pair writes only its own outputs, so results do not depend on threads or groups.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef __linux__
#include <sched.h>
#endif

#include "interpreter.h"
#include "thread_pool.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace evojax_zero {
namespace {

constexpr int kMaxLanes = 16;
// A group's memory (all lanes) should stay within about half of a core's L2.
constexpr int64_t kGroupMemoryBytes = 256 * 1024;
// Fewer evaluations than this per thread are run by fewer threads: waking a worker costs
// about as much as a few evaluations.
constexpr int64_t kMinEvalsPerThread = 64;
// Feeds (examples in lane order) larger than this, over all groups, are not built: the
// lanes then gather their examples at each step.
constexpr int64_t kMaxFeedElements = int64_t(8) << 20;

int64_t DefaultThreads() {
  if (const char* env = std::getenv("EVOJAX_ZERO_NUM_THREADS")) {
    const long v = std::strtol(env, nullptr, 10);
    if (v >= 1) return v;
  }
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n >= 1) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n >= 1 ? static_cast<int64_t>(n) : 1;
}

// One thread's buffers, kept between calls (grown as needed).
template <typename T> struct Workspace {
  std::vector<T> mem, saved;
  std::vector<Instr<T>> code[3];
  std::vector<Instr<T>> lanes;  // program lanes: every lane's decoded program
};

template <typename T> Workspace<T>& LocalWorkspace() {
  thread_local Workspace<T> ws;
  return ws;
}

// Decode program p's three functions into ws (dead code dropped) and point `code` at them.
template <typename T> void DecodeInto(const Problem<T>& pb, int64_t p, Workspace<T>& ws,
                                      Code<T>& code) {
  Instr<T>* out[3];
  for (int f = 0; f < 3; ++f) {
    const int64_t L = pb.fn[f].max_len;
    if (static_cast<int64_t>(ws.code[f].size()) < L + 1) ws.code[f].resize(L + 1);
    out[f] = ws.code[f].data();
    code.fn[f] = out[f];
  }
  DecodeProgram<T>(pb, p, out, code.len);
}

struct Device {};

// The lane width W of a group of nl tasks (W > 1: all W lanes computed, see execute.h).
// Feature sizes above 8 run their matrix ops lane by lane and have large memories: at most 4.
template <int F> int LaneWidth(int64_t nl) {
  if (nl <= 1) return 1;
  if (F > 8 || nl <= 4) return 4;
  if (nl <= 8) return 8;
  if (nl <= 12) return 12;
  return 16;
}

// The thread's workspace sized for a group of width W.
template <typename T> Workspace<T>& GroupWorkspace(int64_t mem_size, int W) {
  Workspace<T>& ws = LocalWorkspace<T>();
  if (static_cast<int64_t>(ws.mem.size()) < mem_size * W) ws.mem.resize(mem_size * W);
  if (W > 1 && static_cast<int64_t>(ws.saved.size()) < mem_size * W) {
    ws.saved.resize(mem_size * W);
  }
  return ws;
}

// RunGroup at the compile-time lane width W (one of LaneWidth's values).
template <int F, typename T>
void RunGroupOfWidth(int W, const Problem<T>& pb, int64_t p, int64_t t0, int nl,
                     const Code<T>& code, const GroupMemory<T>& g_mem, const Feed<T>* fd,
                     const ProgramLanes<T>* pl = nullptr) {
  const ZigguratTables* zig = &Ziggurat();
  switch (W) {
    case 1: RunGroup<F, 1, T>(pb, p, t0, 1, code, g_mem, zig, fd, pl); break;
    case 4: RunGroup<F, 4, T>(pb, p, t0, nl, code, g_mem, zig, fd, pl); break;
    default:
      if constexpr (F <= 8) {
        switch (W) {
          case 8: RunGroup<F, 8, T>(pb, p, t0, nl, code, g_mem, zig, fd, pl); break;
          case 12: RunGroup<F, 12, T>(pb, p, t0, nl, code, g_mem, zig, fd, pl); break;
          default: RunGroup<F, 16, T>(pb, p, t0, nl, code, g_mem, zig, fd, pl); break;
        }
      }
      break;
  }
}

// Elements of a feed for a group of width W (kept below kMaxFeedElements).
template <int F, typename T> int64_t FeedElements(const Problem<T>& pb, int W) {
  const int64_t epochs_run = pb.N > 0 ? (pb.num_train + pb.N - 1) / pb.N : 0;
  return W * (epochs_run * pb.N + pb.num_valid) * (F + 1);
}

// Threads for `evals` (program, task) evaluations, and the work items each takes at a time.
inline void ParallelPlan(int64_t evals, int64_t items, int64_t& threads, int64_t& chunk) {
  threads = std::max<int64_t>(1, std::min(DefaultThreads(), evals / kMinEvalsPerThread));
  chunk = std::max<int64_t>(1, std::min<int64_t>(16, items / (threads * 8)));
}

// A group's examples in lane order (interpreter.h's Feed), built once per call.
template <typename T> struct FeedData {
  std::vector<T> train_x, train_y, valid_x, valid_y;
  Feed<T> feed() const {
    return Feed<T>{train_x.data(), train_y.data(), valid_x.data(), valid_y.data()};
  }
};

template <int F, typename T>
void BuildFeed(const Problem<T>& pb, int64_t t0, int64_t nl, int W, FeedData<T>& fd) {
  const int64_t N = pb.N, Nv = pb.Nv;
  const int64_t epochs_run = N > 0 ? (pb.num_train + N - 1) / N : 0;
  fd.train_x.assign(epochs_run * N * F * W, T(0));
  fd.train_y.assign(epochs_run * N * W, T(0));
  fd.valid_x.assign(pb.num_valid * F * W, T(0));
  fd.valid_y.assign(pb.num_valid * W, T(0));
  for (int l = 0; l < W; ++l) {
    const int64_t t = t0 + (l < nl ? l : nl - 1);  // ghost lanes repeat the last task
    for (int64_t e = 0; e < epochs_run; ++e)
      for (int64_t j = 0; j < N; ++j) {
        int64_t idx = pb.epoch_order[(t * pb.E + e) * N + j];
        idx = idx < 0 ? 0 : (idx >= N ? N - 1 : idx);
        const int64_t row = e * N + j;
        for (int k = 0; k < F; ++k) fd.train_x[(row * F + k) * W + l] = pb.train_x[(t * N + idx) * F + k];
        fd.train_y[row * W + l] = pb.train_y[t * N + idx];
      }
    for (int64_t i = 0; i < pb.num_valid; ++i) {
      for (int k = 0; k < F; ++k) fd.valid_x[(i * F + k) * W + l] = pb.valid_x[(t * Nv + i) * F + k];
      fd.valid_y[i * W + l] = pb.valid_y[t * Nv + i];
    }
  }
}

// ------------------------------------------------------------------------------------
// Program lanes: with one task there are no tasks to share a group, but the programs of a
// batch often share Predict and Learn (the nonlinear preset mutates only Setup; FEC-style
// clones): those run as the lanes of one group, each lane with its own program's Setup,
// key and outputs, so each computes exactly what it would alone.
// ------------------------------------------------------------------------------------

// The rows function f of program p runs (its size and its first size rows).
template <typename T> void FunctionBytes(const Problem<T>& pb, int f, int64_t p,
                                         const char* parts[3], size_t lens[3]) {
  const FunctionArgs<T>& fa = pb.fn[f];
  const int64_t L = fa.max_len;
  const int64_t n = std::min<int64_t>(std::max<int32_t>(fa.size[p], 0), L);
  parts[0] = reinterpret_cast<const char*>(fa.op + p * L);
  lens[0] = n * sizeof(int32_t);
  parts[1] = reinterpret_cast<const char*>(fa.addr + p * L * 3);
  lens[1] = n * 3 * sizeof(int32_t);
  parts[2] = reinterpret_cast<const char*>(fa.data + p * L * 4);
  lens[2] = n * 4 * sizeof(T);
}

// Hash of program p's Predict and Learn rows (FNV-1a).
template <typename T> uint64_t LoopHash(const Problem<T>& pb, int64_t p) {
  uint64_t h = 1469598103934665603ULL;
  for (int f = 1; f <= 2; ++f) {
    const char* parts[3];
    size_t lens[3];
    FunctionBytes(pb, f, p, parts, lens);
    h = (h ^ lens[0]) * 1099511628211ULL;
    for (int k = 0; k < 3; ++k)
      for (size_t i = 0; i < lens[k]; ++i) h = (h ^ static_cast<uint8_t>(parts[k][i])) * 1099511628211ULL;
  }
  return h;
}

// Programs p and q have the same Predict and Learn rows (so the same decoded, dead-code-free
// Predict and Learn: their elimination does not depend on Setup).
template <typename T> bool SameLoop(const Problem<T>& pb, int64_t p, int64_t q) {
  for (int f = 1; f <= 2; ++f) {
    const char* a[3];
    const char* b[3];
    size_t la[3], lb[3];
    FunctionBytes(pb, f, p, a, la);
    FunctionBytes(pb, f, q, b, lb);
    for (int k = 0; k < 3; ++k)
      if (la[k] != lb[k] || std::memcmp(a[k], b[k], la[k]) != 0) return false;
  }
  return true;
}

// Runs the call as program lanes when pb has one task and some programs share Predict and
// Learn; returns false (nothing run) otherwise.
template <int F, typename T>
bool LaunchProgramLanes(const Problem<T>& pb, int64_t cap, int64_t mem_size) {
  const int64_t P = pb.P;
  std::vector<uint64_t> hash(P);
  for (int64_t p = 0; p < P; ++p) hash[p] = LoopHash(pb, p);
  std::vector<int64_t> order(P);
  for (int64_t p = 0; p < P; ++p) order[p] = p;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return hash[a] < hash[b]; });
  std::vector<int64_t> first, count;  // groups: order[first .. first + count)
  bool shared = false;
  for (int64_t i = 0; i < P;) {
    int64_t j = i + 1;
    while (j < P && hash[order[j]] == hash[order[i]] && SameLoop(pb, order[i], order[j])) ++j;
    const int64_t n = j - i, groups = (n + cap - 1) / cap;
    shared = shared || n > 1;
    for (int64_t g = 0; g < groups; ++g) {
      first.push_back(i + g * n / groups);
      count.push_back((g + 1) * n / groups - g * n / groups);
    }
    i = j;
  }
  if (!shared) return false;
  const int64_t items = static_cast<int64_t>(first.size());
  // One feed per lane width (every lane reads task 0).
  const int widths[5] = {1, 4, 8, 12, 16};
  FeedData<T> feeds[5];
  bool has_feed[5] = {false, false, false, false, false};
  for (int w = 0; w < 5; ++w) {
    const int W = widths[w];
    bool used = false;
    for (int64_t g = 0; g < items; ++g) used = used || LaneWidth<F>(count[g]) == W;
    if (!used || FeedElements<F>(pb, W) > kMaxFeedElements) continue;
    BuildFeed<F>(pb, 0, 1, W, feeds[w]);
    has_feed[w] = true;
  }
  int64_t threads, chunk;
  ParallelPlan(P, items, threads, chunk);
  const int64_t Lmax = std::max({pb.fn[0].max_len, pb.fn[1].max_len, pb.fn[2].max_len}) + 1;
  ThreadPool::Shared().ParallelFor(threads, items, chunk, [&](int64_t item) {
    const int nl = static_cast<int>(count[item]);
    const int W = LaneWidth<F>(nl);
    Workspace<T>& ws = GroupWorkspace<T>(mem_size, W);
    if (static_cast<int64_t>(ws.lanes.size()) < kMaxLanes * 3 * Lmax) {
      ws.lanes.resize(kMaxLanes * 3 * Lmax);
    }
    int64_t progs[kMaxLanes];
    const Instr<T>* setup[kMaxLanes];
    int setup_len[kMaxLanes];
    Code<T> code;
    for (int l = 0; l < nl; ++l) {  // each lane's program decoded (its own Setup)
      progs[l] = order[first[item] + l];
      Instr<T>* out[3];
      int len[3];
      for (int f = 0; f < 3; ++f) out[f] = ws.lanes.data() + (l * 3 + f) * Lmax;
      DecodeProgram<T>(pb, progs[l], out, len);
      setup[l] = out[0];
      setup_len[l] = len[0];
      if (l == 0) {
        for (int f = 0; f < 3; ++f) {
          code.fn[f] = out[f];
          code.len[f] = len[f];
        }
      }
    }
    const ProgramLanes<T> pl{progs, setup, setup_len};
    const GroupMemory<T> g_mem{ws.mem.data(), W, mem_size, ws.saved.data()};
    int wi = 0;
    while (widths[wi] != W) ++wi;
    Feed<T> fd_storage;
    const Feed<T>* fd = nullptr;
    if (has_feed[wi]) {
      fd_storage = feeds[wi].feed();
      fd = &fd_storage;
    }
    RunGroupOfWidth<F, T>(W, pb, progs[0], 0, nl, code, g_mem, fd, &pl);
  });
  return true;
}

template <int F, typename T> ffi::Error Launch(const Problem<T>& pb, const Device&) {
  const int64_t total = pb.P * pb.T_;
  if (total <= 0) return ffi::Error::Success();
  const int64_t mem_size = static_cast<int64_t>(pb.layout.total()) + 8;
  int64_t cap = kMaxLanes;
  while (cap > 1 && mem_size * static_cast<int64_t>(sizeof(T)) * cap > kGroupMemoryBytes) cap /= 2;
  if (F > 8) cap = cap >= 4 ? 4 : 1;
  if (pb.program_lanes && pb.T_ == 1 && pb.P > 1 && cap > 1 &&
      LaunchProgramLanes<F, T>(pb, cap, mem_size)) {
    return ffi::Error::Success();
  }
  const int64_t per_program = (pb.T_ + cap - 1) / cap;  // groups per program
  const int64_t items = pb.P * per_program;
  // The groups (the same for every program) and their feeds, when these stay small.
  std::vector<int64_t> group_t0(per_program), group_nl(per_program);
  std::vector<int> group_w(per_program);
  int64_t feed_elems = 0;
  for (int64_t g = 0; g < per_program; ++g) {
    group_t0[g] = g * pb.T_ / per_program;
    group_nl[g] = (g + 1) * pb.T_ / per_program - group_t0[g];
    group_w[g] = LaneWidth<F>(group_nl[g]);
    feed_elems += FeedElements<F>(pb, group_w[g]);
  }
  std::vector<FeedData<T>> feeds;
  if (feed_elems <= kMaxFeedElements) {
    feeds.resize(per_program);
    for (int64_t g = 0; g < per_program; ++g)
      BuildFeed<F>(pb, group_t0[g], group_nl[g], group_w[g], feeds[g]);
  }
  int64_t threads, chunk;
  ParallelPlan(total, items, threads, chunk);
  ThreadPool::Shared().ParallelFor(threads, items, chunk, [&](int64_t item) {
    const int64_t p = item / per_program;
    const int64_t g = item % per_program;
    const int64_t t0 = group_t0[g];
    const int nl = static_cast<int>(group_nl[g]);
    const int W = group_w[g];
    Workspace<T>& ws = GroupWorkspace<T>(mem_size, W);
    Code<T> code;
    DecodeInto(pb, p, ws, code);
    const GroupMemory<T> g_mem{ws.mem.data(), W, mem_size, ws.saved.data()};
    Feed<T> fd_storage;
    const Feed<T>* fd = nullptr;
    if (!feeds.empty()) {
      fd_storage = feeds[g].feed();
      fd = &fd_storage;
    }
    RunGroupOfWidth<F, T>(W, pb, p, t0, nl, code, g_mem, fd);
  });
  return ffi::Error::Success();
}

}  // namespace
}  // namespace evojax_zero

#define EVOJAX_ZERO_DEVICE_PARAMS
#define EVOJAX_ZERO_DEVICE_MAKE const Device dev{};
#define EVOJAX_ZERO_DEVICE_BIND

#include "ffi_binding.h"

EVOJAX_ZERO_DEFINE_HANDLERS()

// Dead-code elimination of one program, for tests (tests/test_native_dce.py): rows
// op [3, L], addr [3, L, 3], data [3, L, 4] (float64), sizes [3]; writes outcome [3, L]: per
// row the DceOutcome of liveness.h, or -1 for rows that decode to nothing (NO_OP, past size).
EVOJAX_ZERO_EXPORT int evojax_zero_dead_code(int32_t S, int32_t V, int32_t M, int32_t F,
                                             int32_t num_classes, const int32_t* op,
                                             const int32_t* addr, const double* data,
                                             const int32_t* size, int32_t L, int32_t* outcome) {
  using evojax_zero::Instr;
  const evojax_zero::Layout layout{S, V, M, F};
  std::vector<Instr<double>> code[3];
  std::vector<int32_t> decoded_outcome[3];
  Instr<double>* fn[3];
  int32_t* out[3];
  int len[3];
  for (int f = 0; f < 3; ++f) {
    code[f].resize(L + 1);
    decoded_outcome[f].assign(L + 1, -1);
    fn[f] = code[f].data();
    out[f] = decoded_outcome[f].data();
    len[f] = evojax_zero::Decode<double>(layout, op + f * L, addr + f * L * 3, data + f * L * 4,
                                         size[f], L, fn[f]);
  }
  evojax_zero::EliminateDeadCode<double>(layout, num_classes, fn, len, out);
  for (int f = 0; f < 3; ++f) {
    int k = 0;  // decoded index of row i (Decode keeps rows with ops 1..64, in order)
    const int32_t n = std::min(std::max(size[f], 0), L);
    for (int32_t i = 0; i < L; ++i) {
      const int32_t o = op[f * L + i];
      const bool decoded = i < n && o > 0 && o < evojax_zero::NUM_OPS;
      outcome[f * L + i] = decoded ? decoded_outcome[f][k++] : -1;
    }
  }
  return 0;
}

// Empty: the CPU backend runs wherever it loads (the CUDA library reports what is missing).
EVOJAX_ZERO_EXPORT const char* evojax_zero_probe() { return ""; }
