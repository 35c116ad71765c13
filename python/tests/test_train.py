"""batchpole.train and batchpole.evaluate: the library's training run from Python."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pytest

import batchpole

# A short, fixed run: a few updates on the CPU, one thread (results depend on neither).
SHORT = dict(updates=6, seed=3, threads=1, device="cpu", checkpoint_every=0)


def _metrics(run_dir):
    # Every column but the timings (wall_s, steps_per_s).
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = [line.strip().split(",") for line in f]
    keep = [i for i, name in enumerate(rows[0]) if name not in ("wall_s", "steps_per_s")]
    return [[row[i] for i in keep] for row in rows]


def test_train_returns_the_summary_and_writes_the_run(tmp_path):
    seen = []
    summary = batchpole.train("a2c", out=str(tmp_path / "run"), progress=seen.append, **SHORT)
    with open(tmp_path / "run" / "summary.json") as f:
        assert summary == json.load(f)
    assert summary["updates"] == 6 and summary["stop_reason"] == "budget"
    assert summary["config"]["algo"] == "a2c" and summary["config"]["seed"] == 3
    assert summary["device"].startswith("cpu")
    assert [p["update"] for p in seen] == [1, 2, 3, 4, 5, 6]
    assert seen[-1]["done"] and not seen[0]["done"]
    assert seen[-1]["env_steps"] == summary["env_steps"]
    assert (tmp_path / "run" / "checkpoint.bin").exists()
    assert len(_metrics(tmp_path / "run")) == 7

    # The same keys give the same run; keys of the training configuration reach it.
    again = batchpole.train("a2c", out=str(tmp_path / "again"), quiet=True, **SHORT)
    assert _metrics(tmp_path / "run") == _metrics(tmp_path / "again")
    assert again["env_steps"] == summary["env_steps"]
    other = batchpole.train("reinforce", out=str(tmp_path / "other"), quiet=True, envs=8,
                            lr=0.01, reward="notebook", **SHORT)
    assert other["config"]["algo"] == "reinforce" and other["config"]["envs"] == 8
    assert other["config"]["reward"] == "notebook"


def test_train_matches_the_command_line(tmp_path):
    # CI points BATCHPOLE_CLI at the build's program: the same keys as flags give the same run.
    cli = os.environ.get("BATCHPOLE_CLI") or shutil.which("batchpole")
    if not cli:
        pytest.skip("no batchpole program (set BATCHPOLE_CLI)")
    batchpole.train("baseline", out=str(tmp_path / "py"), quiet=True, **SHORT)
    subprocess.run([cli, "train", "--algo", "baseline", "--updates", "6", "--seed", "3",
                    "--threads", "1", "--device", "cpu", "--checkpoint-every", "0", "--out",
                    str(tmp_path / "cli"), "-q"], check=True)
    assert _metrics(tmp_path / "py") == _metrics(tmp_path / "cli")


def test_progress_exception_stops_the_run_after_saving(tmp_path):
    def stop(p):
        if p["update"] == 2:
            raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        batchpole.train(out=str(tmp_path / "run"), progress=stop, **SHORT)
    with open(tmp_path / "run" / "summary.json") as f:
        assert json.load(f)["stop_reason"] == "interrupted"
    # It resumes where it stopped.
    resumed = batchpole.train(resume=str(tmp_path / "run"), quiet=True, updates=4)
    assert resumed["updates"] == 4


def test_ctrl_c_saves_and_raises(tmp_path):
    def interrupt(p):
        if p["update"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        batchpole.train(out=str(tmp_path / "run"), progress=interrupt, **SHORT)
    with open(tmp_path / "run" / "summary.json") as f:
        summary = json.load(f)
    # The run polls for Ctrl-C after each update, before reporting it: update 4 is the last.
    assert summary["stop_reason"] == "interrupted" and summary["updates"] == 4


def test_evaluate_a_checkpoint(tmp_path):
    batchpole.train(out=str(tmp_path / "run"), quiet=True, **SHORT)
    result = batchpole.evaluate(tmp_path / "run", episodes=12, device="cpu", threads=1)
    assert result["episodes"] == 12 and len(result["returns"]) == 12
    assert result["algo"] == "a2c"
    assert min(result["returns"]) == result["min_return"] >= 1
    assert result == batchpole.evaluate(tmp_path / "run" / "checkpoint.bin", episodes=12,
                                        device="cpu", threads=1)
    greedy = batchpole.evaluate(tmp_path / "run", episodes=12, greedy=True, device="cpu")
    assert greedy["greedy"] is True


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(algo="ppo2"), ValueError, "algo must be one of"),
    (dict(envs=0), ValueError, "envs must be an integer in"),
    (dict(lr="fast"), ValueError, "lr must be"),
    (dict(lr=[0.1]), TypeError, "lr must be a bool, int, float or str"),
    (dict(learning_rate=0.1), TypeError, "unknown configuration key 'learning_rate'"),
    (dict(device="tpu"), ValueError, "device must be one of"),
    (dict(progress=3), TypeError, "progress must be callable"),
])
def test_train_refuses_bad_keys(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        batchpole.train(out=str(tmp_path / "run"), quiet=True, updates=1, **kwargs)
    assert not (tmp_path / "run").exists()


def test_evaluate_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError):
        batchpole.evaluate(tmp_path / "missing.bin", device="cpu")
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError):
        batchpole.evaluate(tmp_path / "junk.bin", device="cpu")
    with pytest.raises(TypeError):
        batchpole.evaluate(tmp_path / "junk.bin", episodes=1.5)


def test_train_keys_are_the_command_lines():
    keys = set(batchpole.train_keys())
    assert {"algo", "envs", "n_steps", "lr", "seed", "reward", "device", "updates", "out",
            "resume", "quiet"} <= keys


def test_train_a_population_and_a_sweep(tmp_path):
    seen = []
    summary = batchpole.train("a2c", out=str(tmp_path / "pop"), progress=seen.append, agents=3,
                              envs=8, **SHORT)
    assert summary["population"]["agents"] == 3
    assert [a["seed"] for a in summary["agents"]] == [3, 4, 5]
    assert seen[-1]["agents"] == 3 and seen[-1]["population_env_steps"] == summary["env_steps"]
    rows = _metrics(tmp_path / "pop")
    assert rows[0][-2:] == ["agent", "seed"] and len(rows) == 1 + 3 * 6
    # Agent 1 is the run of seed 4 alone.
    solo = batchpole.train("a2c", out=str(tmp_path / "solo"), quiet=True, envs=8,
                           **{**SHORT, "seed": 4})
    mine = [r[:-2] for r in rows[1:] if r[-2] == "1"]
    assert mine == [r[:-2] for r in _metrics(tmp_path / "solo")[1:]]
    assert solo["env_steps"] == summary["agents"][1]["env_steps"]

    swept = batchpole.train("a2c", out=str(tmp_path / "sweep"), quiet=True, agents=2, envs=8,
                            sweep="lr=0.001,0.004", **SHORT)
    assert [p["config"]["lr"] for p in swept["points"]] == [0.001, 0.004]
    with pytest.raises(ValueError, match="sweep"):
        batchpole.train("a2c", out=str(tmp_path / "bad"), quiet=True, sweep="lr", **SHORT)
