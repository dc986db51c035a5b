"""Command line: ``python -m evojax_zero run demo --seed 0`` (or ``evojax-zero run ...``).

``run`` takes a preset name (demo, linear, nonlinear, digits) or a JSON/YAML config file
(see ``evojax_zero.experiment.runner.load_config``); ``--set key=value`` overrides preset
settings (population_size, batch_size, max_train_steps, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="evojax-zero", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a preset or a config file")
    r.add_argument("target", help="preset (demo, linear, nonlinear, digits) or config file")
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="preset override, e.g. --set population_size=100")
    r.add_argument("--out", default=None, help="output directory (log, programs, plot)")
    r.add_argument("--checkpoint-dir", default=None, help="save here and resume from here")
    r.add_argument("--checkpoint-every", type=int, default=1, help="generations per save")
    r.add_argument("--devices", type=int, default=None, help="shard over this many devices")
    r.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    from evojax_zero import experiment
    from evojax_zero.search import distributed

    # Multi-host: only when the environment asks (docs/multihost.md); before any JAX call.
    distributed.maybe_initialize()

    overrides = {}
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set needs KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k] = _value(v)
    try:
        if os.path.isfile(args.target):
            runs = experiment.load_config(args.target)
            if args.seed is not None:
                runs = [(c, args.seed) for c, _ in runs]
        else:
            runs = [(experiment.preset(args.target, **overrides), args.seed or 0)]
    except ValueError as e:
        parser.error(str(e))
    for i, (config, seed) in enumerate(runs):
        out = args.out
        if out and len(runs) > 1:
            out = os.path.join(out, f"run{i}_{config.name}_seed{seed}")
        res = experiment.run(config, seed, out_dir=out, checkpoint_dir=args.checkpoint_dir,
                             checkpoint_every=args.checkpoint_every, num_devices=args.devices,
                             progress=not args.no_progress, log=print)
        print(json.dumps({"preset": config.name, "seed": seed,
                          "select_fitness": res.select_fitness,
                          "final_fitness": res.final_fitness, "individuals": res.individuals,
                          "seconds": round(res.seconds, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
