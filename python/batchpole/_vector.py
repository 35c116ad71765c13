"""Gymnasium environments over the C++ engine: VectorEnv (N CartPoles) and CartPoleEnv (one)."""

from __future__ import annotations

import numbers
import secrets
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from . import _batchpole

_MODE_NAMES = {
    AutoresetMode.NEXT_STEP: "next_step",
    AutoresetMode.SAME_STEP: "same_step",
    AutoresetMode.DISABLED: "disabled",
}
_DEVICES = ("cpu", "cuda", "gpu", "auto")
_PRECISIONS = ("f32", "f64", "float32", "float64")
_SEED_LIMIT = 1 << 64
_DL_CUDA = 2


def _autoreset_mode(value: Any) -> AutoresetMode:
    if isinstance(value, AutoresetMode):
        return value
    if isinstance(value, str):
        key = value.replace("-", "_").lower()
        for mode, name in _MODE_NAMES.items():
            if key in (name, mode.value.lower(), mode.name.lower()):
                return mode
        raise ValueError(f"unknown autoreset_mode {value!r} (expected "
                         "gymnasium.vector.AutoresetMode.NEXT_STEP, SAME_STEP or DISABLED, or "
                         "'next_step', 'same_step', 'disabled')")
    raise TypeError(f"autoreset_mode must be a gymnasium.vector.AutoresetMode or str, got "
                    f"{type(value).__name__}")


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    seed = _integer("seed", value)
    if not 0 <= seed < _SEED_LIMIT:
        raise ValueError(f"seed must be in [0, 2^64), got {seed}")
    return seed


def _word(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r} (expected {', '.join(choices)})")
    return value


class VectorEnv(gymnasium.vector.VectorEnv):
    """N CartPole-v1 environments stepped together by batchpole's C++ engine.

    Args:
        num_envs: the number of environments.
        device: "cpu" (default), "cuda" or "auto" (the GPU when one is usable).
        precision: "f32" (default, fastest) or "f64" (Gymnasium's own arithmetic). Observations
            are float32 either way.
        autoreset_mode: Gymnasium's AutoresetMode (or its name): NEXT_STEP (default, as
            Gymnasium's own vector envs), SAME_STEP (the final observations in
            info["final_obs"], as the trainers use it) or DISABLED (reset ended environments
            with reset(options={"reset_mask": mask})). The engine implements all three, on
            the CPU and the GPU.
        seed: the seed of the first reset() without one (default: a random seed).
        threads: CPU threads (0 = all).
        **env_params: `batchpole train`'s environment keys: reward ("v1", "notebook",
            "sutton-barto"), integrator ("euler", "semi-implicit"), theta_threshold (radians) or
            theta_threshold_deg, x_threshold, max_episode_steps (0 = no limit; default 500).

    Arrays: on the CPU, step() and reset() return NumPy arrays that the engine wrote in place
    (nothing is copied) and that are never written again: every array stays valid and unchanged
    for as long as it is referenced, after any number of further steps. With device="cuda"
    they are device arrays that speak DLPack (torch.from_dlpack(obs) shares their memory),
    complete when step() returns. Actions may be a NumPy array, any DLPack producer (a torch
    tensor, on the host or on the environment's GPU) or a sequence, of any integer dtype or
    bool, shape (num_envs,), values 0 and 1; int32 arrays on the environment's device are read
    in place.

    Seeding: reset(seed=s) starts episode 0 of every environment from the draw (s, env, 0);
    each later episode of an environment draws from its episode number, so a seed gives the
    same episodes whatever the autoreset mode, batch size, thread count or device.
    reset() without a seed starts every environment's next episode.
    """

    def __init__(self, num_envs: int = 1, *, device: str = "cpu", precision: str = "f32",
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 seed: int | None = None, threads: int = 0, render_mode: str | None = None,
                 **env_params: Any) -> None:
        num_envs = _integer("num_envs", num_envs)
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        device = _word("device", device, _DEVICES)
        precision = _word("precision", precision, _PRECISIONS)
        mode = _autoreset_mode(autoreset_mode)
        threads = _integer("threads", threads)
        if render_mode is not None:
            raise ValueError(f"batchpole does not render (render_mode={render_mode!r})")
        self._initial_seed = _seed(seed)
        self._core = _batchpole.Env(num_envs, device, threads, precision, _MODE_NAMES[mode],
                                    env_params)
        self._same_step = mode == AutoresetMode.SAME_STEP
        self._on_cuda = self._core.device_kind == "cuda"
        self._stream = self._core.stream
        self._seeded = False

        self.num_envs = num_envs
        self.render_mode = None
        self.metadata = {"autoreset_mode": mode, "render_modes": []}
        params = self._core.params
        # Gymnasium's bounds: twice the thresholds, so a failing observation is still inside.
        high = np.array([params["x_threshold"] * 2, np.inf, params["theta_threshold"] * 2,
                         np.inf], dtype=np.float32)
        self.single_observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    # ---- Gymnasium's interface ----------------------------------------------------------------

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Starts episodes: all from `seed`, the next of each, or those of options["reset_mask"].

        options["reset_mask"] (a bool NumPy array, one per environment) restarts only the
        environments where it is True (their next episode); the others keep their state.
        """
        core = self._live()
        seed = _seed(seed)
        mask = None
        if options is not None:
            if not isinstance(options, dict):
                raise TypeError(f"options must be a dict, got {type(options).__name__}")
            unknown = set(options) - {"reset_mask"}
            if unknown:
                raise ValueError(f"unknown reset options {sorted(unknown)} (batchpole takes "
                                 "'reset_mask')")
            mask = options.get("reset_mask")
        super().reset(seed=seed)
        if mask is not None:
            if not isinstance(mask, np.ndarray):
                raise TypeError(f"options['reset_mask'] must be a NumPy array, got "
                                f"{type(mask).__name__}")
            if mask.dtype != np.bool_:
                raise TypeError(f"options['reset_mask'] must have dtype bool, got {mask.dtype}")
            if mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must have shape ({self.num_envs},), "
                                 f"got {mask.shape}")
            if seed is not None:
                raise ValueError("reset() takes a seed for every environment or a reset_mask, "
                                 "not both (a seed restarts all environments)")
            if not self._seeded:
                raise RuntimeError("reset() with a reset_mask needs a reset() of every "
                                   "environment first")
            obs = core.next_episode(mask)
        elif seed is not None or not self._seeded:
            if seed is None:
                seed = self._initial_seed
                if seed is None:
                    seed = secrets.randbits(64)
            obs = core.reset(seed)
            self._seeded = True
        else:
            obs = core.next_episode(None)
        return obs, {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        core = self._live()
        if not self._seeded:
            raise RuntimeError("call reset() before step()")
        if isinstance(actions, np.ndarray):
            if actions.dtype.kind not in "biu":
                raise TypeError(f"actions must be integers (any int or uint dtype) or bool, got "
                                f"{actions.dtype}")
        elif not hasattr(actions, "__dlpack__"):
            actions = np.asarray(actions)
            if actions.dtype.kind not in "biu":
                raise TypeError(f"actions must be integers (any int or uint dtype) or bool, got "
                                f"{actions.dtype}")
        elif self._on_cuda and actions.__dlpack_device__()[0] == _DL_CUDA:
            # DLPack's consumer side: the producer orders its pending writes before our stream.
            actions = actions.__dlpack__(stream=self._stream)
        out = core.step(actions)
        if self._same_step:
            obs, reward, terminated, truncated, final_obs, ended = out
            # Gymnasium's SAME_STEP keys, on every step; rows of final_obs where ended is
            # False hold zeros.
            info = {"final_obs": final_obs, "_final_obs": ended, "final_info": {},
                    "_final_info": ended}
            return obs, reward, terminated, truncated, info
        obs, reward, terminated, truncated = out
        return obs, reward, terminated, truncated, {}

    def close_extras(self, **kwargs: Any) -> None:
        self._core = None

    # ---- beyond Gymnasium ---------------------------------------------------------------------

    def get_state(self) -> dict[str, np.ndarray]:
        """Every environment's physical state and elapsed steps, as host arrays of their own.

        Returns {"state": (num_envs, 4) float64 (x, x_dot, theta, theta_dot),
        "elapsed_steps": (num_envs,) int64}.
        """
        state, elapsed = self._live().get_state()
        return {"state": state, "elapsed_steps": elapsed}

    def set_state(self, state: Any, elapsed_steps: Any = None) -> None:
        """Sets every environment's physical state, so that the next step starts from it.

        state: (num_envs, 4) numbers (or get_state()'s dict); elapsed_steps: (num_envs,)
        integers in [0, max_episode_steps), or None for 0 (a fresh episode from that state).
        Clears pending NEXT_STEP resets. Each environment's episode counter is kept, so its
        later episodes still start from their own draws.
        """
        core = self._live()
        if isinstance(state, dict):
            if elapsed_steps is None:
                elapsed_steps = state.get("elapsed_steps")
            state = state["state"]
        state = np.asarray(state)
        if state.dtype.kind not in "biuf":
            raise TypeError(f"state must hold real numbers, got dtype {state.dtype}")
        if state.shape != (self.num_envs, 4):
            raise ValueError(f"state must have shape ({self.num_envs}, 4), got {state.shape}")
        state = np.ascontiguousarray(state, dtype=np.float64)
        elapsed = None
        if elapsed_steps is not None:
            elapsed = np.asarray(elapsed_steps)
            if elapsed.dtype.kind not in "iu":
                raise TypeError(f"elapsed_steps must be integers, got dtype {elapsed.dtype}")
            if elapsed.shape != (self.num_envs,):
                raise ValueError(f"elapsed_steps must have shape ({self.num_envs},), got "
                                 f"{elapsed.shape}")
            elapsed = np.ascontiguousarray(elapsed, dtype=np.int64)
        core.set_state(state, elapsed)
        self._seeded = True

    @property
    def device(self) -> str:
        """Where the environments run: "cpu" or "cuda"."""
        return self._live().device_kind

    @property
    def device_description(self) -> str:
        return self._live().device

    @property
    def precision(self) -> str:
        return self._live().precision

    @property
    def env_params(self) -> dict[str, Any]:
        """The environment's parameters (thresholds in radians)."""
        return dict(self._live().params)

    def _live(self) -> Any:
        if self._core is None:
            raise RuntimeError("the environment is closed")
        return self._core


class CartPoleEnv(gymnasium.Env):
    """One CartPole-v1 environment on batchpole's engine (gymnasium.make("batchpole/CartPole-v1")).

    As Gymnasium's CartPoleEnv, it has no time limit of its own (max_episode_steps=0): make()
    wraps it in TimeLimit(500). Keywords as VectorEnv's.
    """

    metadata = {"render_modes": [], "render_fps": 50}

    def __init__(self, *, device: str = "cpu", precision: str = "f32", threads: int = 1,
                 render_mode: str | None = None, max_episode_steps: int = 0,
                 **env_params: Any) -> None:
        self._vec = VectorEnv(1, device=device, precision=precision,
                              autoreset_mode=AutoresetMode.DISABLED, threads=threads,
                              render_mode=render_mode, max_episode_steps=max_episode_steps,
                              **env_params)
        if self._vec.device != "cpu":
            # One environment's step is a kernel launch and a copy back: the CPU is faster, and
            # Gymnasium's single-env checks expect NumPy.
            raise ValueError("CartPoleEnv runs on the CPU; use VectorEnv for the GPU")
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self.render_mode = None

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}")
        obs, _ = self._vec.reset(seed=seed)
        return obs[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, _ = self._vec.step(np.asarray(action).reshape(1))
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    def get_state(self) -> dict[str, np.ndarray]:
        return self._vec.get_state()

    def set_state(self, state: Any, elapsed_steps: Any = None) -> None:
        self._vec.set_state(np.asarray(state, dtype=np.float64).reshape(1, 4),
                            None if elapsed_steps is None else np.asarray(elapsed_steps).reshape(1))

    def close(self) -> None:
        self._vec.close()
