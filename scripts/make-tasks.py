#!/usr/bin/env python3
"""Synthetic instruction tasks with exact answers, for judging a fine-tune
by what it generates (as the paper judges by generated answers):

  add      What is 47 + 8?                  -> 55
  reverse  Reverse the letters: stne        -> ents
  sort     Sort the digits: 5 2 9 1         -> 1 2 5 9
  recall   a=3 k=7 m=1. What is k?          -> 7

Small on purpose: the bundled model (data/chat-bytes, 0.8M parameters over
bytes) learns them in minutes on two CPU cores.

    python3 scripts/make-tasks.py -o data/tasks [--train 1500 --test 50 --seed 1]

writes DIR/train.jsonl and DIR/test.jsonl (chat records, {"messages": [user,
assistant], "task": name}; no test question occurs in train), and, for the
bundled byte tokenizer (data/chat-bytes), the token files make-data.py would
write from them (DIR/train.bin, DIR/val.bin and their .mask: ChatML, only the
answer, its <|im_end|> and the EOS count). Those need only the standard
library; tests/cli/test_make_data.sh checks they equal make-data.py's.
scripts/eval-tasks.py scores a model on test.jsonl through `lisa sample`.
"""
import argparse
import json
import os
import random
import struct

LETTERS = "abcdefghijklmnopqrstuvwxyz"
EOS, IM_START, IM_END = 256, 257, 258  # data/chat-bytes' special tokens


def task_add(r):
    a, b = r.randrange(10, 60), r.randrange(0, 10)
    return f"What is {a} + {b}?", str(a + b)


def task_reverse(r):
    w = "".join(r.choice(LETTERS) for _ in range(r.randrange(3, 5)))
    return f"Reverse the letters: {w}", w[::-1]


def task_sort(r):
    d = [str(r.randrange(10)) for _ in range(r.randrange(3, 5))]
    return f"Sort the digits: {' '.join(d)}", " ".join(sorted(d))


def task_recall(r):
    keys = r.sample(LETTERS, 3)
    vals = [str(r.randrange(10)) for _ in keys]
    k = r.randrange(3)
    pairs = " ".join(f"{a}={v}" for a, v in zip(keys, vals))
    return f"{pairs}. What is {keys[k]}?", vals[k]


TASKS = {"add": task_add, "reverse": task_reverse, "sort": task_sort, "recall": task_recall}


def record(task, q, a):
    return {"task": task, "messages": [{"role": "user", "content": q},
                                       {"role": "assistant", "content": a}]}


def make_splits(n_train, n_test, seed):
    r = random.Random(seed)
    test, seen = [], set()
    for name, fn in TASKS.items():
        while sum(t["task"] == name for t in test) < n_test:
            q, a = fn(r)
            if q not in seen:
                seen.add(q)
                test.append(record(name, q, a))
    train = []
    for name, fn in TASKS.items():
        made = 0
        while made < n_train:
            q, a = fn(r)
            if q not in seen:  # repeats within train are fine; none from test
                train.append(record(name, q, a))
                made += 1
    r.shuffle(train)
    return train, test


def chat_bytes(records):
    """ChatML in data/chat-bytes' ids (byte = id, three special tokens) and
    the loss mask: the answer, its <|im_end|> and newline, and EOS count; the
    token after an EOS and the first token do not."""
    ids, mask = [], []
    for rec in records:
        doc, doc_mask = [], []
        for m in rec["messages"]:
            head = [IM_START] + list(f"{m['role']}\n".encode())
            body = list(m["content"].encode()) + [IM_END] + list(b"\n")
            doc += head + body
            doc_mask += [0] * len(head) + [int(m["role"] == "assistant")] * len(body)
        doc.append(EOS)
        doc_mask.append(1)
        if ids:
            doc_mask[0] = 0  # after the previous EOS
        ids += doc
        mask += doc_mask
    mask[0] = 0
    return ids, mask


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_tokens(path, ids, mask):
    write_atomic(path, struct.pack("<256i", 20240520, 1, len(ids), *([0] * 253)) +
                 struct.pack(f"<{len(ids)}H", *ids))
    write_atomic(path + ".mask", struct.pack("<256i", 20240801, 1, len(mask), *([0] * 253)) +
                 bytes(mask))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", required=True, help="the folder to write")
    ap.add_argument("--train", type=int, default=1500, help="training examples per task")
    ap.add_argument("--test", type=int, default=50, help="test examples per task")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    train, test = make_splits(args.train, args.test, args.seed)
    for name, recs in (("train", train), ("test", test)):
        write_atomic(os.path.join(args.out, name + ".jsonl"),
                     "".join(json.dumps(r) + "\n" for r in recs).encode())
    for name, recs in (("train", train), ("val", test)):
        ids, mask = chat_bytes(recs)
        write_tokens(os.path.join(args.out, name + ".bin"), ids, mask)
    print(f"{args.out}: {len(train)} train, {len(test)} test records ({', '.join(TASKS)})")


if __name__ == "__main__":
    main()
