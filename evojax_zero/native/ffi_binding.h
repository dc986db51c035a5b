// The XLA FFI binding shared by the CPU (interpreter.cc) and CUDA (interpreter_cuda.cu)
// backends: one operand checker, one pair of handlers (fitness, trace) and one build stamp.
//
//   fitness : -> epoch_score [P, T, E'] (see interpreter.h)
//   trace   : -> epoch_score [P,T,E'], train_error [P,T,n], train_prediction [P,T,n],
//              valid_error [P,T,Nv'], valid_prediction [P,T,Nv'], stopped uint8 [P,T],
//              train_steps int32 [P,T]
// Operands (in order): for setup, predict, learn: op int32[P,L], addr int32[P,L,3],
// data float[P,L,4], size int32[P]; then train_x [T,N,F], train_y [T,N], valid_x [T,Nv,F],
// valid_y [T,Nv], epoch_order int32[T,E,N], keys uint32[P,T,K]. Attributes: num_scalars,
// num_vectors, num_matrices, num_train, num_valid, max_abs_error, accuracy (0: RMS error,
// 1: binary accuracy, K >= 2: multi-class accuracy with K classes). All float operands
// and results share one dtype (f32 or f64): that is the compute dtype.
//
// The including file defines, before including this header:
//   struct Device;                          // what the handler receives from XLA
//   EVOJAX_ZERO_DEVICE_PARAMS               // the handler's leading context parameters
//   EVOJAX_ZERO_DEVICE_MAKE                 // statement: `const Device dev{...};` from them
//   EVOJAX_ZERO_DEVICE_BIND                 // the matching .Ctx<...>() bindings
//   template <int F, typename T> ffi::Error Launch(const Problem<T>&, const Device&);
// and then, at file scope, EVOJAX_ZERO_DEFINE_HANDLERS() exports the handlers as
// EvojaxZeroFitness / EvojaxZeroTrace and the stamp as evojax_zero_build_id().
#pragma once

#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <string>

#include "interpreter.h"
#include "xla/ffi/api/ffi.h"

namespace evojax_zero {
namespace ffi_binding {

namespace ffi = xla::ffi;

inline std::string Shape(const ffi::AnyBuffer& b) {
  std::string s = "[";
  auto d = b.dimensions();
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

// Check rank, dtype and (where expected[i] >= 0) each dimension.
inline ffi::Error Check(const char* name, const ffi::AnyBuffer& b, ffi::DataType dtype,
                        std::initializer_list<int64_t> expected) {
  if (b.element_type() != dtype) {
    return ffi::Error::InvalidArgument(std::string("evojax_zero: ") + name +
                                       " has the wrong dtype");
  }
  auto d = b.dimensions();
  bool ok = d.size() == expected.size();
  size_t i = 0;
  for (int64_t e : expected) {
    if (!ok) break;
    if (e >= 0 && d[i] != e) ok = false;
    ++i;
  }
  if (!ok) {
    return ffi::Error::InvalidArgument(std::string("evojax_zero: ") + name +
                                       " has unexpected shape " + Shape(b));
  }
  return ffi::Error::Success();
}

#define EVOJAX_CHECK(expr)       \
  do {                           \
    ffi::Error _e = (expr);      \
    if (_e.failure()) return _e; \
  } while (0)

// Check every operand and result of a fitness (num_outs 1) or trace (num_outs 7) call and
// point `pb` at them.
template <typename T>
ffi::Error BuildProblem(Problem<T>& pb, ffi::DataType dt, const ffi::AnyBuffer* prog,
                        const ffi::AnyBuffer& train_x, const ffi::AnyBuffer& train_y,
                        const ffi::AnyBuffer& valid_x, const ffi::AnyBuffer& valid_y,
                        const ffi::AnyBuffer& epoch_order, const ffi::AnyBuffer& keys, int64_t S,
                        int64_t V, int64_t M, int64_t num_train, int64_t num_valid,
                        double max_abs_error, int64_t accuracy, ffi::Result<ffi::AnyBuffer>* outs,
                        int num_outs) {
  auto tx = train_x.dimensions();
  if (tx.size() != 3) return ffi::Error::InvalidArgument("train_x must be [T, N, F]");
  const int64_t T_ = tx[0], N = tx[1], F = tx[2];
  const int64_t P = prog[3].dimensions().size() == 1 ? prog[3].dimensions()[0] : -1;
  if (P < 0) return ffi::Error::InvalidArgument("setup size must be [P]");
  EVOJAX_CHECK(Check("train_y", train_y, dt, {T_, N}));
  auto vx = valid_x.dimensions();
  if (vx.size() != 3) return ffi::Error::InvalidArgument("valid_x must be [T, Nv, F]");
  const int64_t Nv = vx[1];
  EVOJAX_CHECK(Check("valid_x", valid_x, dt, {T_, Nv, F}));
  EVOJAX_CHECK(Check("valid_y", valid_y, dt, {T_, Nv}));
  auto eo = epoch_order.dimensions();
  if (eo.size() != 3) return ffi::Error::InvalidArgument("epoch_order must be [T, E, N]");
  const int64_t E = eo[1];
  EVOJAX_CHECK(Check("epoch_order", epoch_order, ffi::DataType::S32, {T_, E, N}));
  auto kd = keys.dimensions();
  if (kd.size() != 3) return ffi::Error::InvalidArgument("keys must be [P, T, K]");
  EVOJAX_CHECK(Check("keys", keys, ffi::DataType::U32, {P, T_, -1}));
  if (S < 2 || V < 1 || M < 1) return ffi::Error::InvalidArgument("need S >= 2, V >= 1, M >= 1");
  if (num_train < 0 || num_train > N * E || num_valid < 0 || num_valid > Nv) {
    return ffi::Error::InvalidArgument("num_train / num_valid out of range");
  }

  pb.layout = Layout{static_cast<int32_t>(S), static_cast<int32_t>(V), static_cast<int32_t>(M),
                     static_cast<int32_t>(F)};
  pb.P = P;
  pb.T_ = T_;
  pb.N = N;
  pb.Nv = Nv;
  pb.E = E;
  pb.num_train = num_train;
  pb.num_valid = num_valid;
  pb.max_abs_error = max_abs_error;
  pb.accuracy = accuracy == 1;
  pb.num_classes = accuracy >= 2 ? static_cast<int32_t>(accuracy) : 0;
  // Dead-code elimination (liveness.h) unless $EVOJAX_ZERO_NATIVE_DCE is "0" (read at each
  // call; results are the same either way, the switch is for tests and benchmarks).
  const char* dce_env = std::getenv("EVOJAX_ZERO_NATIVE_DCE");
  pb.dce = !(dce_env && dce_env[0] == '0' && dce_env[1] == '\0');
  // Programs sharing Predict and Learn in lockstep lanes (one task; interpreter.cc) unless
  // $EVOJAX_ZERO_NATIVE_PROGRAM_LANES is "0" (same results either way).
  const char* pl_env = std::getenv("EVOJAX_ZERO_NATIVE_PROGRAM_LANES");
  pb.program_lanes = !(pl_env && pl_env[0] == '0' && pl_env[1] == '\0');
  if (accuracy < 0 || accuracy > F || (accuracy >= 2 && V < 3)) {
    return ffi::Error::InvalidArgument("accuracy must be 0, 1 or K classes (2 <= K <= F, V >= 3)");
  }
  static const char* kNames[3] = {"setup", "predict", "learn"};
  for (int f = 0; f < 3; ++f) {
    const ffi::AnyBuffer& op = prog[4 * f + 0];
    auto od = op.dimensions();
    if (od.size() != 2 || od[0] != P) {
      return ffi::Error::InvalidArgument(std::string(kNames[f]) + " op must be [P, L]");
    }
    const int64_t L = od[1];
    EVOJAX_CHECK(Check(kNames[f], op, ffi::DataType::S32, {P, L}));
    EVOJAX_CHECK(Check(kNames[f], prog[4 * f + 1], ffi::DataType::S32, {P, L, 3}));
    EVOJAX_CHECK(Check(kNames[f], prog[4 * f + 2], dt, {P, L, 4}));
    EVOJAX_CHECK(Check(kNames[f], prog[4 * f + 3], ffi::DataType::S32, {P}));
    pb.fn[f] = FunctionArgs<T>{static_cast<const int32_t*>(op.untyped_data()),
                               static_cast<const int32_t*>(prog[4 * f + 1].untyped_data()),
                               static_cast<const T*>(prog[4 * f + 2].untyped_data()),
                               static_cast<const int32_t*>(prog[4 * f + 3].untyped_data()), L};
  }
  pb.train_x = static_cast<const T*>(train_x.untyped_data());
  pb.train_y = static_cast<const T*>(train_y.untyped_data());
  pb.valid_x = static_cast<const T*>(valid_x.untyped_data());
  pb.valid_y = static_cast<const T*>(valid_y.untyped_data());
  pb.epoch_order = static_cast<const int32_t*>(epoch_order.untyped_data());
  pb.keys = static_cast<const uint32_t*>(keys.untyped_data());
  pb.key_words = kd[2];

  const int64_t n_first = N < num_train ? N : num_train;
  const int64_t epochs_run = N > 0 ? (num_train + N - 1) / N : 0;
  auto out = [&](int i) { return (*outs[i]).untyped_data(); };
  EVOJAX_CHECK(Check("epoch_score", *outs[0], dt, {P, T_, epochs_run}));
  pb.epoch_score = static_cast<T*>(out(0));
  if (num_outs == 7) {
    EVOJAX_CHECK(Check("train_error", *outs[1], dt, {P, T_, n_first}));
    EVOJAX_CHECK(Check("train_prediction", *outs[2], dt, {P, T_, n_first}));
    EVOJAX_CHECK(Check("valid_error", *outs[3], dt, {P, T_, num_valid}));
    EVOJAX_CHECK(Check("valid_prediction", *outs[4], dt, {P, T_, num_valid}));
    EVOJAX_CHECK(Check("stopped", *outs[5], ffi::DataType::U8, {P, T_}));
    EVOJAX_CHECK(Check("train_steps", *outs[6], ffi::DataType::S32, {P, T_}));
    pb.train_error = static_cast<T*>(out(1));
    pb.train_prediction = static_cast<T*>(out(2));
    pb.valid_error = static_cast<T*>(out(3));
    pb.valid_prediction = static_cast<T*>(out(4));
    pb.stopped = static_cast<uint8_t*>(out(5));
    pb.train_steps = static_cast<int32_t*>(out(6));
  }
  return ffi::Error::Success();
}

// Run fn(T{}) for the compute dtype (f32 or f64), turning exceptions into FFI errors.
template <typename Fn>
ffi::Error ForFloatType(ffi::DataType dt, const char* who, Fn&& fn) {
  try {
    if (dt == ffi::DataType::F64) return fn(double{});
    if (dt == ffi::DataType::F32) return fn(float{});
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string(who) + e.what());
  }
  return ffi::Error::InvalidArgument(std::string(who) + "float operands must be f32 or f64");
}

// Dispatch on the runtime feature size.
template <typename T, typename Device>
ffi::Error LaunchForF(const Problem<T>& pb, const Device& dev) {
  switch (pb.layout.F) {
    case 2: return Launch<2, T>(pb, dev);
    case 4: return Launch<4, T>(pb, dev);
    case 8: return Launch<8, T>(pb, dev);
    case 16: return Launch<16, T>(pb, dev);
    case 32: return Launch<32, T>(pb, dev);
    default: return ffi::Error::InvalidArgument("feature size must be one of 2, 4, 8, 16, 32");
  }
}

// Check the operands, fill a Problem and launch the backend.
template <typename Device>
ffi::Error Run(const Device& dev, const ffi::AnyBuffer* prog, const ffi::AnyBuffer& train_x,
               const ffi::AnyBuffer& train_y, const ffi::AnyBuffer& valid_x,
               const ffi::AnyBuffer& valid_y, const ffi::AnyBuffer& epoch_order,
               const ffi::AnyBuffer& keys, int64_t S, int64_t V, int64_t M, int64_t num_train,
               int64_t num_valid, double max_abs_error, int64_t accuracy,
               ffi::Result<ffi::AnyBuffer>* outs, int num_outs) {
  const ffi::DataType dt = train_x.element_type();
  return ForFloatType(dt, "evojax_zero native: ", [&](auto tag) {
    using T = decltype(tag);
    Problem<T> pb{};
    ffi::Error checked = BuildProblem(pb, dt, prog, train_x, train_y, valid_x, valid_y,
                                      epoch_order, keys, S, V, M, num_train, num_valid,
                                      max_abs_error, accuracy, outs, num_outs);
    if (checked.failure()) return checked;
    return LaunchForF<T>(pb, dev);
  });
}

}  // namespace ffi_binding
}  // namespace evojax_zero

#define EVOJAX_ZERO_HANDLER_OPERANDS                                                       \
  ffi::AnyBuffer s_op, ffi::AnyBuffer s_addr, ffi::AnyBuffer s_data, ffi::AnyBuffer s_size, \
      ffi::AnyBuffer p_op, ffi::AnyBuffer p_addr, ffi::AnyBuffer p_data,                    \
      ffi::AnyBuffer p_size, ffi::AnyBuffer l_op, ffi::AnyBuffer l_addr,                    \
      ffi::AnyBuffer l_data, ffi::AnyBuffer l_size, ffi::AnyBuffer train_x,                 \
      ffi::AnyBuffer train_y, ffi::AnyBuffer valid_x, ffi::AnyBuffer valid_y,               \
      ffi::AnyBuffer epoch_order, ffi::AnyBuffer keys, int64_t S, int64_t V, int64_t M,     \
      int64_t num_train, int64_t num_valid, double max_abs_error, int64_t accuracy

#define EVOJAX_ZERO_HANDLER_CALL(outs, num_outs)                                            \
  EVOJAX_ZERO_DEVICE_MAKE                                                                   \
  const ffi::AnyBuffer prog[12] = {s_op, s_addr, s_data, s_size, p_op, p_addr,              \
                                   p_data, p_size, l_op, l_addr, l_data, l_size};           \
  return ::evojax_zero::ffi_binding::Run(dev, prog, train_x, train_y, valid_x, valid_y,     \
                                         epoch_order, keys, S, V, M, num_train, num_valid,  \
                                         max_abs_error, accuracy, outs, num_outs);

#define EVOJAX_ZERO_BIND_OPERANDS                                                          \
  ffi::Ffi::Bind() EVOJAX_ZERO_DEVICE_BIND                                                 \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                   \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                   \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                   \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                   \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                   \
      .Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>()                   \
      .Attr<int64_t>("num_scalars").Attr<int64_t>("num_vectors")                           \
      .Attr<int64_t>("num_matrices").Attr<int64_t>("num_train")                            \
      .Attr<int64_t>("num_valid").Attr<double>("max_abs_error")                            \
      .Attr<int64_t>("accuracy")

#ifndef EVOJAX_ZERO_BUILD_ID
#define EVOJAX_ZERO_BUILD_ID "unknown"
#endif

#define EVOJAX_ZERO_EXPORT extern "C" __attribute__((visibility("default")))

// The two handlers and the build stamp (a hash of the sources and flags, and the jaxlib
// version whose FFI headers were used; the Python loader rejects a stale library with it).
#define EVOJAX_ZERO_DEFINE_HANDLERS()                                                       \
  namespace evojax_zero {                                                                   \
  namespace {                                                                               \
  ffi::Error FitnessImpl(EVOJAX_ZERO_DEVICE_PARAMS EVOJAX_ZERO_HANDLER_OPERANDS,            \
                         ffi::Result<ffi::AnyBuffer> epoch_score) {                         \
    EVOJAX_ZERO_HANDLER_CALL(&epoch_score, 1)                                               \
  }                                                                                         \
  ffi::Error TraceImpl(EVOJAX_ZERO_DEVICE_PARAMS EVOJAX_ZERO_HANDLER_OPERANDS,              \
                       ffi::Result<ffi::AnyBuffer> epoch_score,                             \
                       ffi::Result<ffi::AnyBuffer> train_error,                             \
                       ffi::Result<ffi::AnyBuffer> train_prediction,                        \
                       ffi::Result<ffi::AnyBuffer> valid_error,                             \
                       ffi::Result<ffi::AnyBuffer> valid_prediction,                        \
                       ffi::Result<ffi::AnyBuffer> stopped,                                 \
                       ffi::Result<ffi::AnyBuffer> train_steps) {                           \
    ffi::Result<ffi::AnyBuffer> outs[7] = {epoch_score,      train_error, train_prediction, \
                                           valid_error,      valid_prediction,              \
                                           stopped,          train_steps};                  \
    EVOJAX_ZERO_HANDLER_CALL(outs, 7)                                                       \
  }                                                                                         \
  }                                                                                         \
  }                                                                                         \
  EVOJAX_ZERO_EXPORT XLA_FFI_Error* EvojaxZeroFitness(XLA_FFI_CallFrame* call_frame);       \
  EVOJAX_ZERO_EXPORT XLA_FFI_Error* EvojaxZeroTrace(XLA_FFI_CallFrame* call_frame);         \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(EvojaxZeroFitness, evojax_zero::FitnessImpl,                \
                                EVOJAX_ZERO_BIND_OPERANDS.Ret<ffi::AnyBuffer>());           \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(EvojaxZeroTrace, evojax_zero::TraceImpl,                    \
                                EVOJAX_ZERO_BIND_OPERANDS.Ret<ffi::AnyBuffer>()             \
                                    .Ret<ffi::AnyBuffer>()                                  \
                                    .Ret<ffi::AnyBuffer>()                                  \
                                    .Ret<ffi::AnyBuffer>()                                  \
                                    .Ret<ffi::AnyBuffer>()                                  \
                                    .Ret<ffi::AnyBuffer>()                                  \
                                    .Ret<ffi::AnyBuffer>());                                \
  EVOJAX_ZERO_EXPORT const char* evojax_zero_build_id() { return EVOJAX_ZERO_BUILD_ID; }
