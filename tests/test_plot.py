"""Tests of scripts/plot.py on small synthetic run directories: solo runs, a population, a sweep,
a metrics.csv of the older format (no agent/seed columns), benchmark JSON and compare files.

Run: python3 -m pytest tests/test_plot.py (the figure tests need matplotlib; summary and the
usage errors do not). CTest runs it as the test `plot` (label python)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
PLOT = SCRIPTS / "plot.py"
sys.path.insert(0, str(SCRIPTS))

import plot_population  # noqa: E402
import plot_runs  # noqa: E402

BASE_COLUMNS = ["update", "env_steps", "wall_s", "episodes", "recent_episodes", "mean_return",
                "min_return", "max_return", "mean_length", "min_length", "max_length",
                "policy_loss", "value_loss", "entropy", "grad_norm", "value_grad_norm",
                "steps_per_s", "approx_kl", "clip_fraction", "explained_variance", "epochs_run"]
STEPS_PER_UPDATE = 160
TARGET = 475.0


@dataclass
class Agent:
    """A synthetic agent: its return rises linearly and reaches the target at update `solve`
    (where it stops writing rows), or never within `updates` updates (solve=None)."""
    seed: int
    solve: int | None
    updates: int = 0
    config: dict[str, str] = field(default_factory=dict)

    @property
    def last(self) -> int:
        return self.solve if self.solve is not None else self.updates

    def mean_return(self, u: int) -> float:
        if u == 1:
            return 0.0  # no finished episode yet
        if self.solve is None:
            return 100.0 * u / self.updates  # never above 100
        return TARGET * u / self.solve


def write_run(d: Path, agents: list[Agent], *, old_format: bool = False, sweep: str = "",
              rate: float = 1000.0) -> Path:
    """A run directory like `batchpole train` writes: interleaved metrics.csv rows (one per
    still-training agent per update) and summary.json (flat for one agent)."""
    d.mkdir(parents=True)
    swept = list(agents[0].config)
    header = BASE_COLUMNS + ([] if old_format else ["agent", "seed"] + swept)
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for u in range(1, max(a.last for a in agents) + 1):
            for k, a in enumerate(agents):
                if u > a.last:
                    continue
                r = a.mean_return(u)
                row = [u, u * STEPS_PER_UPDATE, f"{0.01 * u:.4f}", 5 * (u - 1), min(u - 1, 100),
                       r, r, r, r, r, r] + [0] * 10
                if not old_format:
                    row += [k, a.seed] + [a.config[key] for key in swept]
                w.writerow(row)

    def result(k: int, a: Agent) -> dict:
        solved = a.solve is not None
        return {"agent": k, "seed": a.seed, "config": {k2: float(v) for k2, v in a.config.items()},
                "solved": solved,
                "env_steps_to_solve": a.solve * STEPS_PER_UPDATE if solved else None,
                "wall_s_to_solve": 0.01 * a.solve if solved else None,
                "updates_to_solve": a.solve, "final_mean_return": a.mean_return(a.last),
                "env_steps": a.last * STEPS_PER_UPDATE,
                "stop_reason": "target" if solved else "budget"}

    if len(agents) == 1:
        summary = {k: v for k, v in result(0, agents[0]).items()
                   if k not in ("agent", "seed", "config", "env_steps", "stop_reason")}
    else:
        summary = {"agents": [result(k, a) for k, a in enumerate(agents)],
                   "population": {"agents": len(agents)},
                   "solved": all(a.solve is not None for a in agents)}
        if sweep:
            summary["sweep"] = sweep
            summary["points"] = []
    summary.update(env_steps_per_s=rate, target_return=TARGET)
    (d / "summary.json").write_text(json.dumps(summary, indent=2))
    return d


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """solo/a2c-s{0,1,2}: solved at updates 10 and 20, one unsolved. old: the older format.
    pop: five agents solving at updates 10..50. pool/{a,b}: the same five agents in two runs.
    sw: a sweep over lr (3 agents per point; lr=0.001 solves once, lr=0.003 thrice) and
    entropy_coef fixed at 0, keys in the sweep's order (lr first)."""
    root = tmp_path / "runs"
    for i, (solve, rate) in enumerate([(10, 1000.0), (20, 3000.0), (None, 2000.0)]):
        write_run(root / f"solo/a2c-s{i}", [Agent(seed=i, solve=solve, updates=30)], rate=rate)
    write_run(root / "old", [Agent(seed=0, solve=19)], old_format=True)
    pop = [Agent(seed=i, solve=10 * (i + 1)) for i in range(5)]
    write_run(root / "pop", pop, rate=5000.0)
    write_run(root / "pool/a", pop[:3], rate=100.0)
    write_run(root / "pool/b", pop[3:], rate=300.0)
    sw = []
    for lr, solves in (("0.001", [20, None, None]), ("0.003", [10, 20, 30])):
        sw += [Agent(seed=i, solve=s, updates=40, config={"lr": lr, "entropy_coef": "0"})
               for i, s in enumerate(solves)]
    write_run(root / "sw", sw, sweep="lr=1e-3,3e-3;entropy_coef=0")
    return root


def plot(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PLOT), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def summary_table(*args: str) -> dict[str, list[str]]:
    """`plot.py summary` rows by their first cell."""
    res = plot("summary", *args)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[1].startswith("|---|")
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: row[1:] for row in cells}


# --------------------------------------------------------------------------------------------
# summary (no matplotlib needed)
# --------------------------------------------------------------------------------------------

def test_summary_solo_runs(runs: Path) -> None:
    rows = summary_table("--run", f"a2c={runs}/solo/a2c-s*")
    # Steps to solve 1600, 3200 and not reached (counted as infinite): median 3200.
    assert rows["a2c"] == ["3", "2/3", "3200 (1600..3200; 1 not reached)",
                           "0.20 (0.10..0.20; 1 not reached)", "475 (100..475)",
                           "2000 (1000..3000)"]


def test_summary_population_and_pooled_runs(runs: Path) -> None:
    rows = summary_table("--run", f"pop={runs}/pop", "--run", f"pool={runs}/pool/*",
                         "--threshold", "200")
    # Solved at updates 10..50: median 30 -> 4800 steps. 200 is first reached at update
    # ceil(200 * solve / 475): 5, 9, 13, 17, 22 -> median 13 -> 2080 steps.
    expect = ["5", "5/5", "4800 (1600..8000)", "0.30 (0.10..0.50)", "2080 (800..3520)",
              "0.13 (0.05..0.22)", "475 (475..475)"]
    assert rows["pop"] == expect + ["5000"]
    # Pooled: the same agents; the rate is one value per run directory (100 and 300).
    assert rows["pool"] == expect + ["200 (100..300)"]


def test_summary_sweep_points(runs: Path) -> None:
    rows = summary_table("--run", f"sw={runs}/sw")
    assert list(rows) == ["sw lr=0.001 entropy_coef=0", "sw lr=0.003 entropy_coef=0"]
    assert rows["sw lr=0.001 entropy_coef=0"][:3] == ["3", "1/3", "not reached (1 at 3200)"]
    assert rows["sw lr=0.003 entropy_coef=0"][:3] == ["3", "3/3", "3200 (1600..4800)"]
    only = summary_table("--run", f"={runs}/sw", "--where", "lr=3e-3")
    assert list(only) == ["lr=0.003 entropy_coef=0"]


def test_summary_old_format_threshold(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    rows = summary_table("--run", f"old={runs}/old", "--threshold", "200", "--out", str(out))
    # 475 * u / 19 >= 200 first at u = 8: 1280 steps, 0.08 s.
    assert rows["old"][:6] == ["1", "1/1", "3040", "0.19", "1280", "0.08"]
    assert "| old | 1 | 1/1 |" in out.read_text()


# --------------------------------------------------------------------------------------------
# agents and curves
# --------------------------------------------------------------------------------------------

def test_stability_counts_every_agent(runs: Path) -> None:
    res = plot("stability", "--run", f"pop={runs}/pop", "--run", f"pool={runs}/pool/*",
               "--run", f"solo={runs}/solo/a2c-s*")
    assert res.returncode == 0, res.stderr
    cells = [[c.strip() for c in line.strip("|").split("|")]
             for line in res.stdout.strip().splitlines()[2:]]
    rows = {row[0]: row[1:] for row in cells}
    # Reached 475 at updates 10..50 (160 steps each): the same as summary's steps to solve.
    assert rows["pop"][:3] == ["5", "5/5", "4800 (1600..8000)"]
    assert rows["pool"] == rows["pop"]
    # Solo: two reach it; the third never rises above 100.
    assert rows["solo"][:3] == ["3", "2/3", "3200 (1600..3200; 1 not reached)"]


def test_read_metrics_splits_interleaved_agents(runs: Path) -> None:
    agents = plot_population.read_metrics(runs / "sw", ["env_steps", "mean_return"])
    assert [a.agent for a in agents] == list(range(6))
    assert [a.seed for a in agents] == [0, 1, 2, 0, 1, 2]
    assert agents[3].config == (("lr", "0.003"), ("entropy_coef", "0"))
    assert [len(a.cols["env_steps"]) for a in agents] == [20, 40, 40, 10, 20, 30]
    assert all(a.cols["env_steps"] == sorted(a.cols["env_steps"]) for a in agents)
    old = plot_population.read_metrics(runs / "old", ["env_steps"])
    assert [(a.agent, a.seed, a.config, len(a.cols["env_steps"])) for a in old] == [
        (0, None, (), 19)]


def test_format_value_matches_both_files() -> None:
    fv = plot_population.format_value
    assert [fv("1e-3"), fv(0.001), fv("0"), fv(0.0), fv("64"), fv(True), fv("euler")] == [
        "0.001", "0.001", "0", "0", "64", "true", "euler"]


def test_collect_curves(runs: Path) -> None:
    def shape(*specs: tuple[str, str], where=()) -> list[tuple[str, int]]:
        return [(name, len(agents))
                for name, agents in plot_runs.collect_curves(list(specs), "mean_length", where)]

    assert shape(("a2c", f"{runs}/solo/a2c-s*"), ("pop", f"{runs}/pop"),
                 ("pool", f"{runs}/pool/*"), ("old", f"{runs}/old")) == [
        ("a2c", 3), ("pop", 5), ("pool", 5), ("old", 1)]
    assert shape(("sw", f"{runs}/sw")) == [("sw lr=0.001 entropy_coef=0", 3),
                                            ("sw lr=0.003 entropy_coef=0", 3)]
    assert shape(("-", f"{runs}/sw"), ("pop", f"{runs}/pop"), where=[("lr", "0.003")]) == [
        ("lr=0.003 entropy_coef=0", 3), ("pop", 5)]
    # Before the first finished episode the value is not a measurement.
    (_, agents), = plot_runs.collect_curves([("pop", f"{runs}/pop")], "mean_length")
    assert math.isnan(agents[0].cols["mean_length"][0])
    assert agents[0].cols["mean_length"][-1] == pytest.approx(TARGET)


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 2000


@pytest.mark.parametrize("extra", [[], ["--logx", "--band", "std"],
                                   ["--smooth-updates", "5", "--x", "time"]])
def test_curves_png(runs: Path, tmp_path: Path, extra: list[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "fig" / "curves.png"
    res = plot("curves", "--run", f"a2c={runs}/solo/a2c-s*", "--run", f"pop={runs}/pop",
               "--run", f"sw={runs}/sw", "--run", f"old={runs}/old", "--out", str(out), *extra)
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stdout
    assert_png(out)


def test_curves_where_and_min_seeds(runs: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "where.png"
    res = plot("curves", "--run", f"={runs}/sw", "--where", "lr=0.001", "--where",
               "entropy_coef=0", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert_png(out)
    res = plot("curves", "--run", f"sw={runs}/sw", "--min-seeds", "4", "--out", str(out))
    assert res.returncode == 2
    assert "--run sw lr=0.001 entropy_coef=0: 3 run(s) found, --min-seeds is 4" in res.stderr


def test_throughput_and_compare(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    bench = {"benchmarks": [
        {"name": f"BM_EnvFused/gpu:0/f64:0/envs:{n}", "run_type": "iteration",
         "env_steps_per_s": 1e3 * n} for n in (16, 256, 4096)] + [
        {"name": "BM_EnvFused/gpu:1/f64:0/envs:16", "error_occurred": True,
         "error_message": "no CUDA device"}]}
    peers = {"results": [{"num_envs": n, "gymnasium": {"ok": True, "env_steps_per_s": 300.0 * n}}
                         for n in (16, 256)]}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    (tmp_path / "peers.json").write_text(json.dumps(peers))
    out = tmp_path / "throughput.png"
    res = plot("throughput", "--bench", str(tmp_path / "bench.json"), "--peers",
               str(tmp_path / "peers.json"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "1 benchmark entries were skipped" in res.stdout
    assert_png(out)

    cmp = tmp_path / "cmp"
    cmp.mkdir()
    for side in ("cpu", "gpu"):
        with open(cmp / f"compare_a2c_{side}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["update", "env_steps", "mean_return", "policy_loss", "value_loss",
                        "entropy", "grad_norm"])
            for u in range(1, 11):
                w.writerow([u, 160 * u, 10 + u + (0.5 if side == "gpu" and u > 6 else 0),
                            0.1, 1.0 / u, 0.69, 1.0])
    res = plot("compare", str(cmp), "--out", str(tmp_path / "compare.png"))
    assert res.returncode == 0, res.stderr
    assert "a2c cpu vs gpu: 10 rows; max |difference|: mean_return 0.5 (first at update 7)" \
        in res.stdout
    assert_png(tmp_path / "compare.png")


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", [[], ["curves"], ["throughput"], ["compare"], ["summary"]])
def test_help_from_any_directory(cmd: list[str], tmp_path: Path) -> None:
    res = plot(*cmd, "--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: plot.py")


@pytest.mark.parametrize("args, message", [
    ([], "the following arguments are required: SUBCOMMAND"),
    (["curves", "--run", "a=x"], "the following arguments are required: --out"),
    (["summary", "--run", "a=x", "--where", "lr"], "expected KEY=VALUE"),
    (["summary", "--run", "a=/nonexistent/run-s*"], "--run a: '/nonexistent/run-s*' matches "
                                                     "nothing"),
    (["throughput", "--out", "x.png"], "throughput needs --bench FILE and/or --peers FILE"),
])
def test_usage_errors_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    res = plot(*args, cwd=tmp_path)
    assert res.returncode == 2
    assert message in res.stderr


def test_where_errors(runs: Path) -> None:
    res = plot("summary", "--run", f"pop={runs}/pop", "--where", "lr=0.001")
    assert res.returncode == 2
    assert "--where lr: not a swept key of any run (swept: none)" in res.stderr
    res = plot("summary", "--run", f"sw={runs}/sw", "--where", "lr=0.5")
    assert res.returncode == 2
    assert "--run sw: no agent matches --where lr=0.5" in res.stderr


# --------------------------------------------------------------------------------------------
# depth
# --------------------------------------------------------------------------------------------

def test_depth_table_and_figure(tmp_path: Path) -> None:
    # PPO-like runs at 32 and 4096 envs (populations of 3), one seed unsolved at 4096.
    for envs, solves in ((32, [3200, 6400, 4800]), (4096, [409600 * 5, None, 409600 * 6])):
        d = tmp_path / f"ppo-{envs}"
        d.mkdir()
        agents = [{"agent": k, "seed": k, "config": {}, "solved": s is not None,
                   "env_steps_to_solve": s, "wall_s_to_solve": 1.0 if s else None,
                   "final_mean_return": 480.0} for k, s in enumerate(solves)]
        (d / "summary.json").write_text(json.dumps(
            {"agents": agents, "population": {}, "config": {"envs": envs},
             "env_steps_per_s": 1.0}))
    res = plot("depth", "--run", f"PPO={tmp_path}/ppo-*", "--out", str(tmp_path / "d.png"))
    if res.returncode == 2 and "matplotlib" in res.stderr:
        pytest.skip("matplotlib is not installed")
    assert res.returncode == 0, res.stderr
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:3]): line
            for line in res.stdout.splitlines()[2:]}
    assert "150 (100..200)" in rows[("PPO", "32", "3/3")]
    assert "550 (500..600)" in rows[("PPO", "4096", "2/3")]
    assert (tmp_path / "d.png").stat().st_size > 1000
    bad = plot("depth", "--run", f"X={tmp_path}/nothing-*")
    assert bad.returncode == 2 and "matches nothing" in bad.stderr
