#!/usr/bin/env python3
"""Damaged checkpoints and malformed configurations through the command line.

Each case must end with exit status 2 and a one-line "batchpole: error: ..." message (or
CLI11's usage message), never a crash or a signal, within a time limit and a memory limit
measured on the process itself (ru_maxrss of wait4). The in-process tests
(test_checkpoint_fuzz.cpp, test_config_fuzz.cpp) cover the same ground more densely; these
check that what the library refuses reaches the user as a refusal.

usage: cli_fuzz.py PATH/TO/batchpole
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

MAGIC = b"BPCKPT\r\n"
TIME_LIMIT_S = 60
MEMORY_LIMIT_MIB = 1024  # a sanitizer build takes a few hundred MiB for a short run

failures = []
cases = 0


def fnv1a(data):
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def envelope(payload):
    head = MAGIC + struct.pack("<IQ", 2, len(payload))
    return head + payload + struct.pack("<Q", fnv1a(head + payload))


def write(path, data, mode="wb", **kwargs):
    """A new file each time: ext4 flushes a truncated and rewritten file when it is closed."""
    if os.path.exists(path):
        os.remove(path)
    with open(path, mode, **kwargs) as f:
        f.write(data)


def run(args, what, want=2, memory_mib=MEMORY_LIMIT_MIB):
    """Runs batchpole with args; checks exit status, message, time and peak memory."""
    global cases
    cases += 1
    t0 = time.monotonic()
    with open(os.path.join(work, "err.txt"), "wb") as err:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        deadline = t0 + TIME_LIMIT_S
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.monotonic() > deadline:
                p.kill()
                pid, status, usage = os.wait4(p.pid, 0)
                failures.append(f"{what}: still running after {TIME_LIMIT_S} s")
                return
            time.sleep(0.01)
    secs = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    mib = usage.ru_maxrss / 1024
    message = open(os.path.join(work, "err.txt"), errors="replace").read()
    if code != want:
        failures.append(f"{what}: exit {code}, expected {want}: {message.strip()[:300]}")
    elif want == 2 and "error" not in message.lower() and "run with --help" not in message.lower():
        failures.append(f"{what}: exit 2 without a message")
    if mib > memory_mib:
        failures.append(f"{what}: {mib:.0f} MiB at peak (limit {memory_mib})")
    return message, secs, mib


def layout(payload):
    """Offsets of the payload's fields, as checkpoint.cpp writes them: name -> (offset, kind)."""
    at = 0
    fields = {}

    def scalar(name, fmt):
        nonlocal at
        fields[name] = (at, fmt)
        at += struct.calcsize(fmt)
        return struct.unpack_from("<" + fmt, payload, fields[name][0])[0]

    def vec(name, size):
        nonlocal at
        n = struct.unpack_from("<Q", payload, at)[0]
        fields[name] = (at, "Q")
        at += 8 + n * size

    vec("config", 1)
    vec("extra", 1)
    vec("params", 4)
    for i in range(scalar("optimizers", "I")):
        scalar(f"opt{i}.steps", "q")
        vec(f"opt{i}.moments", 4)
    scalar("precision", "B")
    agents = struct.unpack_from("<Q", payload, at)[0]
    vec("seeds", 8)
    scalar("steps_taken", "Q")
    for k in ("x", "x_dot", "theta", "theta_dot"):
        vec(k, 8)
    vec("length", 4)
    vec("ret", 4)
    vec("episode", 4)
    scalar("run_updates", "q")
    for a in range(agents):  # agent 0's counters under the plain names
        p = "" if a == 0 else f"agent{a}."
        for k, f in (("updates", "q"), ("env_steps", "q"), ("episodes", "q"), ("act_steps", "Q"),
                     ("active", "B")):
            scalar(p + k, f)
        vec(p + "recent", 72)
    assert at == len(payload), "the layout here is out of date"
    return fields


def checkpoints(bp):
    good_dir = os.path.join(work, "good")
    subprocess.run([bp, "train", "--device", "cpu", "--envs", "4", "--hidden", "8",
                    "--updates", "6", "--out", good_dir, "-q"], check=True)
    good = open(os.path.join(good_dir, "checkpoint.bin"), "rb").read()
    payload = good[20:-8]
    fields = layout(payload)
    damaged = {}
    rng = random.Random(5)
    for n in sorted({0, 1, 7, 8, 19, 20, 21, 28, len(good) - 9, len(good) - 8, len(good) - 1}
                    | {rng.randrange(len(good)) for _ in range(12)}):
        damaged[f"cut to {n} bytes"] = good[:n]
    for i in sorted({0, 8, 12, 19, 20, len(good) - 1} | {rng.randrange(len(good)) for _ in range(12)}):
        b = bytearray(good)
        b[i] ^= 0x40
        damaged[f"byte {i} flipped"] = bytes(b)
    damaged["appended"] = good + b"\0"
    damaged["zeros"] = bytes(len(good))
    damaged["random"] = bytes(rng.randrange(256) for _ in range(len(good)))
    damaged["random behind the magic"] = MAGIC + damaged["random"]
    damaged["random payload, valid checksum"] = envelope(damaged["random"])
    damaged["trailing bytes, valid checksum"] = envelope(payload + b"\x01")
    damaged["declares 2^62 bytes"] = MAGIC + struct.pack("<IQ", 2, 1 << 62)
    # Fields rewritten, checksum recomputed.
    for name, value in (("updates", -5), ("updates", 2**63 - 1), ("env_steps", 2**62 + 1),
                        ("episodes", -1), ("opt0.steps", 2**63 - 1), ("opt0.steps", -1),
                        ("params", 2**40), ("x", 3), ("recent", 0), ("precision", 7),
                        ("seeds", 2), ("active", 3), ("run_updates", -1)):
        off, fmt = fields[name]
        p = bytearray(payload)
        struct.pack_into("<" + fmt, p, off, value)
        damaged[f"{name} = {value}"] = envelope(bytes(p))
    off, _ = fields["extra"]
    n = struct.unpack_from("<Q", payload, off)[0]
    for text in (b"[]", b"{\"wall_s\": \"x\"}", b"{\"solved\": 5}", b"not json",
                 b"{\"wall_s\": 1, \"sweep\": \"\", \"groups\": 1, \"agents\": []}",
                 b"{\"wall_s\": 1, \"sweep\": \"\", \"groups\": 1, "
                 b"\"agents\": [{\"stop\": \"x\", \"solved\": null}]}"):
        p = payload[:off] + struct.pack("<Q", len(text)) + text + payload[off + 8 + n:]
        damaged[f"run information {text!r}"] = envelope(p)
    off, _ = fields["config"]
    n = struct.unpack_from("<Q", payload, off)[0]
    for text in (b"{", b"[]", b"{\"algo\": 5}", b"{\"envs\": -1}", b"{\"no_such_key\": 1}"):
        p = payload[:off] + struct.pack("<Q", len(text)) + text + payload[off + 8 + n:]
        damaged[f"configuration {text!r}"] = envelope(p)

    # The caller's run information is train's to check; eval has no use for it.
    eval_takes = {w for w in damaged if w.startswith("run information")}
    for what, data in damaged.items():
        d = os.path.join(work, "damaged")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "checkpoint.bin")
        write(path, data)
        for f in ("metrics.csv", "summary.json"):
            if os.path.exists(os.path.join(d, f)):
                os.remove(os.path.join(d, f))
        run([bp, "eval", "--checkpoint", path, "--device", "cpu", "--episodes", "2"],
            f"eval, {what}", want=0 if what in eval_takes else 2)
        run([bp, "train", "--device", "cpu", "--resume", d, "--updates", "8", "-q"],
            f"resume, {what}")
        if os.path.exists(os.path.join(d, "summary.json")):
            failures.append(f"resume, {what}: wrote a summary")

    # Files no checkpoint reader should read to the end, or into memory: refused at once, or
    # after a pass through a fixed buffer (the 256 MiB file, sparse: no disk used).
    sparse = os.path.join(work, "sparse.bin")
    size = 256 << 20
    with open(sparse, "wb") as f:
        f.write(MAGIC + struct.pack("<IQ", 2, size - 28))
        f.truncate(size)
    for what, path in (("/dev/zero", "/dev/zero"), ("/dev/urandom", "/dev/urandom"),
                       ("a directory", work), ("a 256 MiB file with a valid header", sparse)):
        # On the CPU: with --device auto a CUDA build loads its plugin (cuBLAS: 200 MiB mapped)
        # before the file is read, which is not the reader's memory.
        r = run([bp, "eval", "--device", "cpu", "--checkpoint", path], f"eval {what}",
                memory_mib=128)
        if r is not None:
            print(f"  eval {what}: refused in {r[1]:.2f} s, {r[2]:.0f} MiB at peak")
    os.remove(sparse)


def configs(bp):
    base = {"algo": "a2c", "envs": 8, "n_steps": 5, "updates": 1, "seed": 3}
    bad = [
        "", "{", "[]", "null", "1", "{\"envs\": 8,}", "{\"envs\": 8}{}", "{\"envs\": 08}",
        "{\"envs\": NaN}", "{\"envs\": Infinity}", "{\"lr\": 1e400}", "\xef\xbb\xbf{}x",
        "{\"" + "k" * 100000 + "\": 1}", "[" * 100000 + "]" * 100000,
        "{\"out\": " + "[" * 100000 + "}",
    ]
    for key, values in {
        "updates": [-1, 1.5, "1", True, None], "env_steps": [-100], "checkpoint_every": [-5],
        "seconds": [-1, "inf"], "threads": [100000, -1, 1025, 2.5],
        "n_steps": [4294967297, -1, 1000001], "hidden": [4294967360, 0, 65537],
        "envs": [32.9, 0, -1, 2**31, 9000000000000000000, 2**64], "seed": [-1, 1.5, 2**64],
        "algo": [5, "sarsa", None], "lr": [0, -1e-3, "fast", 1e-50], "gamma": [0, 1.5],
        "precision": ["f16"], "reward": ["x"], "theta_threshold_deg": [0, 181],
        "max_episode_steps": [-1, 2**31], "chunk_rows": [-1, 2**40], "device": ["tpu", 1],
        "preset": ["x"], "out": [5, []], "resume": [5], "quiet": ["yes", 1],
        "no_such_key": [1],
    }.items():
        for v in values:
            bad.append(json.dumps({**base, key: v}))
    # Sizes that pass their own ranges but not together or not in memory.
    bad.append(json.dumps({**base, "algo": "reinforce", "envs": 2**31 - 1,
                           "max_episode_steps": 2**31 - 1}))
    bad.append(json.dumps({**base, "algo": "reinforce", "max_episode_steps": 0}))
    cfg = os.path.join(work, "cfg.json")
    for i, text in enumerate(bad):
        write(cfg, text, "w", encoding="utf-8", errors="surrogateescape")
        r = run([bp, "train", "--device", "cpu", "--config", cfg, "--out",
                 os.path.join(work, f"cfgrun{i}"), "-q"], f"--config {text[:80]}")
        if os.path.exists(os.path.join(work, f"cfgrun{i}", "metrics.csv")):
            failures.append(f"--config {text[:80]}: a refused run wrote metrics")
    # Files that are not configurations: refused before they are read.
    big = os.path.join(work, "big.json")
    write(big, "{" + " " * (2 << 20) + "}", "w")
    fifo = os.path.join(work, "fifo.json")
    os.mkfifo(fifo)
    for what, path in (("a directory", work), ("/dev/zero", "/dev/zero"),
                       ("/dev/urandom", "/dev/urandom"), ("a FIFO", fifo), ("2 MiB", big),
                       ("no file", os.path.join(work, "none.json"))):
        run([bp, "train", "--device", "cpu", "--config", path, "--out",
             os.path.join(work, "cfgrun"), "-q"], f"--config {what}", memory_mib=256)
    # The same through flags, and flags the other commands take.
    flags = [
        ["train", "--updates", "-1"], ["train", "--envs", "32.9"], ["train", "--envs", "0x20"],
        ["train", "--seed", "-1"], ["train", "--seed", "1.5"], ["train", "--lr", "nan"],
        ["train", "--lr", "inf"], ["train", "--lr", ""], ["train", "--hidden", "4294967360"],
        ["train", "--n-steps", "4294967297"], ["train", "--threads", "1025"],
        ["train", "--envs", "9000000000000000000"], ["train", "--checkpoint-every", "-5"],
        ["train", "--env-steps", " -100"], ["train", "--target-return", "1e999"],
        ["bench", "env", "--threads", "100000"], ["bench", "env", "--envs", "0"],
        ["bench", "env", "--envs", "64.5"], ["bench", "env", "--steps", "4294967297"],
        ["bench", "env", "--repeats", "0"], ["bench", "env", "--envs", "9000000000000000000"],
        ["bench", "nn", "--batch", "99999999999"], ["bench", "nn", "--batch", "2000000000"],
        ["bench", "nn", "--threads", "50000"], ["bench", "nn", "--repeats", "-1"],
        ["bench", "train", "--threads", "100000"], ["bench", "train", "--envs", "2147483648"],
        ["bench", "train", "--n-steps", "-1"], ["bench", "train", "--chunk-rows", "99999999999"],
        ["eval", "--checkpoint", work], ["eval", "--checkpoint", os.path.join(work, "none.bin")],
        ["eval", "--checkpoint", "/dev/null"], ["eval", "--threads", "2000", "--checkpoint", "x"],
        ["eval", "--episodes", "0", "--checkpoint", "x"],
        ["eval", "--seed", "-1", "--checkpoint", "x"], ["bench", "env", "--seed", "1.5"],
        ["bench", "env", "--seed", "-1"], ["bench", "env", "--repeats", "0x10"],
        ["compare", "--envs", "0"], ["compare", "--steps", "4294967297"],
        ["compare", "--threads", "1025"], ["compare", "--seed", "-1"],
    ]
    for f in flags:
        shutil.rmtree(os.path.join(work, "flagrun"), ignore_errors=True)
        args = [bp] + f
        if f[0] == "train":
            args += ["--device", "cpu", "--out", os.path.join(work, "flagrun"), "-q"]
            if "--updates" not in f:
                args += ["--updates", "1"]
        elif f[0] == "bench":
            args += ["--device", "cpu"]
        run(args, " ".join(f))
        if os.path.exists(os.path.join(work, "flagrun", "metrics.csv")):
            failures.append(f"{' '.join(f)}: a refused run wrote metrics")


if __name__ == "__main__":
    bp = sys.argv[1]
    work = tempfile.mkdtemp(prefix="batchpole_cli_fuzz_")
    try:
        checkpoints(bp)
        configs(bp)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    print(f"{cases - len(failures)} of {cases} refusals clean")
    sys.exit(1 if failures else 0)
