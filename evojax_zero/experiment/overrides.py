"""The one typed schema of preset overrides, shared by the Python API and the CLI.

``experiment.preset(name, **overrides)``, sweep files (``load_config``) and
``python -m evojax_zero run ... --set KEY=VALUE`` all go through :data:`SCHEMA`: each key has
a type, allowed values and a doc line; the defaults come from the preset. Python values are
checked strictly (``population_size=20.9`` or ``fec="no"`` is an error, not 20 or True);
CLI text is parsed strictly (``fec=no`` is False, ``fec=maybe`` is an error). Every error is
a :class:`ConfigError` (a ``ValueError``) that names the key, the allowed values and the fix.
Keys may be written dotted (``hurdle.tasks=2``, ``islands.count=4``): :func:`canonical_key`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re

import numpy as np

from evojax_zero.evaluate.evaluator import BACKENDS


class ConfigError(ValueError):
    """A bad configuration value; the message names the field, the allowed values and the
    fix. The CLI reports it on stderr with exit code 2."""


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_ALIASES = {"gpu": " (for a GPU: cuda, or auto)", "cpu": " (for a CPU: native or xla)"}
_INT_TEXT = re.compile(r"[+-]?\d[\d_]*")
HURDLE_KINDS = ("percentile", "mean", "threshold")


@dataclasses.dataclass(frozen=True)
class Override:
    """One override key: its type (int, float, bool or str), bounds or choices and doc."""

    name: str
    type: type
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None

    @property
    def type_name(self) -> str:
        return self.type.__name__

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``an int >= 1``."""
        if self.type is bool:
            return "true or false"
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        what = {int: "an int", float: "a number"}[self.type]
        if self.minimum is not None and self.maximum is not None:
            return f"{what} in [{self.minimum:g}, {self.maximum:g}]"
        if self.minimum is not None:
            return f"{what} >= {self.minimum:g}"
        return what

    def _error(self, source: str, got, fix: str) -> ConfigError:
        return ConfigError(f"{source}{self.name}: expected {self.allowed()}, got {got}; "
                           f"fix: {fix}")

    def coerce(self, value, source: str = "override "):
        """A Python value (keyword argument or sweep-file entry), checked strictly."""
        got = f"{value!r} ({type(value).__name__})"
        example = f"{self.name}={self._example()}"
        if self.type is bool:
            if isinstance(value, bool | np.bool_):
                return bool(value)
            raise self._error(source, got, f"pass {self.name}=True or {self.name}=False")
        if self.type is str:
            if isinstance(value, str) and value in self.choices:
                return value
            hint = _closest(str(value), self.choices) or _ALIASES.get(str(value).lower(), "")
            raise self._error(source, got, f"use one of {list(self.choices)}{hint}")
        if isinstance(value, bool | np.bool_):
            raise self._error(source, got, f"pass a number, e.g. {example}")
        if isinstance(value, int | np.integer):
            return self._check_range(self.type(value), source)
        if isinstance(value, float | np.floating):
            if self.type is int:
                raise self._error(source, got, f"pass a whole number, e.g. {example}")
            return self._check_range(float(value), source)
        raise self._error(source, got, f"pass a number, e.g. {example}")

    def parse(self, text: str, source: str = "--set "):
        """CLI text (``--set KEY=TEXT``), parsed strictly into this key's type."""
        got = repr(text)
        example = f"{self.name}={self._example()}"
        if self.type is bool:
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise self._error(source, got, f"write {self.name}=true or {self.name}=false "
                                           f"(also yes/no, on/off, 1/0)")
        if self.type is str:
            if text in self.choices:
                return text
            hint = _closest(text, self.choices) or _ALIASES.get(text.lower(), "")
            raise self._error(source, got, f"write {self.name}=<one of "
                                           f"{', '.join(self.choices)}>{hint}")
        if self.type is int:
            if not _INT_TEXT.fullmatch(text.strip()):
                raise self._error(source, got, f"write a whole number, e.g. {example}")
            return self._check_range(int(text.strip()), source)
        try:
            value = float(text)
        except ValueError:
            raise self._error(source, got, f"write a number, e.g. {example}") from None
        return self._check_range(value, source)

    def _check_range(self, value, source):
        bad = (isinstance(value, float) and not math.isfinite(value)) \
            or (self.minimum is not None and value < self.minimum) \
            or (self.maximum is not None and value > self.maximum)
        if bad:
            raise self._error(source, repr(value), f"e.g. {self.name}={self._example()}")
        return value

    def _example(self):
        if self.type is float:
            if self.maximum is not None and self.maximum > 1:
                return self.maximum * 3 / 4
            return 0.5 if self.maximum is not None and self.maximum <= 1 else 0.9999
        return max(int(self.minimum or 0), 1) * 20


def _closest(word: str, options) -> str:
    near = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _ov(name, type_, doc, minimum=None, maximum=None, choices=None) -> Override:
    return Override(name, type_, doc, minimum, maximum, choices)


SCHEMA: dict[str, Override] = {o.name: o for o in (
    _ov("population_size", int, "programs in the population", 1),
    _ov("tournament_size", int, "programs drawn (with replacement) per tournament", 1),
    _ov("batch_size", int, "children per step (1 = the reference); must divide "
        "population_size; default min(preset's, population_size)", 1),
    _ov("max_train_steps", int, "train-step budget of each experiment", 1),
    _ov("max_experiments", int, "experiments to run (0 = until sufficient_fitness)", 0),
    _ov("sufficient_fitness", float, "stop when the selection fitness exceeds this", 0, 1),
    _ov("fec", bool, "functional equivalence checking (cache of pre-run hashes)"),
    _ov("progress_every", int, "individuals between progress lines", 1),
    _ov("search_num_tasks", int, "tasks the search scores on", 1),
    _ov("select_num_tasks", int, "tasks the best program of each experiment is selected on", 1),
    _ov("final_num_tasks", int, "tasks of the final (unseen-data) evaluation", 1),
    _ov("search_num_train", int, "train examples per search task (not for digits)", 1),
    _ov("select_num_train", int, "train examples per selection task (not for digits)", 1),
    _ov("final_num_train", int, "train examples per final task (not for digits)", 1),
    _ov("backend", str, "evaluator: auto (native on CPU when built, else xla), xla, "
        "native or cuda", choices=BACKENDS),
    _ov("mutate_prob", float, "probability that a child is mutated (else a clone)", 0, 1),
    _ov("hurdle_tasks", int, "hurdle: score each child on this many search tasks first and "
        "stop it there when below the hurdle (0 = no hurdle; must be < search_num_tasks)", 0),
    _ov("hurdle_kind", str, "hurdle fitness: percentile (hurdle_percentile of the "
        "population's fitness), mean (population mean, as So et al. 2019) or threshold "
        "(hurdle_threshold)", choices=HURDLE_KINDS),
    _ov("hurdle_percentile", float, "with hurdle_kind=percentile: the percentile (0-100) of "
        "the population's fitness a child must reach on the hurdle tasks", 0, 100),
    _ov("hurdle_threshold", float, "with hurdle_kind=threshold: the fixed fitness a child "
        "must reach on the hurdle tasks"),
    _ov("islands_count", int, "islands: populations of population_size each, evolving side by "
        "side (1 = one population); --devices must divide it", 1),
    _ov("islands_migration_every", int, "islands: generations between ring migrations "
        "(0 = never)", 0),
    _ov("islands_migrants", int, "islands: fittest members copied to the next island at each "
        "migration (they replace its oldest; <= population_size)", 0),
)}
HURDLE_KEYS = ("hurdle_tasks", "hurdle_kind", "hurdle_percentile", "hurdle_threshold")
ISLAND_KEYS = ("islands_count", "islands_migration_every", "islands_migrants")


def canonical_key(key: str) -> str:
    """The schema key for ``key``; dotted spellings are accepted (``hurdle.tasks``,
    ``islands.count``, ``search.hurdle.tasks`` -> ``hurdle_tasks``, ``islands_count``)."""
    if key in SCHEMA or not isinstance(key, str):
        return key
    k = key.replace(".", "_")
    if k not in SCHEMA and k.startswith("search_") and k[len("search_"):] in SCHEMA:
        k = k[len("search_"):]
    return k if k in SCHEMA else key


def unknown_key_error(key: str, source: str = "override ") -> ConfigError:
    """The error for a key that is not in :data:`SCHEMA` (with the closest match)."""
    return ConfigError(f"{source}{key!r}: unknown preset overrides key{_closest(key, SCHEMA)}; "
                       f"allowed keys: {', '.join(SCHEMA)} (see `python -m evojax_zero run "
                       f"--help` for types and defaults)")


def check(overrides: dict, source: str = "override ") -> dict:
    """Python overrides -> the same dict with values checked and converted by the schema.
    Raises :class:`ConfigError` for an unknown key or a bad value."""
    out = {}
    for key, value in overrides.items():
        key = canonical_key(key)
        if key not in SCHEMA:
            raise unknown_key_error(key, source)
        out[key] = SCHEMA[key].coerce(value, source)
    return out


def parse_cli(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items -> typed overrides (later items win)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set needs KEY=VALUE, got {item!r}; fix: e.g. "
                              f"--set population_size=100")
        key, text = item.split("=", 1)
        key = canonical_key(key.strip())
        if key not in SCHEMA:
            raise unknown_key_error(key, "--set ")
        out[key] = SCHEMA[key].parse(text)
    return out


def help_table(defaults: dict[str, dict]) -> str:
    """The ``--set`` keys with type, allowed values, defaults per preset and doc."""
    lines = ["keys accepted by --set KEY=VALUE (and by sweep files' overrides; dotted "
             "spellings such as hurdle.tasks or islands.count name the same keys):"]
    for o in SCHEMA.values():
        vals = {p: d[o.name] for p, d in defaults.items()}
        if len(set(map(repr, vals.values()))) == 1:
            default = _fmt(next(iter(vals.values())))
        else:
            default = ", ".join(f"{p} {_fmt(v)}" for p, v in vals.items())
        lines.append(f"  {o.name}={o.type_name.upper()}: {o.allowed()}; default {default}")
        lines.append(f"      {o.doc}")
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v).lower()
    return f"{v:_}" if isinstance(v, int) else str(v)
