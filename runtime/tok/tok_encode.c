/* tok_encode.c: text to ids, in the order `tokenizers` works: added tokens
 * split out first, then per remaining segment the normalizers, the
 * pre-tokenizers (pieces), and BPE on each piece; the post-processor's
 * special ids around the whole. */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "sbuf.h"
#include "tok_internal.h"

typedef struct {
  int32_t *v;
  int n, cap;
} ids_buf;

static int push(ids_buf *b, int32_t id) {
  if (b->n == b->cap) {
    int cap = b->cap ? b->cap * 2 : 64;
    int32_t *v = realloc(b->v, sizeof *v * (size_t)cap);
    if (!v) return -1;
    b->v = v, b->cap = cap;
  }
  b->v[b->n++] = id;
  return 0;
}

/* ---- UTF-8 and GPT-2's byte table ---------------------------------------------- */

int tok_utf8_next(const unsigned char *s, size_t n, unsigned *cp) {
  unsigned c = s[0];
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || (size_t)len > n) return *cp = 0xFFFD, 1;
  unsigned v = len == 1 ? c : c & (0x7F >> len);
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return *cp = 0xFFFD, 1;
    v = v << 6 | (s[i] & 0x3F);
  }
  static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < min[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return *cp = 0xFFFD, 1;
  return *cp = v, len;
}

static int utf8_put(unsigned cp, char *out) {
  if (cp < 0x80) return out[0] = (char)cp, 1;
  if (cp < 0x800) return out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), 2;
  if (cp < 0x10000)
    return out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 63)),
           out[2] = (char)(0x80 | (cp & 63)), 3;
  return out[0] = (char)(0xF0 | cp >> 18), out[1] = (char)(0x80 | (cp >> 12 & 63)),
         out[2] = (char)(0x80 | (cp >> 6 & 63)), out[3] = (char)(0x80 | (cp & 63)), 4;
}

/* Bytes that are printable stand for themselves; the others, in order,
 * for 256, 257, ... (GPT-2's bytes_to_unicode). */
static int byte_printable(unsigned b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static unsigned byte_cp(unsigned b) {
  if (byte_printable(b)) return b;
  unsigned n = 0;
  for (unsigned i = 0; i < b; i++) n += !byte_printable(i);
  return 256 + n;
}

int tok_byte_char(unsigned b, char *out) { return utf8_put(byte_cp(b), out); }

int tok_char_byte(unsigned cp) {
  if (cp < 256) return byte_printable(cp) ? (int)cp : -1;
  for (unsigned b = 0, n = 0; b < 256; b++)
    if (!byte_printable(b) && 256 + n++ == cp) return (int)b;
  return -1;
}

/* ---- BPE ------------------------------------------------------------------------- */

/* A candidate merge: the pair starting at symbol `pos`, as it was when
 * queued (stale once either side changed). */
typedef struct {
  int rank, pos, left, right;
} bpe_pair;

typedef struct {
  bpe_pair *v;
  int n;
} bpe_heap;

static int pair_before(const bpe_pair *a, const bpe_pair *b) {
  return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(bpe_heap *h, bpe_pair p) {
  int i = h->n++;
  for (; i > 0 && pair_before(&p, &h->v[(i - 1) / 2]); i = (i - 1) / 2) h->v[i] = h->v[(i - 1) / 2];
  h->v[i] = p;
}

static bpe_pair heap_pop(bpe_heap *h) {
  bpe_pair top = h->v[0], last = h->v[--h->n];
  int i = 0;
  for (int c; (c = 2 * i + 1) < h->n; i = c) {
    if (c + 1 < h->n && pair_before(&h->v[c + 1], &h->v[c])) c++;
    if (!pair_before(&h->v[c], &last)) break;
    h->v[i] = h->v[c];
  }
  if (h->n) h->v[i] = last;
  return top;
}

/* Queues the pair (pos, next[pos]) when the model merges it. */
static void queue_pair(const tokenizer *t, bpe_heap *h, const int32_t *sym, const int *next, int pos) {
  int rank, merged;
  if (pos >= 0 && next[pos] >= 0 && tok_pair_get(&t->merges, sym[pos], sym[next[pos]], &rank, &merged))
    heap_push(h, (bpe_pair){rank, pos, sym[pos], sym[next[pos]]});
}

/* The piece's characters as symbols: their tokens, else their bytes' <0xNN>
 * tokens (byte_fallback), else unk (consecutive ones fused with fuse_unk).
 * -2: a character with none of these. */
static int initial_symbols(const tokenizer *t, const char *s, size_t n, int32_t *sym) {
  int k = 0;
  for (size_t i = 0; i < n;) {
    unsigned cp;
    int len = tok_utf8_next((const unsigned char *)s + i, n - i, &cp);
    int id = tok_map_get(&t->vocab, s + i, (size_t)len), fell = 0;
    if (id < 0 && t->byte_fallback) {
      fell = 1;
      for (int j = 0; j < len && fell; j++) fell = t->byte_ids[(unsigned char)s[i + j]] >= 0;
      for (int j = 0; j < len && fell; j++) sym[k++] = t->byte_ids[(unsigned char)s[i + j]];
    }
    if (id >= 0) sym[k++] = id;
    else if (!fell) {
      if (t->unk < 0) return -2;
      if (!(t->fuse_unk && k > 0 && sym[k - 1] == t->unk)) sym[k++] = t->unk;
    }
    i += (size_t)len;
  }
  return k;
}

/* Symbols of a piece merged by rank until no pair has a merge: the lowest
 * rank first, the leftmost of equal ones (tokenizers' order), through a heap
 * of candidate pairs over a linked list, so a long piece (a SentencePiece
 * segment has no pre-tokenizer) costs n log n, not n^2. */
static int bpe(const tokenizer *t, const char *s, size_t n, ids_buf *out) {
  if (n == 0) return 0;
  int whole = t->ignore_merges ? tok_map_get(&t->vocab, s, n) : -1;
  if (whole >= 0) return push(out, whole);
  int32_t *sym = malloc(sizeof *sym * (n * 4 + 1));
  int *next = malloc(sizeof *next * (n * 4 + 1)), *prev = malloc(sizeof *prev * (n * 4 + 1));
  bpe_heap h = {malloc(sizeof *h.v * (n * 8 + 2)), 0};
  int k = sym && next && prev && h.v ? initial_symbols(t, s, n, sym) : -1, rc = k < 0 ? k : 0;
  for (int i = 0; i < k; i++) prev[i] = i - 1, next[i] = i + 1 < k ? i + 1 : -1;
  for (int i = 0; i + 1 < k; i++) queue_pair(t, &h, sym, next, i);
  while (rc == 0 && h.n) {
    bpe_pair p = heap_pop(&h);
    int j = next[p.pos];
    if (sym[p.pos] != p.left || j < 0 || sym[j] != p.right) continue; /* stale */
    int rank, merged;
    tok_pair_get(&t->merges, p.left, p.right, &rank, &merged);
    sym[p.pos] = merged, sym[j] = -1; /* j is gone */
    next[p.pos] = next[j];
    if (next[j] >= 0) prev[next[j]] = p.pos;
    queue_pair(t, &h, sym, next, prev[p.pos]);
    queue_pair(t, &h, sym, next, p.pos);
  }
  for (int i = 0; rc == 0 && k > 0 && i >= 0; i = next[i]) rc = push(out, sym[i]);
  free(sym), free(next), free(prev), free(h.v);
  return rc;
}

/* ---- pieces ----------------------------------------------------------------------- */

/* A list of pieces, each a malloc'd string. */
typedef struct {
  char **s;
  size_t *len;
  int n, cap;
} pieces;

static int piece_add(pieces *p, const char *s, size_t len) {
  if (p->n == p->cap) {
    int cap = p->cap ? p->cap * 2 : 16;
    char **ns = realloc(p->s, sizeof *ns * (size_t)cap);
    if (!ns) return -1;
    p->s = ns;
    size_t *nl = realloc(p->len, sizeof *nl * (size_t)cap);
    if (!nl) return -1;
    p->len = nl, p->cap = cap;
  }
  char *c = malloc(len + 1);
  if (!c) return -1;
  memcpy(c, s, len);
  c[len] = 0;
  p->s[p->n] = c, p->len[p->n++] = len;
  return 0;
}

static void pieces_free(pieces *p) {
  for (int i = 0; i < p->n; i++) free(p->s[i]);
  free(p->s), free(p->len);
  memset(p, 0, sizeof *p);
}

int tok_replace_all(sbuf *o, const char *s, size_t n, const char *a, const char *b) {
  size_t na = strlen(a);
  for (size_t i = 0; i < n;) {
    if (na && i + na <= n && !memcmp(s + i, a, na)) sb_puts(o, b), i += na;
    else sb_putn(o, s + i, 1), i++;
  }
  return o->failed ? -1 : 0;
}

/* Matches of re and the gaps between them, each a piece (Isolated). */
static int split_regex(const pcre2_code *re, const char *s, size_t n, pieces *out) {
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  if (!md) return -1;
  size_t at = 0, gap = 0;
  int rc = 0;
  while (at <= n && rc == 0) {
    int m = pcre2_match(re, (PCRE2_SPTR)s, n, at, 0, md, NULL);
    if (m < 0) break;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (ov[1] == ov[0]) { /* an empty match: step one character on */
      unsigned cp;
      at = ov[0] + (at < n ? (size_t)tok_utf8_next((const unsigned char *)s + ov[0], n - ov[0], &cp) : 1);
      continue;
    }
    if (ov[0] > gap) rc = piece_add(out, s + gap, ov[0] - gap);
    if (rc == 0) rc = piece_add(out, s + ov[0], ov[1] - ov[0]);
    at = gap = ov[1];
  }
  if (rc == 0 && gap < n) rc = piece_add(out, s + gap, n - gap);
  pcre2_match_data_free(md);
  return rc;
}

/* Each byte of s as its GPT-2 character. */
static int byte_map(sbuf *o, const char *s, size_t n) {
  char ch[4];
  for (size_t i = 0; i < n; i++) sb_putn(o, ch, (size_t)tok_byte_char((unsigned char)s[i], ch));
  return o->failed ? -1 : 0;
}

static int pre_bytelevel(const tok_pre *p, const char *s, size_t n, pieces *out) {
  sbuf text = {0};
  if (p->add_prefix_space && (n == 0 || s[0] != ' ')) sb_puts(&text, " ");
  sb_putn(&text, s, n);
  pieces parts = {0};
  int rc = text.failed ? -1 : p->re ? split_regex(p->re, sb_str(&text), text.len, &parts)
                                 : piece_add(&parts, sb_str(&text), text.len);
  for (int i = 0; i < parts.n && rc == 0; i++) {
    sbuf m = {0};
    rc = byte_map(&m, parts.s[i], parts.len[i]);
    if (rc == 0) rc = piece_add(out, sb_str(&m), m.len);
    sb_free(&m);
  }
  pieces_free(&parts);
  sb_free(&text);
  return rc;
}

/* Spaces become the replacement, one prepended as the scheme says; with
 * split, each replacement starts a new piece. */
static int pre_metaspace(const tok_pre *p, const char *s, size_t n, int first, pieces *out) {
  sbuf text = {0};
  size_t nr = strlen(p->replacement);
  int prepend = p->prepend == 1 || (p->prepend == 2 && first);
  if (prepend && !(n >= nr && !memcmp(s, p->replacement, nr)) && n > 0) sb_puts(&text, p->replacement);
  if (tok_replace_all(&text, s, n, " ", p->replacement)) return sb_free(&text), -1;
  const char *t = sb_str(&text);
  int rc = 0;
  size_t start = 0;
  for (size_t i = 1; p->split && i + nr <= text.len && rc == 0; i++)
    if (!memcmp(t + i, p->replacement, nr)) rc = piece_add(out, t + start, i - start), start = i;
  if (rc == 0 && text.len > start) rc = piece_add(out, t + start, text.len - start);
  sb_free(&text);
  return rc;
}

static int pre_tokenize(const tokenizer *t, const char *s, size_t n, int first, pieces *out) {
  pieces cur = {0};
  if (piece_add(&cur, s, n)) return -1;
  for (int k = 0; k < t->n_pres; k++) {
    pieces next = {0};
    int rc = 0;
    for (int i = 0; i < cur.n && rc == 0; i++) {
      const tok_pre *p = &t->pres[k];
      if (p->kind == TOK_PRE_BYTELEVEL) rc = pre_bytelevel(p, cur.s[i], cur.len[i], &next);
      else if (p->kind == TOK_PRE_SPLIT) rc = split_regex(p->re, cur.s[i], cur.len[i], &next);
      else rc = pre_metaspace(p, cur.s[i], cur.len[i], first && i == 0, &next);
    }
    pieces_free(&cur);
    cur = next;
    if (rc) return pieces_free(&cur), -1;
  }
  *out = cur;
  return 0;
}

/* NFC, NFD, NFKC or NFKD through utf8proc. Text that is not valid UTF-8
 * (which tokenizers never sees: Python passes str) is left as it is. */
static void unicode_normalize(sbuf *o, const char *s, size_t n, int form) {
  utf8proc_uint8_t *out = NULL;
  utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &out,
                                      (utf8proc_option_t)form);
  if (len >= 0) sb_putn(o, (const char *)out, (size_t)len);
  else sb_putn(o, s, n);
  free(out);
}

/* A segment between added tokens: normalized, split, and each piece BPE'd. */
static int encode_segment(const tokenizer *t, const char *s, size_t n, int first, ids_buf *out,
                          lt_error *err) {
  sbuf norm = {0};
  sb_putn(&norm, s, n);
  for (int k = 0; k < t->n_norms && !norm.failed; k++) {
    const tok_norm *nm = &t->norms[k];
    sbuf next = {0};
    if (nm->kind == TOK_NORM_PREPEND) {
      if (norm.len) sb_puts(&next, nm->a);
      sb_putn(&next, sb_str(&norm), norm.len);
    } else if (nm->kind == TOK_NORM_UNICODE) {
      unicode_normalize(&next, sb_str(&norm), norm.len, nm->form);
    } else {
      tok_replace_all(&next, sb_str(&norm), norm.len, nm->a, nm->b);
    }
    sb_free(&norm);
    norm = next;
  }
  pieces p = {0};
  int rc = norm.failed ? -1 : pre_tokenize(t, sb_str(&norm), norm.len, first, &p);
  for (int i = 0; i < p.n && rc == 0; i++) rc = bpe(t, p.s[i], p.len[i], out);
  pieces_free(&p);
  sb_free(&norm);
  if (rc == -2)
    return lt_fail(err, "%s: a character has no token and the model has no unk_token or byte "
                   "fallback", t->path);
  return rc ? lt_fail(err, "out of memory") : 0;
}

/* The longest added token starting at s, or -1. */
static int added_at(const tokenizer *t, const char *s, size_t n, size_t *len) {
  int best = -1;
  *len = 0;
  for (int i = 0; i < t->n_added; i++) {
    size_t l = strlen(t->added[i].text);
    if (l > *len && l <= n && !memcmp(s, t->added[i].text, l)) best = t->added[i].id, *len = l;
  }
  return best;
}

int tok_encode(const tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
               int *n, lt_error *err) {
  ids_buf out = {0};
  int rc = 0, first = 1;
  for (int i = 0; add_special && i < t->n_prefix && rc == 0; i++) rc = push(&out, t->prefix[i]);
  size_t seg = 0;
  for (size_t i = 0; i <= len && rc == 0;) {
    size_t alen = 0;
    int id = i < len ? added_at(t, text + i, len - i, &alen) : -1;
    if (id < 0 && i < len) {
      i++;
      continue;
    }
    if (i > seg) rc = encode_segment(t, text + seg, i - seg, first, &out, err), first = 0;
    if (rc == 0 && id >= 0) rc = push(&out, id) ? lt_fail(err, "out of memory") : 0, first = 0;
    i += id >= 0 ? alen : 1;
    seg = i;
  }
  for (int i = 0; add_special && i < t->n_suffix && rc == 0; i++) rc = push(&out, t->suffix[i]);
  if (rc) return free(out.v), rc < 0 ? rc : lt_fail(err, "out of memory");
  *ids = out.v ? out.v : malloc(sizeof(int32_t));
  *n = out.n;
  return 0;
}
