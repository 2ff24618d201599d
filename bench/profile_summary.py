"""Summarise py-spy collapsed stacks: where the connector's CPU time goes.

``python -m bench.profile_summary FILE [--top N]`` prints the share of samples per stack root (the main
thread vs. the others), the functions with the most *self* time (the frame on top of the stack) and the
most *inclusive* time (anywhere on the stack), with line numbers dropped so a function's lines add up.
py-spy samples only threads that are running (not idle), so the shares are shares of CPU time.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def _frame_name(frame: str) -> str:
    # "route (connector/rules/router.py:140)" -> "route (connector/rules/router.py)"
    frame = _LINE.sub(")", frame.strip())
    return frame.replace("/work/main/", "").replace(".venv/lib/python3.11/site-packages/", "")


def summarise(path: Path, top: int = 25) -> str:
    threads: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        names = [_frame_name(f) for f in frames[1:]]
        if names:
            self_time[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    if total == 0:
        return f"{path}: no samples"
    out = [f"{path.name}: {total} samples"]
    out.append("\nstack roots (share of samples):")
    out += [f"  {n / total:6.1%}  {t}" for t, n in threads.most_common(8)]
    out.append(f"\ntop {top} by self time:")
    out += [f"  {n / total:6.1%}  {f}" for f, n in self_time.most_common(top)]
    out.append(f"\ntop {top} by inclusive time:")
    out += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("file", type=Path)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    print(summarise(args.file, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
