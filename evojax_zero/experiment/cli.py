"""Command line: ``python -m evojax_zero run demo --seed 0`` (or ``evojax-zero run ...``).

``run`` takes a preset name (demo, linear, nonlinear, digits) or a JSON/YAML sweep file
(see ``evojax_zero.experiment.presets.load_config``); ``--set key=value`` overrides preset
settings (the keys, types and defaults: ``run --help``). Bad arguments, settings or files
are reported on stderr with exit code 2 and no traceback (docs/errors.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from evojax_zero.experiment import presets
from evojax_zero.experiment.config import CLI_NAMES, check_run, check_seed
from evojax_zero.experiment.overrides import ConfigError, help_table, parse_cli
from evojax_zero.experiment.runner import run
from evojax_zero.search import distributed

_CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
COMPILE_CACHE_ENV = "EVOJAX_ZERO_COMPILE_CACHE"
_DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "evojax_zero", "xla")


def use_compile_cache(path: str) -> None:
    """Turn on JAX's persistent compilation cache in ``path`` ('off': leave it off).

    Every compile is cached (no minimum time or size), so a repeated run loads its
    executables instead of compiling them. JAX_COMPILATION_CACHE_DIR, when set, wins.
    """
    if path == "off" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    import jax  # deferred: `--help` and bad arguments stay fast

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(prog="evojax-zero", description=__doc__.splitlines()[0],
                                     epilog="`evojax-zero run --help` lists the --set keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = {p: presets.preset_defaults(p) for p in presets.PRESETS}
    r = sub.add_parser("run", help="run a preset or a config file",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=help_table(defaults) + "\n\nexit codes: 0 done, 2 bad arguments, "
                       "settings or files (see docs/errors.md)")
    r.add_argument("target", help=f"preset ({', '.join(presets.PRESETS)}) or a JSON/YAML "
                                   "sweep file")
    r.add_argument("--seed", type=int, default=None,
                   help="random seed, an int in [0, 2**32 - 1] (default 0; for a sweep file: "
                        "replaces its seeds)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="preset override, e.g. --set population_size=100 (repeatable; applied "
                        "on top of a sweep file's overrides; keys below)")
    r.add_argument("--out", default=None, help="output directory (log, programs, plot)")
    r.add_argument("--checkpoint-dir", default=None, help="save here and resume from here")
    r.add_argument("--checkpoint-every", type=int, default=None,
                   help="also save every this many generations, an int >= 1 (default: only "
                        "by time, see --checkpoint-seconds)")
    r.add_argument("--checkpoint-seconds", type=float, default=60.0,
                   help="save at least this often in seconds, a number > 0 (default 60)")
    r.add_argument("--devices", type=int, default=None,
                   help="shard the population over this many devices (it must divide "
                        "population_size). On a CPU, get N devices with XLA_FLAGS="
                        "--xla_force_host_platform_device_count=N")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--compile-cache", default=os.environ.get(COMPILE_CACHE_ENV, _DEFAULT_CACHE),
                   metavar="DIR|off",
                   help="JAX's persistent compilation cache: a second run of the same settings "
                        "skips most compiles (about half a demo experiment's CPU time). "
                        f"Default ${COMPILE_CACHE_ENV} or {_DEFAULT_CACHE}; 'off' disables it; "
                        "ignored when JAX_COMPILATION_CACHE_DIR is set")
    r.add_argument("--traceback", action="store_true",
                   help="on an error, show the Python traceback (for bug reports)")
    return parser, r


def _runs(target: str, seed, overrides: dict) -> list:
    """(config, seed) pairs of a preset or a sweep file; ConfigError if neither."""
    if os.path.isfile(target):
        return presets.load_config(target, overrides, seed)
    if target in presets.PRESETS:
        return [(presets.preset(target, **overrides), 0 if seed is None else seed)]
    if os.path.exists(target):
        raise ConfigError(f"config file {target!r} is a directory; fix: give a .json/.yaml file "
                          f"or a preset ({', '.join(presets.PRESETS)})")
    if os.sep in target or target.endswith(_CONFIG_SUFFIXES):
        raise ConfigError(f"config file {target!r}: no such file; fix: check the path, or give a "
                          f"preset ({', '.join(presets.PRESETS)})")
    presets.preset_defaults(target)  # raises: unknown preset, with the closest name
    raise AssertionError("unreachable")


def main(argv=None) -> int:
    parser, run_parser = _parser()
    args = parser.parse_args(argv)
    try:
        # Multi-host: only when the environment asks (docs/multihost.md); before any JAX call.
        distributed.maybe_initialize()
        use_compile_cache(args.compile_cache)
        if args.seed is not None:
            check_seed(args.seed, "--seed")
        runs = _runs(args.target, args.seed, parse_cli(args.set))
        for config, seed in runs:  # every run's arguments before any run starts
            check_run(config, seed, out_dir=args.out, checkpoint_dir=args.checkpoint_dir,
                      checkpoint_every=args.checkpoint_every,
                      checkpoint_seconds=args.checkpoint_seconds, num_devices=args.devices,
                      names=CLI_NAMES)
        for i, (config, seed) in enumerate(runs):
            out = args.out
            if out and len(runs) > 1:
                out = os.path.join(out, f"run{i}_{config.name}_seed{seed}")
            ckpt = args.checkpoint_dir
            if ckpt and len(runs) > 1:  # one checkpoint per run: runs never share steps
                ckpt = os.path.join(ckpt, f"run{i}_{config.name}_seed{seed}")
            res = run(config, seed, out_dir=out, checkpoint_dir=ckpt,
                      checkpoint_every=args.checkpoint_every,
                      checkpoint_seconds=args.checkpoint_seconds, num_devices=args.devices,
                      progress=not args.no_progress, log=print)
            print(json.dumps({"preset": config.name, "seed": seed,
                              "select_fitness": res.select_fitness,
                              "final_fitness": res.final_fitness,
                              "individuals": res.individuals,
                              "seconds": round(res.seconds, 2)}))
    except ValueError as e:  # ConfigError and the library's boundary checks: bad input
        if args.traceback:
            raise
        run_parser.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
