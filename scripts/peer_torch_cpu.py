#!/usr/bin/env python3
"""PyTorch eager peer for the CPU benchmark: full fine-tuning of GPT-2 124M.

    python3 scripts/peer_torch_cpu.py [--data FILE.bin] [--steps 10]
        [--warmup-steps 2] [--batch 4] [--seq 64] [--threads 2]

The model is Hugging Face GPT2LMHeadModel built from its config (vocab 50257,
n_positions 1024, n_embd 768, n_head 12, n_layer 12, dropout 0, tied head),
randomly initialised: nothing is downloaded. One step is what `lisa train
--method ft` does: forward, mean cross entropy of logits vs the next token,
backward, clip_grad_norm_ to --clip, AdamW step (weight decay on 2-D
parameters only; torch's fused CPU kernel by default, the fastest of the three
in a quick comparison on 2 cores: ~1.6 s/step against ~2.0 s for foreach and
for-loop), zero the gradients. Attention is HF's default (sdpa). Its wall-clock time is the step time.

Batches come from an llm.c token file with --data (256 int32 header: magic
20240520, version 1 = uint16 ids / 2 = uint32 ids, token count; then the ids),
read in order like llm.c's loader, or are uniform random ids without it.

Prints one line per step, then one JSON line:
    {"impl": "torch-eager", "median_ms": ..., "tokens_per_s": ...,
     "peak_rss_bytes": ..., "steps": N, "warmup_steps": W, ...}
median_ms is over all steps but the first W (warm-up); peak RSS is
getrusage ru_maxrss (KiB on Linux) * 1024.
"""

import argparse
import json
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from llmc_tokens import load_llmc_tokens

VOCAB = 50257
ADAMW_IMPLS = {"fused": {"fused": True}, "foreach": {"foreach": True},
               "for-loop": {"foreach": False, "fused": False}}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="llm.c .bin token file (default: random ids)")
    ap.add_argument("--steps", type=int, default=10, help="total steps")
    ap.add_argument("--warmup-steps", type=int, default=2,
                    help="leading steps left out of the median")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--adamw-impl", choices=sorted(ADAMW_IMPLS), default="fused",
                    help="torch AdamW kernel (fused is the fastest on CPU)")
    args = ap.parse_args()
    if args.steps <= args.warmup_steps:
        ap.error("--steps must exceed --warmup-steps")
    return args


def gpt2_124m():
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=1024, n_embd=768, n_head=12, n_layer=12,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True)
    return GPT2LMHeadModel(config).float()


def batches(args, tokens):
    """Yields (inputs, targets), each [B, T]; targets are inputs shifted by one.
    tokens None: uniform random ids."""
    span = args.batch * args.seq
    if tokens is None:
        gen = torch.Generator().manual_seed(args.seed)
        while True:
            t = torch.randint(0, VOCAB, (args.batch, args.seq + 1), generator=gen)
            yield t[:, :-1], t[:, 1:]
    if len(tokens) < span + 1:
        sys.exit(f"{args.data}: {len(tokens)} tokens, need {span + 1} for one batch")
    pos = 0
    while True:
        if pos + span + 1 > len(tokens):
            pos = 0
        chunk = tokens[pos:pos + span + 1]
        pos += span
        yield chunk[:-1].view(args.batch, args.seq), chunk[1:].view(args.batch, args.seq)


def make_optimizer(model, args):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                             **ADAMW_IMPLS[args.adamw_impl])


def train_step(model, opt, inputs, targets, clip):
    logits = model(inputs).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item(), norm.item()


def main():
    args = parse_args()
    tokens = torch.from_numpy(load_llmc_tokens(args.data, VOCAB)) if args.data else None
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = gpt2_124m()
    model.train()
    opt = make_optimizer(model, args)
    data = batches(args, tokens)
    times = []
    for step in range(args.steps):
        inputs, targets = next(data)
        t0 = time.perf_counter()
        loss, norm = train_step(model, opt, inputs, targets, args.clip)
        ms = (time.perf_counter() - t0) * 1e3
        times.append(ms)
        print(f"step {step}: loss {loss:.4f} grad_norm {norm:.3f} {ms:.1f} ms",
              flush=True)
    median = statistics.median(times[args.warmup_steps:])
    print(json.dumps({
        "impl": "torch-eager", "median_ms": round(median, 3),
        "tokens_per_s": round(args.batch * args.seq / (median / 1e3), 1),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "steps": args.steps, "warmup_steps": args.warmup_steps,
        "batch": args.batch, "seq": args.seq, "threads": args.threads,
        "adamw_impl": args.adamw_impl,
        "torch": torch.__version__}))


if __name__ == "__main__":
    main()
