#!/bin/bash
# lisa sample: greedy decoding with the KV cache gives transformers' greedy
# generate token for token on every family fixture (generate.txt, from
# scripts/make-generate-fixtures.py: prompts run past the sliding windows);
# top-k 1 is greedy; a seed reproduces a sampled run; a text prompt goes
# through the C tokenizer as `tokenizers` encodes it; bad input is an error.
. "$LISA_SRC/tests/cli/lib.sh"

FAM=$SRC/tests/fixtures/families
TOKS=$SRC/tests/fixtures/tokenizers
ids_of() { grep -Eo "\"$1\":\[[^]]*\]" | sed 's/.*\[//; s/\]//; s/,/ /g'; }

cases=0 families=0
for dir in "$FAM"/*; do
  name=$(basename "$dir")
  [ -f "$dir/generate.txt" ] || fail "$name: no generate.txt (scripts/make-generate-fixtures.py)"
  families=$((families + 1))
  while IFS='|' read -r prompt want; do
    want=$(echo $want)
    n=$(wc -w <<<"$want")
    got=$("$LISA" sample "$dir" --prompt-ids "$prompt" --max-new-tokens "$n" --json | ids_of ids)
    [ "$got" = "$want" ] || fail "$name, prompt $prompt: got '$got', transformers '$want'"
    cases=$((cases + 1))
  done <"$dir/generate.txt"
done
[ "$cases" -ge 40 ] && echo "ok   greedy = transformers' greedy generate on $cases prompts of $families families" \
  || fail "only $cases cases"

LLAMA=$FAM/llama
greedy=$("$LISA" sample "$LLAMA" --prompt-ids "3 1 4 1 5" --max-new-tokens 12 --json | ids_of ids)
topk1=$("$LISA" sample "$LLAMA" --prompt-ids "3 1 4 1 5" --max-new-tokens 12 --json --temperature 0.8 \
  --top-k 1 --seed 9 | ids_of ids)
[ "$greedy" = "$topk1" ] && echo "ok   top-k 1 samples the greedy tokens" || fail "top-k 1: $topk1 vs $greedy"
s1=$("$LISA" sample "$LLAMA" --prompt-ids "3 1 4 1 5" --max-new-tokens 30 --json --temperature 1.5 \
  --top-p 0.95 --seed 7 | ids_of ids)
s2=$("$LISA" sample "$LLAMA" --prompt-ids "3 1 4 1 5" --max-new-tokens 30 --json --temperature 1.5 \
  --top-p 0.95 --seed 7 | ids_of ids)
s3=$("$LISA" sample "$LLAMA" --prompt-ids "3 1 4 1 5" --max-new-tokens 30 --json --temperature 1.5 \
  --top-p 0.95 --seed 8 | ids_of ids)
[ "$s1" = "$s2" ] && [ "$s1" != "$s3" ] && [ "$s1" != "$greedy" ] \
  && echo "ok   a seed reproduces a sampled run; another seed differs" || fail "sampling: $s1 / $s2 / $s3"

# a text prompt through the C tokenizer: the ids tokenizers gives (expected.json, line 0)
sed 's/vocab_size: *[0-9]*/vocab_size: 702/' "$SRC/models/gpt2-tiny.yaml" >"$TMP/m702.yaml"
"$LISA" train "$TMP/m702.yaml" --data "$SRC/data/tinyshakespeare.bin" --device cpu --quiet --steps 1 \
  --batch 1 --seq 16 --save "$TMP/m702.safetensors" || fail "making a 702-token model"
want=$(tr -d ' \n' <"$TOKS/spbpe/expected.json" | grep -Eo '"ids":\[[^]]*\]' | head -1 | sed 's/.*\[//; s/\]//; s/,/ /g')
got=$("$LISA" sample "$TMP/m702.yaml" --weights "$TMP/m702.safetensors" --tokenizer "$TOKS/spbpe" \
  --prompt "First Citizen: Before we proceed any further, hear me speak." --max-new-tokens 3 --json \
  | ids_of prompt_ids)
want=$(echo $want) got=$(echo $got)
[ "$got" = "$want" ] && echo "ok   --prompt encodes as tokenizers does ($(wc -w <<<"$got") ids)" \
  || fail "prompt ids: got '$got', tokenizers '$want'"
out=$("$LISA" sample "$TMP/m702.yaml" --weights "$TMP/m702.safetensors" --tokenizer "$TOKS/spbpe" \
  --prompt "Hello" --chat --max-new-tokens 5) && echo "ok   --chat on a ChatML tokenizer runs: '$out'" \
  || fail "--chat failed"

# The task scripts (standard library only): make-tasks.py's files train the
# bundled model from scratch; eval-tasks.py asks it every question.
if command -v python3 >/dev/null; then
  python3 "$SRC/scripts/make-tasks.py" -o "$TMP/tasks" --train 20 --test 2 >/dev/null || fail "make-tasks"
  "$LISA" train "$SRC/data/chat-bytes" --from-scratch --data "$TMP/tasks/train.bin" \
    --val-data "$TMP/tasks/val.bin" --device cpu --quiet --steps 2 --batch 2 --seq 64 \
    --save "$TMP/chat" || fail "training data/chat-bytes on the tasks"
  out=$(python3 "$SRC/scripts/eval-tasks.py" "$TMP/chat" --tokenizer "$SRC/data/chat-bytes" \
    --tasks "$TMP/tasks/test.jsonl" --lisa "$LISA" --max-new-tokens 4 | tail -1)
  grep -q '"n": 8' <<<"$out" && grep -Eq '"accuracy": (0|1)(\.[0-9]+)?,' <<<"$out" \
    && echo "ok   make-tasks.py -> lisa train -> eval-tasks.py: $out" || fail "eval-tasks: $out"
fi

expect_error "more positions than the model holds" "need 43 positions; .*gpt2.yaml allows 32" \
  "$LISA" sample "$FAM/gpt2" --prompt-ids "1 2 3" --max-new-tokens 40
expect_error "an id beyond the vocabulary" "token id 61 is beyond the vocabulary size 61" \
  "$LISA" sample "$LLAMA" --prompt-ids "1 61"
expect_error "--prompt without a tokenizer" "--prompt needs --tokenizer" \
  "$LISA" sample "$TMP/m702.yaml" --weights "$TMP/m702.safetensors" --prompt "hi"
expect_error "--chat with ids" "--chat wraps --prompt TEXT" "$LISA" sample "$LLAMA" --prompt-ids 1 --chat
expect_error "a tokenizer larger than the model" "702 tokens, more than the model's vocabulary 61" \
  "$LISA" sample "$LLAMA" --tokenizer "$TOKS/spbpe" --prompt "hi"
expect_error "no prompt" "give one of --prompt TEXT and --prompt-ids" "$LISA" sample "$LLAMA"
expect_error "bf16 on the cpu" "the cpu backend runs fp32; --dtype bf16 needs --device cuda" \
  "$LISA" sample "$LLAMA" --prompt-ids 1 --device cpu --dtype bf16
if ! "$LISA" sample "$LLAMA" --prompt-ids 1 --max-new-tokens 1 --device cuda >/dev/null 2>&1; then
  # no GPU here: cuda says why and stops; auto says so and samples on the cpu
  expect_error "--device cuda without a device" \
    "--device cuda: (no NVIDIA driver|the NVIDIA driver|no CUDA device|this build has no CUDA)" \
    "$LISA" sample "$LLAMA" --prompt-ids 1 --device cuda
  "$LISA" sample "$LLAMA" --prompt-ids 1 --max-new-tokens 2 2>"$TMP/auto.err" >/dev/null \
    && grep -q "device auto: .*; using the cpu backend" "$TMP/auto.err" \
    && echo "ok   device auto without a GPU samples on the cpu and says so" \
    || fail "device auto: $(cat "$TMP/auto.err")"
fi
finish
