#!/usr/bin/env python3
"""Exact-match accuracy of a model on the tasks of scripts/make-tasks.py,
through `lisa sample` (greedy, the question as a --chat user turn):

    python3 scripts/eval-tasks.py MODEL --weights W --tokenizer T --tasks data/tasks/test.jsonl \
        [--lisa build/lisa] [--limit N] [--show K]

Prints a line per task and one JSON object last: {"accuracy": .., "tasks":
{name: accuracy}, "n": ..}. --show K prints K questions of each task with the
answers given.
Needs only the standard library.
"""
import argparse
import json
import subprocess
import sys


def answer(args, question):
    cmd = [args.lisa, "sample", args.model, "--tokenizer", args.tokenizer, "--prompt", question,
           "--chat", "--max-new-tokens", str(args.max_new_tokens), "--json"]
    if args.weights:
        cmd += ["--weights", args.weights]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"eval-tasks.py: {' '.join(cmd)}: {out.stderr.strip()}")
    return json.loads(out.stdout)["text"].strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--weights")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--tasks", required=True, help="test.jsonl from make-tasks.py")
    ap.add_argument("--lisa", default="build/lisa")
    ap.add_argument("--limit", type=int, default=0, help="the first N records per task")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--show", type=int, default=0, help="print K questions and answers per task")
    args = ap.parse_args()
    right, total = {}, {}
    with open(args.tasks, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            task = rec["task"]
            if args.limit and total.get(task, 0) >= args.limit:
                continue
            q, want = rec["messages"][0]["content"], rec["messages"][1]["content"]
            got = answer(args, q)
            total[task] = total.get(task, 0) + 1
            right[task] = right.get(task, 0) + (got == want)
            if total[task] <= args.show:
                print(f"  {q!r} -> {got!r} ({'right' if got == want else 'want ' + repr(want)})")
    acc = {t: right[t] / total[t] for t in total}
    for t in total:
        print(f"{t:8s} {right[t]:4d}/{total[t]:<4d} {acc[t]:.3f}")
    n = sum(total.values())
    print(json.dumps({"accuracy": sum(right.values()) / n, "tasks": acc, "n": n}))


if __name__ == "__main__":
    main()
