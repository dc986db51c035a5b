// Executing decoded instructions on a group of lanes (host and device).
//
// A lane is one (program, task) run. The lanes of a group run the same program in lockstep
// (one decode and one op dispatch per instruction for all of them) on one memory block in
// structure-of-arrays layout: element k of lane l lives at mem[k * stride + l]. The CPU backend
// runs the tasks of a batch as the lanes of a group (stride = the group's lane capacity), so
// the common ops are loops over contiguous lanes that the compiler vectorises; the CUDA
// backend runs one lane per thread (stride = the number of threads, so the threads of a warp
// touching the same address touch adjacent words).
//
// Every lane computes exactly what a run on its own would: the same operations in the same
// order (tree sums over the feature axis per lane), so results never depend on grouping.
// Ops with large temporaries or per-lane random draws run lane by lane (ExecuteOneLane).
#ifndef EVOJAX_ZERO_NATIVE_EXECUTE_H_
#define EVOJAX_ZERO_NATIVE_EXECUTE_H_

#include "common.h"
#include "program.h"
#include "rng.h"

namespace evojax_zero {

// The parameter type of a view: a raw pointer keeps `restrict` (memory never aliases the
// program), so the compiler need not reload an instruction after each store.
template <typename Mem> struct Restricted { using type = Mem; };
template <typename T> struct Restricted<T*> { using type = T* EVOJAX_ZERO_RESTRICT; };

// One lane's view of a group's memory: element k at base[k * stride].
template <typename T> struct StridedMem {
  T* base;         // element 0 of this lane
  int64_t stride;  // distance between consecutive elements
  EVOJAX_ZERO_HD T& operator[](int64_t k) const { return base[k * stride]; }
  EVOJAX_ZERO_HD T& operator*() const { return *base; }
  EVOJAX_ZERO_HD StridedMem operator+(int64_t k) const { return {base + k * stride, stride}; }
};

// dst[0..N) = src[0..N) (src: a local array).
template <int N, typename T> EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE void CopyIn(T* dst, const T* src) {
  for (int k = 0; k < N; ++k) dst[k] = src[k];
}
template <int N, typename T> EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE void CopyIn(StridedMem<T> dst, const T* src) {
  for (int k = 0; k < N; ++k) dst[k] = src[k];
}

// ------------------------------------------------------------------------------------
// Arithmetic helpers.
// ------------------------------------------------------------------------------------
template <typename T> EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE T ScalarMin(T a, T b) { return (b < a) ? b : a; }
template <typename T> EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE T ScalarMax(T a, T b) { return (a < b) ? b : a; }
template <typename T> EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE T MatrixMin(T a, T b) { return (a < b) ? a : b; }
template <typename T> EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE T MatrixMax(T a, T b) { return (a > b) ? a : b; }

// Summation order: a fixed pairwise tree over a power-of-two axis, halves added
// elementwise (x[k] += x[k + h] for h = n/2, n/4, ..., 1). This is the order of the XLA
// evaluator's _tree_sum (and of Eigen's packet reductions), so float64 sums agree bit for bit.
template <int N, typename T>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE T TreeSumInPlace(T* x) {
  for (int h = N / 2; h >= 1; h /= 2)
    for (int k = 0; k < h; ++k) x[k] += x[k + h];
  return x[0];
}

template <int N, typename T, typename V>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE T Sum(V v) {
  T tmp[N];
  for (int k = 0; k < N; ++k) tmp[k] = v[k];
  return TreeSumInPlace<N>(tmp);
}

template <int N, typename T, typename U, typename V>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE T Dot(U u, V v) {
  T tmp[N];
  for (int k = 0; k < N; ++k) tmp[k] = u[k] * v[k];
  return TreeSumInPlace<N>(tmp);
}

// Column sums of an F x F row-major block (tree over rows); result in x[0..F).
template <int F, typename T>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE void ColumnTreeSumInPlace(T* x) {
  for (int h = F / 2; h >= 1; h /= 2)
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < F; ++c) x[r * F + c] += x[(r + h) * F + c];
}


// ------------------------------------------------------------------------------------
// Instructions on one lane (any op; the reference for the lanewise versions below).
// ------------------------------------------------------------------------------------
template <int F, typename T, typename Mem>
EVOJAX_ZERO_HD inline void ExecuteOneLane(const Instr<T>* EVOJAX_ZERO_RESTRICT prog, int n,
                                          typename Restricted<Mem>::type mem, Rng& rng) {
  constexpr int FF = F * F;
  for (int i = 0; i < n; ++i) {
    const Instr<T>& I = prog[i];
    const Mem a = mem + I.a;
    const Mem b = mem + I.b;
    const Mem o = mem + I.o;
    switch (I.op) {
      case SCALAR_SUM: *o = *a + *b; break;
      case SCALAR_DIFF: *o = *a - *b; break;
      case SCALAR_PRODUCT: *o = *a * *b; break;
      case SCALAR_DIVISION: *o = *a / *b; break;
      case SCALAR_ABS: *o = math::Abs(*a); break;
      case SCALAR_RECIPROCAL: *o = T(1) / *a; break;
      case SCALAR_SIN: *o = math::Sin(*a); break;
      case SCALAR_COS: *o = math::Cos(*a); break;
      case SCALAR_TAN: *o = math::Tan(*a); break;
      case SCALAR_ARCSIN: *o = math::Asin(*a); break;
      case SCALAR_ARCCOS: *o = math::Acos(*a); break;
      case SCALAR_ARCTAN: *o = math::Atan(*a); break;
      case SCALAR_EXP: *o = math::Exp(*a); break;
      case SCALAR_LOG: *o = math::Log(*a); break;
      case SCALAR_HEAVYSIDE: *o = (*a >= T(0)) ? T(1) : T(0); break;
      case VECTOR_HEAVYSIDE:
        for (int k = 0; k < F; ++k) o[k] = (a[k] > T(0)) ? T(1) : T(0);
        break;
      case MATRIX_HEAVYSIDE:
        for (int k = 0; k < FF; ++k) o[k] = (a[k] > T(0)) ? T(1) : T(0);
        break;
      case SCALAR_VECTOR_PRODUCT: {
        const T s = *a;
        for (int k = 0; k < F; ++k) o[k] = s * b[k];
        break;
      }
      case SCALAR_BROADCAST: {
        const T s = *a;
        for (int k = 0; k < F; ++k) o[k] = s;
        break;
      }
      case VECTOR_RECIPROCAL:
        for (int k = 0; k < F; ++k) o[k] = T(1) / a[k];
        break;
      case VECTOR_NORM: *o = math::Sqrt(Dot<F, T>(a, a)); break;
      case VECTOR_ABS:
        for (int k = 0; k < F; ++k) o[k] = math::Abs(a[k]);
        break;
      case VECTOR_SUM:
        for (int k = 0; k < F; ++k) o[k] = a[k] + b[k];
        break;
      case VECTOR_DIFF:
        for (int k = 0; k < F; ++k) o[k] = a[k] - b[k];
        break;
      case VECTOR_PRODUCT:
        for (int k = 0; k < F; ++k) o[k] = a[k] * b[k];
        break;
      case VECTOR_DIVISION:
        for (int k = 0; k < F; ++k) o[k] = a[k] / b[k];
        break;
      case VECTOR_INNER_PRODUCT: *o = Dot<F, T>(a, b); break;
      case VECTOR_OUTER_PRODUCT:
        for (int r = 0; r < F; ++r)
          for (int c = 0; c < F; ++c) o[r * F + c] = a[r] * b[c];
        break;
      case SCALAR_MATRIX_PRODUCT: {
        const T s = *a;
        for (int k = 0; k < FF; ++k) o[k] = s * b[k];
        break;
      }
      case MATRIX_RECIPROCAL:
        for (int k = 0; k < FF; ++k) o[k] = T(1) / a[k];
        break;
      case MATRIX_VECTOR_PRODUCT: {
        T tmp[F];
        for (int r = 0; r < F; ++r) tmp[r] = Dot<F, T>(a + r * F, b);
        for (int r = 0; r < F; ++r) o[r] = tmp[r];
        break;
      }
      case VECTOR_COLUMN_BROADCAST:
        for (int r = 0; r < F; ++r)
          for (int c = 0; c < F; ++c) o[r * F + c] = a[r];
        break;
      case VECTOR_ROW_BROADCAST:
        for (int r = 0; r < F; ++r)
          for (int c = 0; c < F; ++c) o[r * F + c] = a[c];
        break;
      case MATRIX_NORM: *o = math::Sqrt(Dot<FF, T>(a, a)); break;
      case MATRIX_COLUMN_NORM: {
        T tmp[FF];
        for (int k = 0; k < FF; ++k) tmp[k] = a[k] * a[k];
        ColumnTreeSumInPlace<F>(tmp);
        for (int c = 0; c < F; ++c) o[c] = math::Sqrt(tmp[c]);
        break;
      }
      case MATRIX_ROW_NORM:
        for (int r = 0; r < F; ++r) o[r] = math::Sqrt(Dot<F, T>(a + r * F, a + r * F));
        break;
      case MATRIX_TRANSPOSE: {
        T tmp[FF];
        for (int r = 0; r < F; ++r)
          for (int c = 0; c < F; ++c) tmp[c * F + r] = a[r * F + c];
        CopyIn<FF>(o, tmp);
        break;
      }
      case MATRIX_ABS:
        for (int k = 0; k < FF; ++k) o[k] = math::Abs(a[k]);
        break;
      case MATRIX_SUM:
        for (int k = 0; k < FF; ++k) o[k] = a[k] + b[k];
        break;
      case MATRIX_DIFF:
        for (int k = 0; k < FF; ++k) o[k] = a[k] - b[k];
        break;
      case MATRIX_PRODUCT:
        for (int k = 0; k < FF; ++k) o[k] = a[k] * b[k];
        break;
      case MATRIX_DIVISION:
        for (int k = 0; k < FF; ++k) o[k] = a[k] / b[k];
        break;
      case MATRIX_MATRIX_PRODUCT: {
        // out[r][c] = tree-sum over k of a[r][k] * b[k][c]; all inputs read first.
        T res[FF];
        T prod[FF];
        for (int r = 0; r < F; ++r) {
          for (int k = 0; k < F; ++k)
            for (int c = 0; c < F; ++c) prod[k * F + c] = a[r * F + k] * b[k * F + c];
          ColumnTreeSumInPlace<F>(prod);
          for (int c = 0; c < F; ++c) res[r * F + c] = prod[c];
        }
        CopyIn<FF>(o, res);
        break;
      }
      case SCALAR_MIN: *o = ScalarMin(*a, *b); break;
      case VECTOR_MIN:
        for (int k = 0; k < F; ++k) o[k] = ScalarMin(a[k], b[k]);
        break;
      case MATRIX_MIN:
        for (int k = 0; k < FF; ++k) o[k] = MatrixMin(a[k], b[k]);
        break;
      case SCALAR_MAX: *o = ScalarMax(*a, *b); break;
      case VECTOR_MAX:
        for (int k = 0; k < F; ++k) o[k] = ScalarMax(a[k], b[k]);
        break;
      case MATRIX_MAX:
        for (int k = 0; k < FF; ++k) o[k] = MatrixMax(a[k], b[k]);
        break;
      case VECTOR_MEAN: *o = Sum<F, T>(a) / T(F); break;
      case MATRIX_MEAN: *o = Sum<FF, T>(a) / T(FF); break;
      case MATRIX_ROW_MEAN: {
        T tmp[F];
        for (int r = 0; r < F; ++r) tmp[r] = Sum<F, T>(a + r * F) / T(F);
        for (int r = 0; r < F; ++r) o[r] = tmp[r];
        break;
      }
      case MATRIX_ROW_ST_DEV: {
        T tmp[F];
        for (int r = 0; r < F; ++r) {
          const T mean = Sum<F, T>(a + r * F) / T(F);
          tmp[r] = math::Sqrt(Dot<F, T>(a + r * F, a + r * F) / T(F) - mean * mean);
        }
        for (int r = 0; r < F; ++r) o[r] = tmp[r];
        break;
      }
      case VECTOR_ST_DEV: {
        const T mean = Sum<F, T>(a) / T(F);
        *o = math::Sqrt(Dot<F, T>(a, a) / T(F) - mean * mean);
        break;
      }
      case MATRIX_ST_DEV: {
        const T mean = Sum<FF, T>(a) / T(FF);
        *o = math::Sqrt(Dot<FF, T>(a, a) / T(FF) - mean * mean);
        break;
      }
      case SCALAR_CONST_SET: *o = I.x; break;
      case VECTOR_CONST_SET: o[I.i0] = I.x; break;
      case MATRIX_CONST_SET: o[I.i0 * F + I.i1] = I.x; break;
      case SCALAR_UNIFORM_SET: *o = UniformSet(rng, I.x, I.y); break;
      case VECTOR_UNIFORM_SET:
        for (int k = 0; k < F; ++k) o[k] = UniformSet(rng, I.x, I.y);
        break;
      case MATRIX_UNIFORM_SET:
        for (int k = 0; k < FF; ++k) o[k] = UniformSet(rng, I.x, I.y);
        break;
      case SCALAR_GAUSSIAN_SET: *o = GaussianSet(rng, I.x, I.y); break;
      case VECTOR_GAUSSIAN_SET:
        for (int k = 0; k < F; ++k) o[k] = GaussianSet(rng, I.x, I.y);
        break;
      case MATRIX_GAUSSIAN_SET:
        for (int k = 0; k < FF; ++k) o[k] = GaussianSet(rng, I.x, I.y);
        break;
      case RNG_SKIP: rng.counter += static_cast<uint64_t>(I.i0); break;
      default: break;
    }
  }
}

// ------------------------------------------------------------------------------------
// One instruction on all lanes of a group, for the ops whose work is elementwise or a short
// reduction: loops over contiguous lanes. Lanes never read another lane's elements, and
// operands of the same kind are either the same address or disjoint, so each lane loop is
// free of loop-carried dependences (EVOJAX_ZERO_IVDEP).
// ------------------------------------------------------------------------------------
#define EVOJAX_ZERO_LANES EVOJAX_ZERO_IVDEP for (int l = 0; l < nl; ++l)

// out[k] over lanes = tree sum over j < N of x[j] over lanes (x: N rows of W lanes, modified).
template <int N, int W, typename T>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE void TreeSumLanes(T (*x)[W], int nl) {
  if (W == 1) nl = 1;
  for (int h = N / 2; h >= 1; h /= 2)
    for (int k = 0; k < h; ++k) {
      T* xk = x[k];
      const T* xh = x[k + h];
      EVOJAX_ZERO_LANES xk[l] += xh[l];
    }
}

// Dot products of N-element rows u and v (stride S between elements) for every lane:
// out[l] = sum_j u[j][l] * v[j][l] in the tree order of Dot.
template <int N, int W, typename T>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE void DotLanes(const T* u, const T* v, int64_t S, int nl, T* out) {
  if (W == 1) nl = 1;
  T tmp[N][W];
  for (int j = 0; j < N; ++j) {
    const T* uj = u + j * S;
    const T* vj = v + j * S;
    T* tj = tmp[j];
    EVOJAX_ZERO_LANES tj[l] = uj[l] * vj[l];
  }
  TreeSumLanes<N, W>(tmp, nl);
  const T* t0 = tmp[0];
  EVOJAX_ZERO_LANES out[l] = t0[l];
}

// Sums of N-element rows u (stride S between elements) for every lane, in the tree order of Sum.
template <int N, int W, typename T>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE void SumLanes(const T* u, int64_t S, int nl, T* out) {
  if (W == 1) nl = 1;
  T tmp[N][W];
  for (int j = 0; j < N; ++j) {
    const T* uj = u + j * S;
    T* tj = tmp[j];
    EVOJAX_ZERO_LANES tj[l] = uj[l];
  }
  TreeSumLanes<N, W>(tmp, nl);
  const T* t0 = tmp[0];
  EVOJAX_ZERO_LANES out[l] = t0[l];
}

// Standard deviations of N-element rows (the expression of VECTOR_ST_DEV per lane).
template <int N, int W, typename T>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE void StDevLanes(const T* u, int64_t S, int nl, T* out) {
  if (W == 1) nl = 1;
  T sum[W], dot[W];
  SumLanes<N, W>(u, S, nl, sum);
  DotLanes<N, W>(u, u, S, nl, dot);
  EVOJAX_ZERO_LANES {
    const T mean = sum[l] / T(N);
    out[l] = math::Sqrt(dot[l] / T(N) - mean * mean);
  }
}

// Ops on whole matrices whose per-lane temporaries (F*F values per lane) stay small (F <= 8);
// larger matrices run lane by lane. Returns false when not handled.
template <int F, int W, typename T>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE bool MatrixLanewise(const Instr<T>& I, const T* a, const T* b,
                                                      T* o, int64_t S, int nl) {
  constexpr int FF = F * F;
  if constexpr (F > 8) {
    return false;
  } else {
    switch (I.op) {
      case MATRIX_NORM: {
        T d[W];
        DotLanes<FF, W>(a, a, S, nl, d);
        EVOJAX_ZERO_LANES o[l] = math::Sqrt(d[l]);
        return true;
      }
      case MATRIX_ROW_NORM:  // o (a vector) never overlaps a (a matrix)
        for (int r = 0; r < F; ++r) {
          T d[W];
          DotLanes<F, W>(a + r * F * S, a + r * F * S, S, nl, d);
          T* orow = o + r * S;
          EVOJAX_ZERO_LANES orow[l] = math::Sqrt(d[l]);
        }
        return true;
      case MATRIX_COLUMN_NORM: {  // squares, column tree sums (over rows), square roots
        T tmp[FF][W];
        for (int k = 0; k < FF; ++k) {
          const T* ak = a + k * S;
          T* tk = tmp[k];
          EVOJAX_ZERO_LANES tk[l] = ak[l] * ak[l];
        }
        for (int h = F / 2; h >= 1; h /= 2)
          for (int r = 0; r < h; ++r)
            for (int c = 0; c < F; ++c) {
              T* x = tmp[r * F + c];
              const T* y = tmp[(r + h) * F + c];
              EVOJAX_ZERO_LANES x[l] += y[l];
            }
        for (int c = 0; c < F; ++c) {
          T* oc = o + c * S;
          const T* tc = tmp[c];
          EVOJAX_ZERO_LANES oc[l] = math::Sqrt(tc[l]);
        }
        return true;
      }
      case MATRIX_TRANSPOSE: {  // o may be a: read everything first
        T tmp[FF][W];
        for (int r = 0; r < F; ++r)
          for (int c = 0; c < F; ++c) {
            const T* arc = a + (r * F + c) * S;
            T* t = tmp[c * F + r];
            EVOJAX_ZERO_LANES t[l] = arc[l];
          }
        for (int k = 0; k < FF; ++k) {
          T* ok = o + k * S;
          const T* tk = tmp[k];
          EVOJAX_ZERO_LANES ok[l] = tk[l];
        }
        return true;
      }
      case MATRIX_MATRIX_PRODUCT: {  // out[r][c] = tree sum over k of a[r][k] * b[k][c]
        T res[FF][W];
        T prod[FF][W];
        for (int r = 0; r < F; ++r) {
          for (int k = 0; k < F; ++k)
            for (int c = 0; c < F; ++c) {
              const T* ark = a + (r * F + k) * S;
              const T* bkc = b + (k * F + c) * S;
              T* p = prod[k * F + c];
              EVOJAX_ZERO_LANES p[l] = ark[l] * bkc[l];
            }
          for (int h = F / 2; h >= 1; h /= 2)
            for (int k = 0; k < h; ++k)
              for (int c = 0; c < F; ++c) {
                T* x = prod[k * F + c];
                const T* y = prod[(k + h) * F + c];
                EVOJAX_ZERO_LANES x[l] += y[l];
              }
          for (int c = 0; c < F; ++c) {
            T* rc = res[r * F + c];
            const T* pc = prod[c];
            EVOJAX_ZERO_LANES rc[l] = pc[l];
          }
        }
        for (int k = 0; k < FF; ++k) {
          T* ok = o + k * S;
          const T* rk = res[k];
          EVOJAX_ZERO_LANES ok[l] = rk[l];
        }
        return true;
      }
      case MATRIX_MEAN: {
        T sum[W];
        SumLanes<FF, W>(a, S, nl, sum);
        EVOJAX_ZERO_LANES o[l] = sum[l] / T(FF);
        return true;
      }
      case MATRIX_ROW_MEAN:
        for (int r = 0; r < F; ++r) {
          T sum[W];
          SumLanes<F, W>(a + r * F * S, S, nl, sum);
          T* orow = o + r * S;
          EVOJAX_ZERO_LANES orow[l] = sum[l] / T(F);
        }
        return true;
      case MATRIX_ROW_ST_DEV:
        for (int r = 0; r < F; ++r) StDevLanes<F, W>(a + r * F * S, S, nl, o + r * S);
        return true;
      case MATRIX_ST_DEV:
        StDevLanes<FF, W>(a, S, nl, o);
        return true;
      default:
        return false;
    }
  }
}

// Returns false for the ops left to ExecuteOneLane.
template <int F, int W, typename T>
EVOJAX_ZERO_HD EVOJAX_ZERO_INLINE bool ExecuteLanewise(const Instr<T>& I, T* mem, int64_t S, int nl) {
  constexpr int FF = F * F;
  if (W == 1) nl = 1;  // a compile-time trip count: the lane loops disappear
  const T* a = mem + I.a * S;
  const T* b = mem + I.b * S;
  T* o = mem + I.o * S;
  switch (I.op) {
#define EVOJAX_ZERO_MAP(K, expr)                                       \
  for (int k = 0; k < (K); ++k) {                                      \
    const T* ak = a + k * S;                                           \
    const T* bk = b + k * S;                                           \
    T* ok = o + k * S;                                                 \
    (void)ak; (void)bk;                                                \
    EVOJAX_ZERO_LANES ok[l] = (expr);                                  \
  }                                                                    \
  return true;
    case SCALAR_SUM: EVOJAX_ZERO_MAP(1, ak[l] + bk[l])
    case SCALAR_DIFF: EVOJAX_ZERO_MAP(1, ak[l] - bk[l])
    case SCALAR_PRODUCT: EVOJAX_ZERO_MAP(1, ak[l] * bk[l])
    case SCALAR_DIVISION: EVOJAX_ZERO_MAP(1, ak[l] / bk[l])
    case SCALAR_ABS: EVOJAX_ZERO_MAP(1, math::Abs(ak[l]))
    case SCALAR_RECIPROCAL: EVOJAX_ZERO_MAP(1, T(1) / ak[l])
    case SCALAR_SIN: EVOJAX_ZERO_MAP(1, math::Sin(ak[l]))
    case SCALAR_COS: EVOJAX_ZERO_MAP(1, math::Cos(ak[l]))
    case SCALAR_TAN: EVOJAX_ZERO_MAP(1, math::Tan(ak[l]))
    case SCALAR_ARCSIN: EVOJAX_ZERO_MAP(1, math::Asin(ak[l]))
    case SCALAR_ARCCOS: EVOJAX_ZERO_MAP(1, math::Acos(ak[l]))
    case SCALAR_ARCTAN: EVOJAX_ZERO_MAP(1, math::Atan(ak[l]))
    case SCALAR_EXP: EVOJAX_ZERO_MAP(1, math::Exp(ak[l]))
    case SCALAR_LOG: EVOJAX_ZERO_MAP(1, math::Log(ak[l]))
    case SCALAR_HEAVYSIDE: EVOJAX_ZERO_MAP(1, (ak[l] >= T(0)) ? T(1) : T(0))
    case VECTOR_HEAVYSIDE: EVOJAX_ZERO_MAP(F, (ak[l] > T(0)) ? T(1) : T(0))
    case MATRIX_HEAVYSIDE: EVOJAX_ZERO_MAP(FF, (ak[l] > T(0)) ? T(1) : T(0))
    case SCALAR_VECTOR_PRODUCT: EVOJAX_ZERO_MAP(F, a[l] * bk[l])
    case SCALAR_BROADCAST: EVOJAX_ZERO_MAP(F, a[l])
    case VECTOR_RECIPROCAL: EVOJAX_ZERO_MAP(F, T(1) / ak[l])
    case VECTOR_ABS: EVOJAX_ZERO_MAP(F, math::Abs(ak[l]))
    case VECTOR_SUM: EVOJAX_ZERO_MAP(F, ak[l] + bk[l])
    case VECTOR_DIFF: EVOJAX_ZERO_MAP(F, ak[l] - bk[l])
    case VECTOR_PRODUCT: EVOJAX_ZERO_MAP(F, ak[l] * bk[l])
    case VECTOR_DIVISION: EVOJAX_ZERO_MAP(F, ak[l] / bk[l])
    case SCALAR_MATRIX_PRODUCT: EVOJAX_ZERO_MAP(FF, a[l] * bk[l])
    case MATRIX_RECIPROCAL: EVOJAX_ZERO_MAP(FF, T(1) / ak[l])
    case MATRIX_ABS: EVOJAX_ZERO_MAP(FF, math::Abs(ak[l]))
    case MATRIX_SUM: EVOJAX_ZERO_MAP(FF, ak[l] + bk[l])
    case MATRIX_DIFF: EVOJAX_ZERO_MAP(FF, ak[l] - bk[l])
    case MATRIX_PRODUCT: EVOJAX_ZERO_MAP(FF, ak[l] * bk[l])
    case MATRIX_DIVISION: EVOJAX_ZERO_MAP(FF, ak[l] / bk[l])
    case SCALAR_MIN: EVOJAX_ZERO_MAP(1, ScalarMin(ak[l], bk[l]))
    case VECTOR_MIN: EVOJAX_ZERO_MAP(F, ScalarMin(ak[l], bk[l]))
    case MATRIX_MIN: EVOJAX_ZERO_MAP(FF, MatrixMin(ak[l], bk[l]))
    case SCALAR_MAX: EVOJAX_ZERO_MAP(1, ScalarMax(ak[l], bk[l]))
    case VECTOR_MAX: EVOJAX_ZERO_MAP(F, ScalarMax(ak[l], bk[l]))
    case MATRIX_MAX: EVOJAX_ZERO_MAP(FF, MatrixMax(ak[l], bk[l]))
#undef EVOJAX_ZERO_MAP
    case VECTOR_OUTER_PRODUCT:  // o (a matrix) never overlaps a or b (vectors)
      for (int r = 0; r < F; ++r)
        for (int c = 0; c < F; ++c) {
          const T* ar = a + r * S;
          const T* bc = b + c * S;
          T* orc = o + (r * F + c) * S;
          EVOJAX_ZERO_LANES orc[l] = ar[l] * bc[l];
        }
      return true;
    case VECTOR_COLUMN_BROADCAST:
      for (int r = 0; r < F; ++r)
        for (int c = 0; c < F; ++c) {
          const T* ar = a + r * S;
          T* orc = o + (r * F + c) * S;
          EVOJAX_ZERO_LANES orc[l] = ar[l];
        }
      return true;
    case VECTOR_ROW_BROADCAST:
      for (int r = 0; r < F; ++r)
        for (int c = 0; c < F; ++c) {
          const T* ac = a + c * S;
          T* orc = o + (r * F + c) * S;
          EVOJAX_ZERO_LANES orc[l] = ac[l];
        }
      return true;
    case VECTOR_INNER_PRODUCT:
      DotLanes<F, W>(a, b, S, nl, o);
      return true;
    case VECTOR_NORM: {
      T d[W];
      DotLanes<F, W>(a, a, S, nl, d);
      EVOJAX_ZERO_LANES o[l] = math::Sqrt(d[l]);
      return true;
    }
    case VECTOR_MEAN: {
      T tmp[F][W];
      for (int k = 0; k < F; ++k) {
        const T* ak = a + k * S;
        T* tk = tmp[k];
        EVOJAX_ZERO_LANES tk[l] = ak[l];
      }
      TreeSumLanes<F, W>(tmp, nl);
      const T* t0 = tmp[0];
      EVOJAX_ZERO_LANES o[l] = t0[l] / T(F);
      return true;
    }
    case VECTOR_ST_DEV:
      StDevLanes<F, W>(a, S, nl, o);
      return true;
    case MATRIX_VECTOR_PRODUCT: {  // o may be b: all rows first, then the writes
      T res[F][W];
      for (int r = 0; r < F; ++r) DotLanes<F, W>(a + r * F * S, b, S, nl, res[r]);
      for (int r = 0; r < F; ++r) {
        T* orow = o + r * S;
        const T* rr = res[r];
        EVOJAX_ZERO_LANES orow[l] = rr[l];
      }
      return true;
    }
    case SCALAR_CONST_SET: {
      const T x = I.x;
      EVOJAX_ZERO_LANES o[l] = x;
      return true;
    }
    case VECTOR_CONST_SET: {
      const T x = I.x;
      T* oi = o + I.i0 * S;
      EVOJAX_ZERO_LANES oi[l] = x;
      return true;
    }
    case MATRIX_CONST_SET: {
      const T x = I.x;
      T* oi = o + (I.i0 * F + I.i1) * S;
      EVOJAX_ZERO_LANES oi[l] = x;
      return true;
    }
    default: return MatrixLanewise<F, W, T>(I, a, b, o, S, nl);
  }
}
#undef EVOJAX_ZERO_LANES

// Run n decoded instructions on a group (memory: element k of lane l at mem[k * S + l];
// rng[l]: lane l's random stream). A group of one lane (W == 1: the CUDA kernel, or a batch
// of one task) runs ExecuteOneLane alone, with no lane loops. A group of W > 1 lanes (CPU)
// has S == W and always computes all W lanes: the lane loops have a compile-time trip count
// (straight-line SIMD code, no remainder loops); lanes past the group's tasks ("ghost" lanes)
// compute values nobody reads. `active` (required for W > 1): lanes whose results are still
// read; only they run the per-lane ops (random draws, large matrices).
template <int F, int W, typename T>
EVOJAX_ZERO_HD inline void Execute(const Instr<T>* EVOJAX_ZERO_RESTRICT prog, int n,
                                   T* EVOJAX_ZERO_RESTRICT mem, int64_t S, Rng* rng,
                                   const bool* active = nullptr) {
  if constexpr (W == 1) {  // one lane: a plain pointer where the block is contiguous
    if (S == 1) {
      ExecuteOneLane<F, T, T*>(prog, n, mem, rng[0]);
    } else {
      ExecuteOneLane<F, T, StridedMem<T>>(prog, n, StridedMem<T>{mem, S}, rng[0]);
    }
  } else {
    for (int i = 0; i < n; ++i) {
      const Instr<T>& I = prog[i];
      if (ExecuteLanewise<F, W, T>(I, mem, W, W)) continue;
      for (int l = 0; l < W; ++l) {
        if (!active[l]) continue;  // a ghost lane, or one whose results are no longer read
        ExecuteOneLane<F, T, StridedMem<T>>(&I, 1, StridedMem<T>{mem + l, W}, rng[l]);
      }
    }
  }
}

}  // namespace evojax_zero

#endif  // EVOJAX_ZERO_NATIVE_EXECUTE_H_
