#!/usr/bin/env python3
"""An independent DQN in NumPy on Gymnasium's CartPole-v1: the cross-check behind the choice
of batchpole's DQN loss (EXPERIMENTS.md, "Exercise 3").

CleanRL's CartPole settings on one environment: a 4-120-84-2 ReLU network, Adam (lr 2.5e-4),
a replay buffer of 10,000 transitions filled with random actions for the first 10,000 steps,
then one gradient step on 128 uniformly drawn transitions every 10 env steps, the target
network copied every 500 env steps, epsilon falling linearly from 1 to 0.05 over 250,000 steps,
gamma 0.99; terminated transitions do not bootstrap. What varies (--loss, --clip, --double): the
squared TD error or the Huber loss with delta 1, clipping the gradient's norm to 10, and the
double-DQN target.

Prints every 10,000 steps: env steps, episodes, the mean return of the last 100 episodes and
the mean |TD error| of the last minibatch. Needs numpy and gymnasium; slow (NumPy, one env).

  scripts/numpy_dqn.py --seed 1 --steps 80000 --loss squared
  scripts/numpy_dqn.py --seed 1 --steps 80000 --loss huber --clip --double
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--loss", choices=["squared", "huber"], default="squared")
    ap.add_argument("--clip", action="store_true", help="clip the gradient's norm to 10")
    ap.add_argument("--double", action="store_true", help="double-DQN targets")
    ap.add_argument("--lr", type=float, default=2.5e-4)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    sizes = [4, 120, 84, 2]
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(n_in)  # PyTorch's nn.Linear initialisation
        params += [rng.uniform(-bound, bound, (n_in, n_out)), rng.uniform(-bound, bound, n_out)]

    def forward(p, x):
        acts = [x]
        for layer in range(0, len(p), 2):
            x = x @ p[layer] + p[layer + 1]
            if layer + 2 < len(p):
                x = np.maximum(x, 0)
            acts.append(x)
        return x, acts

    def backward(p, acts, d):
        grads = [None] * len(p)
        for layer in range(len(p) - 2, -1, -2):
            grads[layer] = acts[layer // 2].T @ d
            grads[layer + 1] = d.sum(0)
            if layer > 0:
                d = (d @ p[layer].T) * (acts[layer // 2] > 0)
        return grads

    target = [w.copy() for w in params]
    m = [np.zeros_like(w) for w in params]
    v = [np.zeros_like(w) for w in params]
    adam_t = 0
    cap, batch = 10_000, 128
    obs_b = np.zeros((cap, 4), np.float32)
    next_b = np.zeros((cap, 4), np.float32)
    act_b = np.zeros(cap, int)
    rew_b = np.zeros(cap, np.float32)
    term_b = np.zeros(cap, np.float32)
    ptr = size = 0
    env = gym.make("CartPole-v1")
    s, _ = env.reset(seed=int(rng.integers(1 << 30)))
    returns, ep_return, err = [], 0.0, np.zeros(1)
    rows = np.arange(batch)
    for step in range(args.steps):
        eps = max(0.05, 1 - (1 - 0.05) * step / 250_000)
        a = int(rng.integers(2)) if rng.random() < eps else int(np.argmax(forward(params, s[None])[0][0]))
        s2, r, term, trunc, _ = env.step(a)
        ep_return += r
        obs_b[ptr], act_b[ptr], rew_b[ptr], next_b[ptr], term_b[ptr] = s, a, r, s2, float(term)
        ptr, size = (ptr + 1) % cap, min(size + 1, cap)
        s = s2
        if term or trunc:
            returns.append(ep_return)
            ep_return = 0.0
            s, _ = env.reset()
        if step >= 10_000 and (step + 1) % 10 == 0:
            idx = rng.integers(0, size, batch)
            q_next_online = forward(params, next_b[idx])[0]
            q_next_target = forward(target, next_b[idx])[0]
            best = (q_next_target[rows, q_next_online.argmax(1)] if args.double
                    else q_next_target.max(1))
            y = rew_b[idx] + 0.99 * (1 - term_b[idx]) * best
            q, acts = forward(params, obs_b[idx])
            err = q[rows, act_b[idx]] - y
            d_q = np.zeros_like(q)
            d_q[rows, act_b[idx]] = (2 * err if args.loss == "squared" else np.clip(err, -1, 1)) / batch
            grads = backward(params, acts, d_q)
            norm = np.sqrt(sum((g * g).sum() for g in grads))
            scale = min(1.0, 10 / (norm + 1e-6)) if args.clip else 1.0
            adam_t += 1
            for i, g in enumerate(grads):
                g = g * scale
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                params[i] -= (args.lr / (1 - 0.9 ** adam_t) * m[i] /
                              (np.sqrt(v[i] / (1 - 0.999 ** adam_t)) + 1e-8))
            if (step + 1) % 500 == 0:
                target = [w.copy() for w in params]
        if (step + 1) % 10_000 == 0:
            recent = np.mean(returns[-100:]) if returns else 0.0
            print(f"{step + 1} steps, {len(returns)} episodes, mean return {recent:.1f}, "
                  f"mean |TD error| {float(np.abs(err).mean()):.3g}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
