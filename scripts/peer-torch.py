#!/usr/bin/env python3
"""PyTorch + Hugging Face peer for the GPU benchmarks: FT and LISA side by side.

    python3 scripts/peer-torch.py [--model gpt2-124m] [--method ft|lisa]
        [--gamma 2 --interval 20 --lisa-free-state] [--device cuda|cpu]
        [--dtype bf16|fp32] [--compile] [--attn sdpa|eager]
        [--data FILE.bin] [--batch 4 --seq 64 --steps 100 --warmup-steps 5]
        [--lr 3e-4 --weight-decay 0.01 --clip 1.0 --seed 1337]
        [--peak-tflops X] [--self-check]

Model. `--model NAME` reads models/NAME.yaml (or a path to a .yaml) and builds
Hugging Face GPT2LMHeadModel (config with n_embd: GPT-2 family) or
LlamaForCausalLM (config with hidden_size: LLaMA / Mistral family) from its
`config:` section, tied head when the YAML's head reads the embedding table.
Random init (HF's own init), dropout 0, nothing downloaded. PyYAML is used
when present, otherwise a small reader of the `config:` section.

Step. What `lisa train` does, written as HF Trainer runs it: forward under
torch.autocast(bfloat16) with fp32 parameters (HF Trainer --bf16; --dtype
fp32: no autocast), mean cross entropy of the logits (upcast to fp32, as HF's
causal-LM loss does) against the next token, backward, clip_grad_norm_ to
--clip, AdamW (betas 0.9/0.999, eps 1e-8, decoupled weight decay on 2-D
parameters only, i.e. not on biases and norm weights; constant learning rate
after --lr-warmup linear warm-up steps, like `lisa train --warmup`), then
zero_grad(set_to_none=True). The optimizer is built over every parameter
before any freezing, as HF Trainer builds it. --adamw-impl picks torch's
kernel (fused by default).

LISA (--method lisa) is LMFlow's DynamicLayerActivationCallback
(src/lmflow/pipeline/utils/lisa_trainer.py): at step 0 and every --interval
steps, before the forward, set requires_grad=False on every block's
parameters, then True on --gamma blocks drawn uniformly without replacement
with numpy's global RNG (np.random.choice(L, gamma, replace=False), numpy
seeded with --seed as HF's set_seed does). Embedding, final norm and head
always train. Frozen parameters get no .grad, so AdamW skips them (no update,
no decay), but LMFlow never frees their moments: every block trained once
keeps its AdamW state, so memory drifts toward full AdamW. That is the
default here ("optimizer_state": "kept (LMFlow)"); --lisa-free-state drops
the moments (and step count) of each block as it is frozen
("optimizer_state": "freed"). The active sets differ from `lisa train`'s
(other RNG); the cost per step does not depend on which blocks train.
With --compile, a new active set changes requires_grad and so recompiles
the graph (dynamo guards on it): those steps are slow, and they are in
step_ms, not hidden.

Data. --data FILE.bin: llm.c token file (256 int32 header: magic 20240520,
version 1 = uint16 / 2 = uint32 ids, token count; then the ids), windows
drawn exactly as `lisa train --data FILE --seed S` draws them (window b of
step s starts at rng_below(stream(seed, s, b), n_tokens - T), xoshiro256**
seeded by splitmix64, runtime/base/rng.c), so both see the same tokens; without
--data, uniform random ids from torch.Generator(seed).

Timing. Each step is timed on the host with torch.cuda.synchronize() on both
sides (the LISA switch is inside the step, as the callback is inside HF's
loop). median_ms is the median over steps >= --warmup-steps; tokens_per_s =
batch * seq / median.

MFU. Model FLOPs per token, llm.c's convention (gpt2_estimate_mfu in
train_gpt2.cu): flops_per_token = 6*N + 6*L*C*T, N = every parameter counted
once (tied wte/head once; wpe, norms and biases included; an untied input
embedding excluded, as llm.c's llama3 does), L layers, C = heads*head_dim,
T = --seq (6*L*C*T: causal attention's QK^T and AV, forward and backward,
half of the full T x T). mfu = flops_per_token * tokens_per_s / peak. The
same model FLOPs for FT and LISA (LISA skips the frozen blocks' weight
gradients, about a third of their FLOPs, so its mfu is "FT-equivalent
work per second", proportional to tokens/s). Also reported: mfu_palm with
PaLM appendix B / nanoGPT's estimate_mfu: 6*N' + 12*L*H*Q*T, N' = N less the
position embedding (wpe). Peak: dense bf16 tensor FLOPs of the device
(H100 SXM / H200: 989.4e12, H100 PCIe: 756e12, A100: 312e12), from
torch.cuda.get_device_name; --peak-tflops overrides; unknown device, CPU or
fp32 without --peak-tflops: mfu null.

Output: one line per step on stderr (step, loss, grad norm, ms), then one
JSON line on stdout: impl ("torch-eager" / "torch-compile"), method, gamma,
interval, optimizer_state, device_name, dtype, batch, seq, steps,
median_ms, tokens_per_s, mfu, peak_tflops, peak_bytes
(torch.cuda.max_memory_allocated over the whole run, weights included),
peak_reserved_bytes (max_memory_reserved), peak_rss_bytes, losses, step_ms,
active_sets, ... Out of memory: a JSON line with "error": "out of memory"
and exit 3. torch / transformers / numpy missing: one line on stderr, exit 2.

--self-check (slow: copies weights every step; not for timing) checks that
LISA freezes what it says: after each switch the requires_grad count is the
non-block parameters plus gamma blocks' worth; each step, every frozen
block's weights are bit-identical before and after the step while the
active blocks, embedding and head change; frozen blocks have no .grad; with
--lisa-free-state no frozen block holds optimizer state, and without it
every block trained so far still does. Prints "self-check: ok ..." on
stderr or exits 1 naming the first failure.
"""

import argparse
import json
import math
import os
import re
import resource
import statistics
import sys
import time

from llmc_tokens import load_llmc_tokens

M64 = (1 << 64) - 1
# dense bf16 tensor-core peak, FLOP/s; first substring match wins
BF16_PEAK = [("H200", 989.4e12), ("H100 PCIE", 756e12), ("H100", 989.4e12),
             ("A100", 312e12)]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def need_libs():
    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        sys.stderr.write(f"peer-torch.py: needs numpy, torch and transformers "
                         f"({e}); install them (pip install torch transformers) "
                         f"or skip the PyTorch peer\n")
        sys.exit(2)


# ---- the model YAML ------------------------------------------------------

def eval_expr(expr, env):
    """A config entry: a number, or an expression over earlier entries."""
    if isinstance(expr, (int, float)) and not isinstance(expr, bool):
        return expr
    src = str(expr).replace("^", "**")
    if not re.fullmatch(r"[\w\s.+\-*/()]*", src):
        sys.exit(f"peer-torch.py: cannot evaluate config expression {expr!r}")
    return eval(src, {"__builtins__": {}, "sqrt": math.sqrt}, dict(env))


def tiny_yaml(text):
    """Without PyYAML: name, config mapping, embed param names, head op inputs."""
    doc = {"config": {}, "embed": [], "head_ins": []}
    section = None
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not line.strip():
            continue
        if not line.startswith(" "):
            key, _, val = line.partition(":")
            section = key.strip()
            if section == "name":
                doc["name"] = val.strip().strip("\"'")
            continue
        m = re.match(r"^  (\w+):\s*(.+)$", line)
        if section == "config" and m:
            doc["config"][m.group(1)] = m.group(2).strip().strip("\"'")
        m = re.match(r"^    (\w+):\s*\{", line)
        if section == "embed" and m:
            doc["embed"].append(m.group(1))
        m = re.search(r"\bin:\s*\[([^\]]*)\]", line)
        if section == "head" and m:
            doc["head_ins"] += [s.strip() for s in m.group(1).split(",")]
    return doc


def read_model_yaml(name):
    path = name if name.endswith((".yaml", ".yml")) else \
        os.path.join(ROOT, "models", name + ".yaml")
    if not os.path.exists(path):
        sys.exit(f"peer-torch.py: no model file {path}")
    text = open(path).read()
    try:
        import yaml
        d = yaml.safe_load(text)
        doc = {"name": d.get("name"), "config": d.get("config") or {},
               "embed": list((d["embed"].get("params") or {}).keys()),
               "head_ins": [i for op in d["head"]["ops"] for i in op.get("in", [])]}
    except ImportError:
        doc = tiny_yaml(text)
    cfg = {}
    for k, v in doc["config"].items():
        cfg[k] = eval_expr(v, cfg)
    doc["config"] = cfg
    doc["tied"] = any(p in doc["head_ins"] for p in doc["embed"])
    doc["path"] = path
    return doc


def build_model(doc, args):
    import torch
    import transformers as tf
    c = doc["config"]
    if "n_embd" in c:
        if args.seq > c["n_positions"]:
            sys.exit(f"peer-torch.py: --seq {args.seq} > n_positions {c['n_positions']}")
        conf = tf.GPT2Config(
            vocab_size=int(c["vocab_size"]), n_positions=int(c["n_positions"]),
            n_embd=int(c["n_embd"]), n_head=int(c["n_head"]), n_layer=int(c["n_layer"]),
            layer_norm_epsilon=float(c.get("layer_norm_eps", 1e-5)),
            activation_function="gelu_new",  # tanh GELU, the YAML's gelu
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            tie_word_embeddings=doc["tied"], use_cache=False,
            **({} if int(c["vocab_size"]) > 50256 else
               {"bos_token_id": None, "eos_token_id": None}))
        family, cls, blocks_attr = "gpt2", tf.GPT2LMHeadModel, "transformer.h"
        heads, head_dim = int(c["n_head"]), int(c["n_embd"]) // int(c["n_head"])
    elif "hidden_size" in c:
        kw = dict(
            vocab_size=int(c["vocab_size"]), hidden_size=int(c["hidden_size"]),
            intermediate_size=int(c["intermediate_size"]),
            num_hidden_layers=int(c["num_hidden_layers"]),
            num_attention_heads=int(c["num_attention_heads"]),
            num_key_value_heads=int(c.get("num_key_value_heads", c["num_attention_heads"])),
            head_dim=int(c.get("head_dim", c["hidden_size"] // c["num_attention_heads"])),
            rms_norm_eps=float(c.get("rms_norm_eps", 1e-6)),
            max_position_embeddings=max(args.seq, int(c.get("max_position_embeddings", 2048))),
            attention_dropout=0.0, attention_bias=False, mlp_bias=False,
            tie_word_embeddings=doc["tied"], use_cache=False)
        theta = float(c.get("rope_theta", 10000.0))
        try:
            conf = tf.LlamaConfig(rope_parameters={"rope_type": "default",
                                                   "rope_theta": theta}, **kw)
        except TypeError:
            conf = tf.LlamaConfig(rope_theta=theta, **kw)
        family, cls, blocks_attr = "llama", tf.LlamaForCausalLM, "model.layers"
        heads, head_dim = kw["num_attention_heads"], kw["head_dim"]
    else:
        sys.exit(f"peer-torch.py: {doc['path']}: config has neither n_embd (GPT-2) "
                 f"nor hidden_size (LLaMA)")
    conf._attn_implementation = args.attn
    model = cls(conf).float()
    if model.config._attn_implementation != args.attn:
        sys.exit(f"peer-torch.py: asked for attention {args.attn}, transformers "
                 f"chose {model.config._attn_implementation}")
    blocks = model
    for a in blocks_attr.split("."):
        blocks = getattr(blocks, a)
    info = {"family": family, "heads": heads, "head_dim": head_dim,
            "layers": len(blocks), "vocab": int(c["vocab_size"])}
    return model, list(blocks), info


def count_flops(model, blocks, info, doc, seq):
    params = {id(p): p for p in model.parameters()}  # tied head counted once
    n = sum(p.numel() for p in params.values())
    emb_in = model.get_input_embeddings().weight
    n_llmc = n - (0 if doc["tied"] else emb_in.numel())
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)
    n_palm = n_llmc - (wpe.weight.numel() if wpe is not None else 0)
    L, HQ = info["layers"], info["heads"] * info["head_dim"]
    return n, 6 * n_llmc + 6 * L * HQ * seq, 6 * n_palm + 12 * L * HQ * seq


# ---- data ----------------------------------------------------------------

def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


class Xoshiro:
    """runtime/base/rng.c: xoshiro256**, rng_seed_stream, rng_below."""

    def __init__(self, seed, a, b):
        x, h = splitmix64(seed & M64)
        x, h = splitmix64(h ^ ((a * 0xD1342543DE82EF95) & M64))
        x, h = splitmix64(h ^ ((b * 0xAF251AF3B0F025B5) & M64))
        x, s = h, []
        for _ in range(4):
            x, z = splitmix64(x)
            s.append(z)
        self.s = s

    def next(self):
        s = self.s
        rotl = lambda v, k: ((v << k) | (v >> (64 - k))) & M64  # noqa: E731
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        limit = M64 - M64 % n
        while True:
            x = self.next()
            if x < limit:
                return x % n


def batches(args, vocab, device):
    """Yields (inputs, targets) on the device, each [B, T]."""
    import numpy as np
    import torch
    B, T = args.batch, args.seq
    if not args.data:
        gen = torch.Generator().manual_seed(args.seed)
        while True:
            t = torch.randint(0, vocab, (B, T + 1), generator=gen).to(device)
            yield t[:, :-1], t[:, 1:]
    tokens = load_llmc_tokens(args.data, vocab)
    if len(tokens) < T + 1:
        sys.exit(f"{args.data}: {len(tokens)} tokens, one window of {T} needs {T + 1}")
    step = 0
    while True:
        starts = [Xoshiro(args.seed, step, b).below(len(tokens) - T) for b in range(B)]
        w = torch.from_numpy(np.stack([tokens[s:s + T + 1] for s in starts])).to(device)
        yield w[:, :-1], w[:, 1:]
        step += 1


# ---- LISA ----------------------------------------------------------------

class DynamicLayerActivation:
    """LMFlow's DynamicLayerActivationCallback, called at each step's begin."""

    def __init__(self, blocks, gamma, interval, opt, free_state):
        self.blocks, self.gamma, self.interval = blocks, gamma, interval
        self.opt, self.free_state = opt, free_state
        self.active = []
        self.history = []

    def on_step_begin(self, step):
        if step % self.interval:
            return False
        import numpy as np
        for blk in self.blocks:
            for p in blk.parameters():
                p.requires_grad = False
        self.active = sorted(int(i) for i in np.random.choice(
            range(len(self.blocks)), self.gamma, replace=False))
        for i in self.active:
            for p in self.blocks[i].parameters():
                p.requires_grad = True
        if self.free_state:
            for i, blk in enumerate(self.blocks):
                if i not in self.active:
                    for p in blk.parameters():
                        self.opt.state.pop(p, None)
        self.history.append([step, self.active])
        print(f"lisa: step {step}: activating blocks {self.active}", file=sys.stderr,
              flush=True)
        return True


def blocks_with_state(blocks, opt):
    return [i for i, b in enumerate(blocks) if any(p in opt.state for p in b.parameters())]


def state_bytes(opt):
    import torch
    return sum(v.numel() * v.element_size() for s in opt.state.values()
               for v in s.values() if torch.is_tensor(v))


class SelfCheck:
    def __init__(self, model, blocks, lisa):
        self.model, self.blocks, self.lisa = model, blocks, lisa
        ids = {id(p) for b in blocks for p in b.parameters()}
        self.outside = [p for p in {id(p): p for p in model.parameters()}.values()
                        if id(p) not in ids]
        self.per_block = sum(p.numel() for p in blocks[0].parameters())
        self.ever = set()
        self.checks = 0

    def fail(self, msg):
        sys.exit(f"self-check FAILED: {msg}")

    def after_switch(self, step, trainable, total):
        want = sum(p.numel() for p in self.outside) + len(self.lisa.active) * self.per_block
        print(f"self-check: step {step}: active {self.lisa.active}, "
              f"requires_grad {trainable} of {total} parameters (want {want})",
              file=sys.stderr, flush=True)
        if trainable != want:
            self.fail(f"step {step}: {trainable} parameters train, want {want}")
        self.checks += 1

    def before(self):
        return [[p.detach().clone() for p in b.parameters()] for b in self.blocks], \
            [p.detach().clone() for p in self.outside]

    def after(self, step, snap, opt):
        import torch
        blocks0, outside0 = snap
        active = set(self.lisa.active)
        self.ever |= active
        for i, (b, old) in enumerate(zip(self.blocks, blocks0)):
            same = all(torch.equal(p.detach(), o)
                       for p, o in zip(b.parameters(), old))
            if i in active and same:
                self.fail(f"step {step}: active block {i} did not change")
            if i not in active:
                if not same:
                    self.fail(f"step {step}: frozen block {i} changed")
                if any(p.grad is not None for p in b.parameters()):
                    self.fail(f"step {step}: frozen block {i} has a .grad")
        if all(torch.equal(p.detach(), o) for p, o in zip(self.outside, outside0)):
            self.fail(f"step {step}: embedding / head did not change")
        held = set(blocks_with_state(self.blocks, opt))
        want = active if self.lisa.free_state else self.ever
        if held != want:
            self.fail(f"step {step}: blocks with optimizer state {sorted(held)}, "
                      f"want {sorted(want)}")
        self.checks += 1


# ---- main ----------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gpt2-124m",
                    help="models/NAME.yaml, or a path to a .yaml (gpt2-124m)")
    ap.add_argument("--method", choices=["ft", "lisa"], default="ft")
    ap.add_argument("--gamma", type=int, default=2, help="LISA: blocks trained (2)")
    ap.add_argument("--interval", type=int, default=20,
                    help="LISA: steps per active set (20)")
    ap.add_argument("--lisa-free-state", action="store_true",
                    help="drop frozen blocks' AdamW moments (LMFlow keeps them)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default=None,
                    help="default: cuda when available")
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default=None,
                    help="bf16: autocast, fp32 params (default on cuda); fp32 (on cpu)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    ap.add_argument("--data", help="llm.c .bin token file (default: random ids)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup-steps", type=int, default=5,
                    help="leading steps left out of the median (5)")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--lr-warmup", type=int, default=0,
                    help="linear lr warm-up steps, as lisa train --warmup (0)")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0, help="0 = off")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--adamw-impl", choices=["fused", "foreach", "for-loop"],
                    default="fused")
    ap.add_argument("--peak-tflops", type=float, help="device peak for MFU, TFLOP/s")
    ap.add_argument("--self-check", action="store_true",
                    help="check LISA's freezing every step (slow; not for timing)")
    args = ap.parse_args()
    if args.steps <= args.warmup_steps:
        ap.error("--steps must exceed --warmup-steps")
    if args.interval < 1 or args.gamma < 1:
        ap.error("--interval and --gamma must be at least 1")
    return args


def main():
    args = parse_args()
    need_libs()
    import numpy as np
    import torch
    import torch.nn.functional as F
    import transformers

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("peer-torch.py: --device cuda, but torch sees no CUDA device "
                 f"(torch {torch.__version__}, cuda {torch.version.cuda})")
    if args.dtype is None:
        args.dtype = "bf16" if args.device == "cuda" else "fp32"
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    doc = read_model_yaml(args.model)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # HF set_seed; LMFlow draws from numpy's global RNG
    model, blocks, info = build_model(doc, args)
    if args.method == "lisa" and args.gamma > len(blocks):
        sys.exit(f"peer-torch.py: --gamma {args.gamma} > {len(blocks)} blocks")
    model.to(dev).train()
    n_params, fpt, fpt_palm = count_flops(model, blocks, info, doc, args.seq)

    uniq = list({id(p): p for p in model.parameters()}.values())
    impl = {"fused": {"fused": True}, "foreach": {"foreach": True},
            "for-loop": {"foreach": False, "fused": False}}[args.adamw_impl]
    opt = torch.optim.AdamW(
        [{"params": [p for p in uniq if p.dim() >= 2], "weight_decay": args.weight_decay},
         {"params": [p for p in uniq if p.dim() < 2], "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.999), eps=1e-8, **impl)
    lisa = DynamicLayerActivation(blocks, args.gamma, args.interval, opt,
                                  args.lisa_free_state) if args.method == "lisa" else None
    check = SelfCheck(model, blocks, lisa) if args.self_check and lisa else None
    fwd = torch.compile(model) if args.compile else model
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    data = batches(args, info["vocab"], dev)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else None
    if peak is None and cuda and args.dtype == "bf16":
        peak = next((v for k, v in BF16_PEAK if k in name.upper()), None)
    base = {"impl": "torch-compile" if args.compile else "torch-eager",
            "method": args.method, "gamma": args.gamma if lisa else None,
            "interval": args.interval if lisa else None,
            "optimizer_state": None if not lisa else
            ("freed" if args.lisa_free_state else "kept (LMFlow)"),
            "model": doc["name"], "device": args.device, "device_name": name,
            "dtype": args.dtype, "attn": args.attn, "batch": args.batch, "seq": args.seq}

    losses, times = [], []
    try:
        for step in range(args.steps):
            inputs, targets = next(data)
            sync()
            t0 = time.perf_counter()
            switched = lisa.on_step_begin(step) if lisa else False
            if check and switched:
                tr = sum(p.numel() for p in uniq if p.requires_grad)
                check.after_switch(step, tr, n_params)
            snap = check.before() if check else None
            lr = args.lr * min(1.0, (step + 1) / args.lr_warmup) if args.lr_warmup else args.lr
            for g in opt.param_groups:
                g["lr"] = lr
            with autocast:
                logits = fwd(input_ids=inputs).logits
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)),
                                   targets.reshape(-1))
            del logits
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip) \
                if args.clip > 0 else torch.zeros(())
            opt.step()
            opt.zero_grad(set_to_none=True)
            lv, nv = loss.item(), norm.item()
            sync()
            ms = (time.perf_counter() - t0) * 1e3
            if check:
                check.after(step, snap, opt)
            losses.append(lv)
            times.append(ms)
            print(f"step {step}: loss {lv:.4f} grad_norm {nv:.3f} {ms:.1f} ms",
                  file=sys.stderr, flush=True)
    except torch.cuda.OutOfMemoryError as e:
        print(json.dumps({**base, "error": "out of memory", "at_step": len(times),
                          "detail": str(e).splitlines()[0]}))
        sys.exit(3)

    median = statistics.median(times[args.warmup_steps:])
    tps = args.batch * args.seq / (median / 1e3)
    out = dict(base)
    out.update({
        "steps": args.steps, "warmup_steps": args.warmup_steps,
        "median_ms": round(median, 3), "tokens_per_s": round(tps, 1),
        "params": n_params, "flops_per_token": fpt,
        "mfu": round(fpt * tps / peak, 4) if peak else None,
        "mfu_convention": "llm.c: 6*N + 6*L*C*T, N = all params once (untied input "
                          "embedding excluded); same model FLOPs for ft and lisa",
        "flops_per_token_palm": fpt_palm,
        "mfu_palm": round(fpt_palm * tps / peak, 4) if peak else None,
        "peak_tflops": round(peak / 1e12, 2) if peak else None,
        "peak_bytes": torch.cuda.max_memory_allocated(dev) if cuda else None,
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(dev) if cuda else None,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "optimizer_state_bytes": state_bytes(opt),
        "blocks_with_optimizer_state": len(blocks_with_state(blocks, opt)),
        "active_sets": lisa.history if lisa else None,
        "losses": [round(v, 5) for v in losses],
        "step_ms": [round(v, 2) for v in times],
        "lr": args.lr, "lr_warmup": args.lr_warmup, "weight_decay": args.weight_decay,
        "clip": args.clip, "adamw_impl": args.adamw_impl, "seed": args.seed,
        "data": args.data or "random ids", "self_check": bool(args.self_check),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "cuda": torch.version.cuda})
    if check:
        print(f"self-check: ok ({check.checks} checks over {args.steps} steps, "
              f"{len(lisa.history)} active sets)", file=sys.stderr, flush=True)
    elif args.self_check:
        print("self-check: nothing to check for --method ft", file=sys.stderr)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
