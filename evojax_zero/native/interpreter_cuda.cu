// The evojax_zero CUDA backend: interpreter.h's runs on the GPU, exported through the FFI
// binding it shares with the CPU backend (ffi_binding.h: same operands, attributes, results
// and handler names, EvojaxZeroFitness / EvojaxZeroTrace, in this library).
//
// Execution, all on the XLA stream of the call (no host synchronisation):
//   1. one scratch allocation from XLA's allocator holds the ziggurat tables (the host's bytes,
//      so normals match the CPU backend's), the decoded programs [P, 3, L] and the threads'
//      memory blocks;
//   2. DecodeKernel: one thread per program decodes its three functions once and drops their
//      dead code (liveness.h; the CPU backend does the same per group of tasks);
//   3. PairKernel: one thread per (program, task) pair runs interpreter.h's RunGroup with a
//      group of one lane, the very code of the CPU backend: its own program through a `switch` per instruction (no
//      compute-all-ops select), its own memory block, the counter-based splitmix64 stream of
//      the pair's key. Pairs are p-major, so a warp mostly runs one program on several tasks.
//      The memory blocks are interleaved (element k of thread j at mem[k * n + j]) so that a
//      warp reading one address reads adjacent words. When the blocks of P*T threads would
//      exceed EVOJAX_ZERO_CUDA_MEMORY_BYTES (default 1 GiB) or the thread count exceeds
//      EVOJAX_ZERO_CUDA_MAX_THREADS (default 2^18), n is capped and thread j runs pairs
//      j, j + n, j + 2n, ... (results do not depend on n).
//
// Built by build_cuda.py with nvcc --fmad=false (no contraction of multiply-adds, like the
// CPU build's -ffp-contract=off) and without fast-math, so + - * / and sqrt round exactly as
// on the CPU; the transcendental functions are CUDA's (within 1-2 ulp; glibc's may differ in
// the last bit).
//
// Host emulation: compiled with a host C++ compiler and -DEVOJAX_ZERO_CUDA_EMULATE (no nvcc),
// this file builds a CPU library whose handlers run the same kernel bodies (DecodeThread,
// PairThread) in a host loop over the thread indices, with the same scratch layout, strided
// memory and thread cap. tests/test_native_cuda.py uses it to check everything but the CUDA
// calls themselves against the CPU backend, on machines without a GPU.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#elif !defined(EVOJAX_ZERO_CUDA_EMULATE)
#error "compile with nvcc, or with -DEVOJAX_ZERO_CUDA_EMULATE for the host emulation"
#endif

#include "interpreter.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace evojax_zero {
namespace {

constexpr int kBlock = 128;  // threads per block of both kernels
// PairKernel blocks per SM the compiler must allow (caps registers at 65536 / (128 * 4) = 128
// per thread; unconstrained, the F >= 16 kernels take 255 and only 2 blocks fit per SM).
constexpr int kMinBlocksPerSM = 4;

// ------------------------------------------------------------------------------------------
// Thread bodies: the kernels below on the device, a host loop in the emulation.
// ------------------------------------------------------------------------------------------

// Thread p of DecodeKernel: decode program p's three functions into code[(p * 3 + f) * L ..)
// with their dead code dropped (liveness.h), lengths into lens[p * 3 + f].
template <typename T>
EVOJAX_ZERO_HD void DecodeThread(const Problem<T>& pb, int64_t p, int64_t L, Instr<T>* code,
                                 int32_t* lens) {
  Instr<T>* out[3];
  int len[3];
  for (int f = 0; f < 3; ++f) out[f] = code + (p * 3 + f) * L;
  DecodeProgram<T>(pb, p, out, len);
  for (int f = 0; f < 3; ++f) lens[p * 3 + f] = len[f];
}

// Thread j (of n) of PairKernel: pairs j, j + n, ... (pair i = program i / T, task i % T),
// each on this thread's memory block (mem_size elements, element k at mem[k * n + j]).
template <int F, typename T>
EVOJAX_ZERO_HD void PairThread(const Problem<T>& pb, int64_t j, int64_t n, const Instr<T>* code,
                               const int32_t* lens, int64_t L, T* mem, int64_t mem_size,
                               const ZigguratTables* zig) {
  const int64_t total = pb.P * pb.T_;
  const GroupMemory<T> block{mem + j, n, mem_size, nullptr};
  for (int64_t i = j; i < total; i += n) {
    const int64_t p = i / pb.T_;
    const int64_t t = i - p * pb.T_;
    Code<T> c;
    for (int f = 0; f < 3; ++f) {
      c.fn[f] = code + (p * 3 + f) * L;
      c.len[f] = lens[p * 3 + f];
    }
    RunGroup<F, 1, T>(pb, p, t, 1, c, block, zig);
  }
}

#if defined(__CUDACC__)
template <typename T>
__global__ void __launch_bounds__(kBlock)
    DecodeKernel(const __grid_constant__ Problem<T> pb, int64_t L, Instr<T>* code,
                 int32_t* lens) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < pb.P) DecodeThread<T>(pb, i, L, code, lens);
}

template <int F, typename T>
__global__ void __launch_bounds__(kBlock, kMinBlocksPerSM)
    PairKernel(const __grid_constant__ Problem<T> pb, int64_t n,
               const Instr<T>* __restrict__ code, const int32_t* __restrict__ lens, int64_t L,
               T* __restrict__ mem, int64_t mem_size, const ZigguratTables* __restrict__ zig) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j < n) PairThread<F, T>(pb, j, n, code, lens, L, mem, mem_size, zig);
}
#endif

// ------------------------------------------------------------------------------------------
// Launch plan: scratch layout and thread count.
// ------------------------------------------------------------------------------------------
int64_t EnvInt(const char* name, int64_t fallback) {
  if (const char* env = std::getenv(name)) {
    const long long v = std::strtoll(env, nullptr, 10);
    if (v >= 1) return v;
  }
  return fallback;
}

size_t AlignUp(size_t x) { return (x + 255) / 256 * 256; }

struct Plan {
  int64_t L;         // decoded-code row length: max over the three functions, >= 1
  int64_t n;         // PairKernel threads
  int64_t mem_size;  // elements per memory block (the CPU backend's size)
  size_t off_code, off_lens, off_mem, bytes;
};

template <typename T> Plan MakePlan(const Problem<T>& pb) {
  Plan plan{};
  plan.L = 1;
  for (int f = 0; f < 3; ++f) plan.L = math::Max<int64_t>(plan.L, pb.fn[f].max_len);
  plan.mem_size = static_cast<int64_t>(pb.layout.total()) + 8;
  const int64_t total = pb.P * pb.T_;
  const int64_t max_threads = EnvInt("EVOJAX_ZERO_CUDA_MAX_THREADS", int64_t{1} << 18);
  const int64_t budget = EnvInt("EVOJAX_ZERO_CUDA_MEMORY_BYTES", int64_t{1} << 30);
  const int64_t per_thread = plan.mem_size * static_cast<int64_t>(sizeof(T));
  plan.n = math::Max<int64_t>(1, math::Min(math::Min(total, max_threads), budget / per_thread));
  plan.off_code = AlignUp(sizeof(ZigguratTables));
  plan.off_lens = plan.off_code + AlignUp(sizeof(Instr<T>) * pb.P * 3 * plan.L);
  plan.off_mem = plan.off_lens + AlignUp(sizeof(int32_t) * pb.P * 3);
  plan.bytes = plan.off_mem + AlignUp(sizeof(T) * plan.mem_size * plan.n);
  return plan;
}

#if defined(__CUDACC__)
struct Device {
  cudaStream_t stream;
  ffi::ScratchAllocator* scratch;
};

ffi::Error CudaError(const char* what, cudaError_t e) {
  return ffi::Error::Internal(std::string("evojax_zero cuda: ") + what + ": " +
                              cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

unsigned int Blocks(int64_t threads) {
  return static_cast<unsigned int>((threads + kBlock - 1) / kBlock);
}

template <int F, typename T> ffi::Error Launch(const Problem<T>& pb, const Device& dev) {
  const int64_t total = pb.P * pb.T_;
  if (total <= 0) return ffi::Error::Success();
  const Plan plan = MakePlan(pb);
  if ((pb.P * 3 + kBlock - 1) / kBlock > 0x7FFFFFFF ||
      (plan.n + kBlock - 1) / kBlock > 0x7FFFFFFF) {
    return ffi::Error::InvalidArgument("evojax_zero cuda: too many programs for one launch");
  }
  std::optional<void*> scratch = dev.scratch->Allocate(plan.bytes, 256);
  if (!scratch.has_value()) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      "evojax_zero cuda: could not allocate " + std::to_string(plan.bytes) +
                          " bytes of scratch (lower EVOJAX_ZERO_CUDA_MEMORY_BYTES or "
                          "EVOJAX_ZERO_CUDA_MAX_THREADS, or evaluate fewer programs per call)");
  }
  char* base = static_cast<char*>(*scratch);
  auto* zig = reinterpret_cast<ZigguratTables*>(base);
  auto* code = reinterpret_cast<Instr<T>*>(base + plan.off_code);
  auto* lens = reinterpret_cast<int32_t*>(base + plan.off_lens);
  auto* mem = reinterpret_cast<T*>(base + plan.off_mem);
  cudaError_t e = cudaMemcpyAsync(zig, &Ziggurat(), sizeof(ZigguratTables),
                                  cudaMemcpyHostToDevice, dev.stream);
  if (e != cudaSuccess) return CudaError("copying the ziggurat tables", e);
  DecodeKernel<T><<<Blocks(pb.P), kBlock, 0, dev.stream>>>(pb, plan.L, code, lens);
  e = cudaGetLastError();
  if (e != cudaSuccess) return CudaError("launching DecodeKernel", e);
  PairKernel<F, T><<<Blocks(plan.n), kBlock, 0, dev.stream>>>(pb, plan.n, code, lens, plan.L,
                                                              mem, plan.mem_size, zig);
  e = cudaGetLastError();
  if (e != cudaSuccess) return CudaError("launching PairKernel", e);
  return ffi::Error::Success();
}
#else   // EVOJAX_ZERO_CUDA_EMULATE: the same plan and thread bodies, run on the host.
struct Device {};

template <int F, typename T> ffi::Error Launch(const Problem<T>& pb, const Device&) {
  const int64_t total = pb.P * pb.T_;
  if (total <= 0) return ffi::Error::Success();
  const Plan plan = MakePlan(pb);
  std::vector<unsigned char> buffer(plan.bytes + 256);
  char* base = reinterpret_cast<char*>(
      (reinterpret_cast<uintptr_t>(buffer.data()) + 255) / 256 * 256);
  auto* zig = reinterpret_cast<ZigguratTables*>(base);
  auto* code = reinterpret_cast<Instr<T>*>(base + plan.off_code);
  auto* lens = reinterpret_cast<int32_t*>(base + plan.off_lens);
  auto* mem = reinterpret_cast<T*>(base + plan.off_mem);
  std::memcpy(static_cast<void*>(zig), &Ziggurat(), sizeof(ZigguratTables));
  for (int64_t p = 0; p < pb.P; ++p) DecodeThread<T>(pb, p, plan.L, code, lens);
  for (int64_t j = 0; j < plan.n; ++j)
    PairThread<F, T>(pb, j, plan.n, code, lens, plan.L, mem, plan.mem_size, zig);
  return ffi::Error::Success();
}
#endif

}  // namespace
}  // namespace evojax_zero

// The device context the handlers receive: the XLA stream and scratch allocator on CUDA,
// nothing in the emulation.
#if defined(__CUDACC__)
#define EVOJAX_ZERO_DEVICE_PARAMS cudaStream_t stream, ffi::ScratchAllocator scratch,
#define EVOJAX_ZERO_DEVICE_MAKE const Device dev{stream, &scratch};
#define EVOJAX_ZERO_DEVICE_BIND \
  .Ctx<ffi::PlatformStream<cudaStream_t>>().Ctx<ffi::ScratchAllocator>()
#else
#define EVOJAX_ZERO_DEVICE_PARAMS
#define EVOJAX_ZERO_DEVICE_MAKE const Device dev{};
#define EVOJAX_ZERO_DEVICE_BIND
#endif

#include "ffi_binding.h"

EVOJAX_ZERO_DEFINE_HANDLERS()

// Empty when this process can run the kernels: the CUDA runtime finds a device and the
// library holds code for it (SASS for its architecture, or PTX the driver can compile).
// Otherwise a description of what is missing (no driver, driver too old for this build's
// runtime, no kernel image for the GPU).
EVOJAX_ZERO_EXPORT const char* evojax_zero_probe() {
#if defined(__CUDACC__)
  static std::string message;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    message = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + " (" +
              cudaGetErrorString(e) + ")";
    return message.c_str();
  }
  if (count < 1) return "no CUDA device";
  cudaFuncAttributes attr;
  e = cudaFuncGetAttributes(&attr, evojax_zero::PairKernel<4, float>);
  if (e != cudaSuccess) {
    message = std::string("no usable kernel for this GPU: ") + cudaGetErrorName(e) + " (" +
              cudaGetErrorString(e) + ")";
    return message.c_str();
  }
  return "";
#else
  return "";
#endif
}
