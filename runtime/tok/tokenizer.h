/* tokenizer.h: Hugging Face tokenizer.json files, encoded and decoded as
 * the `tokenizers` library does, for `lisa sample`.
 *
 * What is read: a BPE model (vocab, merges as "a b" strings or pairs,
 * byte_fallback, unk_token, fuse_unk, ignore_merges); added tokens (split
 * out of the text first, longest match); normalizers Prepend, Replace, NFC,
 * NFD, NFKC, NFKD (utf8proc) and Sequence; pre-tokenizers ByteLevel (the GPT-2 pattern, through PCRE2),
 * Split (a regex, Isolated), Metaspace and Sequence; decoders ByteLevel,
 * Metaspace, Replace, ByteFallback, Fuse, Strip and Sequence; the post
 * processors ByteLevel and TemplateProcessing (single). That covers the
 * byte-level BPE of GPT-2, Qwen and LLaMA 3 and the SentencePiece-style BPE
 * of LLaMA 2 and Mistral. Anything else (e.g. WordPiece or Unigram models)
 * is an error naming the file and the part, not a silently different
 * encoding. */
#ifndef LT_TOKENIZER_H
#define LT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct tokenizer tokenizer;

/* path: a tokenizer.json, or a folder holding one. The folder's
 * tokenizer_config.json, when present, names the EOS and BOS tokens. */
int tok_load(tokenizer **out, const char *path, lt_error *err);
void tok_free(tokenizer *t);

/* The ids of text[0..len) (malloc'd into *ids, *n of them); add_special:
 * the post-processor's tokens too (LLaMA's BOS). */
int tok_encode(const tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
               int *n, lt_error *err);
/* The text of ids (malloc'd, NUL-terminated, *len bytes); skip_special:
 * leave special tokens out, as decode(skip_special_tokens=True). */
int tok_decode(const tokenizer *t, const int32_t *ids, int n, int skip_special, char **text,
               size_t *len, lt_error *err);

int tok_vocab_size(const tokenizer *t); /* the largest id + 1 */
int tok_eos(const tokenizer *t);        /* -1: none */
int tok_bos(const tokenizer *t);        /* -1: none */
/* The id of a token's exact text, or -1. */
int tok_id(const tokenizer *t, const char *token);

#endif
