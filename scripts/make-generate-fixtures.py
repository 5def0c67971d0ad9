#!/usr/bin/env python3
"""Greedy generation references for the model families: for each folder of
tests/fixtures/families (scripts/make-family-fixtures.py), transformers'
greedy generate (its own KV cache) from fixed prompts, written beside the
model as generate.txt, a line per prompt: "PROMPT IDS | NEW IDS".
tests/cli/test_cli_sample.sh checks that `lisa sample --temperature 0`
gives the same ids token for token.

    python3 scripts/make-generate-fixtures.py            # every folder; needs torch, transformers
    python3 scripts/make-generate-fixtures.py phi3 llama3  # only these

A longrope model (Phi-3.5) gets only the prompts longer than its original
context: transformers turns a shorter prompt by the short factors and, once
the sequence outgrows the original context, drops its cache and starts over
with the long ones; lisa picks the factors once, by the context it decodes in.
"""
import os
import sys

import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                    "families")
PROMPTS = [[1, 2, 3, 4, 5], [7], [40, 3, 22, 9, 9, 9, 17, 30, 55, 12, 0]]
NEW = 20  # past every sliding window (Mistral 5, Gemma 2 4), within GPT-2's 32 positions


def main():
    torch.manual_seed(0)
    for name in sys.argv[1:] or sorted(os.listdir(ROOT)):
        folder = os.path.join(ROOT, name)
        model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
        rope = getattr(model.config, "rope_parameters", None) or {}
        original = rope.get("original_max_position_embeddings", 0) \
            if rope.get("rope_type") == "longrope" else 0
        out = []
        for prompt in (p for p in PROMPTS if len(p) > original):
            ids = torch.tensor([prompt])
            with torch.no_grad():
                gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW,
                                     min_new_tokens=NEW, do_sample=False, eos_token_id=None,
                                     pad_token_id=0)
            out.append({"prompt": prompt, "ids": gen[0, len(prompt):].tolist()})
        with open(os.path.join(folder, "generate.txt"), "w") as f:
            for case in out:
                f.write(" ".join(map(str, case["prompt"])) + " | " + " ".join(map(str, case["ids"])) + "\n")
        print(name, out[0]["ids"][:8])


if __name__ == "__main__":
    main()
