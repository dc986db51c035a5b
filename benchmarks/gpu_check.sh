#!/usr/bin/env bash
# GPU check in one go (issue 12 item 4): on a machine with a CUDA GPU, build the CUDA kernel,
# run the CUDA-vs-CPU and XLA-vs-native agreement tests, then the evaluator and search
# benchmarks at population >= 16k, printing one JSON line per step. Budget: under 8 minutes
# (the nvcc build is the long part: about 2 min with 16 cores; it is cached for later runs).
#
#   bash benchmarks/gpu_check.sh            # everything
#   POP=32768 bash benchmarks/gpu_check.sh  # a larger population
#   SKIP_TESTS=1 bash benchmarks/gpu_check.sh
#
# Without a GPU every step still runs and reports {"skipped": ...} or the CPU figures, so the
# script itself can be checked anywhere. Exit status: 0 when every step that ran passed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
POP=${POP:-16384}
export OPENBLAS_NUM_THREADS=1
status=0
t0=$(date +%s)
line() { echo "{\"step\": \"$1\", \"elapsed_s\": $(( $(date +%s) - t0 ))$2}"; }

# 1. The machine.
$PY - <<'PY'
import json, os, jax
print(json.dumps({"step": "devices", "jax": jax.__version__,
                  "backend": jax.default_backend(),
                  "devices": [d.device_kind for d in jax.devices()],
                  "cores": len(os.sched_getaffinity(0)), "load": os.getloadavg()[0]}))
PY

# 2. Build (or find) the CUDA library; the time is the first-use cost.
$PY - <<'PY' || status=1
import json, time
t = time.perf_counter()
from evojax_zero.native import cuda
ok = cuda.available()
print(json.dumps({"step": "cuda_library", "available": ok, "why": cuda.why_unavailable(),
                  "path": cuda.library_path(), "seconds": round(time.perf_counter() - t, 1)}))
PY

# 3. Agreement tests: the CUDA kernel against the CPU backend and the NumPy reference
#    interpreter (tests/test_native_cuda.py, GPU part), and the XLA evaluator against the
#    reference semantics on this platform (tests/test_conformance.py).
if [ -z "${SKIP_TESTS:-}" ]; then
  for t in tests/test_native_cuda.py tests/test_conformance.py; do
    s=$(date +%s)
    out=$($PY -m pytest -q -x -p no:cacheprovider "$t" 2>&1 | tail -1)
    rc=${PIPESTATUS[0]}
    [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ] && status=1
    line "pytest $t" ", \"rc\": $rc, \"seconds\": $(( $(date +%s) - s )), \"summary\": \"${out//\"/\'}\""
  done
fi

# 4. Evaluator at population POP: every backend this machine has, demo and full 65 ops.
$PY - "$POP" <<'PY' || status=1
import importlib.util, json, os, sys, time
import jax
pop = int(sys.argv[1])
spec_ = importlib.util.spec_from_file_location("b", "benchmarks/evaluator.py")
b = importlib.util.module_from_spec(spec_); spec_.loader.exec_module(b)
from evojax_zero.native import cuda
backends = ["xla"] + (["cuda"] if cuda.available() else ["native"])
for name in ("demo", "linear", "full65_f4"):
    for backend in backends:
        try:
            row = b.measure(name, backend, pop, 3)
            row["step"] = "evaluator"
            print(json.dumps(row), flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on
            print(json.dumps({"step": "evaluator", "config": name, "backend": backend,
                              "error": f"{type(e).__name__}: {str(e)[:300]}"}), flush=True)
PY

# 5. Search at population POP: individuals per second (wall and CPU) and the best fitness
#    after 10 generations (10 x POP individuals), FEC off and on.
$PY - "$POP" <<'PY' || status=1
import json, os, sys, time
import jax
from evojax_zero import experiment
from evojax_zero.native import cuda
from evojax_zero.search.loop import Search
pop = int(sys.argv[1])
backend = "cuda" if cuda.available() else "auto"
for fec in (False, True):
    cfg = experiment.preset("demo", population_size=pop, batch_size=pop // 10, fec=fec,
                            backend=backend)
    s = Search(cfg.search, cfg.search_tasks.build(None))
    st = s.init(jax.random.key(0))
    st = jax.block_until_ready(s.generation(st))  # compile
    c0, t0 = time.process_time(), time.perf_counter()
    gens = 10
    for _ in range(gens):
        st = s.generation(st)
    jax.block_until_ready(st)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = gens * pop  # a generation is P evaluations (P / B steps)
    best = float(jax.numpy.max(st.evolution.fitness))
    print(json.dumps({"step": "search", "preset": "demo", "backend": s.evaluator.backend,
                      "fec": fec, "population": pop,
                      "individuals": n, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
                      "individuals_per_s": round(n / wall), "individuals_per_cpu_s":
                      round(n / cpu), "best_fitness": best, "load": os.getloadavg()[0]}),
          flush=True)
PY
line "done" ", \"status\": $status"
exit $status
