#!/bin/bash
# lisa gen end to end: one self-contained .cu per path (nvcc compiles each
# alone to a CUBIN), a plan with the fused epilogues, NVRTC's report, and
# clear errors for bad input.
. "$LISA_SRC/tests/cli/lib.sh"

TINY=$SRC/models/gpt2-tiny.yaml
OUT=$TMP/gen
export XDG_CACHE_HOME=$TMP/cache

if ! "$LISA" gen "$TINY" -o "$OUT" --batch 2 --seq 8 > "$TMP/gen.log" 2>&1; then
  fail "lisa gen exited non-zero: $(cat "$TMP/gen.log")"
fi
for p in embed_train embed_forward block_active block_frozen block_forward head_train head_frozen; do
  [ -s "$OUT/$p.cu" ] || fail "no $p.cu"
  grep -q "^## $p: " "$OUT/plan.txt" || fail "plan.txt has no section for $p"
done
# GPT-2's bias + GELU are GEMM epilogues; their backward DGELU and BGRADA.
for epi in GELU_AUX_BIAS DGELU BGRADA; do
  grep -q "epilogue=$epi" "$OUT/plan.txt" || fail "plan.txt has no $epi epilogue"
done
# The FROZEN path runs no weight-gradient GEMM; the ACTIVE one does.
awk '/^## block_frozen/,/^## block_forward/' "$OUT/plan.txt" | grep -q 'dW +=' &&
  fail "block_frozen computes a weight gradient"
awk '/^## block_active/,/^## block_frozen/' "$OUT/plan.txt" | grep -q 'dW +=' ||
  fail "block_active computes no weight gradient"
# What each block path keeps from forward to backward.
saved() { awk "/^## $1:/,/bytes by role/" "$OUT/plan.txt" | awk '$2 == "saved" {print $1}' | sort | tr '\n' ' '; }
[ "$(saved block_active)" = "att att.lse fc fc_act h1 h1.mean h1.rstd h2 h2.mean h2.rstd qkv x1 " ] ||
  fail "block_active saves: $(saved block_active)"
# FROZEN: no dW, so neither h1, h2 nor fc_act (only dW GEMMs read them)
[ "$(saved block_frozen)" = "att att.lse fc h1.mean h1.rstd h2.mean h2.rstd qkv x1 " ] ||
  fail "block_frozen saves: $(saved block_frozen)"
[ -z "$(saved block_forward)" ] || fail "block_forward saves: $(saved block_forward)"
if [ -f "$OUT/compile.txt" ]; then
  grep -q "Used [0-9]* registers" "$OUT/compile.txt" || fail "compile.txt has no ptxas report"
  "$LISA" gen "$TINY" -o "$OUT" --batch 2 --seq 8 > "$TMP/again.log" 2>&1
  [ "$(grep -c 'cache hit' "$TMP/again.log")" -eq 8 ] || fail "second run: not 8 cache hits (7 paths and the optimizer): $(cat "$TMP/again.log")"
fi

# Each file compiles on its own with nvcc, where the toolkit has it.
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
if [ -x "$NVCC" ]; then
  if "$NVCC" -std=c++17 -arch=sm_90 -cubin "$OUT/block_active.cu" -o "$TMP/block_active.cubin" \
      > "$TMP/nvcc.log" 2>&1; then
    echo "ok   nvcc compiles block_active.cu alone"
  else
    fail "nvcc block_active.cu: $(tail -5 "$TMP/nvcc.log")"
  fi
else
  echo "skip nvcc: not found"
fi

# LoRA: the adapters' dW GEMMs (2 per block linear) and nothing else.
if "$LISA" gen "$TINY" -o "$TMP/lora" --method lora --lora-rank 4 --seq 8 --no-compile > /dev/null 2>&1; then
  dw=$(grep -c 'dW +=' "$TMP/lora/plan.txt")
  base=$(grep 'dW +=' "$TMP/lora/plan.txt" | grep -vc 'lora_[AB] <-')
  [ "$dw" -eq 8 ] && [ "$base" -eq 0 ] || fail "lora plan: $dw dW GEMMs, $base not of adapters"
else
  fail "lisa gen --method lora failed"
fi
expect_error gen_lora_target "LoRA target 'nope' is not a block linear weight" \
  "$LISA" gen "$TINY" -o "$TMP/lora" --method lora --lora-targets nope --seq 8 --no-compile

expect_error gen_no_output "no output folder" "$LISA" gen "$TINY"
expect_error gen_missing_model "nope\.yaml" "$LISA" gen "$TMP/nope.yaml" -o "$OUT"
expect_error gen_seq_too_long "sequence 64 exceeds the model's 32 positions" \
  "$LISA" gen "$TINY" -o "$OUT" --seq 64 --no-compile
expect_error gen_bad_arch "real arch such as sm_90" "$LISA" gen "$TINY" -o "$OUT" --arch compute_90
expect_error gen_bad_dtype "--dtype: 'fp16' is not fp32, bf16, bf16-mixed or bf16-true" \
  "$LISA" gen "$TINY" -o "$OUT" --dtype fp16
expect_error gen_bad_batch "lisa gen: --batch: 'x' is not an integer in \[1, 16777216\]" \
  "$LISA" gen "$TINY" -o "$OUT" --batch x
expect_error gen_bad_alpha "--lora-alpha: '0' is not a number in \(0, 1e\+06\]" \
  "$LISA" gen "$TINY" -o "$OUT" --method lora --lora-alpha 0
expect_error gen_bad_method "--method: 'qlora' is not ft, lisa or lora" \
  "$LISA" gen "$TINY" -o "$OUT" --method qlora
expect_error gen_no_model "missing MODEL.yaml" "$LISA" gen -o "$OUT"
# --rounding: the bf16-mixed AdamW kernel's STOCHASTIC argument
"$LISA" gen "$TINY" -o "$TMP/near" --seq 8 --no-compile --rounding nearest > /dev/null 2>&1 &&
  grep -q 'adamw_multi<__nv_bfloat16, 256, false>' "$TMP/near/optimizer.cu" ||
  fail "--rounding nearest: no round-to-nearest AdamW in optimizer.cu"
grep -q 'adamw_multi<__nv_bfloat16, 256, true>' "$OUT/optimizer.cu" ||
  fail "default rounding: no stochastic AdamW in optimizer.cu"
expect_error gen_bad_rounding "--rounding: 'up' is not stochastic or nearest" \
  "$LISA" gen "$TINY" -o "$OUT" --rounding up

# Precisions in plan.txt: bf16 = bf16-mixed (fp32 parameter gradients);
# bf16-true stores the gradients in bf16 too.
grep -q "bf16-mixed: bf16 weights and activations, f32 parameter gradients" "$OUT/plan.txt" ||
  fail "default plan.txt does not say bf16-mixed: $(head -1 "$OUT/plan.txt")"
if "$LISA" gen "$TINY" -o "$TMP/true" --dtype bf16-true --seq 8 --no-compile > /dev/null 2>&1; then
  grep -q "bf16-true: bf16 weights and activations, bf16 parameter gradients" "$TMP/true/plan.txt" ||
    fail "bf16-true plan.txt header: $(head -1 "$TMP/true/plan.txt")"
  grads=$(awk '$2 == "param-grad" {print $3}' "$TMP/true/plan.txt" | sort -u | tr '\n' ' ')
  [ "$grads" = "bf16 " ] || fail "bf16-true parameter gradients are: $grads"
  grads=$(awk '$2 == "param-grad" {print $3}' "$OUT/plan.txt" | sort -u | tr '\n' ' ')
  [ "$grads" = "f32 " ] || fail "bf16-mixed parameter gradients are: $grads"
else
  fail "lisa gen --dtype bf16-true failed"
fi
finish
