#!/usr/bin/env python3
"""data/chat-bytes/: the bundled small model for instruction tuning, as a
Hugging Face folder without weights (lisa train --from-scratch pretrains it):

  config.json            a 4-layer GPT-2 (n_embd 128, 4 heads, 256 positions),
                         vocabulary 259
  tokenizer.json         byte-level BPE with no merges: token id = byte value
                         (so data/tinyshakespeare.bin, one token per byte, is
                         already in this tokenizer's ids), and three special
                         tokens: <|endoftext|> 256, <|im_start|> 257,
                         <|im_end|> 258
  tokenizer_config.json  EOS <|endoftext|> and the ChatML chat template

    python3 scripts/make-chat-bytes.py   # needs tokenizers
"""
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "chat-bytes")
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def byte_chars():
    """GPT-2's bytes_to_unicode, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = 0
    chars = []
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def main():
    os.makedirs(OUT, exist_ok=True)
    vocab = {c: i for i, c in enumerate(byte_chars())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens(SPECIALS)
    assert [tok.token_to_id(s) for s in SPECIALS] == [256, 257, 258]
    assert tok.encode("Hi\n\xe9").ids == list("Hi\n\xe9".encode())
    tok.save(os.path.join(OUT, "tokenizer.json"))
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": None, "eos_token": "<|endoftext|>", "chat_template": CHATML,
                   "model_max_length": 256, "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=2)
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 259,
              "n_positions": 256, "n_embd": 128, "n_layer": 4, "n_head": 4, "n_inner": None,
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05,
              "initializer_range": 0.02, "tie_word_embeddings": True, "bos_token_id": 256,
              "eos_token_id": 256, "pad_token_id": None, "scale_attn_weights": True,
              "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
              "attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0, "use_cache": True}
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"{OUT}: vocabulary {tok.get_vocab_size()}")


if __name__ == "__main__":
    main()
