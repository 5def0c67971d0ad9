#!/usr/bin/env python3
"""PyTorch reference fixtures for the tiny models (models/gpt2-tiny.yaml,
models/llama-tiny.yaml, models/mistral-tiny.yaml).

Regenerate (needs torch, transformers, safetensors; no network):

    python3 scripts/make-fixtures.py            # writes into tests/fixtures/
    python3 scripts/make-fixtures.py --out DIR  # writes elsewhere

The output is deterministic: fixed seeds, float32, one thread,
torch.use_deterministic_algorithms(True). The C tests read only the committed
files, so Python is never needed to build or test the project.

Model: Hugging Face GPT2LMHeadModel with vocab_size 67, n_positions 32, n_embd 24,
n_head 3, n_layer 2, layer_norm_epsilon 1e-5, activation "gelu_new" (tanh GELU),
every dropout 0, tied embeddings, eager attention. It is initialised with
initializer_range INIT_STD (larger than GPT-2's 0.02 so attention scores and logits
are far from uniform and a wrong scale or mask shows), then every parameter gets
PERTURB * randn added, so LayerNorm ones/zeros and zero biases cannot hide bugs.

tests/fixtures/gpt2-tiny.safetensors
    The weights exactly as model.save_pretrained(safe_serialization=True) writes
    them: "transformer.wte.weight", "transformer.h.{i}.attn.c_attn.weight", ...
    Conv1D weights are stored [in, out]. The tied lm_head.weight is not written.

tests/fixtures/gpt2-tiny-ref.safetensors
    inputs            I32 [B, T]   tokens[:, :-1] of a [B, T+1] batch drawn from a
                                   fixed generator, ids in [0, vocab)
    targets           I32 [B, T]   tokens[:, 1:]
    logits            F32 [B, T, V]  forward of the saved weights on inputs
    loss              F32 [1]      mean cross entropy of logits vs targets
    grad.<name>       F32          d loss / d parameter, for every parameter, named
                                   as in HF without the "transformer." prefix, in
                                   HF shapes ("grad.h.0.attn.c_attn.weight" is
                                   [n_embd, 3*n_embd]). "grad.wte.weight" includes
                                   the tied head's contribution.
    adamw.losses      F32 [STEPS]  loss of each step's forward, before its update
                                   (adamw.losses[0] == loss)
    adamw.grad_norms  F32 [STEPS]  global L2 norm of all gradients before clipping
    adamw.final.<name> F32         every parameter after STEPS updates
  The AdamW run starts from the saved weights and repeats the same batch each
  step: loss.backward(); clip_grad_norm_(params, grad_clip); optimizer.step().
  torch.optim.AdamW (decoupled decay: p -= lr*wd*p, then the Adam update with
  bias correction; eps added to sqrt(v_hat)); 2-D parameters (wte, wpe, the four
  Conv1D weights per block) use weight_decay, 1-D parameters use 0. lr is
  constant. The __metadata__ holds lr, beta1, beta2, eps, weight_decay,
  grad_clip, steps, batch, seq, seed and the library versions, as strings.
  grad_clip is chosen so clipping triggers on some steps and not on others.

Models llama-tiny and mistral-tiny: Hugging Face LlamaForCausalLM and
MistralForCausalLM with the configs of models/llama-tiny.yaml and
models/mistral-tiny.yaml (see LLAMA_CONFIGS), float32, eager attention, untied
lm_head, no biases, dropout 0. Initialised and perturbed as GPT-2 above
(initializer_range INIT_STD, then PERTURB * randn on every parameter, so the
RMSNorm scales are not all ones). Mistral's sliding window (4096) is longer
than the sequence, so it is plain causal attention, as in the YAML.

tests/fixtures/<model>.safetensors
    The weights as save_pretrained writes them: "model.embed_tokens.weight",
    "model.layers.{i}.self_attn.q_proj.weight" ([out, in]), ..., "lm_head.weight".

tests/fixtures/<model>-ref.safetensors
    inputs, targets   I32 [LLAMA_BATCH, LLAMA_SEQ]  as for GPT-2, from the model's seed
    logits            F32 [B, T, V]
    loss              F32 [1]
    grad.<name>       F32   d loss / d parameter, for every parameter, under its
                            Hugging Face name ("grad.lm_head.weight", ...)
  The __metadata__ holds batch, seq, seed and the library versions.

LoRA on the tiny GPT-2 (the weights of gpt2-tiny.safetensors, the same batch):
every block's four Conv1D layers (attn.c_attn, attn.c_proj, mlp.c_fc,
mlp.c_proj) get y = conv(x) + (LORA_ALPHA / LORA_RANK) * (x @ A^T) @ B^T with
A [rank, in] and B [out, rank], written out by hand (no PEFT). A and B are
random and non-zero so every gradient is non-trivial.

tests/fixtures/gpt2-tiny-lora-ref.safetensors
    inputs, targets   I32 [B, T]   as in gpt2-tiny-ref
    <name>.lora_A.weight, <name>.lora_B.weight   F32   the adapters, under PEFT's
                      names without "base_model.model." ("h.0.attn.c_attn.lora_A.weight")
    logits, loss      as above, with the adapters
    grad.<adapter name>  F32   d loss / d adapter (the base weights are frozen)
  The __metadata__ holds rank, alpha, batch, seq, seed and the library versions.
"""

import argparse
import json
import os
import shutil
import struct
import tempfile

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM)

SEED = 1234
INIT_STD = 0.2
PERTURB = 0.05
BATCH, SEQ = 3, 11
STEPS = 10
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
WEIGHT_DECAY = 0.1
GRAD_CLIP = 2.2  # grad norms run 3.3 -> 1.8: steps 0-4 clip, 5-9 do not
LLAMA_BATCH, LLAMA_SEQ = 2, 9
LORA_RANK, LORA_ALPHA, LORA_SEED = 3, 5.0, SEED + 30


def tiny_config():
    return GPT2Config(
        vocab_size=67, n_positions=32, n_embd=24, n_head=3, n_layer=2,
        layer_norm_epsilon=1e-5, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0,
        initializer_range=INIT_STD, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=None,  # 50256 is outside this vocab
        attn_implementation="eager")


def build_model():
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(tiny_config()).float()
    model.eval()  # dropout is 0 anyway; eval keeps it so whatever the config says
    with torch.no_grad():
        for p in model.parameters():
            p.add_(PERTURB * torch.randn_like(p))
    assert model.lm_head.weight is model.transformer.wte.weight
    return model


def make_batch(vocab, batch=BATCH, seq=SEQ, seed=SEED + 1):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (batch, seq + 1), generator=gen)
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


def short_name(name):
    return name.removeprefix("transformer.")


def forward_loss(model, inputs, targets):
    logits = model(inputs).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    return logits, loss


def save_weights(model, path):
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        shutil.copyfile(os.path.join(tmp, "model.safetensors"), path)


def reference_gradients(model, inputs, targets):
    model.zero_grad(set_to_none=True)
    logits, loss = forward_loss(model, inputs, targets)
    loss.backward()
    out = {"logits": logits.detach().clone(), "loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        out["grad." + short_name(name)] = p.grad.detach().clone()
    return out


def make_optimizer(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, betas=(BETA1, BETA2), eps=EPS,
                             foreach=False, fused=False)


def adamw_run(model, inputs, targets):
    opt = make_optimizer(model)
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        _, loss = forward_loss(model, inputs, targets)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
    out = {"adamw.losses": torch.tensor(losses, dtype=torch.float32),
           "adamw.grad_norms": torch.tensor(norms, dtype=torch.float32)}
    for name, p in model.named_parameters():
        out["adamw.final." + short_name(name)] = p.detach().clone()
    return out


def metadata():
    return {"lr": str(LR), "beta1": str(BETA1), "beta2": str(BETA2), "eps": str(EPS),
            "weight_decay": str(WEIGHT_DECAY), "grad_clip": str(GRAD_CLIP),
            "steps": str(STEPS), "batch": str(BATCH), "seq": str(SEQ),
            "seed": str(SEED), "torch": torch.__version__,
            "transformers": transformers.__version__}


def sort_metadata(path):
    """save_file writes __metadata__ in hash order; sort it so reruns give the
    same bytes (no spurious diffs in git). Tensor entries keep their offsets."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format wants data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + n:])


def print_summary(weights_path, ref_path, ref):
    print(f"{weights_path}: {os.path.getsize(weights_path)} bytes")
    for name, t in load_file(weights_path).items():
        print(f"  {name:40s} {str(t.dtype):14s} {list(t.shape)}")
    print(f"{ref_path}: {os.path.getsize(ref_path)} bytes, {len(ref)} tensors")
    print(f"loss {ref['loss'].item():.6f}")
    clipped = 0
    for i, (l, n) in enumerate(zip(ref["adamw.losses"].tolist(),
                                   ref["adamw.grad_norms"].tolist())):
        hit = n > GRAD_CLIP
        clipped += hit
        print(f"  step {i}: loss {l:.6f} grad_norm {n:.6f}{' clipped' if hit else ''}")
    print(f"grad_clip {GRAD_CLIP}: clipped on {clipped} of {STEPS} steps")


def llama_common():
    """Settings both LLaMA-family fixtures share (see the module docstring)."""
    return dict(hidden_act="silu", max_position_embeddings=32, initializer_range=INIT_STD,
                tie_word_embeddings=False, attention_dropout=0.0,
                bos_token_id=None, eos_token_id=None, pad_token_id=None,
                attn_implementation="eager")


# name: (model class, config, seed); sizes as in models/<name>.yaml
LLAMA_CONFIGS = {
    "llama-tiny": (LlamaForCausalLM, lambda: LlamaConfig(
        vocab_size=61, hidden_size=24, intermediate_size=40, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
        rope_theta=10000.0, attention_bias=False, mlp_bias=False, **llama_common()),
        SEED + 10),
    "mistral-tiny": (MistralForCausalLM, lambda: MistralConfig(
        vocab_size=53, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=1, rms_norm_eps=1e-5,
        rope_theta=1e6, sliding_window=4096, **llama_common()),
        SEED + 20),
}


def build_llama(cls, config, seed):
    torch.manual_seed(seed)
    model = cls(config).float()
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(PERTURB * torch.randn_like(p))
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    return model


def llama_fixture(out_dir, name):
    cls, config, seed = LLAMA_CONFIGS[name]
    model = build_llama(cls, config(), seed)
    weights_path = os.path.join(out_dir, name + ".safetensors")
    save_weights(model, weights_path)
    inputs, targets = make_batch(model.config.vocab_size, LLAMA_BATCH, LLAMA_SEQ, seed + 1)
    ref = {"inputs": inputs.to(torch.int32), "targets": targets.to(torch.int32)}
    ref.update(reference_gradients(model, inputs, targets))
    ref = {k: v.contiguous() for k, v in ref.items()}
    ref_path = os.path.join(out_dir, name + "-ref.safetensors")
    meta = {"batch": str(LLAMA_BATCH), "seq": str(LLAMA_SEQ), "seed": str(seed),
            "torch": torch.__version__, "transformers": transformers.__version__}
    save_file(ref, ref_path, metadata=meta)
    sort_metadata(ref_path)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{weights_path}: {os.path.getsize(weights_path)} bytes, {n_params} parameters")
    print(f"{ref_path}: {os.path.getsize(ref_path)} bytes, {len(ref)} tensors, "
          f"loss {ref['loss'].item():.6f}")


class LoraConv1D(torch.nn.Module):
    """conv(x) + (alpha / r) * (x @ A^T) @ B^T; conv is HF's Conv1D (W [in, out])."""

    def __init__(self, conv, gen):
        super().__init__()
        n_in, n_out = conv.weight.shape
        self.conv = conv
        self.lora_A = torch.nn.Parameter(0.3 * torch.randn(LORA_RANK, n_in, generator=gen))
        self.lora_B = torch.nn.Parameter(0.3 * torch.randn(n_out, LORA_RANK, generator=gen))

    def forward(self, x):
        return self.conv(x) + (LORA_ALPHA / LORA_RANK) * (x @ self.lora_A.t()) @ self.lora_B.t()


def lora_fixture(out_dir):
    model = build_model()
    gen = torch.Generator().manual_seed(LORA_SEED)
    adapters = {}
    for i, block in enumerate(model.transformer.h):
        for owner, attr, hf in ((block.attn, "c_attn", "attn.c_attn"),
                                (block.attn, "c_proj", "attn.c_proj"),
                                (block.mlp, "c_fc", "mlp.c_fc"),
                                (block.mlp, "c_proj", "mlp.c_proj")):
            wrapped = LoraConv1D(getattr(owner, attr), gen)
            setattr(owner, attr, wrapped)
            adapters[f"h.{i}.{hf}"] = wrapped
    for p in model.parameters():
        p.requires_grad_(False)
    for m in adapters.values():
        m.lora_A.requires_grad_(True)
        m.lora_B.requires_grad_(True)
    inputs, targets = make_batch(model.config.vocab_size)
    logits, loss = forward_loss(model, inputs, targets)
    loss.backward()
    ref = {"inputs": inputs.to(torch.int32), "targets": targets.to(torch.int32),
           "logits": logits.detach().clone(), "loss": loss.detach().reshape(1)}
    for name, m in adapters.items():
        for which, p in (("A", m.lora_A), ("B", m.lora_B)):
            ref[f"{name}.lora_{which}.weight"] = p.detach().clone()
            ref[f"grad.{name}.lora_{which}.weight"] = p.grad.detach().clone()
    ref = {k: v.contiguous() for k, v in ref.items()}
    ref_path = os.path.join(out_dir, "gpt2-tiny-lora-ref.safetensors")
    meta = {"rank": str(LORA_RANK), "alpha": str(LORA_ALPHA), "batch": str(BATCH),
            "seq": str(SEQ), "seed": str(LORA_SEED), "torch": torch.__version__,
            "transformers": transformers.__version__}
    save_file(ref, ref_path, metadata=meta)
    sort_metadata(ref_path)
    print(f"{ref_path}: {os.path.getsize(ref_path)} bytes, {len(ref)} tensors, "
          f"loss {ref['loss'].item():.6f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    out_dir = ap.parse_args().out
    os.makedirs(out_dir, exist_ok=True)

    torch.set_num_threads(1)  # fixed reduction order: same bytes on every run
    torch.use_deterministic_algorithms(True)
    model = build_model()
    weights_path = os.path.join(out_dir, "gpt2-tiny.safetensors")
    save_weights(model, weights_path)

    inputs, targets = make_batch(model.config.vocab_size)
    ref = {"inputs": inputs.to(torch.int32), "targets": targets.to(torch.int32)}
    ref.update(reference_gradients(model, inputs, targets))
    ref.update(adamw_run(model, inputs, targets))
    ref = {k: v.contiguous() for k, v in ref.items()}
    ref_path = os.path.join(out_dir, "gpt2-tiny-ref.safetensors")
    save_file(ref, ref_path, metadata=metadata())
    sort_metadata(ref_path)
    print_summary(weights_path, ref_path, ref)
    for name in LLAMA_CONFIGS:
        llama_fixture(out_dir, name)
    lora_fixture(out_dir)


if __name__ == "__main__":
    main()
