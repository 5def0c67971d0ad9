#!/usr/bin/env python3
"""make-lisa-fixture.py: a LISA run replayed in PyTorch, for tests/train/test_lisa_torch.c.

    python3 scripts/make-lisa-fixture.py      # needs torch and transformers

A 4-block tiny GPT-2 (models/gpt2-tiny.yaml's config with n_layer 4) trains
12 steps with LISA as the reference implementation does it in PyTorch, but
with the optimizer-state rules this project implements:
  - the embedding (wte, wpe) and head (ln_f; lm_head is tied to wte) train
    every step;
  - every K = 3 steps the active middle blocks switch to the next set of SETS;
  - a block that stays keeps its AdamW state, one that leaves loses it, one
    that enters starts from zero moments and step 0 (a fresh torch AdamW
    state);
  - gradients are clipped by the global norm of what trains;
  - torch.optim.AdamW (foreach=False), weight decay on 2-D tensors only.
Every step uses the same batch: a data file of exactly T + 1 tokens has one
window, so the C test needs no copy of the data loader's random draws.

Writes tests/fixtures/gpt2-tiny4.safetensors (initial weights, HF names) and
tests/fixtures/gpt2-tiny4-lisa-ref.safetensors:
  tokens  I32 [T+1]   the data file's tokens
  losses  F32 [12]    loss of each step before its update
  grad_norms F32 [12] pre-clip global norm of what trains
  final.<hf name>     every parameter after 12 steps
  metadata: lr, weight_decay, grad_clip, interval, batch, seq, sets (JSON)
"""
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
SETS = [[0, 2], [2, 3], [1, 2], [0, 1]]  # 2 stays twice; every block trains
K, STEPS, B, T = 3, 12, 2, 8
LR, WD, CLIP = 3e-3, 0.1, 1.0


def build_model():
    torch.manual_seed(1234)
    cfg = GPT2Config(vocab_size=67, n_positions=32, n_embd=24, n_head=3, n_layer=4,
                     layer_norm_epsilon=1e-5, activation_function="gelu_new",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     initializer_range=0.2, tie_word_embeddings=True)
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg).float()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def part_of(name):
    """'E', 'H' or the block index of a parameter name."""
    if name.startswith("transformer.h."):
        return int(name.split(".")[2])
    return "H" if name.startswith("transformer.ln_f") else "E"


def make_optimizer(named, trainable, old):
    """A torch AdamW over what trains now, carrying the state of params that
    trained in the previous period too."""
    decay = [p for n, p in named if n in trainable and p.dim() == 2]
    no_decay = [p for n, p in named if n in trainable and p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    if old is not None:
        for p in decay + no_decay:
            if p in old.state:
                opt.state[p] = old.state[p]
    return opt


def main():
    model = build_model()
    model.save_pretrained("/tmp/lisa-fixture-model", safe_serialization=True)
    os.replace("/tmp/lisa-fixture-model/model.safetensors",
               os.path.join(FIXTURES, "gpt2-tiny4.safetensors"))
    g = torch.Generator().manual_seed(99)
    tokens = torch.randint(0, 67, (T + 1,), generator=g)
    inputs = tokens[:T].repeat(B, 1)
    targets = tokens[1:].repeat(B, 1)
    named = [(n, p) for n, p in model.named_parameters()]
    losses, norms, opt = [], [], None
    for step in range(STEPS):
        active = SETS[step // K]
        trainable = {n for n, _ in named if part_of(n) in ("E", "H") or part_of(n) in active}
        if step % K == 0:
            opt = make_optimizer(named, trainable, opt)
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=inputs).logits
        loss = F.cross_entropy(logits.reshape(-1, 67), targets.reshape(-1))
        loss.backward()
        params = [p for n, p in named if n in trainable]
        norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params))
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
    out = {"tokens": tokens.to(torch.int32),
           "losses": torch.tensor(losses, dtype=torch.float32),
           "grad_norms": torch.tensor(norms, dtype=torch.float32)}
    for n, p in named:
        out["final." + n.removeprefix("transformer.")] = p.detach().clone().contiguous()
    meta = {"lr": str(LR), "weight_decay": str(WD), "grad_clip": str(CLIP), "interval": str(K),
            "batch": str(B), "seq": str(T), "sets": json.dumps(SETS)}
    save_file(out, os.path.join(FIXTURES, "gpt2-tiny4-lisa-ref.safetensors"), metadata=meta)
    print("losses", [round(x, 5) for x in losses])
    print("grad norms", [round(x, 4) for x in norms])


if __name__ == "__main__":
    main()
