"""Agents of `batchpole train` run directories, for scripts/plot.py.

A run directory holds one agent (a solo run) or a population (`--agents K`, `--sweep KEY=V,...`):
ONE metrics.csv with a row per agent per update, its last columns `agent`, `seed` and then one
column per swept key holding that agent's value (older files have none of these: one agent), and
a summary.json that is flat for a solo run and has an `agents` list for a population. Here every
agent becomes one record, with its sweep point (`Config`: the swept keys and values, in the
sweep's order) so that the subcommands can group agents by point and pool them across runs."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence, TypeVar

from plot_common import InputError, default_label, read_json, read_table, to_columns

# A sweep point: (key, value) pairs in the sweep's order, values as text (see format_value).
Config = tuple[tuple[str, str], ...]
# A --where selection: (key, value), the value as format_value writes it.
Where = tuple[str, str]


def format_value(v: Any) -> str:
    """A swept value as text, the same whether it comes from metrics.csv ("0.001", "1e-3") or
    from summary.json (0.001): numbers in their shortest form, integers without a point."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        x = float(v)
    else:
        s = str(v).strip()
        try:
            x = float(s)
        except ValueError:
            return s
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def parse_where(spec: str) -> Where:
    """KEY=VALUE of --where (a swept key, '-' spelt '_' as well)."""
    key, eq, value = spec.partition("=")
    key, value = key.strip().replace("-", "_"), value.strip()
    if not eq or not key or not value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. lr=0.001), got {spec!r}")
    return key, format_value(value)


def point_label(label: str, config: Config, pattern: str = "") -> str:
    """A curve's or row's name: 'LABEL key=value key=value'; just the values when the label is
    empty or '-'; the glob's default label when both are empty."""
    parts = [label] if label not in ("", "-") else []
    parts += [f"{k}={v}" for k, v in config]
    return " ".join(parts) or label or default_label(pattern)


def matches(config: Config, where: Sequence[Where]) -> bool:
    """Whether a point passes --where: every selected key that it has swept holds the value
    (a key it does not sweep does not exclude it)."""
    values = dict(config)
    return all(values.get(k, v) == v for k, v in where)


class HasConfig(Protocol):
    """Anything with a sweep point: the agents' records below."""
    config: Config


T = TypeVar("T", bound=HasConfig)


def group_points(name: str, items: Iterable[T], where: Sequence[Where]) -> dict[Config, list[T]]:
    """Items by sweep point (first-seen order), without the points that --where leaves out;
    `name` names the --run in the error when none is left."""
    items = list(items)
    groups: dict[Config, list[T]] = {}
    for it in items:
        if matches(it.config, where):
            groups.setdefault(it.config, []).append(it)
    if not groups:
        seen = sorted({point_label("", it.config) or "(no sweep)" for it in items})
        raise InputError(f"--run {name}: no agent matches --where "
                         f"{' '.join(f'{k}={v}' for k, v in where)} "
                         f"(points: {', '.join(seen)})")
    return groups


def check_where_keys(where: Sequence[Where], configs: Iterable[Config]) -> None:
    """Fail when a --where key is swept in none of the runs (a typo would select everything)."""
    swept = {k for c in configs for k, _ in c}
    unknown = sorted({k for k, _ in where} - swept)
    if unknown:
        raise InputError(f"--where {', '.join(unknown)}: not a swept key of any run "
                         f"(swept: {', '.join(sorted(swept)) or 'none'})")


@dataclass
class AgentMetrics:
    """One agent's rows of a metrics.csv, as float columns."""
    dir: Path
    agent: int
    seed: int | None
    config: Config
    cols: dict[str, list[float]]


@dataclass
class AgentSummary:
    """One agent's results from a summary.json; env_steps_per_s is the whole run's."""
    dir: Path
    agent: int
    config: Config
    solved: bool
    env_steps_to_solve: float | None
    wall_s_to_solve: float | None
    final_mean_return: float
    env_steps_per_s: float


def _int(text: str, path: Path, column: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        raise InputError(f"{path}: {column} {text!r} is not a number") from None


def read_metrics(d: Path, required: Sequence[str]) -> list[AgentMetrics]:
    """The agents of run directory `d`'s metrics.csv, by agent index: the columns after `seed`
    are the swept keys; a file without `agent` is one agent, 0."""
    path = d / "metrics.csv"
    header, body = read_table(path, required)
    if "agent" not in header:
        return [AgentMetrics(d, 0, None, (), to_columns(header, body))]
    ia = header.index("agent")
    iseed = header.index("seed") if "seed" in header else None
    swept = header[(iseed if iseed is not None else ia) + 1:]
    rows_by_agent: dict[int, list[list[str]]] = {}
    for r in body:
        rows_by_agent.setdefault(_int(r[ia], path, "agent"), []).append(r)
    agents = []
    for agent, rows in sorted(rows_by_agent.items()):
        first = rows[0]
        config = tuple((k, format_value(first[header.index(k)])) for k in swept)
        seed = _int(first[iseed], path, "seed") if iseed is not None else None
        agents.append(AgentMetrics(d, agent, seed, config, to_columns(header, rows, swept)))
    return agents


def _sweep_keys(sweep: Any) -> list[str]:
    """The keys of a sweep's text "lr=1e-3,3e-3;entropy_coef=0,0.01", in order."""
    if not isinstance(sweep, str):
        return []
    return [part.split("=", 1)[0].strip().replace("-", "_") for part in sweep.split(";")
            if "=" in part]


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def read_summary(d: Path) -> list[AgentSummary]:
    """The agents of run directory `d`'s summary.json: its `agents` list for a population, the
    flat keys for a solo run."""
    path = d / "summary.json"
    s = read_json(path)
    if not isinstance(s, dict):
        raise InputError(f"{path}: not a summary.json object")
    rate = _number(s.get("env_steps_per_s"))
    rate = math.nan if rate is None else rate
    agents = s.get("agents")
    if agents is None:
        solved = bool(s.get("solved"))
        final = _number(s.get("final_mean_return"))
        return [AgentSummary(d, 0, (), solved,
                             _number(s.get("env_steps_to_solve")) if solved else None,
                             _number(s.get("wall_s_to_solve")) if solved else None,
                             math.nan if final is None else final, rate)]
    if not isinstance(agents, list) or not all(isinstance(a, dict) for a in agents):
        raise InputError(f"{path}: 'agents' is not a list of objects")
    order = _sweep_keys(s.get("sweep"))
    out = []
    for i, a in enumerate(agents):
        cfg = a.get("config") or {}
        keys = [k for k in order if k in cfg] + sorted(k for k in cfg if k not in order)
        solved = bool(a.get("solved"))
        steps, secs = _number(a.get("env_steps_to_solve")), _number(a.get("wall_s_to_solve"))
        final = _number(a.get("final_mean_return"))
        out.append(AgentSummary(d, int(a.get("agent", i)),
                                tuple((k, format_value(cfg[k])) for k in keys), solved,
                                steps if solved else None, secs if solved else None,
                                math.nan if final is None else final, rate))
    return out
