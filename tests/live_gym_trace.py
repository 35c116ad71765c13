#!/usr/bin/env python3
"""Drive the real Gymnasium CartPole-v1 and write every step it took, for batchpole's live
conformance test (tests/test_conformance.cpp, LiveGymnasiumTrace).

Start states are chosen here (set on the unwrapped env, float64), actions come from a
balancing controller with random deviations or from coin flips, and at least one episode runs
into the 500-step time limit. Each row holds the exact float64 state before the step
(round-trip repr), the steps already taken in the episode, the action, and what Gymnasium
returned: the next float64 state, the float32 observation, terminated and truncated.

usage: live_gym_trace.py OUT.csv [--seed S]
"""
import argparse
import csv
import sys

import gymnasium as gym
import numpy as np


def controller(obs, rng, noise):
    x, x_dot, theta, theta_dot = obs
    action = int(theta + 0.5 * theta_dot + 0.01 * x + 0.05 * x_dot > 0)
    return 1 - action if rng.random() < noise else action


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    env = gym.make("CartPole-v1")
    rows = []
    truncations = 0
    # (start-state half-width, controller noise or None for coin flips)
    episodes = [(0.05, 0.1), (0.05, 0.1), (0.2, None), (0.05, None), (0.5, None), (0.05, 0.2),
                (0.1, None), (0.05, 0.1)]
    for width, noise in episodes:
        env.reset(seed=int(rng.integers(1 << 31)))
        start = rng.uniform(-width, width, size=4)
        env.unwrapped.state = np.array(start, dtype=np.float64)
        obs = start.astype(np.float32)
        for elapsed in range(10_000):
            state = np.array(env.unwrapped.state, dtype=np.float64)
            action = int(rng.integers(2)) if noise is None else controller(obs, rng, noise)
            obs, reward, terminated, truncated, _ = env.step(action)
            nstate = np.array(env.unwrapped.state, dtype=np.float64)
            rows.append([repr(float(v)) for v in state] + [elapsed, action] +
                        [repr(float(v)) for v in nstate] + [reward, int(terminated),
                        int(truncated)] + [repr(float(v)) for v in obs])
            truncations += int(truncated)
            if terminated or truncated:
                break
    if truncations == 0:
        sys.exit("no episode reached the time limit; pick another --seed")
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x", "x_dot", "theta", "theta_dot", "elapsed", "action", "nx", "nx_dot",
                    "ntheta", "ntheta_dot", "reward", "terminated", "truncated", "nobs_x",
                    "nobs_x_dot", "nobs_theta", "nobs_theta_dot"])
        w.writerows(rows)
    print(f"gymnasium {gym.__version__}: {len(rows)} steps, {truncations} truncated, "
          f"written to {args.out}")


if __name__ == "__main__":
    main()
