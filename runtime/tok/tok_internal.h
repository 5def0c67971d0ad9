/* tok_internal.h: the tokenizer's tables, shared by tok_load.c (which
 * fills them from JSON), tok_encode.c and tok_decode.c. */
#ifndef LT_TOK_INTERNAL_H
#define LT_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "sbuf.h"
#include "tokenizer.h"

/* String -> id, open addressing; strings are owned by the table. */
typedef struct {
  char **keys;
  int *vals;
  size_t cap, n;
} tok_strmap;

/* (left id, right id) -> (rank, merged id), open addressing. */
typedef struct {
  uint64_t *keys; /* left << 32 | right, plus one: 0 is empty */
  uint64_t *vals; /* rank << 32 | merged id */
  size_t cap, n;
} tok_pairmap;

enum { TOK_NORM_PREPEND, TOK_NORM_REPLACE, TOK_NORM_UNICODE /* NFC, NFD, NFKC, NFKD */ };
typedef struct {
  int kind;
  char *a, *b; /* prepend: a; replace: a -> b */
  int form;    /* unicode: utf8proc options (compose or decompose, compatibility) */
} tok_norm;

enum { TOK_PRE_BYTELEVEL, TOK_PRE_SPLIT, TOK_PRE_METASPACE };
typedef struct {
  int kind;
  pcre2_code *re;       /* bytelevel (with use_regex) and split */
  int add_prefix_space; /* bytelevel */
  char *replacement;    /* metaspace: "▁" */
  int prepend;          /* metaspace: 0 never, 1 always, 2 first */
  int split;            /* metaspace */
} tok_pre;

enum { TOK_DEC_BYTELEVEL, TOK_DEC_REPLACE, TOK_DEC_BYTEFALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP,
       TOK_DEC_METASPACE };
typedef struct {
  int kind;
  char *a, *b;      /* replace: a -> b; metaspace: a is the replacement */
  int start, stop;  /* strip: characters a[0] off each token's ends */
  int prepend;      /* metaspace: its prepend scheme (0 never) */
} tok_dec;

typedef struct {
  char *text;
  int id, special;
} tok_added;

enum { TOK_MAX_STAGES = 8 };

struct tokenizer {
  char path[1024];
  tok_strmap vocab;       /* the model's and the added tokens */
  char **id_text;         /* [n_ids] a token's text, NULL for holes */
  unsigned char *id_special; /* [n_ids] */
  int n_ids;
  tok_pairmap merges;
  int byte_fallback, fuse_unk, ignore_merges, unk;
  int byte_ids[256];      /* <0xNN>, with byte_fallback; -1 when missing */
  tok_added *added;
  int n_added;
  tok_norm norms[TOK_MAX_STAGES];
  int n_norms;
  tok_pre pres[TOK_MAX_STAGES];
  int n_pres;
  tok_dec decs[TOK_MAX_STAGES];
  int n_decs;
  int prefix[4], n_prefix, suffix[4], n_suffix; /* the post-processor's special ids */
  int eos, bos;
};

int tok_map_put(tok_strmap *m, const char *key, size_t len, int val);
int tok_map_get(const tok_strmap *m, const char *key, size_t len); /* -1: absent */
int tok_pair_put(tok_pairmap *m, int a, int b, int rank, int merged);
int tok_pair_get(const tok_pairmap *m, int a, int b, int *rank, int *merged);

/* Every occurrence of a in s[0..n) replaced by b, appended to o; -1 when
 * out of memory. */
int tok_replace_all(sbuf *o, const char *s, size_t n, const char *a, const char *b);

/* GPT-2's byte <-> printable-character table: the UTF-8 of byte b's
 * character into out (2 bytes at most), its length returned. */
int tok_byte_char(unsigned b, char *out);
/* The byte a code point stands for, or -1. */
int tok_char_byte(unsigned cp);
/* The UTF-8 sequence at s (n bytes left): its length (1 for an invalid
 * byte) and code point (0xFFFD when invalid). */
int tok_utf8_next(const unsigned char *s, size_t n, unsigned *cp);

#endif
