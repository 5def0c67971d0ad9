#!/bin/bash
# scripts/make-data.py with a Hugging Face tokenizer (tests/fixtures/tokenizers):
# text, alpaca and chat records become an llm.c token file and a loss mask in
# which exactly the assistant's tokens and the EOS after them count, the token
# after an EOS never does; lisa reads both. Skipped where Python lacks
# tokenizers or jinja2 (CI needs neither to build or train).
. "$LISA_SRC/tests/cli/lib.sh"

if ! python3 -c 'import tokenizers, jinja2' 2>/dev/null; then
  echo "skip: python3 lacks tokenizers or jinja2"
  finish
fi
MAKE="python3 $SRC/scripts/make-data.py"
TOKS=$SRC/tests/fixtures/tokenizers

cat >"$TMP/alpaca.jsonl" <<'J'
{"instruction": "Reverse the word.", "input": "stone", "output": "enots"}
{"instruction": "Say hi.", "output": "hi"}
J
cat >"$TMP/chat.jsonl" <<'J'
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "5"}, {"role": "user", "content": "Now double it."}, {"role": "assistant", "content": "10"}]}
J
printf 'First document.' >"$TMP/a.txt"
printf 'Second one.' >"$TMP/b.txt"

# decode KIND FILE: the counted tokens' text, then the whole file's, as `tokenizers` decodes them
decode() {
  python3 - "$TOKS/$1/tokenizer.json" "$2" <<'PY'
import struct, sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
raw = open(sys.argv[2], "rb").read()
magic, version, n = struct.unpack("<3i", raw[:12])
ids = struct.unpack(f"<{n}{'H' if version == 1 else 'I'}", raw[1024:])
m = open(sys.argv[2] + ".mask", "rb").read()
mmagic, mversion, mn = struct.unpack("<3i", m[:12])
assert (magic, mmagic, mversion, mn) == (20240520, 20240801, 1, n) and len(m) == 1024 + n
mask = m[1024:]
eos = tok.token_to_id("<|endoftext|>") if tok.token_to_id("<|endoftext|>") is not None else tok.token_to_id("</s>")
after_eos = [mask[i] for i in range(1, n) if ids[i - 1] == eos]
print(repr(tok.decode([i for i, k in zip(ids, mask) if k], skip_special_tokens=False)))
print(repr(tok.decode(list(ids), skip_special_tokens=False)))
print("after-eos-counted" if any(after_eos) else "after-eos-free", mask[0])
keep = [ids[i] for i in range(1, n) if ids[i - 1] != eos]  # all but the first and those after an EOS
print(repr(tok.decode(keep, skip_special_tokens=False)))
PY
}

check() {  # name got want
  [ "$2" = "$3" ] && echo "ok   $1" || fail "$1: got $2, want $3"
}

$MAKE "$TMP/chat.jsonl" -o "$TMP/chat.bin" --tokenizer "$TOKS/bytelevel" --format chat >/dev/null \
  || fail "chat failed"
out=$(decode bytelevel "$TMP/chat.bin")
check "chat: only the assistant's turns count (ChatML from tokenizer_config.json)" \
  "$(sed -n 1p <<<"$out")" "'5<|im_end|>\\n10<|im_end|>\\n<|endoftext|>'"
check "chat: the whole conversation, then EOS" "$(sed -n 2p <<<"$out")" \
  "'<|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\nAdd 2 and 3.<|im_end|>\\n<|im_start|>assistant\\n5<|im_end|>\\n<|im_start|>user\\nNow double it.<|im_end|>\\n<|im_start|>assistant\\n10<|im_end|>\\n<|endoftext|>'"

$MAKE "$TMP/alpaca.jsonl" -o "$TMP/alpaca.bin" --tokenizer "$TOKS/spbpe/tokenizer.json" \
  --format alpaca --chat-template alpaca >/dev/null || fail "alpaca failed"
out=$(decode spbpe "$TMP/alpaca.bin")
check "alpaca (built-in template, byte-fallback tokenizer): responses and EOS count" \
  "$(sed -n 1p <<<"$out")" "'enots</s>hi</s>'"
check "alpaca: the token after an EOS and the first never count" "$(sed -n 3p <<<"$out")" \
  "after-eos-free 0"

$MAKE "$TMP/a.txt" "$TMP/b.txt" -o "$TMP/text.bin" --tokenizer "$TOKS/bytelevel" >/dev/null \
  || fail "text failed"
out=$(decode bytelevel "$TMP/text.bin")
check "text: documents separated by EOS" "$(sed -n 2p <<<"$out")" \
  "'First document.<|endoftext|>Second one.<|endoftext|>'"
check "text: everything counts but the first token and the one after an EOS" \
  "$(sed -n 1p <<<"$out")" "$(sed -n 4p <<<"$out")"
check "text: the first token and the one after the EOS are out" "$(sed -n 3p <<<"$out")" \
  "after-eos-free 0"

# lisa reads both files: a model of the tokenizer's vocabulary trains on them
sed 's/vocab_size: *[0-9]*/vocab_size: 602/' "$SRC/models/gpt2-tiny.yaml" >"$TMP/m602.yaml"
"$LISA" train "$TMP/m602.yaml" --data "$TMP/chat.bin" --device cpu --quiet --steps 2 --batch 2 \
  --seq 16 --log-jsonl "$TMP/t.jsonl" && echo "ok   lisa train reads the tokens and mask" \
  || fail "lisa train on chat.bin"

# make-tasks.py writes the bundled byte tokenizer's files itself (standard
# library only); they must be what make-data.py writes from its records
python3 "$SRC/scripts/make-tasks.py" -o "$TMP/tasks" --train 40 --test 5 >/dev/null || fail "make-tasks failed"
$MAKE "$TMP/tasks/train.jsonl" -o "$TMP/tasks/md.bin" --tokenizer "$SRC/data/chat-bytes" --format chat \
  >/dev/null || fail "make-data on the tasks failed"
cmp -s "$TMP/tasks/train.bin" "$TMP/tasks/md.bin" && cmp -s "$TMP/tasks/train.bin.mask" "$TMP/tasks/md.bin.mask" \
  && echo "ok   make-tasks.py's token files = make-data.py's (data/chat-bytes)" \
  || fail "make-tasks.py and make-data.py disagree"
python3 - "$TMP/tasks" <<'PY' && echo "ok   no test question in train" || fail "a test question in train"
import json, sys
q = lambda f: {json.loads(l)["messages"][0]["content"] for l in open(f"{sys.argv[1]}/{f}.jsonl")}
sys.exit(1 if q("train") & q("test") or len(q("test")) != 20 else 0)
PY

expect_error "alpaca without a Hugging Face tokenizer" "--format alpaca needs a Hugging Face tokenizer" \
  $MAKE "$TMP/alpaca.jsonl" -o "$TMP/x.bin" --format alpaca
echo '{"instruction": "x"}' >"$TMP/bad.jsonl"
expect_error "an alpaca record without output" "bad.jsonl:1: an alpaca record needs a string \"output\"" \
  $MAKE "$TMP/bad.jsonl" -o "$TMP/x.bin" --tokenizer "$TOKS/bytelevel" --format alpaca
printf '{"messages": [{"role": "user", "content": "hi"}]}\n{oops\n' >"$TMP/bad.jsonl"
expect_error "a chat record with no assistant turn" "bad.jsonl:1: no assistant message" \
  $MAKE "$TMP/bad.jsonl" -o "$TMP/x.bin" --tokenizer "$TOKS/bytelevel" --format chat
expect_error "a missing tokenizer" "nowhere: no such file" \
  $MAKE "$TMP/a.txt" -o "$TMP/x.bin" --tokenizer "$TMP/nowhere"
[ ! -e "$TMP/x.bin" ] && echo "ok   no output after an error" || fail "x.bin written after an error"
finish
