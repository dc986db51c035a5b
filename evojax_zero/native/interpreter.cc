// The native CPU backend: interpreter.h's groups run by the threads of thread_pool.h, exported
// as XLA FFI handlers through ffi_binding.h (the CUDA backend shares that binding).
//
// Work split: the tasks of one program form groups of up to kMaxLanes lanes run in lockstep
// (sizes balanced: 10 tasks make one group of 10, 20 tasks two of 10); a work item is one
// (program, group). Threads: $EVOJAX_ZERO_NUM_THREADS, else the CPUs this process may run on,
// capped so that each thread gets at least kMinEvalsPerThread (program, task) evaluations.
// Every pair writes only its own outputs, so results do not depend on threads or groups.
#include <cstdlib>
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

template <int F, typename T> ffi::Error Launch(const Problem<T>& pb, const Device&) {
  const int64_t total = pb.P * pb.T_;
  if (total <= 0) return ffi::Error::Success();
  const int64_t mem_size = static_cast<int64_t>(pb.layout.total()) + 8;
  int64_t cap = kMaxLanes;
  while (cap > 1 && mem_size * static_cast<int64_t>(sizeof(T)) * cap > kGroupMemoryBytes) cap /= 2;
  if (F > 8) cap = cap >= 4 ? 4 : 1;
  const int64_t per_program = (pb.T_ + cap - 1) / cap;  // groups per program
  const int64_t items = pb.P * per_program;
  // The groups (the same for every program) and their feeds, when these stay small.
  std::vector<int64_t> group_t0(per_program), group_nl(per_program);
  std::vector<int> group_w(per_program);
  int64_t feed_elems = 0;
  const int64_t N = pb.N;
  const int64_t epochs_run = N > 0 ? (pb.num_train + N - 1) / N : 0;
  for (int64_t g = 0; g < per_program; ++g) {
    group_t0[g] = g * pb.T_ / per_program;
    group_nl[g] = (g + 1) * pb.T_ / per_program - group_t0[g];
    group_w[g] = LaneWidth<F>(group_nl[g]);
    feed_elems += group_w[g] * (epochs_run * N + pb.num_valid) * (F + 1);
  }
  std::vector<FeedData<T>> feeds;
  if (feed_elems <= kMaxFeedElements) {
    feeds.resize(per_program);
    for (int64_t g = 0; g < per_program; ++g)
      BuildFeed<F>(pb, group_t0[g], group_nl[g], group_w[g], feeds[g]);
  }
  const int64_t threads =
      std::max<int64_t>(1, std::min(DefaultThreads(), total / kMinEvalsPerThread));
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(16, items / (threads * 8)));
  ThreadPool::Shared().ParallelFor(threads, items, chunk, [&](int64_t item) {
    const int64_t p = item / per_program;
    const int64_t g = item % per_program;
    const int64_t t0 = group_t0[g];
    const int nl = static_cast<int>(group_nl[g]);
    const int W = group_w[g];
    Workspace<T>& ws = LocalWorkspace<T>();
    if (static_cast<int64_t>(ws.mem.size()) < mem_size * W) ws.mem.resize(mem_size * W);
    if (W > 1 && static_cast<int64_t>(ws.saved.size()) < mem_size * W) {
      ws.saved.resize(mem_size * W);
    }
    Code<T> code;
    DecodeInto(pb, p, ws, code);
    const GroupMemory<T> g_mem{ws.mem.data(), W, mem_size, ws.saved.data()};
    Feed<T> fd_storage;
    const Feed<T>* fd = nullptr;
    if (!feeds.empty()) {
      fd_storage = feeds[g].feed();
      fd = &fd_storage;
    }
    const ZigguratTables* zig = &Ziggurat();
    switch (W) {
      case 1: RunGroup<F, 1, T>(pb, p, t0, 1, code, g_mem, zig, fd); break;
      case 4: RunGroup<F, 4, T>(pb, p, t0, nl, code, g_mem, zig, fd); break;
      default:
        if constexpr (F <= 8) {
          switch (W) {
            case 8: RunGroup<F, 8, T>(pb, p, t0, nl, code, g_mem, zig, fd); break;
            case 12: RunGroup<F, 12, T>(pb, p, t0, nl, code, g_mem, zig, fd); break;
            default: RunGroup<F, 16, T>(pb, p, t0, nl, code, g_mem, zig, fd); break;
          }
        }
        break;
    }
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
