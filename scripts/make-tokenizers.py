#!/usr/bin/env python3
"""The test tokenizers: two tokenizer.json files trained with Hugging Face's
`tokenizers` on bundled text, one of each kind the C tokenizer reads
(runtime/tok/tokenizer.h), and the expected encodings of a test corpus.

    python3 scripts/make-tokenizers.py     # writes tests/fixtures/tokenizers/

  bytelevel/  byte-level BPE as GPT-2 and Qwen: the GPT-2 split pattern, bytes
              mapped to printable characters, no unknown token, <|endoftext|>
  spbpe/      SentencePiece-style BPE as LLaMA and Mistral: spaces become
              U+2581 with one prepended, no pre-tokenizer, characters outside
              the learned alphabet fall back to <0xNN> byte tokens, <s> and
              </s> with a BOS added by the post-processor
  qwen/       byte-level BPE as Qwen2: the NFC normalizer, Qwen's split
              pattern (a Split pre-tokenizer), then ByteLevel without its own regex

Each folder also gets tokenizer_config.json (bos/eos and a ChatML chat
template, as transformers reads them) and expected.json: for every line of
the corpus below, the ids `tokenizers` gives with and without special tokens
and the decoded text, which tests/unit/test_tokenizer.c compares against.
"""
import json
import os

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
TEXT = os.path.join(ROOT, "data", "tinyshakespeare.txt")

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# Unicode, whitespace runs, digits, contractions, byte-fallback cases,
# special tokens inside text, and empty and space-only lines.
CORPUS = [
    "First Citizen: Before we proceed any further, hear me speak.",
    "Hello world! It's 2026; we'll see 1234567 tokens.",
    "  leading spaces and trailing   ",
    "tabs\tand\nnewlines\n\n  indented",
    "naïve café — “quotes” and ‘apostrophes’",
    "日本語のテキスト and emoji 🙂👍🏽",
    "Ελληνικά, русский, עברית, العربية",
    "mixed123digits456 and 3.14159 and 1,000,000",
    "I'M SHOUTING, YOU'RE NOT. they've, she'd, we'll, I'd've",
    "<|endoftext|>after a special token<|im_end|> and </s> <s> inside",
    "",
    " ",
    "\u00a0non-breaking\u2003em space\u3000ideographic",
    "a\r\nwindows line\r\n",
    "zero\u200bwidth and combining e\u0301",
    "<0x41> looks like a byte token",
    "aaaaaaa bbbbbb aaaa1234bb 99999 12.5 zzzzzz      x",
    "a1b2c3 and 2026aaaa and    spaces before   words",
    "NFD input: cafe\u0301 and \u212b ngstrom, fi ligature \ufb01 and \u2460",
    "line one\n\n\nline two\r\n  \tindented 12345 YOU'LL we'VE",
]


def training_text():
    """Shakespeare, and lines that give merges the test corpus leans on:
    digit runs (the pattern splits them from letters), repeated letters
    (equal-rank pairs: the leftmost merges first) and runs of spaces."""
    with open(TEXT, encoding="utf-8") as f:
        lines = f.read().splitlines()
    extra = []
    for i in range(3000):
        extra.append(f"{i * 7919 % 100000} aaaa{i % 10}bb  {i * 31 % 1000}.{i % 97} zzzz  x")
    return lines + extra


def train_byte_level(tok, eos):
    """A byte-level BPE over every byte, trained, with the chat tokens added."""
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), trainer)
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    config = {"bos_token": None, "eos_token": eos, "chat_template": CHATML,
              "tokenizer_class": "PreTrainedTokenizerFast"}
    return tok, config


def byte_level():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return train_byte_level(tok, "<|endoftext|>")


# Qwen2's split pattern (LLaMA 3's is alike): digits one at a time, letters
# with one leading non-letter, newlines kept together.
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def qwen_style():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    return train_byte_level(tok, "<|im_end|>")


def sentencepiece_bpe():
    specials = ["<unk>", "<s>", "</s>"]
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                           normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials + bytes_,
                                  limit_alphabet=60)
    tok.train_from_iterator(training_text(), trainer)
    # The byte tokens stay in the vocabulary but are not added tokens, as in
    # LLaMA's tokenizer.json (added, decode would skip them as special).
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in bytes_]
    tok = Tokenizer.from_str(json.dumps(data))
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    config = {"bos_token": "<s>", "eos_token": "</s>", "chat_template": CHATML,
              "tokenizer_class": "PreTrainedTokenizerFast"}
    return tok, config


def main():
    for name, make in (("bytelevel", byte_level), ("spbpe", sentencepiece_bpe),
                       ("qwen", qwen_style)):
        tok, config = make()
        out = os.path.join(OUT, name)
        os.makedirs(out, exist_ok=True)
        tok.save(os.path.join(out, "tokenizer.json"))
        with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=2, ensure_ascii=False)
        tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))  # as a reader sees it
        expected = []
        for line in CORPUS:
            ids = tok.encode(line).ids
            plain = tok.encode(line, add_special_tokens=False).ids
            expected.append({"text": line, "ids": ids, "ids_plain": plain,
                             "decoded": tok.decode(ids, skip_special_tokens=True),
                             "decoded_all": tok.decode(ids, skip_special_tokens=False)})
        with open(os.path.join(out, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1, ensure_ascii=False)
        print(f"{name}: vocabulary {tok.get_vocab_size()}")


if __name__ == "__main__":
    main()
