#!/usr/bin/env python3
"""Hugging Face folders and PyTorch references for the model families
(models/<model_type>.yaml), one tiny model each, from transformers' own classes.

Regenerate (needs torch, transformers, safetensors; no network):

    python3 scripts/make-family-fixtures.py              # tests/fixtures/families/
    python3 scripts/make-family-fixtures.py --out DIR    # elsewhere
    python3 scripts/make-family-fixtures.py qwen3 gemma  # only these

Each family gets tests/fixtures/families/<model_type>/ holding what
save_pretrained writes (config.json, model.safetensors: the folder `lisa train`
takes as MODEL) and ref.safetensors:

    inputs, targets     I32 [BATCH, SEQ]   a batch from a fixed generator
    logits              F32 [B, T, V]      forward of the saved weights
    loss                F32 [1]            mean cross entropy
    grad.<hf name>      F32                d loss / d parameter, Hugging Face names
    adamw.losses        F32 [STEPS]        full fine-tuning, the same batch each step:
    adamw.grad_norms    F32 [STEPS]        loss and gradient norm before each update
    adamw.final.<name>  F32                every parameter after STEPS updates
    adamw64.<x>.hi, .lo F32 [STEPS]        the same run in float64 (model and AdamW in
                                           double), x = losses, grad_norms, each as
                                           hi + lo (two floats: safetensors readers of
                                           this project read no F64)
    lisa.tokens         I32 [SEQ + 1]      a LISA run's data: one window, so every row of
                                           every step's batch is this sequence
    lisa.losses         F32 [LISA_STEPS]   LISA from the saved weights: loss and the
    lisa.grad_norms     F32 [LISA_STEPS]   pre-clip norm of what trains, each step
    lisa.final.<name>   F32                every parameter after LISA_STEPS updates
    rope.inv_freq       F32 [rot / 2]      scaled RoPE only (rope_type not default):
    rope.scale          F32 [1]            the model's inv_freq and attention_scaling
    __metadata__        lr, beta1, beta2, eps, weight_decay, grad_clip, steps, batch,
                        seq, seed, lisa_sets, lisa_interval, lisa_grad_clip, library
                        versions

and masked.safetensors, a loss mask (transformers' labels -100):

    inputs              I32 [BATCH, SEQ]   ref's inputs
    targets             I32 [BATCH, SEQ]   ref's targets, -100 where they do not count
    loss                F32 [1]            the mean over the counted targets
    grad.<hf name>      F32                its gradients

The LISA run is the rules this project implements (scripts/make-lisa-fixture.py
replays them for GPT-2): the embedding and the head (final norm, lm_head) train
every step; every LISA_INTERVAL steps the middle blocks switch to the next set
of LISA_SETS; a block that stays keeps its AdamW state, one that leaves loses
it, one that enters starts afresh; gradients are clipped by the global norm of
what trains.

The models are float32, eager attention, dropout 0, initialised with
initializer_range INIT_STD and then every parameter perturbed by PERTURB * randn,
so norm weights are not ones (nor Gemma's zeros) and biases are not zero. AdamW is
torch.optim.AdamW with weight decay on 2-D parameters only and clipping of the
global gradient norm at GRAD_CLIP (or the family's own, so that some steps clip
and some do not), as scripts/make-fixtures.py does for GPT-2.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file

SEED = 4321
INIT_STD = 0.2
PERTURB = 0.05
BATCH, SEQ = 2, 9
STEPS = 10
LR, BETA1, BETA2, EPS, WEIGHT_DECAY, GRAD_CLIP = 1e-3, 0.9, 0.999, 1e-8, 0.1, 3.5

LISA_SETS = [[0], [1], [1], [0]]  # 1 stays once, 0 leaves and comes back fresh
LISA_INTERVAL, LISA_CLIP = 3, 1.0
LISA_STEPS = LISA_INTERVAL * len(LISA_SETS)

COMMON = dict(initializer_range=INIT_STD, attn_implementation="eager",
              bos_token_id=None, eos_token_id=None, pad_token_id=None)


def families():
    t = transformers
    llama_like = dict(vocab_size=61, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
                      max_position_embeddings=64, **COMMON)
    return {
        # Qwen2: LLaMA with biases on q, k and v; untied here (Qwen2-7B), tied in 0.5B
        "qwen2": (t.Qwen2ForCausalLM, t.Qwen2Config(
            rope_theta=1e6, tie_word_embeddings=False, **llama_like), SEED),
        # Qwen3: per-head RMSNorm of q and k before RoPE, explicit head_dim, tied
        "qwen3": (t.Qwen3ForCausalLM, t.Qwen3Config(
            head_dim=12, rope_theta=1e6, tie_word_embeddings=True, **llama_like), SEED + 1),
        # Gemma: (1 + w) RMSNorms, sqrt(hidden) embedding scale, GeGLU (tanh), head_dim
        # not hidden / heads, tied head
        "gemma": (t.GemmaForCausalLM, t.GemmaConfig(
            head_dim=12, hidden_act="gelu_pytorch_tanh", rope_theta=10000.0,
            tie_word_embeddings=True, **llama_like), SEED + 2),
        # Phi (phi-2): parallel attention and MLP off one LayerNorm, partial rotary,
        # biases everywhere including the head
        "phi": (t.PhiForCausalLM, t.PhiConfig(
            vocab_size=61, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
            num_attention_heads=4, layer_norm_eps=1e-5, hidden_act="gelu_new",
            partial_rotary_factor=0.5, max_position_embeddings=64, resid_pdrop=0.0,
            embd_pdrop=0.0, attention_dropout=0.0, tie_word_embeddings=False, **COMMON),
            SEED + 3),
        # OLMo 2: no pre-norms; RMSNorm of the whole q and k (all heads) before RoPE,
        # RMSNorm of the attention and MLP outputs before each residual add
        "olmo2": (t.Olmo2ForCausalLM, t.Olmo2Config(
            rope_theta=500000.0, tie_word_embeddings=False, **llama_like), SEED + 4, 5.5),
        # GPT-NeoX (Pythia): fused query_key_value interleaved per head (q, k, v rows
        # of head 0, then of head 1, ...), parallel residual, partial rotary, exact
        # (erf) GELU, biases, untied embed_out
        "gpt_neox": (t.GPTNeoXForCausalLM, t.GPTNeoXConfig(
            vocab_size=61, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
            num_attention_heads=4, layer_norm_eps=1e-5, hidden_act="gelu",
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "partial_rotary_factor": 0.5}, use_parallel_residual=True,
            max_position_embeddings=64, attention_dropout=0.0, hidden_dropout=0.0,
            tie_word_embeddings=False, **COMMON), SEED + 5),
        # Gemma 2: pre- and post-norms around attention and the MLP, all (1 + w);
        # query_pre_attn_scalar sets the score scale; attention scores and the
        # logits soft-capped by tanh (caps small enough here to bend them);
        # a sliding window (shorter than SEQ) in layer 0, none in layer 1
        "gemma2": (t.Gemma2ForCausalLM, t.Gemma2Config(
            head_dim=12, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=20,
            attn_logit_softcapping=3.0, final_logit_softcapping=5.0, sliding_window=4,
            rope_theta=10000.0, tie_word_embeddings=True, **llama_like), SEED + 6),
        # LLaMA (2, TinyLlama): RMSNorm, RoPE, grouped-query attention, SwiGLU
        "llama": (t.LlamaForCausalLM, t.LlamaConfig(
            rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
            mlp_bias=False, **llama_like), SEED + 8),
        # GPT-2: LayerNorm, Conv1D weights ([in, out]), fused c_attn, learned
        # positions, tanh GELU, tied head
        "gpt2": (t.GPT2LMHeadModel, t.GPT2Config(
            vocab_size=61, n_positions=32, n_embd=24, n_head=3, n_layer=2,
            layer_norm_epsilon=1e-5, activation_function="gelu_new", resid_pdrop=0.0,
            embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0,
            tie_word_embeddings=True, **COMMON), SEED + 9),
        # LLaMA 3.2: "llama3" RoPE scaling, tied head. A small base and context
        # put the 4 frequencies in all three of its bands: 0 kept (wavelength
        # 6.3 < 64/4), 1 and 2 smoothed, 3 divided by the factor (199 > 64).
        "llama3": (t.LlamaForCausalLM, t.LlamaConfig(
            rope_parameters={"rope_type": "llama3", "rope_theta": 100.0, "factor": 8.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 64},
            tie_word_embeddings=True, attention_bias=False, mlp_bias=False, **llama_like),
            SEED + 10),
        # Qwen2.5 long context: YaRN. beta_fast 8 over a context of 64 makes the
        # ramp run over dims 0..3 (extrapolated, two blends, interpolated); the
        # attention factor 0.1 ln 4 + 1 scales cos and sin.
        "qwen2-yarn": (t.Qwen2ForCausalLM, t.Qwen2Config(
            rope_parameters={"rope_type": "yarn", "rope_theta": 100.0, "factor": 4.0,
                             "original_max_position_embeddings": 64, "beta_fast": 8.0,
                             "beta_slow": 1.0},
            tie_word_embeddings=False, **llama_like), SEED + 11),
        # Gemma 3 (text): Gemma 2's block with per-head (1 + w) q/k norms, no soft
        # caps; layer 0 local (a window of 4, base 10), layer 1 global (base 1000,
        # linear scaling 2): sliding_window_pattern 2
        "gemma3_text": (t.Gemma3ForCausalLM, t.Gemma3TextConfig(
            head_dim=12, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=20,
            sliding_window=4, sliding_window_pattern=2,
            rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0,
                                                "rope_theta": 1000.0},
                             "sliding_attention": {"rope_type": "default", "rope_theta": 10.0}},
            tie_word_embeddings=True, **llama_like), SEED + 12),
        # Phi-3 / Phi-4: fused qkv_proj (q, k, v one after another) and gate_up_proj
        # (gate first), partial rotary and a tied head (Phi-4-mini), a sliding
        # window shorter than SEQ (Phi-3-mini has one)
        "phi3": (t.Phi3ForCausalLM, t.Phi3Config(
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "partial_rotary_factor": 0.5},
            sliding_window=5, tie_word_embeddings=True, resid_pdrop=0.0, embd_pdrop=0.0,
            original_max_position_embeddings=64, **llama_like), SEED + 13),
        # Phi-3.5-mini / Phi-4-mini: longrope. The original context of 4 is shorter
        # than SEQ, so the long factors turn (as transformers picks them by the
        # sequence's length); cos and sin scaled by sqrt(1 + ln 2 / ln 4)
        "phi3-longrope": (t.Phi3ForCausalLM, t.Phi3Config(
            rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "factor": 2.0,
                             "short_factor": [1.0, 1.2, 1.5, 2.0],
                             "long_factor": [1.5, 3.0, 7.0, 20.0],
                             "original_max_position_embeddings": 4},
            tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0,
            original_max_position_embeddings=4, **llama_like), SEED + 14),
        # Granite 3: LLaMA with multipliers on the embedding, each residual branch,
        # the attention scores (instead of 1/sqrt(d)) and the logits (divided); tied
        "granite": (t.GraniteForCausalLM, t.GraniteConfig(
            rope_theta=10000.0, embedding_multiplier=3.0, residual_multiplier=0.5,
            attention_multiplier=0.2, logits_scaling=4.0, tie_word_embeddings=True,
            attention_bias=False, mlp_bias=False, **llama_like), SEED + 15, 0.7),
        # StarCoder2: LayerNorms with biases, biases on every linear, grouped-query
        # attention with a sliding window (shorter than SEQ), a GELU (tanh) MLP; tied
        "starcoder2": (t.Starcoder2ForCausalLM, t.Starcoder2Config(
            vocab_size=61, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, norm_epsilon=1e-5,
            hidden_act="gelu_pytorch_tanh", use_bias=True, sliding_window=5, rope_theta=10000.0,
            max_position_embeddings=64, residual_dropout=0.0, embedding_dropout=0.0,
            attention_dropout=0.0, tie_word_embeddings=True, **COMMON), SEED + 17),
        # Mistral: LLaMA's graph with a sliding window, shorter than SEQ here so
        # that it masks
        "mistral": (t.MistralForCausalLM, t.MistralConfig(
            sliding_window=5, rope_theta=1e6, tie_word_embeddings=False, **llama_like),
            SEED + 7),
    }


def build(cls, config, seed):
    torch.manual_seed(seed)
    model = cls(config).float()
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(PERTURB * torch.randn_like(p))
    return model


def make_batch(vocab, seed):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (BATCH, SEQ + 1), generator=gen)
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


def forward_loss(model, inputs, targets):
    logits = model(inputs).logits
    return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


# Parameters save_pretrained writes under another name than named_parameters
# gives (transformers 5 keeps GPT-NeoX's old checkpoint name for its head).
CHECKPOINT_NAMES = {"lm_head.weight": "embed_out.weight"}


def checkpoint_name(model, name):
    if model.config.model_type == "gpt_neox":
        return CHECKPOINT_NAMES.get(name, name)
    if model.config.model_type == "gpt2":  # the family names GPT-2's tensors as the hub does
        return name.removeprefix("transformer.")
    return name


def gradients(model, inputs, targets):
    model.zero_grad()
    logits, loss = forward_loss(model, inputs, targets)
    loss.backward()
    ref = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        ref["grad." + checkpoint_name(model, name)] = p.grad.detach().clone()
    return ref


def masked_gradients(model, inputs, targets):
    """Loss and gradients with labels -100 (a loss mask): every third target
    and the first half of row 0 do not count, as a prompt would not."""
    masked = targets.clone()
    masked.view(-1)[::3] = -100
    masked[0, : SEQ // 2] = -100
    model.zero_grad()
    _, loss = forward_loss(model, inputs, masked)
    loss.backward()
    out = {"inputs": inputs.to(torch.int32), "targets": masked.to(torch.int32),
           "loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        out["grad." + checkpoint_name(model, name)] = p.grad.detach().clone()
    return out


def adamw_run(model, inputs, targets, clip):
    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=EPS)
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        _, loss = forward_loss(model, inputs, targets)
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item())
        losses.append(loss.item())
        opt.step()
    ref = {"adamw.losses": torch.tensor(losses), "adamw.grad_norms": torch.tensor(norms)}
    for name, p in model.named_parameters():
        ref["adamw.final." + checkpoint_name(model, name)] = p.detach().clone()
    clipped = sum(n > clip for n in norms)
    return ref, clipped


def part_of(name):
    """The block index of a parameter (".layers.<i>."), else "EH": the
    embedding and the head train every step."""
    parts = name.split(".")
    for block in ("layers", "h"):  # GPT-2 calls its blocks h
        if block in parts:
            return int(parts[parts.index(block) + 1])
    return "EH"


def optimizer_over(named, trainable, old):
    """A torch AdamW over what trains now, carrying the state of the params
    that trained in the previous period too."""
    decay = [p for n, p in named if n in trainable and p.dim() == 2]
    rest = [p for n, p in named if n in trainable and p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=EPS, foreach=False)
    if old is not None:
        for p in decay + rest:
            if p in old.state:
                opt.state[p] = old.state[p]
    return opt


def lisa_run(model, vocab, seed):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (SEQ + 1,), generator=gen)
    inputs, targets = tokens[:SEQ].repeat(BATCH, 1), tokens[1:].repeat(BATCH, 1)
    named = list(model.named_parameters())
    losses, norms, opt = [], [], None
    for step in range(LISA_STEPS):
        active = LISA_SETS[step // LISA_INTERVAL]
        trainable = {n for n, _ in named if part_of(n) == "EH" or part_of(n) in active}
        if step % LISA_INTERVAL == 0:
            opt = optimizer_over(named, trainable, opt)
        model.zero_grad(set_to_none=True)
        _, loss = forward_loss(model, inputs, targets)
        loss.backward()
        params = [p for n, p in named if n in trainable]
        norms.append(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params)).item())
        torch.nn.utils.clip_grad_norm_(params, LISA_CLIP)
        opt.step()
        losses.append(loss.item())
    ref = {"lisa.tokens": tokens.to(torch.int32), "lisa.losses": torch.tensor(losses),
           "lisa.grad_norms": torch.tensor(norms)}
    for name, p in named:
        ref["lisa.final." + checkpoint_name(model, name)] = p.detach().clone()
    return ref


def make(out_root, name, cls, config, seed, clip=GRAD_CLIP):
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    model = build(cls, config, seed)
    model.save_pretrained(out, safe_serialization=True)
    inputs, targets = make_batch(config.vocab_size, seed + 100)
    ref = {"inputs": inputs.to(torch.int32), "targets": targets.to(torch.int32)}
    ref.update(gradients(model, inputs, targets))
    run, clipped = adamw_run(model, inputs, targets, clip)
    ref.update(run)
    # The same run in float64: how far float32 itself is from the exact one.
    run64, _ = adamw_run(build(cls, config, seed).double(), inputs, targets, clip)
    for key in ("losses", "grad_norms"):
        exact = torch.tensor(run64["adamw." + key].tolist(), dtype=torch.float64)
        hi = exact.float()
        ref[f"adamw64.{key}.hi"], ref[f"adamw64.{key}.lo"] = hi, (exact - hi.double()).float()
    ref.update(lisa_run(build(cls, config, seed), config.vocab_size, seed + 200))
    rope = getattr(model.model, "rotary_emb", None)
    if rope is not None and model.config.rope_parameters.get("rope_type", "default") not in (
            "default", None):
        ref["rope.inv_freq"] = rope.inv_freq.detach().float().clone()
        ref["rope.scale"] = torch.tensor([float(rope.attention_scaling)])
    meta = {"lr": str(LR), "beta1": str(BETA1), "beta2": str(BETA2), "eps": str(EPS),
            "weight_decay": str(WEIGHT_DECAY), "grad_clip": str(clip),
            "steps": str(STEPS), "batch": str(BATCH), "seq": str(SEQ), "seed": str(seed),
            "lisa_sets": json.dumps(LISA_SETS), "lisa_interval": str(LISA_INTERVAL),
            "lisa_grad_clip": str(LISA_CLIP),
            "torch": torch.__version__, "transformers": transformers.__version__}
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(out, "ref.safetensors"),
              metadata=meta)
    masked = masked_gradients(build(cls, config, seed), inputs, targets)
    save_file({k: v.contiguous() for k, v in masked.items()},
              os.path.join(out, "masked.safetensors"), metadata=meta)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)  # defaults only; nothing a trainer reads
    print(f"{name}: loss {ref['loss'].item():.6f}, {sum(p.numel() for p in model.parameters())} "
          f"parameters, clipped on {clipped} of {STEPS} steps")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "fixtures", "families"))
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    table = families()
    for name in args.names or table:
        if name not in table:
            sys.exit(f"unknown family {name}; known: {', '.join(table)}")
        make(args.out, name, *table[name])


if __name__ == "__main__":
    main()
