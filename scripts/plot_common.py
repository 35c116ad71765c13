"""Helpers shared by the subcommands of scripts/plot.py: reading CSV and JSON inputs, run
specifications (LABEL=GLOB), number formatting and writing PNG files."""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Collection, Sequence

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf"]


class InputError(Exception):
    """A missing or malformed input: reported on stderr, exit status 2."""


def import_pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or an InputError saying how to install it."""
    try:
        import matplotlib
    except ImportError as e:
        raise InputError(f"matplotlib is not installed ({e}); "
                         "pip install -r bench/requirements.txt") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def import_numpy() -> Any:
    """numpy, or an InputError saying how to install it."""
    try:
        import numpy as np
    except ImportError as e:
        raise InputError(f"numpy is not installed ({e}); "
                         "pip install -r bench/requirements.txt") from e
    return np


def read_table(path: Path, required: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The header and the non-blank data rows of a CSV file, as text.

    Fails (InputError) when the file cannot be read, a `required` column is missing, there is no
    data row, or a row's field count differs from the header's."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from e
    if not rows:
        raise InputError(f"{path} is empty")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} "
                         f"(has: {', '.join(header)})")
    body = [r for r in rows[1:] if r and any(c.strip() for c in r)]
    if not body:
        raise InputError(f"{path} has a header but no data rows")
    for lineno, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise InputError(f"{path}:{lineno}: {len(r)} fields, header has {len(header)}")
    return header, body


def to_columns(header: Sequence[str], rows: Sequence[Sequence[str]],
               text: Collection[str] = ()) -> dict[str, list[Any]]:
    """Rows as columns: floats (empty or non-numeric cells become NaN), except the columns named
    in `text`, which keep their stripped text."""
    cols: dict[str, list[Any]] = {h: [] for h in header}
    for r in rows:
        for h, v in zip(header, r):
            v = v.strip()
            if h in text:
                cols[h].append(v)
                continue
            try:
                cols[h].append(float(v) if v else math.nan)
            except ValueError:
                cols[h].append(math.nan)
    return cols


def read_csv(path: Path, required: Sequence[str]) -> dict[str, list[float]]:
    """Columns of a CSV with a header row as lists of floats (empty cells become NaN)."""
    header, body = read_table(path, required)
    return to_columns(header, body)


def read_json(path: Path) -> Any:
    """A JSON file's value; InputError when it cannot be read or parsed."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON: {e}") from e


def parse_run_spec(spec: str) -> tuple[str, str]:
    """LABEL=GLOB (or just GLOB: the label is the glob's directory name without -s*).

    Split at the last '=', so a label may contain one ("n=5=runs/n5-s*"); a glob may not. An
    empty label ("=GLOB") or "-" leaves a sweep point's curve or row named by its values only."""
    if "=" in spec:
        label, _, pattern = spec.rpartition("=")
        label, pattern = label.strip(), pattern.strip()
        if not pattern:
            raise argparse.ArgumentTypeError(f"expected LABEL=GLOB, got {spec!r}")
        return label, pattern
    return default_label(spec), spec


def default_label(pattern: str) -> str:
    """The label of a glob given without one: its directory name without the seed part."""
    name = Path(pattern.rstrip("/")).name
    return re.sub(r"[-_]?s?\*.*$", "", name) or name


def run_name(label: str, pattern: str) -> str:
    """How messages name a --run: its label, or "=GLOB" when the label is empty."""
    return label or f"={pattern}"


def expand_runs(label: str, pattern: str, need: str) -> list[Path]:
    """Run directories matching `pattern` that hold the file `need` (sorted)."""
    label = run_name(label, pattern)
    matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern)))
    if not matches:
        raise InputError(f"--run {label}: {pattern!r} matches nothing")
    runs = []
    for m in matches:
        d = m.parent if m.is_file() else m
        if (d / need).is_file():
            runs.append(d)
    if not runs:
        raise InputError(f"--run {label}: none of the {len(matches)} path(s) matching "
                         f"{pattern!r} holds {need}")
    return runs


def save(fig: Any, out: Path) -> None:
    """Write a PNG with a 256-colour palette (line plots look the same, files are ~3x smaller)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    try:
        from PIL import Image
        img = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                                      dither=Image.Dither.NONE)
        data = io.BytesIO()
        img.save(data, format="PNG", optimize=True)
        payload = data.getvalue()
    except (ImportError, AttributeError, OSError):  # Pillow missing or old: keep matplotlib's
        payload = buf.getvalue()
    try:
        out.write_bytes(payload)
    except OSError as e:
        raise InputError(f"cannot write {out}: {e.strerror or e}") from e
    print(f"wrote {out} ({len(payload) / 1024:.0f} KB)")


def fmt_num(x: float | None) -> str:
    """A short human-readable number: 1.23M, 562k, 475, 47.5, 4.75; '-' for None/NaN/inf."""
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "-"
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.2f}M"
    if a >= 1e4:
        return f"{x / 1e3:.0f}k"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"
