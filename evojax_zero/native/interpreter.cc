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

// Decode program p's three functions into ws and point `code` at them.
template <typename T> void DecodeProgram(const Problem<T>& pb, int64_t p, Workspace<T>& ws,
                                         Code<T>& code) {
  for (int f = 0; f < 3; ++f) {
    const FunctionArgs<T>& fa = pb.fn[f];
    const int64_t L = fa.max_len;
    if (static_cast<int64_t>(ws.code[f].size()) < L + 1) ws.code[f].resize(L + 1);
    code.len[f] = Decode<T>(pb.layout, fa.op + p * L, fa.addr + p * L * 3, fa.data + p * L * 4,
                            fa.size[p], static_cast<int32_t>(L), ws.code[f].data());
    code.fn[f] = ws.code[f].data();
  }
}

struct Device {};

template <int F, typename T> ffi::Error Launch(const Problem<T>& pb, const Device&) {
  const int64_t total = pb.P * pb.T_;
  if (total <= 0) return ffi::Error::Success();
  const int64_t mem_size = static_cast<int64_t>(pb.layout.total()) + 8;
  int64_t cap = kMaxLanes;
  while (cap > 1 && mem_size * static_cast<int64_t>(sizeof(T)) * cap > kGroupMemoryBytes) cap /= 2;
  const int64_t per_program = (pb.T_ + cap - 1) / cap;  // groups per program
  const int64_t items = pb.P * per_program;
  const int64_t threads =
      std::max<int64_t>(1, std::min(DefaultThreads(), total / kMinEvalsPerThread));
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(16, items / (threads * 8)));
  ThreadPool::Shared().ParallelFor(threads, items, chunk, [&](int64_t item) {
    const int64_t p = item / per_program;
    const int64_t g = item % per_program;
    const int64_t t0 = g * pb.T_ / per_program;
    const int nl = static_cast<int>((g + 1) * pb.T_ / per_program - t0);
    Workspace<T>& ws = LocalWorkspace<T>();
    if (static_cast<int64_t>(ws.mem.size()) < mem_size * nl) ws.mem.resize(mem_size * nl);
    if (nl > 1 && static_cast<int64_t>(ws.saved.size()) < mem_size * nl) {
      ws.saved.resize(mem_size * nl);
    }
    Code<T> code;
    DecodeProgram(pb, p, ws, code);
    const GroupMemory<T> g_mem{ws.mem.data(), nl, mem_size, ws.saved.data()};
    if (nl == 1) {
      RunGroup<F, 1, T>(pb, p, t0, 1, code, g_mem, &Ziggurat());
    } else {
      RunGroup<F, kMaxLanes, T>(pb, p, t0, nl, code, g_mem, &Ziggurat());
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

// Empty: the CPU backend runs wherever it loads (the CUDA library reports what is missing).
EVOJAX_ZERO_EXPORT const char* evojax_zero_probe() { return ""; }
