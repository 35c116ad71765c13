"""batchpole.VectorEnv against Gymnasium: parity, autoreset modes, seeding, arrays, bad input."""

from __future__ import annotations

import os

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import AutoresetMode

import batchpole


class _ResetFeed:
    """Stands in for CartPoleVectorEnv's np_random: its resets draw the start states given."""

    def __init__(self, states: np.ndarray) -> None:
        self.states = states

    def uniform(self, low, high, size):
        assert size == self.states.shape, (size, self.states.shape)
        assert np.all((self.states >= low) & (self.states <= high))
        return self.states


@pytest.mark.parametrize("max_steps,sutton_barto", [(500, False), (40, True)])
def test_next_step_parity_with_gymnasium(max_steps, sutton_barto):
    # Gymnasium's own NumPy CartPoleVectorEnv and batchpole in float64 from the same start
    # states, with the same random actions. Where Gymnasium draws a new episode's start state,
    # it is handed batchpole's (both begin that episode on the same step), so the two must stay
    # together for the whole run: observations within 1e-6, rewards and flags identical.
    n, steps = 64, 3000
    ref = CartPoleVectorEnv(num_envs=n, max_episode_steps=max_steps,
                            sutton_barto_reward=sutton_barto)
    ref.reset(seed=7)
    env = batchpole.VectorEnv(n, precision="f64", max_episode_steps=max_steps,
                              reward="sutton-barto" if sutton_barto else "v1")
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    env.reset(seed=3)
    env.set_state(ref.state.T)
    rng = np.random.default_rng(11)
    resets = ends = truncations = 0
    worst = 0.0
    for t in range(steps):
        actions = rng.integers(0, 2, size=n)
        pending = ref.prev_done.copy()
        obs, reward, terminated, truncated, info = env.step(actions)
        state = env.get_state()
        ref.np_random = _ResetFeed(state["state"][pending].T.copy())
        ref_obs, ref_reward, ref_terminated, ref_truncated, _ = ref.step(actions)
        assert info == {}
        worst = max(worst, float(np.abs(obs - ref_obs).max()))
        assert worst <= 1e-6, f"step {t}: observations differ by {worst}"
        np.testing.assert_array_equal(reward, ref_reward, err_msg=f"step {t}")
        np.testing.assert_array_equal(terminated, ref_terminated, err_msg=f"step {t}")
        np.testing.assert_array_equal(truncated, ref_truncated, err_msg=f"step {t}")
        # The same environments began an episode on this step (elapsed steps back to 0).
        np.testing.assert_array_equal(state["elapsed_steps"], ref.steps, err_msg=f"step {t}")
        np.testing.assert_array_equal(state["elapsed_steps"] == 0, pending, err_msg=f"step {t}")
        resets += int(pending.sum())
        ends += int((terminated | truncated).sum())
        truncations += int(truncated.sum())
    assert resets > 1000 and ends >= resets
    if max_steps == 40:
        assert truncations > 0


def _per_env_actions(n: int, length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(n, length))


@pytest.mark.parametrize("precision", ["f32", "f64"])
def test_same_step_matches_next_step(precision):
    # The same episodes played in both modes: each environment's k-th physics step takes
    # action k of its own stream. SAME_STEP's final observation of an episode is NEXT_STEP's
    # observation on its last step; SAME_STEP's observation there is NEXT_STEP's on the next
    # step (reward 0, flags clear).
    n, steps = 16, 600
    acts = _per_env_actions(n, 2 * steps, 5)
    same = batchpole.VectorEnv(n, precision=precision, autoreset_mode="same_step")
    nxt = batchpole.VectorEnv(n, precision=precision, autoreset_mode=AutoresetMode.NEXT_STEP)
    same.reset(seed=9)
    nxt.reset(seed=9)
    same_log = [[] for _ in range(n)]
    next_log = [[] for _ in range(n)]
    same_starts = [[] for _ in range(n)]
    next_starts = [[] for _ in range(n)]
    k = np.zeros(n, dtype=np.int64)
    pending = np.zeros(n, dtype=bool)
    ended_total = 0
    for t in range(steps):
        obs, rew, term, trunc, info = same.step(acts[:, t])
        assert set(info) == {"final_obs", "_final_obs", "final_info", "_final_info"}
        ended = term | trunc
        np.testing.assert_array_equal(info["_final_obs"], ended)
        np.testing.assert_array_equal(info["_final_info"], ended)
        assert info["final_obs"].shape == (n, 4) and info["final_obs"].dtype == np.float32
        assert np.all(info["final_obs"][~ended] == 0)
        for i in range(n):
            last = info["final_obs"][i] if ended[i] else obs[i]
            same_log[i].append((last.tobytes(), float(rew[i]), bool(term[i]), bool(trunc[i])))
            if ended[i]:
                same_starts[i].append(obs[i].tobytes())
        ended_total += int(ended.sum())

        n_obs, n_rew, n_term, n_trunc, n_info = nxt.step(acts[np.arange(n), k])
        assert n_info == {}
        for i in range(n):
            if pending[i]:
                assert n_rew[i] == 0 and not n_term[i] and not n_trunc[i]
                next_starts[i].append(n_obs[i].tobytes())
            else:
                next_log[i].append((n_obs[i].tobytes(), float(n_rew[i]), bool(n_term[i]),
                                    bool(n_trunc[i])))
                k[i] += 1
        pending = n_term | n_trunc
    assert ended_total > 100
    for i in range(n):
        m = len(next_log[i])
        assert m > 0 and next_log[i] == same_log[i][:m], f"env {i}"
        assert next_starts[i] == same_starts[i][:len(next_starts[i])], f"env {i}"


def test_disabled_mode_and_reset_mask():
    n = 8
    env = batchpole.VectorEnv(n, autoreset_mode="disabled", precision="f64")
    env.reset(seed=4)
    ones = np.ones(n, dtype=np.int64)
    ended = np.zeros(n, dtype=bool)
    for _ in range(200):
        obs, reward, term, trunc, info = env.step(ones)
        assert info == {}
        ended |= term
        if ended.all():
            break
    assert ended.all()
    # Without autoreset the terminated envs go on stepping: the cart keeps accelerating.
    state = env.get_state()
    assert np.all(state["elapsed_steps"] > 0)
    before = env.get_state()["state"].copy()
    mask = np.zeros(n, dtype=bool)
    mask[[1, 5]] = True
    obs, info = env.reset(options={"reset_mask": mask})
    after = env.get_state()
    np.testing.assert_array_equal(after["state"][~mask], before[~mask])
    np.testing.assert_array_equal(after["elapsed_steps"][mask], 0)
    assert np.all(np.abs(after["state"][mask]) <= 0.05)
    np.testing.assert_array_equal(obs, after["state"].astype(np.float32))
    assert info == {}


def test_next_step_reset_mask_clears_pending():
    env = batchpole.VectorEnv(4, precision="f64")
    env.reset(seed=1)
    ones = np.ones(4, dtype=np.int64)
    env.set_state(np.array([[0.0, 0.0, 0.2, 1.0]] * 4))
    _, _, term, _, _ = env.step(ones)
    assert term.all()
    mask = np.array([True, False, False, False])
    obs, _ = env.reset(options={"reset_mask": mask})
    # Env 0 began its next episode now, so its next step is a physics step (reward 1); the
    # others still begin theirs on this step (reward 0).
    _, reward, _, _, _ = env.step(ones)
    np.testing.assert_array_equal(reward, [1.0, 0.0, 0.0, 0.0])


def test_set_state_clears_pending_reset():
    env = batchpole.VectorEnv(2, precision="f64")
    env.reset(seed=2)
    ones = np.ones(2, dtype=np.int64)
    for _ in range(100):
        _, _, term, _, _ = env.step(ones)
        if term.any():
            break
    assert term.any()
    start = np.array([[0.01, 0.02, -0.03, 0.04], [0.0, 0.1, 0.05, -0.1]])
    env.set_state(start)
    obs, reward, term, trunc, _ = env.step(np.array([1, 0]))
    # One physics step from exactly that state (no pending reset), as Gymnasium computes it.
    ref = CartPoleVectorEnv(num_envs=2)
    ref.reset(seed=0)
    ref.state = start.T.copy()
    ref_obs, ref_reward, ref_term, _, _ = ref.step(np.array([1, 0]))
    np.testing.assert_allclose(obs, ref_obs, atol=1e-7)
    np.testing.assert_array_equal(reward, [1.0, 1.0])
    np.testing.assert_array_equal(env.get_state()["elapsed_steps"], [1, 1])
    # Elapsed steps as given: the time limit truncates on the step that reaches it.
    env.set_state(start, elapsed_steps=np.array([499, 0]))
    _, _, _, trunc, _ = env.step(np.array([0, 0]))
    np.testing.assert_array_equal(trunc, [True, False])


def _rollout(env, steps, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        obs, rew, term, trunc, _ = env.step(rng.integers(0, 2, size=env.num_envs))
        out.append((obs, rew, term, trunc))
    return out


def _same(a, b):
    return all(all(np.array_equal(x, y) for x, y in zip(p, q)) for p, q in zip(a, b))


def test_seeding_is_reproducible():
    a = batchpole.VectorEnv(32, threads=1)
    b = batchpole.VectorEnv(32, threads=2)
    obs_a, _ = a.reset(seed=123)
    obs_b, _ = b.reset(seed=123)
    np.testing.assert_array_equal(obs_a, obs_b)
    run_a = _rollout(a, 300)
    assert _same(run_a, _rollout(b, 300))
    # Again from the same seed: the same run; another seed: another.
    a.reset(seed=123)
    assert _same(run_a, _rollout(a, 300))
    obs_c, _ = a.reset(seed=124)
    assert not np.array_equal(obs_a, obs_c)
    # The constructor's seed is the first reset's; reset() without a seed moves on.
    c = batchpole.VectorEnv(32, seed=123)
    obs_d, _ = c.reset()
    np.testing.assert_array_equal(obs_a, obs_d)
    obs_e, _ = c.reset()
    assert not np.array_equal(obs_d, obs_e)
    d = batchpole.VectorEnv(32, seed=123)
    d.reset()
    np.testing.assert_array_equal(d.reset()[0], obs_e)


def test_batch_size_does_not_change_an_environments_episodes():
    big = batchpole.VectorEnv(40)
    small = batchpole.VectorEnv(8)
    big.reset(seed=5)
    small.reset(seed=5)
    acts = _per_env_actions(40, 300, 1)
    for t in range(300):
        o_big, r_big, te_big, _, _ = big.step(acts[:, t])
        o_small, r_small, te_small, _, _ = small.step(acts[:8, t])
        np.testing.assert_array_equal(o_big[:8], o_small)
        np.testing.assert_array_equal(te_big[:8], te_small)


def test_arrays_stay_valid_and_speak_dlpack():
    env = batchpole.VectorEnv(64)
    obs0, _ = env.reset(seed=0)
    kept = []
    for _ in range(50):
        out = env.step(np.ones(64, dtype=np.int32))
        kept.append((out[0], out[0].copy(), out[1], out[1].copy()))
    for obs, obs_copy, rew, rew_copy in kept:
        np.testing.assert_array_equal(obs, obs_copy)
        np.testing.assert_array_equal(rew, rew_copy)
    obs, reward, term, trunc, _ = env.step(np.zeros(64, dtype=np.int64))
    assert obs.dtype == np.float32 and obs.shape == (64, 4) and obs.flags.c_contiguous
    assert reward.dtype == np.float32 and term.dtype == np.bool_ and trunc.dtype == np.bool_
    assert env.observation_space.contains(obs0)
    for a in (obs, reward, term, trunc):
        assert a.__dlpack_device__() == (1, 0)
        view = np.from_dlpack(a)
        assert view.__array_interface__["data"][0] == a.__array_interface__["data"][0]


def test_torch_shares_memory_on_the_cpu():
    torch = pytest.importorskip("torch")
    env = batchpole.VectorEnv(16)
    env.reset(seed=0)
    obs, reward, _, _, _ = env.step(torch.ones(16, dtype=torch.int64))
    t = torch.from_dlpack(obs)
    assert t.data_ptr() == obs.__array_interface__["data"][0]
    obs2, _, _, _, _ = env.step(torch.zeros(16, dtype=torch.int32))
    assert torch.equal(torch.from_dlpack(obs2), torch.from_numpy(obs2))


class _Producer:
    """A minimal DLPack producer (not a NumPy array) holding NumPy memory."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64,
                                   np.bool_])
def test_actions_of_any_integer_dtype_and_producer(dtype):
    n = 12
    acts = _per_env_actions(n, 40, 3)
    ref = batchpole.VectorEnv(n)
    env = batchpole.VectorEnv(n)
    ref.reset(seed=1)
    env.reset(seed=1)
    for t in range(40):
        a = acts[:, t]
        expected = ref.step(a.astype(np.int32))
        given = a.astype(dtype)
        if t % 3 == 1:
            given = _Producer(given)
        elif t % 3 == 2:
            given = list(given)
        got = env.step(given)
        for x, y in zip(got[:4], expected[:4]):
            np.testing.assert_array_equal(x, y)
    # Strided actions are read as they are.
    wide = np.zeros((n, 2), dtype=np.int64)
    wide[:, 0] = 1
    np.testing.assert_array_equal(env.step(wide[:, 0])[0], ref.step(np.ones(n, np.int32))[0])


@pytest.mark.parametrize("actions,error,match", [
    (np.zeros(5, dtype=np.int64), ValueError, r"shape \(8,\)"),
    (np.zeros((8, 1), dtype=np.int64), ValueError, r"shape \(8,\)"),
    (np.zeros(8, dtype=np.float32), TypeError, "integers"),
    (np.array([0, 1, 2, 0, 0, 0, 0, 0], dtype=np.int32), ValueError, "invalid action 2 for env 2"),
    (np.array([0, 1, 0, 0, 0, 0, 0, -1]), ValueError, "invalid action -1 for env 7"),
    (np.array([0, 0, 0, 0, 1 << 32, 0, 0, 0]), ValueError, "for env 4"),
    (np.array([0, 0, 0, 3, 0, 0, 0, 0], dtype=np.uint8), ValueError, "invalid action 3 for env 3"),
    (["a"] * 8, TypeError, "integers"),
    ([0.5] * 8, TypeError, "integers"),
    (np.array([None] * 8), TypeError, "integers"),
])
def test_bad_actions_raise_and_change_nothing(actions, error, match):
    env = batchpole.VectorEnv(8)
    env.reset(seed=0)
    env.step(np.ones(8, dtype=np.int64))
    before = env.get_state()
    with pytest.raises(error, match=match):
        env.step(actions)
    after = env.get_state()
    np.testing.assert_array_equal(before["state"], after["state"])
    np.testing.assert_array_equal(before["elapsed_steps"], after["elapsed_steps"])
    env.step(np.ones(8, dtype=np.int64))  # still usable


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(num_envs=0), ValueError, "num_envs must be positive"),
    (dict(num_envs=-3), ValueError, "num_envs must be positive"),
    (dict(num_envs=2.0), TypeError, "num_envs must be an int"),
    (dict(num_envs=4, device="tpu"), ValueError, "unknown device 'tpu'"),
    (dict(num_envs=4, device=0), TypeError, "device must be a str"),
    (dict(num_envs=4, precision="f16"), ValueError, "unknown precision"),
    (dict(num_envs=4, autoreset_mode="sometimes"), ValueError, "unknown autoreset_mode"),
    (dict(num_envs=4, gravity=3.0), TypeError, "unknown environment parameter 'gravity'"),
    (dict(num_envs=4, max_episode_steps=-1), ValueError, "max_episode_steps must be"),
    (dict(num_envs=4, reward="sparse"), ValueError, "reward must be one of"),
    (dict(num_envs=4, theta_threshold_deg="6"), ValueError, "theta_threshold_deg must be"),
    (dict(num_envs=4, theta_threshold_deg=[6]), TypeError, "theta_threshold_deg must be"),
    (dict(num_envs=4, seed=-1), ValueError, "seed must be in"),
    (dict(num_envs=4, threads=-1), ValueError, "threads must be in"),
    (dict(num_envs=4, render_mode="human"), ValueError, "does not render"),
])
def test_bad_construction_raises(kwargs, error, match):
    with pytest.raises(error, match=match):
        batchpole.VectorEnv(**kwargs)


def test_bad_calls_raise():
    env = batchpole.VectorEnv(4)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="seed must be in"):
        env.reset(seed=-5)
    with pytest.raises(TypeError, match="seed must be an int"):
        env.reset(seed="1")
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"low": -0.1})
    env.reset(seed=0)
    with pytest.raises(TypeError, match="dtype bool"):
        env.reset(options={"reset_mask": np.ones(4, dtype=np.int64)})
    with pytest.raises(ValueError, match="shape"):
        env.reset(options={"reset_mask": np.ones(3, dtype=bool)})
    with pytest.raises(ValueError, match=r"state must have shape \(4, 4\)"):
        env.set_state(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        env.set_state(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="elapsed_steps"):
        env.set_state(np.zeros((4, 4)), elapsed_steps=np.array([0, 0, 500, 0]))
    with pytest.raises(TypeError, match="elapsed_steps must be integers"):
        env.set_state(np.zeros((4, 4)), elapsed_steps=np.zeros(4))
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros(4, dtype=np.int64))


def test_env_params_reach_the_engine():
    env = batchpole.VectorEnv(4, theta_threshold_deg=6, x_threshold=1.0, reward="notebook",
                              integrator="semi-implicit", max_episode_steps=30,
                              precision="f64")
    params = env.env_params
    assert params["theta_threshold"] == pytest.approx(6 * np.pi / 180, rel=1e-15)
    assert params["x_threshold"] == 1.0 and params["max_episode_steps"] == 30
    assert params["reward"] == "notebook" and params["integrator"] == "semi-implicit"
    np.testing.assert_allclose(env.single_observation_space.high, [2.0, np.inf, 12 * np.pi / 180,
                                                                   np.inf], rtol=1e-6)
    env.reset(seed=0)
    env.set_state(np.array([[0, 0, 0.104, 0.5]] * 4, dtype=float))
    _, reward, term, _, _ = env.step(np.ones(4, dtype=np.int64))
    # 0.104 + 0.02 * 0.5 rad is past 6 degrees (0.1047): terminated, and the notebook's reward
    # is 0 on that step.
    assert term.all() and np.all(reward == 0)


def test_gymnasium_registration():
    envs = gymnasium.make_vec("batchpole/CartPole-v1", num_envs=6,
                              vectorization_mode="vector_entry_point", precision="f64")
    assert isinstance(envs.unwrapped, batchpole.VectorEnv)
    assert envs.num_envs == 6 and envs.unwrapped.env_params["max_episode_steps"] == 500
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (6, 4)
    envs.close()
    same = gymnasium.make_vec("batchpole/CartPole-v1", num_envs=3,
                              vectorization_mode="vector_entry_point",
                              autoreset_mode=AutoresetMode.SAME_STEP)
    assert same.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP


# Gymnasium's checker warns about the infinite velocity bounds, which CartPole-v1 has too.
@pytest.mark.filterwarnings("ignore:.*Box observation space")
def test_single_env_passes_check_env():
    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make("batchpole/CartPole-v1")
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    # TimeLimit(500) from the spec, as Gymnasium's CartPole-v1; the engine itself has no limit.
    steps = 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(steps % 2)
        steps += 1
        assert isinstance(reward, float) and isinstance(terminated, bool)
        if terminated or truncated:
            break
    assert steps < 500 and terminated
    with pytest.raises(ValueError, match="invalid action 2"):
        env.unwrapped.step(2)


# On a machine with a GPU these run; BATCHPOLE_REQUIRE_GPU=1 (scripts/gpu-check-python.sh) turns
# a missing GPU into a failure instead of a skip.
_CUDA = batchpole.cuda_status()
needs_gpu = pytest.mark.skipif(_CUDA["device_count"] == 0 and
                               not os.environ.get("BATCHPOLE_REQUIRE_GPU"),
                               reason="no GPU: " + _CUDA["reason"])


@needs_gpu
@pytest.mark.parametrize("mode", ["next_step", "same_step", "disabled"])
def test_cuda_matches_cpu_and_speaks_dlpack(mode):
    torch = pytest.importorskip("torch")
    n = 4096
    cpu = batchpole.VectorEnv(n, autoreset_mode=mode)
    gpu = batchpole.VectorEnv(n, device="cuda", autoreset_mode=mode)
    assert gpu.device == "cuda"
    cpu.reset(seed=3)
    obs, _ = gpu.reset(seed=3)
    assert obs.__dlpack_device__() == (2, 0)
    rng = np.random.default_rng(0)
    kept = []
    for t in range(300):
        a = rng.integers(0, 2, size=n)
        c = cpu.step(a)
        # Host int32 (copied), device int64 (through the host), device int32 (in place).
        given = a.astype(np.int32)
        if t % 2:
            given = torch.from_numpy(a).cuda()
            if t % 4 == 3:
                given = given.to(torch.int32)
        g = gpu.step(given)
        for x, y in zip(c[:4], g[:4]):
            y = torch.from_dlpack(y)
            assert y.is_cuda
            np.testing.assert_array_equal(x, y.cpu().numpy(), err_msg=f"step {t}")
        if mode == "same_step":
            for key in ("final_obs", "_final_obs"):
                np.testing.assert_array_equal(c[4][key],
                                              torch.from_dlpack(g[4][key]).cpu().numpy())
        if t % 50 == 0:
            kept.append((g[0], torch.from_dlpack(g[0]).clone()))
    # Arrays stay as they were, steps later.
    for arr, copy in kept:
        assert torch.equal(torch.from_dlpack(arr), copy)
    np.testing.assert_array_equal(cpu.get_state()["state"], gpu.get_state()["state"])


@needs_gpu
def test_cuda_reset_mask_state_and_bad_actions():
    torch = pytest.importorskip("torch")
    n = 64
    cpu = batchpole.VectorEnv(n, autoreset_mode="disabled", precision="f64")
    gpu = batchpole.VectorEnv(n, device="cuda", autoreset_mode="disabled", precision="f64")
    for env in (cpu, gpu):
        env.reset(seed=1)
        for _ in range(30):
            env.step(np.ones(n, dtype=np.int64))
    mask = np.arange(n) % 3 == 0
    oc, _ = cpu.reset(options={"reset_mask": mask})
    og, _ = gpu.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(oc, torch.from_dlpack(og).cpu().numpy())
    state = cpu.get_state()
    gpu.set_state(state["state"], state["elapsed_steps"])
    np.testing.assert_array_equal(gpu.get_state()["state"], state["state"])
    bad = torch.full((n,), 2, dtype=torch.int32, device="cuda")
    with pytest.raises(ValueError, match="invalid action 2"):
        gpu.step(bad)
    with pytest.raises(ValueError, match="invalid action 3"):
        gpu.step(np.full(n, 3))
    with pytest.raises(ValueError, match="host memory"):
        cpu.step(torch.ones(n, dtype=torch.int32, device="cuda"))
    gpu.step(np.zeros(n, dtype=np.int64))  # still usable
