#!/usr/bin/env python3
"""plot.py: figures from `lisa train --log-jsonl` files.

    python3 scripts/plot.py ft.jsonl lisa.jsonl -o out/          # loss curves
    python3 scripts/plot.py ft.jsonl lisa.jsonl -o out/ --labels FT LISA
    python3 scripts/plot.py --compare OUT/summary.tsv -o out/     # compare.sh's table

Writes into the output folder:
  loss.png          loss against step, one curve per file (a moving average
                    of --smooth steps over the raw values)
  weight_norms.png  when the runs logged --norms-every: the mean weight norm of
                    each layer (embedding, blocks, head) over the logged steps,
                    one series per file -- the paper's motivation figure, where
                    LoRA's norms are skewed toward embedding and head and full
                    fine-tuning's are even.
  compare.png       with --compare: ms/step and peak RSS of each method in a
                    scripts/compare.sh summary, as bars beside the paper's tables
Needs matplotlib (pip install matplotlib); nothing else in the project does.
"""
import argparse
import json
import os
import sys


def read_rows(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON: {e}")
            if "event" not in row:
                rows.append(row)
    if not rows:
        sys.exit(f"{path}: no step rows")
    return rows


def moving_average(values, window):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_loss(runs, out_dir, smooth, plt):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, rows in runs:
        steps = [r["step"] for r in rows]
        ax.plot(steps, moving_average([r["loss"] for r in rows], smooth), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss (moving average, {smooth} steps)")
    ax.grid(alpha=0.3)
    ax.legend()
    path = os.path.join(out_dir, "loss.png")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def mean_weight_norms(rows):
    logged = [r["weight_norms"] for r in rows if "weight_norms" in r]
    if not logged:
        return None
    n = len(logged[0])
    return [sum(w[i] for w in logged) / len(logged) for i in range(n)]


def plot_weight_norms(runs, out_dir, plt):
    series = [(label, mean_weight_norms(rows)) for label, rows in runs]
    series = [(label, norms) for label, norms in series if norms]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, norms in series:
        names = ["E"] + [str(i) for i in range(len(norms) - 2)] + ["H"]
        ax.plot(range(len(norms)), norms, marker="o", label=label)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_xlabel("layer (E: embedding, H: head)")
    ax.set_ylabel("mean weight norm over logged steps")
    ax.grid(alpha=0.3)
    ax.legend()
    path = os.path.join(out_dir, "weight_norms.png")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_compare(tsv, out_dir, plt):
    with open(tsv) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
    names = [r["method"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "ms_per_step", "median ms/step"),
                           (axes[1], "peak_rss_mib", "peak RSS (MiB)")):
        values = [float(r[key]) for r in rows]
        bars = ax.bar(range(len(names)), values, color="tab:blue")
        bars[0].set_color("tab:gray")  # FT, the reference
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        for b, v in zip(bars, values):
            ax.annotate(f"{v / values[0]:.2f}x", (b.get_x() + b.get_width() / 2, v),
                        ha="center", va="bottom", fontsize=8)
    path = os.path.join(out_dir, "compare.png")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs", nargs="*", help="JSONL files from lisa train --log-jsonl")
    ap.add_argument("--compare", help="a scripts/compare.sh summary.tsv to draw as bars")
    ap.add_argument("-o", "--out", default=".", help="output folder")
    ap.add_argument("--labels", nargs="*", help="one label per file (default: file names)")
    ap.add_argument("--smooth", type=int, default=10, help="moving-average window in steps")
    args = ap.parse_args()
    if not args.logs and not args.compare:
        ap.error("give JSONL logs or --compare SUMMARY.tsv")
    labels = args.labels or [os.path.splitext(os.path.basename(p))[0] for p in args.logs]
    if len(labels) != len(args.logs):
        sys.exit("--labels needs one label per file")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py needs matplotlib: pip install matplotlib")
    os.makedirs(args.out, exist_ok=True)
    if args.compare:
        print(plot_compare(args.compare, args.out, plt))
        if not args.logs:
            return
    runs = [(label, read_rows(p)) for label, p in zip(labels, args.logs)]
    print(plot_loss(runs, args.out, max(1, args.smooth), plt))
    norms = plot_weight_norms(runs, args.out, plt)
    print(norms or "no weight norms logged (run with --norms-every N)")


if __name__ == "__main__":
    main()
