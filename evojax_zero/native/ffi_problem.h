// Operand checking shared by the CPU (interpreter.cc) and CUDA (interpreter_cuda.cu) FFI
// handlers: both take the same operands and attributes and fill the same Problem<T>.
#pragma once

#include <exception>
#include <initializer_list>
#include <string>

#include "interpreter.h"
#include "xla/ffi/api/ffi.h"

namespace evojax_zero {
namespace ffi_problem {

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
// point `pb` at them. Everything but the backend's own fields (threads) is set.
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
  pb.accuracy = accuracy != 0;
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

}  // namespace ffi_problem
}  // namespace evojax_zero
