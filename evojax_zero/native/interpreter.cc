// XLA FFI (custom call) entry points of the evojax_zero native CPU backend.
//
// Two handlers share one implementation:
//   evojax_zero_fitness : -> epoch_score [P, T, E'] (see interpreter.h)
//   evojax_zero_trace   : -> epoch_score [P,T,E'], train_error [P,T,n],
//                          train_prediction [P,T,n], valid_error [P,T,Nv'],
//                          valid_prediction [P,T,Nv'], stopped uint8 [P,T],
//                          train_steps int32 [P,T]
// Operands (in order): for setup, predict, learn: op int32[P,L], addr int32[P,L,3],
// data float[P,L,4], size int32[P]; then train_x [T,N,F], train_y [T,N], valid_x [T,Nv,F],
// valid_y [T,Nv], epoch_order int32[T,E,N], keys uint32[P,T,K].
// All float operands and results share one dtype (f32 or f64): that is the compute dtype.
#include <cstdlib>
#include <string>

#ifdef __linux__
#include <sched.h>
#endif

#include "ffi_problem.h"
#include "interpreter.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace evojax_zero {
namespace {

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

// Run the interpreter on the operands after ffi_problem.h has checked them.
template <typename T>
ffi::Error Run(ffi::DataType dt, const ffi::AnyBuffer* prog, const ffi::AnyBuffer& train_x,
               const ffi::AnyBuffer& train_y, const ffi::AnyBuffer& valid_x,
               const ffi::AnyBuffer& valid_y, const ffi::AnyBuffer& epoch_order,
               const ffi::AnyBuffer& keys, int64_t S, int64_t V, int64_t M, int64_t num_train,
               int64_t num_valid, double max_abs_error, int64_t accuracy,
               ffi::Result<ffi::AnyBuffer>* outs, int num_outs) {
  Problem<T> pb{};
  ffi::Error checked = ffi_problem::BuildProblem(pb, dt, prog, train_x, train_y, valid_x, valid_y,
                                                 epoch_order, keys, S, V, M, num_train, num_valid,
                                                 max_abs_error, accuracy, outs, num_outs);
  if (checked.failure()) return checked;
  pb.num_threads = DefaultThreads();
  if (!EvaluateDispatch<T>(pb)) {
    return ffi::Error::InvalidArgument("feature size must be one of 2, 4, 8, 16, 32");
  }
  return ffi::Error::Success();
}

ffi::Error Dispatch(const ffi::AnyBuffer* prog, const ffi::AnyBuffer& train_x,
                    const ffi::AnyBuffer& train_y, const ffi::AnyBuffer& valid_x,
                    const ffi::AnyBuffer& valid_y, const ffi::AnyBuffer& epoch_order,
                    const ffi::AnyBuffer& keys, int64_t S, int64_t V, int64_t M, int64_t num_train,
                    int64_t num_valid, double max_abs_error, int64_t accuracy,
                    ffi::Result<ffi::AnyBuffer>* outs, int num_outs) {
  const ffi::DataType dt = train_x.element_type();
  return ffi_problem::ForFloatType(dt, "evojax_zero native: ", [&](auto tag) {
    return Run<decltype(tag)>(dt, prog, train_x, train_y, valid_x, valid_y, epoch_order, keys, S, V,
                              M, num_train, num_valid, max_abs_error, accuracy, outs, num_outs);
  });
}

ffi::Error FitnessImpl(ffi::AnyBuffer s_op, ffi::AnyBuffer s_addr, ffi::AnyBuffer s_data,
                       ffi::AnyBuffer s_size, ffi::AnyBuffer p_op, ffi::AnyBuffer p_addr,
                       ffi::AnyBuffer p_data, ffi::AnyBuffer p_size, ffi::AnyBuffer l_op,
                       ffi::AnyBuffer l_addr, ffi::AnyBuffer l_data, ffi::AnyBuffer l_size,
                       ffi::AnyBuffer train_x, ffi::AnyBuffer train_y, ffi::AnyBuffer valid_x,
                       ffi::AnyBuffer valid_y, ffi::AnyBuffer epoch_order, ffi::AnyBuffer keys,
                       int64_t S, int64_t V, int64_t M, int64_t num_train, int64_t num_valid,
                       double max_abs_error, int64_t accuracy,
                       ffi::Result<ffi::AnyBuffer> epoch_score) {
  const ffi::AnyBuffer prog[12] = {s_op, s_addr, s_data, s_size, p_op, p_addr,
                                   p_data, p_size, l_op, l_addr, l_data, l_size};
  return Dispatch(prog, train_x, train_y, valid_x, valid_y, epoch_order, keys, S, V, M,
                  num_train, num_valid, max_abs_error, accuracy, &epoch_score, 1);
}

ffi::Error TraceImpl(ffi::AnyBuffer s_op, ffi::AnyBuffer s_addr, ffi::AnyBuffer s_data,
                     ffi::AnyBuffer s_size, ffi::AnyBuffer p_op, ffi::AnyBuffer p_addr,
                     ffi::AnyBuffer p_data, ffi::AnyBuffer p_size, ffi::AnyBuffer l_op,
                     ffi::AnyBuffer l_addr, ffi::AnyBuffer l_data, ffi::AnyBuffer l_size,
                     ffi::AnyBuffer train_x, ffi::AnyBuffer train_y, ffi::AnyBuffer valid_x,
                     ffi::AnyBuffer valid_y, ffi::AnyBuffer epoch_order, ffi::AnyBuffer keys,
                     int64_t S, int64_t V, int64_t M, int64_t num_train, int64_t num_valid,
                     double max_abs_error, int64_t accuracy,
                     ffi::Result<ffi::AnyBuffer> epoch_score,
                     ffi::Result<ffi::AnyBuffer> train_error,
                     ffi::Result<ffi::AnyBuffer> train_prediction,
                     ffi::Result<ffi::AnyBuffer> valid_error,
                     ffi::Result<ffi::AnyBuffer> valid_prediction,
                     ffi::Result<ffi::AnyBuffer> stopped,
                     ffi::Result<ffi::AnyBuffer> train_steps) {
  const ffi::AnyBuffer prog[12] = {s_op, s_addr, s_data, s_size, p_op, p_addr,
                                   p_data, p_size, l_op, l_addr, l_data, l_size};
  ffi::Result<ffi::AnyBuffer> outs[7] = {epoch_score, train_error, train_prediction,
                                         valid_error, valid_prediction, stopped, train_steps};
  return Dispatch(prog, train_x, train_y, valid_x, valid_y, epoch_order, keys, S, V, M,
                  num_train, num_valid, max_abs_error, accuracy, outs, 7);
}

#define EVOJAX_BIND_ARGS                                                                \
  ffi::Ffi::Bind()                                                                      \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                \
      .Attr<int64_t>("num_scalars").Attr<int64_t>("num_vectors")                        \
      .Attr<int64_t>("num_matrices").Attr<int64_t>("num_train")                         \
      .Attr<int64_t>("num_valid").Attr<double>("max_abs_error")                         \
      .Attr<int64_t>("accuracy")

}  // namespace
}  // namespace evojax_zero

#define EVOJAX_EXPORT extern "C" __attribute__((visibility("default")))

EVOJAX_EXPORT XLA_FFI_Error* EvojaxZeroFitness(XLA_FFI_CallFrame* call_frame);
EVOJAX_EXPORT XLA_FFI_Error* EvojaxZeroTrace(XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(EvojaxZeroFitness, evojax_zero::FitnessImpl,
                              EVOJAX_BIND_ARGS.Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(EvojaxZeroTrace, evojax_zero::TraceImpl,
                              EVOJAX_BIND_ARGS.Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

#ifndef EVOJAX_ZERO_BUILD_ID
#define EVOJAX_ZERO_BUILD_ID "unknown"
#endif

// Build stamp (hash of the sources and flags, and the jaxlib version whose FFI headers were
// used), checked by the Python loader to reject stale libraries.
EVOJAX_EXPORT const char* evojax_zero_native_build_id() { return EVOJAX_ZERO_BUILD_ID; }
