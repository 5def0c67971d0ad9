#!/bin/bash
# MODEL as a Hugging Face folder: config.json's model_type picks the family
# file (models/gpt2.yaml, models/llama.yaml), its values set the sizes, the
# folder's safetensors are the weights; the runs equal the same model given
# as YAML + --weights. A config.json the family cannot honour is an error.
. "$LISA_SRC/tests/cli/lib.sh"

TOKENS=$SRC/tests/fixtures/tokens-67.bin
train() { "$LISA" train --quiet --device cpu --batch 2 --seq 8 --steps 3 --lr 1e-2 "$@"; }
rows() { grep -E '^\{"step":' "$1" | sed -E 's/,"step_ms".*//'; }
# same_rows NAME A B: both logs have rows, and the same ones
same_rows() {
  if [ -n "$(rows "$2")" ] && diff <(rows "$2") <(rows "$3") >/dev/null; then echo "ok   $1"
  else fail "$1: the runs differ"; fi
}
# 400 token ids below 53 (mistral-tiny's vocabulary, smaller than llama-tiny's), llm.c format
small_tokens() {
  printf '\x88\xd8\x34\x01\x01\x00\x00\x00\x90\x01\x00\x00'
  head -c $((253 * 4)) /dev/zero
  for i in $(seq 0 399); do printf "\\x$(printf %02x $(((i * 37 + i / 7) % 53)))\\x00"; done
}

mkdir -p "$TMP/gpt2"
cp "$SRC/tests/fixtures/gpt2-tiny.safetensors" "$TMP/gpt2/model.safetensors"
gpt2_config() {
  cat <<JSON
{"activation_function": "${1:-gelu_new}", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
 "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
 "layer_norm_epsilon": 1e-05, "model_type": "${2:-gpt2}", "n_ctx": 32, "n_embd": 24, "n_head": 3,
 "n_inner": null, "n_layer": 2, "n_positions": 32, "reorder_and_upcast_attn": false,
 "resid_pdrop": 0.1, "scale_attn_by_inverse_layer_idx": false, "scale_attn_weights": true,
 "summary_activation": null, "summary_first_dropout": 0.1, "summary_proj_to_labels": true,
 "summary_type": "cls_index", "summary_use_proj": true, "torch_dtype": "float32",
 "transformers_version": "4.44.0", "use_cache": true, "vocab_size": 67 ${3:-}}
JSON
}
gpt2_config >"$TMP/gpt2/config.json"
train "$TMP/gpt2" --data "$TOKENS" --log-jsonl "$TMP/folder.jsonl" || fail "training from a GPT-2 folder failed"
train "$SRC/models/gpt2-tiny.yaml" --weights "$SRC/tests/fixtures/gpt2-tiny.safetensors" \
  --data "$TOKENS" --log-jsonl "$TMP/yaml.jsonl" || fail "training from YAML failed"
same_rows "gpt2 folder = gpt2-tiny.yaml + its weights" "$TMP/yaml.jsonl" "$TMP/folder.jsonl"
"$LISA" plan "$TMP/gpt2" --seq 32 >/dev/null || fail "lisa plan of a folder failed"

mkdir -p "$TMP/llama"
cp "$SRC/tests/fixtures/llama-tiny.safetensors" "$TMP/llama/model.safetensors"
cat >"$TMP/llama/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
 "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 24,
 "initializer_range": 0.02, "intermediate_size": 40, "max_position_embeddings": 64,
 "mlp_bias": false, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2,
 "num_key_value_heads": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-06, "rope_scaling": null,
 "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "float32",
 "transformers_version": "4.44.0", "use_cache": true, "vocab_size": 61}
JSON
small_tokens >"$TMP/small.bin"
train "$TMP/llama" --data "$TMP/small.bin" --log-jsonl "$TMP/lfolder.jsonl" \
  || fail "training from a LLaMA folder failed"
train "$SRC/models/llama-tiny.yaml" --weights "$SRC/tests/fixtures/llama-tiny.safetensors" \
  --data "$TMP/small.bin" --log-jsonl "$TMP/lyaml.jsonl" || fail "training llama-tiny from YAML failed"
same_rows "llama folder = llama-tiny.yaml + its weights" "$TMP/lyaml.jsonl" "$TMP/lfolder.jsonl"

# Mistral: LLaMA's graph with its sliding window.
mkdir -p "$TMP/mistral"
cp "$SRC/tests/fixtures/mistral-tiny.safetensors" "$TMP/mistral/model.safetensors"
mistral_config() {
  cat <<JSON
{"architectures": ["MistralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
 "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02,
 "intermediate_size": 48, "max_position_embeddings": 128, "model_type": "mistral",
 "num_attention_heads": 4, "num_hidden_layers": 3, "num_key_value_heads": 1,
 "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": $1,
 "tie_word_embeddings": false, "torch_dtype": "float32", "transformers_version": "4.44.0",
 "use_cache": true, "vocab_size": 53}
JSON
}
mistral_config 16 >"$TMP/mistral/config.json"
train "$TMP/mistral" --data "$TMP/small.bin" --log-jsonl "$TMP/mfolder.jsonl" \
  || fail "training from a Mistral folder failed"
train "$SRC/models/mistral-tiny.yaml" --weights "$SRC/tests/fixtures/mistral-tiny.safetensors" \
  --data "$TMP/small.bin" --log-jsonl "$TMP/myaml.jsonl" || fail "training mistral-tiny from YAML failed"
same_rows "mistral folder = mistral-tiny.yaml + its weights" "$TMP/myaml.jsonl" "$TMP/mfolder.jsonl"
# A window shorter than --seq masks (the families test checks it against
# transformers); a null window (Mistral v0.2 on) is none: mistral-tiny.yaml.
mistral_config 4 >"$TMP/mistral/config.json"
train "$TMP/mistral" --data "$TMP/small.bin" --log-jsonl "$TMP/mwin.jsonl" \
  || fail "training with a window of 4 failed"
[ -n "$(rows "$TMP/mwin.jsonl")" ] && ! diff <(rows "$TMP/mwin.jsonl") <(rows "$TMP/myaml.jsonl") >/dev/null \
  && echo "ok   a sliding window below --seq changes the run" || fail "the window of 4 changed nothing"
mistral_config null >"$TMP/mistral/config.json"
train "$TMP/mistral" --data "$TMP/small.bin" --log-jsonl "$TMP/mnull.jsonl" \
  || fail "training with a null window failed"
same_rows "a null sliding_window is no window" "$TMP/myaml.jsonl" "$TMP/mnull.jsonl"

# transformers 5's config.json (rope_parameters, layer_types, dtype): the
# fixture folders of tests/fixtures/families train as they are.
for type in qwen2 qwen3 gemma phi olmo2 gpt_neox gemma2 gemma3_text mistral llama llama3 qwen2-yarn \
  phi3 phi3-longrope granite starcoder2 gpt2; do
  train "$SRC/tests/fixtures/families/$type" --data "$TMP/small.bin" --steps 2 \
    --log-jsonl "$TMP/$type.jsonl" || fail "training the $type folder failed"
  [ "$(rows "$TMP/$type.jsonl" | wc -l)" = 2 ] && echo "ok   $type folder trains" \
    || fail "$type: no rows"
done
# Gemma 2's sliding layers: config.json's layer_types must be the family's
# pattern (sliding, full, sliding, ...).
cp -r "$SRC/tests/fixtures/families/gemma2" "$TMP/gemma2"
sed -i 's/"sliding_attention",/"full_attention",/' "$TMP/gemma2/config.json"
expect_error "gemma2 layer types not the family's" "\"layer_types\"\[0\] is full_attention, but the family computes sliding_attention" \
  train "$TMP/gemma2" --data "$TMP/small.bin"
# A tensor the model does not read is an error unless --ignore-unused: the
# Qwen2 folder said to tie its head leaves its lm_head.weight unused.
cp -r "$SRC/tests/fixtures/families/qwen2" "$TMP/qwen2"
sed -i 's/"tie_word_embeddings": false/"tie_word_embeddings": true/' "$TMP/qwen2/config.json"
expect_error "an unused tensor" "ignored 1 tensor the model does not use: lm_head.weight.*--ignore-unused" \
  train "$TMP/qwen2" --data "$TMP/small.bin"
train "$TMP/qwen2" --data "$TMP/small.bin" --ignore-unused --steps 1 \
  && echo "ok   --ignore-unused trains without it" || fail "--ignore-unused failed"
sed -i 's/"full_attention"/"sliding_attention"/' "$TMP/qwen2/config.json"
expect_error "sliding layers" "\"layer_types\"\[0\] is not \"full_attention\"" \
  train "$TMP/qwen2" --data "$TMP/small.bin"
sed -i 's/"rope_type": "default"/"rope_type": "yarn"/; s/"sliding_attention"/"full_attention"/' \
  "$TMP/qwen2/config.json"
expect_error "YaRN without its factor" "config.json: \"rope_parameters\": rope_type \"yarn\" needs \"factor\"" \
  train "$TMP/qwen2" --data "$TMP/small.bin"
sed -i 's/"rope_type": "yarn"/"rope_type": "dynamic"/' "$TMP/qwen2/config.json"
expect_error "dynamic NTK RoPE" "config.json: \"rope_parameters\": rope_type \"dynamic\" is not computed" \
  train "$TMP/qwen2" --data "$TMP/small.bin"

# Scaled RoPE as transformers 4 writes it: rope_theta at the top level and a
# "rope_scaling" object (YaRN's kind spelt "type"); the runs equal the
# transformers 5 folders'.
for type in llama3 qwen2-yarn; do
  cp -r "$SRC/tests/fixtures/families/$type" "$TMP/$type-v4"
  sed -i 's/"rope_parameters"/"rope_scaling"/; s/"rope_theta": 100.0,//; s/"rope_type": "yarn"/"type": "yarn"/
          s/^{$/{ "rope_theta": 100.0,/' "$TMP/$type-v4/config.json"
  grep -q '"rope_scaling"' "$TMP/$type-v4/config.json" || fail "$type: no rope_scaling written"
  train "$TMP/$type-v4" --data "$TMP/small.bin" --steps 2 --log-jsonl "$TMP/$type-v4.jsonl" \
    || fail "training the $type folder in transformers 4's format failed"
  same_rows "$type: rope_scaling (transformers 4) = rope_parameters (5)" "$TMP/$type.jsonl" \
    "$TMP/$type-v4.jsonl"
done
# Gemma 3 as transformers 4 writes it: the two bases at the top level
# (rope_theta, rope_local_base_freq), the global layers' scaling in
# rope_scaling, no layer_types: the run equals transformers 5's folder's.
mkdir -p "$TMP/gemma3-v4"
cp "$SRC/tests/fixtures/families/gemma3_text/model.safetensors" "$TMP/gemma3-v4/"
cat >"$TMP/gemma3-v4/config.json" <<'JSON'
{"architectures": ["Gemma3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
 "attn_logit_softcapping": null, "bos_token_id": 2, "cache_implementation": "hybrid",
 "eos_token_id": [1, 106], "final_logit_softcapping": null, "head_dim": 12,
 "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 32, "initializer_range": 0.02,
 "intermediate_size": 40, "max_position_embeddings": 64, "model_type": "gemma3_text",
 "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "pad_token_id": 0,
 "query_pre_attn_scalar": 20, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10.0,
 "rope_scaling": {"factor": 2.0, "rope_type": "linear"}, "rope_theta": 1000.0,
 "sliding_window": 4, "sliding_window_pattern": 2, "torch_dtype": "float32",
 "transformers_version": "4.50.0.dev0", "use_cache": true, "vocab_size": 61}
JSON
train "$TMP/gemma3-v4" --data "$TMP/small.bin" --steps 2 --log-jsonl "$TMP/gemma3-v4.jsonl" \
  || fail "training gemma3 in transformers 4's format failed"
same_rows "gemma3_text: transformers 4's config = 5's" "$TMP/gemma3_text.jsonl" "$TMP/gemma3-v4.jsonl"
cp -r "$SRC/tests/fixtures/families/gemma3_text" "$TMP/gemma3"
sed -i 's/"rope_theta": 10.0,/"rope_theta": 10.0, "factor": 2.0,/; 0,/"rope_type": "default"/s//"rope_type": "linear"/' \
  "$TMP/gemma3/config.json"
expect_error "a scaled local rope" "\"sliding_attention\".\"factor\" is 2; the local layers' rope is computed unscaled" \
  train "$TMP/gemma3" --data "$TMP/small.bin"
cp "$SRC/tests/fixtures/families/gemma3_text/config.json" "$TMP/gemma3/"
sed -i 's/"sliding_attention": {/"chunked_attention": {"rope_theta": 5.0}, "sliding_attention": {/' \
  "$TMP/gemma3/config.json"
expect_error "a third layer type's rope" "\"rope_parameters\".\"chunked_attention\": per layer type, only full_attention and sliding_attention" \
  train "$TMP/gemma3" --data "$TMP/small.bin"

# Phi-3-mini as transformers 4 writes it (auto_map, rope_scaling null, a
# window of 2047 longer than the run: no mask) trains as the same weights do
# with no window; Phi-3.5's longrope is refused by name.
mkdir -p "$TMP/phi3-v4"
cp "$SRC/tests/fixtures/families/phi3/model.safetensors" "$TMP/phi3-v4/"
phi3_config() {
  cat <<JSON
{"_name_or_path": "Phi-3-mini-4k-instruct", "architectures": ["Phi3ForCausalLM"],
 "attention_bias": false, "attention_dropout": 0.0,
 "auto_map": {"AutoConfig": "configuration_phi3.Phi3Config"}, "bos_token_id": 1,
 "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 32,
 "initializer_range": 0.02, "intermediate_size": 40, "max_position_embeddings": 64,
 "model_type": "phi3", "num_attention_heads": 4, "num_hidden_layers": 2,
 "num_key_value_heads": 2, "original_max_position_embeddings": 64, "pad_token_id": 32000,
 "partial_rotary_factor": 0.5, "resid_pdrop": 0.0, "rms_norm_eps": 1e-06, "rope_scaling": $2,
 "rope_theta": 10000.0, "sliding_window": $1, "tie_word_embeddings": true,
 "torch_dtype": "bfloat16", "transformers_version": "4.40.2", "use_cache": true,
 "vocab_size": 61}
JSON
}
phi3_config 2047 null >"$TMP/phi3-v4/config.json"
train "$TMP/phi3-v4" --data "$TMP/small.bin" --steps 2 --log-jsonl "$TMP/phi3-2047.jsonl" \
  || fail "training Phi-3-mini's config format failed"
phi3_config null null >"$TMP/phi3-v4/config.json"
train "$TMP/phi3-v4" --data "$TMP/small.bin" --steps 2 --log-jsonl "$TMP/phi3-none.jsonl" \
  || fail "training phi3 without a window failed"
same_rows "phi3: a window of 2047 at --seq 8 is no window" "$TMP/phi3-2047.jsonl" "$TMP/phi3-none.jsonl"
diff <(rows "$TMP/phi3.jsonl") <(rows "$TMP/phi3-none.jsonl") >/dev/null \
  && fail "phi3's window of 5 changed nothing" || echo "ok   phi3's window of 5 masks at --seq 8"
# Phi-3.5's longrope in transformers 4's format (kind "longrope", factors in
# rope_scaling, both sizes at the top level) = transformers 5's folder; the
# short factors turn while --seq fits the original context, the long beyond.
cp "$SRC/tests/fixtures/families/phi3-longrope/model.safetensors" "$TMP/phi3-v4/"
phi3_config null '{"type": "longrope", "factor": 2.0, "short_factor": [1.0, 1.2, 1.5, 2.0],
 "long_factor": [1.5, 3.0, 7.0, 20.0]}' \
  | sed 's/"original_max_position_embeddings": 64/"original_max_position_embeddings": 4/
         s/"partial_rotary_factor": 0.5, //; s/"tie_word_embeddings": true/"tie_word_embeddings": false/' \
  >"$TMP/phi3-v4/config.json"
train "$TMP/phi3-v4" --data "$TMP/small.bin" --steps 2 --log-jsonl "$TMP/phi3-lr-v4.jsonl" \
  || fail "training Phi-3.5's config format failed"
same_rows "phi3 longrope: rope_scaling (transformers 4) = rope_parameters (5)" \
  "$TMP/phi3-longrope.jsonl" "$TMP/phi3-lr-v4.jsonl"
train "$TMP/phi3-v4" --data "$TMP/small.bin" --steps 2 --seq 4 --log-jsonl "$TMP/phi3-s4.jsonl" \
  && sed -i 's/"long_factor": \[1.5, 3.0, 7.0, 20.0\]/"long_factor": [1.0, 1.2, 1.5, 2.0]/' \
       "$TMP/phi3-v4/config.json" \
  && train "$TMP/phi3-v4" --data "$TMP/small.bin" --steps 2 --log-jsonl "$TMP/phi3-s8.jsonl" \
  && train "$TMP/phi3-v4" --data "$TMP/small.bin" --steps 2 --seq 4 --log-jsonl "$TMP/phi3-s4b.jsonl" \
  || fail "longrope runs at --seq 4 failed"
same_rows "longrope at --seq 4 (the original context) turns by the short factors" \
  "$TMP/phi3-s4.jsonl" "$TMP/phi3-s4b.jsonl"
diff <(rows "$TMP/phi3-lr-v4.jsonl") <(rows "$TMP/phi3-s8.jsonl") >/dev/null \
  && fail "longrope's long factors changed nothing at --seq 8" \
  || echo "ok   longrope at --seq 8 turns by the long factors"
# longrope in a model YAML: its factors as lists (expressions allowed)
sed -e 's/vocab_size: 100352/vocab_size: 61/; s/hidden_size: 5120/hidden_size: 32/' \
    -e 's/intermediate_size: 17920/intermediate_size: 40/; s/num_hidden_layers: 40/num_hidden_layers: 2/' \
    -e 's/num_attention_heads: 40/num_attention_heads: 4/; s/num_key_value_heads: 10/num_key_value_heads: 2/' \
    -e 's/rms_norm_eps: 1.0e-5/rms_norm_eps: 1.0e-6/; s/rope_theta: 250000/rope_theta: 10000/' \
    "$SRC/models/phi3.yaml" >"$TMP/phi3-longrope.yaml"
cat >>"$TMP/phi3-longrope.yaml" <<'YAML'
rope_scaling: {rope_type: longrope, factor: 4 / 2, original_max_position_embeddings: 4,
               short_factor: [1.0, 1.2, 1.5, 2.0], long_factor: [1.5, 3.0, 7.0, 4 * 5]}
YAML
train "$TMP/phi3-longrope.yaml" --weights "$SRC/tests/fixtures/families/phi3-longrope/model.safetensors" \
  --data "$TMP/small.bin" --steps 2 --log-jsonl "$TMP/phi3-lr-yaml.jsonl" \
  || fail "training longrope from a YAML failed"
same_rows "longrope in a model YAML = the folder's" "$TMP/phi3-longrope.jsonl" "$TMP/phi3-lr-yaml.jsonl"
sed -i 's/long_factor: \[1.5, 3.0, 7.0, 4 \* 5\]/long_factor: [1.5, 3.0, 7.0, nope]/' "$TMP/phi3-longrope.yaml"
expect_error "a YAML's bad longrope factor" "phi3-longrope.yaml:[0-9]+:[0-9]+: .*nope" \
  train "$TMP/phi3-longrope.yaml" --data "$TMP/small.bin"
sed -i 's/"long_factor": \[1.0, 1.2, 1.5, 2.0\]/"long_factor": [1.0, 1.2, 1.5]/' "$TMP/phi3-v4/config.json"
expect_error "longrope's factors unequal" "\"long_factor\" has 3 numbers, the other list 4" \
  train "$TMP/phi3-v4" --data "$TMP/small.bin"
sed -i 's/"long_factor": \[1.0, 1.2, 1.5\]/"long_factor": [1, 2, 3, 4, 5, 6]/; s/"short_factor": \[1.0, 1.2, 1.5, 2.0\]/"short_factor": [1, 2, 3, 4, 5, 6]/' \
  "$TMP/phi3-v4/config.json"
expect_error "longrope's factors not the rope's pairs" "longrope gives 6 factors, but the rope \(line [0-9]+\) turns 4 pairs" \
  train "$TMP/phi3-v4" --data "$TMP/small.bin"

# The same scaling written in a model YAML (rope_scaling:, values may be config
# expressions) with the folder's weights is the same run.
sed -e 's/vocab_size: 32000/vocab_size: 61/; s/hidden_size: 4096/hidden_size: 32/' \
    -e 's/intermediate_size: 11008/intermediate_size: 40/; s/num_hidden_layers: 32/num_hidden_layers: 2/' \
    -e 's/num_attention_heads: 32/num_attention_heads: 4/; s/num_key_value_heads: 32/num_key_value_heads: 2/' \
    -e 's/rms_norm_eps: 1.0e-5/rms_norm_eps: 1.0e-6/; s/rope_theta: 10000/rope_theta: 100/' \
    -e 's/tie_word_embeddings: 0/tie_word_embeddings: 1\n  original_context: 64/' \
    "$SRC/models/llama.yaml" >"$TMP/llama3.yaml"
cat >>"$TMP/llama3.yaml" <<'YAML'
rope_scaling: {rope_type: llama3, factor: 4 * 2, low_freq_factor: 1, high_freq_factor: 4,
               original_max_position_embeddings: original_context}
YAML
train "$TMP/llama3.yaml" --weights "$SRC/tests/fixtures/families/llama3/model.safetensors" \
  --data "$TMP/small.bin" --steps 2 --log-jsonl "$TMP/llama3-yaml.jsonl" \
  || fail "training llama3 from YAML with rope_scaling failed"
same_rows "rope_scaling in a model YAML = the folder's" "$TMP/llama3.jsonl" "$TMP/llama3-yaml.jsonl"
sed -i 's/rope_type: llama3/rope_type: dynamic/' "$TMP/llama3.yaml"
expect_error "a YAML's unknown rope_type" "llama3.yaml:[0-9]+:[0-9]+: rope_type 'dynamic' is not computed" \
  train "$TMP/llama3.yaml" --data "$TMP/small.bin"
sed -i 's/rope_type: dynamic/rope_type: yarn/' "$TMP/llama3.yaml"
expect_error "a YAML's key of another rope_type" "llama3.yaml:[0-9]+:[0-9]+: unknown key 'low_freq_factor' in rope_scaling \(known: rope_type, factor, original_max_position_embeddings" \
  train "$TMP/llama3.yaml" --data "$TMP/small.bin"
sed -i 's/rope_type: yarn/rope_type: llama3/; s/high_freq_factor: 4/high_freq_factor: 0.5/' \
  "$TMP/llama3.yaml"
expect_error "a YAML's bad rope parameter" "llama3.yaml:[0-9]+: rope_scaling: rope high_freq_factor \(0.5\) must exceed low_freq_factor \(1\)" \
  train "$TMP/llama3.yaml" --data "$TMP/small.bin"

# The scaling's parameters change the run; one it does not read is an error.
cp -r "$SRC/tests/fixtures/families/llama3" "$TMP/llama3-f4"
sed -i 's/"factor": 8.0/"factor": 4.0/' "$TMP/llama3-f4/config.json"
train "$TMP/llama3-f4" --data "$TMP/small.bin" --steps 2 --log-jsonl "$TMP/llama3-f4.jsonl" \
  || fail "training llama3 at factor 4 failed"
diff <(rows "$TMP/llama3.jsonl") <(rows "$TMP/llama3-f4.jsonl") >/dev/null \
  && fail "llama3's factor changed nothing" || echo "ok   llama3's factor changes the run"
sed -i 's/"factor": 4.0/"factor": 8.0, "beta_fast": 32/' "$TMP/llama3-f4/config.json"
expect_error "a parameter of another rope_type" "\"rope_parameters\".\"beta_fast\" is 32; it is not a parameter of rope_type \"llama3\"" \
  train "$TMP/llama3-f4" --data "$TMP/small.bin"

# What the family cannot honour.
gpt2_config gelu_new gpt3 >"$TMP/gpt2/config.json"
expect_error "unknown model_type" "model_type \"gpt3\" has no family file .*known: .*gpt2.*llama|model_type \"gpt3\" has no family file .*known: .*llama.*gpt2" \
  train "$TMP/gpt2" --data "$TOKENS"
gpt2_config relu >"$TMP/gpt2/config.json"
expect_error "a required value differs" "config.json: \"activation_function\" is relu, but .*gpt2.yaml computes it as gelu_new" \
  train "$TMP/gpt2" --data "$TOKENS"
gpt2_config gelu_new gpt2 ', "rope_scaling": {"type": "linear", "factor": 2}' >"$TMP/gpt2/config.json"
expect_error "scaled RoPE without a rope" "config.json: rope_type \"linear\", but .*gpt2.yaml has no rope op to scale" \
  train "$TMP/gpt2" --data "$TOKENS"
# config.json alone: no weights to read, unless --from-scratch initializes them
mkdir -p "$TMP/scratch"
cp "$SRC/tests/fixtures/families/qwen3/config.json" "$TMP/scratch/"
expect_error "a folder without weights" "scratch: folder holds neither model.safetensors" \
  train "$TMP/scratch" --data "$TMP/small.bin"
train "$TMP/scratch" --data "$TMP/small.bin" --from-scratch --save "$TMP/scratch-out" \
  --log-jsonl "$TMP/s.jsonl" && [ -f "$TMP/scratch-out/model.safetensors" ] \
  && cmp -s "$TMP/scratch/config.json" "$TMP/scratch-out/config.json" \
  && train "$TMP/scratch-out" --data "$TMP/small.bin" --steps 1 \
  && echo "ok   --from-scratch: config.json alone trains and saves a folder that loads" \
  || fail "--from-scratch"
expect_error "--from-scratch with --weights" "--from-scratch initializes the weights; drop --weights" \
  train "$TMP/scratch" --data "$TMP/small.bin" --from-scratch --weights "$TMP/scratch-out"
rm "$TMP/gpt2/config.json"
expect_error "a folder without config.json" "gpt2/config.json: cannot open" train "$TMP/gpt2" --data "$TOKENS"

finish
