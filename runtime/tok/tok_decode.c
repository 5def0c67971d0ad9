/* tok_decode.c: ids to text through the decoders, as `tokenizers` does:
 * each id's token text (special ones left out when asked), the decoder
 * chain over the list of tokens, then the bytes joined, invalid UTF-8
 * replaced by U+FFFD as Rust's from_utf8_lossy does. */
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "tok_internal.h"

/* A list of token strings, each an sbuf. */
typedef struct {
  sbuf *t;
  int n;
} toks;

static void toks_free(toks *l) {
  for (int i = 0; i < l->n; i++) sb_free(&l->t[i]);
  free(l->t);
}

static void set_text(sbuf *b, const char *s, size_t n) {
  sbuf next = {0};
  sb_putn(&next, s, n);
  sb_free(b);
  *b = next;
}

static void replace_in(sbuf *b, const char *a, const char *with) {
  sbuf o = {0};
  tok_replace_all(&o, sb_str(b), b->len, a, with);
  sb_free(b);
  *b = o;
}

/* ByteLevel: every character back to its byte (one that stands for none
 * stays as it is). */
static void dec_bytelevel(sbuf *b) {
  sbuf o = {0};
  for (size_t i = 0; i < b->len;) {
    unsigned cp;
    int len = tok_utf8_next((const unsigned char *)b->s + i, b->len - i, &cp);
    int byte = tok_char_byte(cp);
    if (byte >= 0) {
      char c = (char)byte;
      sb_putn(&o, &c, 1);
    } else {
      sb_putn(&o, b->s + i, (size_t)len);
    }
    i += (size_t)len;
  }
  sb_free(b);
  *b = o;
}

static int byte_token(const sbuf *b) {
  static const char hex[] = "0123456789ABCDEF";
  if (b->len != 6 || memcmp(b->s, "<0x", 3) || b->s[5] != '>') return -1;
  const char *h = strchr(hex, b->s[3]), *l = strchr(hex, b->s[4]);
  return h && l && b->s[3] && b->s[4] ? (int)((h - hex) * 16 + (l - hex)) : -1;
}

/* Valid UTF-8 of n bytes? */
static int utf8_valid(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned cp;
    int len = tok_utf8_next(s + i, n - i, &cp);
    if (cp == 0xFFFD && !(len == 3 && s[i] == 0xEF && s[i + 1] == 0xBF && s[i + 2] == 0xBD))
      return 0;
    i += (size_t)len;
  }
  return 1;
}

/* Runs of <0xNN> tokens become their bytes when those are valid UTF-8, else
 * one U+FFFD per byte (tokenizers' ByteFallback). */
static void dec_bytefallback(toks *l) {
  int w = 0;
  for (int i = 0; i < l->n;) {
    if (byte_token(&l->t[i]) < 0) {
      l->t[w++] = l->t[i++];
      continue;
    }
    int j = i;
    unsigned char bytes[256];
    size_t nb = 0;
    while (j < l->n && byte_token(&l->t[j]) >= 0 && nb < sizeof bytes)
      bytes[nb++] = (unsigned char)byte_token(&l->t[j++]);
    sbuf o = {0};
    if (utf8_valid(bytes, nb)) sb_putn(&o, (const char *)bytes, nb);
    else
      for (size_t k = 0; k < nb; k++) sb_puts(&o, "\xef\xbf\xbd");
    for (int k = i; k < j; k++) sb_free(&l->t[k]);
    l->t[w++] = o;
    i = j;
  }
  l->n = w;
}

static void dec_fuse(toks *l) {
  if (l->n <= 1) return;
  for (int i = 1; i < l->n; i++) sb_putn(&l->t[0], l->t[i].s ? l->t[i].s : "", l->t[i].len), sb_free(&l->t[i]);
  l->n = 1;
}

/* Up to start characters c off the front and stop off the back of each token. */
static void dec_strip(toks *l, const tok_dec *d) {
  const size_t nc = strlen(d->a);
  for (int i = 0; i < l->n; i++) {
    sbuf *b = &l->t[i];
    size_t from = 0, to = b->len;
    for (int k = 0; k < d->start && from + nc <= to && !memcmp(b->s + from, d->a, nc); k++) from += nc;
    for (int k = 0; k < d->stop && to >= from + nc && !memcmp(b->s + to - nc, d->a, nc); k++) to -= nc;
    set_text(b, b->s ? b->s + from : "", to - from);
  }
}

/* Metaspace: the replacement back to spaces; the first token loses the
 * space its scheme prepended. */
static void dec_metaspace(toks *l, const tok_dec *d) {
  for (int i = 0; i < l->n; i++) {
    replace_in(&l->t[i], d->a, " ");
    if (i == 0 && d->prepend && l->t[0].len && l->t[0].s[0] == ' ')
      set_text(&l->t[0], l->t[0].s + 1, l->t[0].len - 1);
  }
}

/* Invalid sequences as U+FFFD, one per maximal invalid part. */
static void lossy_utf8(sbuf *o, const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned cp;
    int len = tok_utf8_next((const unsigned char *)s + i, n - i, &cp);
    if (cp == 0xFFFD && len == 1) {
      /* the maximal prefix of a valid sequence counts as one error */
      const unsigned char *u = (const unsigned char *)s + i;
      int need = u[0] >= 0xF0 && u[0] <= 0xF4 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC2 && u[0] < 0xE0 ? 2 : 1;
      size_t k = 1;
      while (need > 1 && k < (size_t)need && i + k < n && (u[k] & 0xC0) == 0x80 &&
             !(k == 1 && ((u[0] == 0xE0 && u[1] < 0xA0) || (u[0] == 0xED && u[1] > 0x9F) ||
                          (u[0] == 0xF0 && u[1] < 0x90) || (u[0] == 0xF4 && u[1] > 0x8F))))
        k++;
      sb_puts(o, "\xef\xbf\xbd");
      i += k;
    } else {
      sb_putn(o, s + i, (size_t)len);
      i += (size_t)len;
    }
  }
}

int tok_decode(const tokenizer *t, const int32_t *ids, int n, int skip_special, char **text,
               size_t *len, lt_error *err) {
  toks l = {calloc((size_t)n + 1, sizeof(sbuf)), 0};
  if (!l.t) return lt_fail(err, "out of memory");
  for (int i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= t->n_ids || !t->id_text[ids[i]]) {
      toks_free(&l);
      return lt_fail(err, "%s: id %d is not a token", t->path, ids[i]);
    }
    if (skip_special && t->id_special[ids[i]]) continue;
    sb_puts(&l.t[l.n++], t->id_text[ids[i]]);
  }
  for (int k = 0; k < t->n_decs; k++) {
    const tok_dec *d = &t->decs[k];
    switch (d->kind) {
    case TOK_DEC_BYTELEVEL: for (int i = 0; i < l.n; i++) dec_bytelevel(&l.t[i]); break;
    case TOK_DEC_REPLACE: for (int i = 0; i < l.n; i++) replace_in(&l.t[i], d->a, d->b); break;
    case TOK_DEC_BYTEFALLBACK: dec_bytefallback(&l); break;
    case TOK_DEC_FUSE: dec_fuse(&l); break;
    case TOK_DEC_STRIP: dec_strip(&l, d); break;
    case TOK_DEC_METASPACE: dec_metaspace(&l, d); break;
    }
  }
  sbuf joined = {0}, out = {0};
  for (int i = 0; i < l.n; i++) sb_putn(&joined, sb_str(&l.t[i]), l.t[i].len);
  lossy_utf8(&out, sb_str(&joined), joined.len);
  sb_free(&joined);
  toks_free(&l);
  if (out.failed) return sb_free(&out), lt_fail(err, "out of memory");
  *len = out.len;
  *text = out.s ? out.s : calloc(1, 1);
  return *text ? 0 : lt_fail(err, "out of memory");
}
