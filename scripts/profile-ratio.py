#!/usr/bin/env python3
"""LISA's step time against FT's from `lisa train --profile` JSONL rows.

Each argument pair is one FT run and one LISA run of the same model and
shape (scripts/bench-profile.sh makes them). Per pair it prints:
  measured    LISA's profiled ms per step over FT's
  fwd-scaled  the same with LISA's time scaled by FT's forward over LISA's
              forward: both run the identical forward, so the scale takes
              out the machine's drift between the two runs
  skipped     what FT spends on work LISA does not do (dW ops of the blocks
              that do not train, the rest of AdamW), as a share of FT's step
and the medians over the pairs.
"""
import json
import statistics
import sys


def rows(path):
    with open(path) as f:
        return [r for r in map(json.loads, f) if r.get("event") == "profile"]


def total(rs, pass_=None):
    return sum(r["ms_per_step"] for r in rs if pass_ is None or r["pass"] == pass_)


def skipped_share(ft, lisa):
    """FT's ms on ops LISA's frozen path leaves out, over the blocks that do
    not train, plus the part of FT's optimizer LISA's does not run."""
    frozen_ops = {r["index"] for r in lisa if r["path"] == "block_frozen"}
    frozen_calls = max((r["calls_per_step"] for r in lisa if r["path"] == "block_frozen"), default=0)
    ft_blocks = max((r["calls_per_step"] for r in ft if r["path"] == "block_active"), default=1)
    dw = sum(r["ms_per_step"] for r in ft if r["path"] == "block_active" and r["index"] not in frozen_ops)
    opt_ft = sum(r["ms_per_step"] for r in ft if r["path"] == "optimizer")
    opt_lisa = sum(r["ms_per_step"] for r in lisa if r["path"] == "optimizer")
    scale = total(ft, "fwd") / max(total(lisa, "fwd"), 1e-9)
    return (dw * frozen_calls / ft_blocks + max(opt_ft - opt_lisa * scale, 0)) / total(ft)


def main(argv):
    if len(argv) < 2 or len(argv) % 2:
        sys.exit("usage: profile-ratio.py FT.jsonl LISA.jsonl [FT.jsonl LISA.jsonl ...]")
    measured, scaled, skipped = [], [], []
    for i in range(0, len(argv), 2):
        ft, lisa = rows(argv[i]), rows(argv[i + 1])
        if not ft or not lisa:
            sys.exit(f"profile-ratio.py: no profile rows in {argv[i] if not ft else argv[i + 1]}")
        m = total(lisa) / total(ft)
        s = m * total(ft, "fwd") / total(lisa, "fwd")
        k = skipped_share(ft, lisa)
        measured.append(m), scaled.append(s), skipped.append(k)
        print(f"pair {i // 2 + 1}: FT {total(ft):.1f} ms, LISA {total(lisa):.1f} ms; measured {m:.3f}, "
              f"fwd-scaled {s:.3f}; FT's step on work LISA skips {100 * k:.1f}%")
    print(f"median of {len(measured)}: measured {statistics.median(measured):.3f}, "
          f"fwd-scaled {statistics.median(scaled):.3f}, skipped {100 * statistics.median(skipped):.1f}% "
          f"(floor {1 - statistics.median(skipped):.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
