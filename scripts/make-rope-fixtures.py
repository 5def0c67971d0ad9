#!/usr/bin/env python3
"""Scaled RoPE frequency tables as transformers computes them, at the sizes of
released models, for tests/unit/test_rope_scaling.c (no torch in CI).

    python3 scripts/make-rope-fixtures.py   # tests/fixtures/rope-tables.safetensors

For each case NAME: NAME.inv_freq (F32 [rot/2]) is the rotary embedding's
inv_freq and NAME.scale (F32 [1]) its attention_scaling (what cos and sin are
multiplied by); the metadata entry NAME is the JSON of what produced them:
head_dim, partial_rotary_factor, max_position_embeddings, seq (longrope: the
run's length, which picks its factors) and rope_parameters
(rope_type, rope_theta and the kind's parameters), as a config.json says them.
"""

import json
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

# 48 divisors rising from 1 (short) and from 1.08 to ~50 (long), as Phi-3.5's do
SHORT = [round(1.0 + 0.02 * i + 0.001 * i * i, 4) for i in range(48)]
LONG = [round(1.08 * 1.085 ** i, 4) for i in range(48)]

CASES = {
    # LLaMA 3.1 8B / 70B / 405B
    "llama3.1-8b": (128, 1.0, 131072, {"rope_type": "llama3", "rope_theta": 500000.0,
                                       "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192}),
    # LLaMA 3.2 1B
    "llama3.2-1b": (64, 1.0, 131072, {"rope_type": "llama3", "rope_theta": 500000.0,
                                      "factor": 32.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 8192}),
    # Qwen2.5 7B with its long-context YaRN setting
    "qwen2.5-yarn": (128, 1.0, 131072, {"rope_type": "yarn", "rope_theta": 1000000.0,
                                        "factor": 4.0,
                                        "original_max_position_embeddings": 32768}),
    # YaRN with mscale / mscale_all_dim (their ratio is the attention factor) and
    # the ramp's bounds not rounded
    "yarn-mscale": (64, 1.0, 163840, {"rope_type": "yarn", "rope_theta": 10000.0,
                                      "factor": 40.0, "original_max_position_embeddings": 4096,
                                      "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0,
                                      "mscale_all_dim": 0.5, "truncate": False}),
    # YaRN with an explicit attention factor
    "yarn-attention-factor": (96, 1.0, 65536, {"rope_type": "yarn", "rope_theta": 50000.0,
                                               "factor": 2.0, "attention_factor": 0.875,
                                               "original_max_position_embeddings": 16384}),
    # linear (position interpolation), with a partial rotary (phi-2's 0.4 of 80)
    "linear-partial": (80, 0.4, 8192, {"rope_type": "linear", "rope_theta": 10000.0,
                                       "factor": 4.0}),
    "default-500k": (128, 1.0, 8192, {"rope_type": "default", "rope_theta": 500000.0}),
    # longrope (Phi-3.5-mini's shape: head 96, original context 4096, 128k): the
    # short factors for runs within the original context, the long ones beyond
    "longrope-short": (96, 1.0, 131072, {"rope_type": "longrope", "rope_theta": 10000.0,
                                         "original_max_position_embeddings": 4096,
                                         "short_factor": SHORT, "long_factor": LONG}),
    "longrope-long": (96, 1.0, 131072, {"rope_type": "longrope", "rope_theta": 10000.0,
                                        "original_max_position_embeddings": 4096,
                                        "short_factor": SHORT, "long_factor": LONG}),
    # Phi-4-mini's shape: partial rotary 0.75 of 128, an explicit factor
    "longrope-partial": (128, 0.75, 131072, {"rope_type": "longrope", "rope_theta": 10000.0,
                                             "original_max_position_embeddings": 4096,
                                             "factor": 32.0, "short_factor": SHORT,
                                             "long_factor": LONG}),
}
# the seq a case's table is for (longrope picks its factors by it); else 0
SEQ = {"longrope-short": 4096, "longrope-long": 4097, "longrope-partial": 2048}


def table(head_dim, partial, max_pos, rope, seq=0):
    params = dict(rope)
    if partial != 1.0:
        params["partial_rotary_factor"] = partial
    config = transformers.LlamaConfig(head_dim=head_dim, hidden_size=head_dim * 4,
                                      num_attention_heads=4, max_position_embeddings=max_pos,
                                      rope_parameters=params)
    rope_emb = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding(config)
    inv_freq, scale = rope_emb.inv_freq, rope_emb.attention_scaling
    if rope["rope_type"] == "longrope":  # picked by the sequence's length, as forward does
        inv_freq, scale = ROPE_INIT_FUNCTIONS["longrope"](config, "cpu", seq_len=seq)
    return inv_freq.float(), float(scale)


def main():
    tensors, meta = {}, {"torch": torch.__version__, "transformers": transformers.__version__}
    for name, (head_dim, partial, max_pos, rope) in CASES.items():
        inv_freq, scale = table(head_dim, partial, max_pos, rope, SEQ.get(name, 0))
        tensors[name + ".inv_freq"] = inv_freq.contiguous()
        tensors[name + ".scale"] = torch.tensor([scale])
        meta[name] = json.dumps({"head_dim": head_dim, "partial_rotary_factor": partial,
                                 "max_position_embeddings": max_pos, "seq": SEQ.get(name, 0),
                                 "rope_parameters": rope})
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                       "rope-tables.safetensors")
    save_file(tensors, out, metadata=meta)
    print(f"{out}: {len(CASES)} cases")


if __name__ == "__main__":
    main()
