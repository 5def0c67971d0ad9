#!/bin/bash
# Bad input through the CLI: each gives a clear message naming the file and
# the place, and a non-zero exit; nothing is written where a good file was.
. "$LISA_SRC/tests/cli/lib.sh"

TINY=$SRC/models/gpt2-tiny.yaml
TOKENS=$SRC/tests/fixtures/tokens-67.bin
WEIGHTS=$SRC/tests/fixtures/gpt2-tiny.safetensors
train() { "$LISA" train --quiet --device cpu --steps 1 --batch 2 --seq 8 "$@"; }

# Malformed YAML: file:line:column.
printf 'name: broken\nconfig:\n  n_embd: [1, 2\n' > "$TMP/broken.yaml"
expect_error malformed_yaml "broken\.yaml:[0-9]+:[0-9]+:" train "$TMP/broken.yaml" --data "$TOKENS"

# Unknown op: the line of the op.
sed 's/op: gelu,/op: gelux,/' "$TINY" > "$TMP/unknown-op.yaml"
line=$(grep -n 'op: gelux' "$TMP/unknown-op.yaml" | cut -d: -f1)
expect_error unknown_op "unknown-op\.yaml:$line:[0-9]+: .*unknown op 'gelux'" \
  train "$TMP/unknown-op.yaml" --data "$TOKENS"

# A model that needs a tensor the checkpoint lacks.
sed 's/hf: ln_f.bias/hf: ln_final.bias/' "$TINY" > "$TMP/renamed.yaml"
expect_error missing_tensor "gpt2-tiny\.safetensors: missing tensor 'ln_final\.bias'.*renamed\.yaml:[0-9]+" \
  train "$TMP/renamed.yaml" --data "$TOKENS" --weights "$WEIGHTS"

# A checkpoint whose tensors have other shapes than the model's.
sed 's/n_embd: 24/n_embd: 30/' "$TINY" > "$TMP/wider.yaml"
expect_error wrong_shape "gpt2-tiny\.safetensors: tensor '[a-z_.]*' has shape \[67, 24\], the model expects \[67, 30\]" \
  train "$TMP/wider.yaml" --data "$TOKENS" --weights "$WEIGHTS"

# Truncated checkpoint and data files.
head -c 40000 "$WEIGHTS" > "$TMP/cut.safetensors"
expect_error truncated_weights "cut\.safetensors: .*(truncated|beyond)" \
  train "$TINY" --data "$TOKENS" --weights "$TMP/cut.safetensors"
head -c 3000 "$TOKENS" > "$TMP/cut.bin"
expect_error truncated_data "cut\.bin: .*truncated" train "$TINY" --data "$TMP/cut.bin"

# Token ids beyond the vocabulary (byte-level data for a 67-token model).
expect_error token_beyond_vocab "tinyshakespeare\.bin: token id [0-9]+ at position [0-9]+ is beyond the vocabulary size 67" \
  train "$TINY" --data "$SRC/data/tinyshakespeare.bin"

# Impossible settings.
expect_error seq_too_long "--seq 64 is longer than .*gpt2-tiny\.yaml allows \(32 positions\)" \
  "$LISA" train --quiet --device cpu "$TINY" --data "$TOKENS" --seq 64
expect_error bad_number "--lr: 'fast' is not a number" train "$TINY" --data "$TOKENS" --lr fast
expect_error unknown_option "unknown option '--gama'" train "$TINY" --data "$TOKENS" --gama 2
expect_error gamma_beyond_layers "--gamma 3 exceeds the model's 2 middle blocks" \
  train "$TINY" --data "$TOKENS" --method lisa --gamma 3
expect_error lisa_option_with_ft "--gamma applies to --method lisa" train "$TINY" --data "$TOKENS" --gamma 1
printf 'function sample_layers(ctx)\n  return {0, 5}\nend\n' > "$TMP/bad-policy.lua"
expect_error bad_lua_policy "bad-policy\.lua: sample_layers returned 5 at position 2, outside \[0, 2\)" \
  train "$TINY" --data "$TOKENS" --method lisa --lua "$TMP/bad-policy.lua"
expect_error missing_model_file "nope\.yaml" train "$TMP/nope.yaml" --data "$TOKENS"
# These machines have no GPU: cuda says why and stops, auto says so and
# trains on the cpu; the cpu backend is fp32 only.
expect_error no_cuda "--device cuda: (no NVIDIA driver|the NVIDIA driver|this build has no CUDA)" \
  "$LISA" train "$TINY" --data "$TOKENS" --device cuda
auto_log=$("$LISA" train "$TINY" --data "$TOKENS" --device auto --steps 2 --batch 2 --seq 8 2>&1) ||
  fail "--device auto did not train on the cpu: $auto_log"
grep -q "using the cpu backend" <<<"$auto_log" && echo "ok   auto: says it uses the cpu" ||
  fail "--device auto did not say it took the cpu: $auto_log"
expect_error cpu_bf16 "the cpu backend trains in fp32; --dtype bf16 needs --device cuda" \
  train "$TINY" --data "$TOKENS" --dtype bf16
expect_error bad_rounding "--rounding: 'up' is not stochastic or nearest" \
  train "$TINY" --data "$TOKENS" --rounding up
expect_error cpu_tune "--tune sets the generated kernels' tunables; it needs --device cuda" \
  train "$TINY" --data "$TOKENS" --device cpu --tune /dev/null
expect_error bad_dtype "--dtype: 'fp8' is not fp32, bf16, bf16-mixed or bf16-true" \
  train "$TINY" --data "$TOKENS" --dtype fp8
# One format for every bad value: the option, the value, what it must be.
expect_error bad_device "--device: 'gpu' is not auto, cpu, cuda or emu" train "$TINY" --data "$TOKENS" --device gpu
expect_error fractional_batch "--batch: '2.5' is not an integer in \[1, 1048576\]" \
  train "$TINY" --data "$TOKENS" --batch 2.5
expect_error negative_seed "--seed: '-1' is not an integer in \[0, 18446744073709551615\]" \
  train "$TINY" --data "$TOKENS" --seed -1
expect_error nan_lr "--lr: 'nan' is not a number in \[0, 10\]" train "$TINY" --data "$TOKENS" --lr nan
expect_error zero_shard "--max-shard-size: '0' is not a number in \(0, 1e\+06\]" \
  train "$TINY" --data "$TOKENS" --save "$TMP/s" --max-shard-size 0
expect_error needs_value "--steps needs a value" train "$TINY" --data "$TOKENS" --steps
expect_error two_models "unexpected argument" train "$TINY" "$TINY" --data "$TOKENS"
"$LISA" train "$TINY" --data "$TOKENS" --device cpu --quiet --steps 1e0 --batch 2 --seq 8 ||
  fail "--steps 1e0 is an integer"

# A failed save leaves the good file where it was untouched.
train "$TINY" --data "$TOKENS" --save "$TMP/good.safetensors" || fail "saving a good file"
cp "$TMP/good.safetensors" "$TMP/good.copy"
expect_error save_into_missing_dir "no-such-dir" train "$TINY" --data "$TOKENS" --save "$TMP/no-such-dir/x.safetensors"
cmp -s "$TMP/good.safetensors" "$TMP/good.copy" || fail "good checkpoint changed"
ls "$TMP" | grep -q '\.tmp' && fail "temporary file left behind"

finish
