#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "hash64.h"
#include "safetensors.h"
#include "weights.h"

#define CKPT_FORMAT "1"
#define CKPT_PATH_CAP 1024
#define CKPT_MAX_SETTINGS 32

/* ---- folders and the latest pointer ------------------------------------ */


static void step_name(int64_t step, char *out, size_t cap) {
  snprintf(out, cap, "step-%" PRId64, step);
}

int ckpt_step_path(const char *dir, int64_t step, char *out, size_t cap, lt_error *err) {
  char name[40];
  step_name(step, name, sizeof name);
  return atomic_file_join(out, cap, dir, name, err);
}

/* The step of a folder name "step-<digits>", or -1 for any other name. */
static int64_t step_of_name(const char *name) {
  if (strncmp(name, "step-", 5) || !name[5] || strlen(name) > 5 + 18) return -1;
  int64_t step = 0;
  for (const char *c = name + 5; *c; c++) {
    if (*c < '0' || *c > '9') return -1;
    step = step * 10 + (*c - '0');
  }
  return step;
}



/* Replaces DIR/latest (atomic_file.h), then syncs DIR so the rename lasts. */
static int write_latest(const char *dir, const char *name, lt_error *err) {
  char path[CKPT_PATH_CAP], line[64];
  if (atomic_file_join(path, sizeof path, dir, "latest", err)) return -1;
  snprintf(line, sizeof line, "%s\n", name);
  return atomic_file_write_text(path, line, err) || atomic_file_sync_dir(dir, err) ? -1 : 0;
}

static void make_printable(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) *s = '?';
}

/* name receives the step folder DIR/latest names ("step-<N>"). */
static int read_latest(const char *dir, char *name, size_t cap, lt_error *err) {
  char path[CKPT_PATH_CAP], text[64];
  if (atomic_file_join(path, sizeof path, dir, "latest", err)) return -1;
  FILE *fp = fopen(path, "r");
  if (!fp)
    return lt_fail(err, "%s: cannot open: %s (no state saved in %s?)", path, strerror(errno), dir);
  size_t n = fread(text, 1, sizeof text - 1, fp);
  fclose(fp);
  text[n] = '\0';
  if (n && text[n - 1] == '\n') text[--n] = '\0';
  if (step_of_name(text) < 0 || n >= cap) {
    make_printable(text);
    return lt_fail(err, "%s: expected one line 'step-<N>', found '%s'", path, text);
  }
  memcpy(name, text, n + 1);
  return 0;
}

/* ---- which folders are ours ---------------------------------------------
 * The --save-state folder may hold things of the user's, and a name like
 * step-7 proves nothing: a step folder is ours when it is a real folder (not
 * a symbolic link) holding our marker file. Only those are ever removed, and
 * of their contents only the names we write (and our temporary files). */

#define CKPT_MARKER "lisa-state"

static const char *const our_files[] = {"model.safetensors", "optimizer.safetensors",
                                        CKPT_MARKER};

enum { NOT_THERE, OURS, NOT_OURS };

static int is_our_file(const char *name);

/* Empty, or holding only temporary files of our names: a crash before the
 * marker landed (killed while its temporary file was being written). */
static int is_unmarked_start(const char *path) {
  DIR *d = opendir(path);
  if (!d) return 0;
  int ours = 1;
  for (struct dirent *e; ours && (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      ours = is_our_file(e->d_name) && strstr(e->d_name, ".tmp.") != NULL;
  closedir(d);
  return ours;
}

static int classify(const char *path) {
  struct stat st;
  char marker[CKPT_PATH_CAP];
  if (lstat(path, &st) != 0) return errno == ENOENT ? NOT_THERE : NOT_OURS;
  if (!S_ISDIR(st.st_mode)) return NOT_OURS;
  lt_error ignored;
  if (atomic_file_join(marker, sizeof marker, path, CKPT_MARKER, &ignored)) return NOT_OURS;
  if (lstat(marker, &st) == 0 && S_ISREG(st.st_mode)) return OURS;
  return is_unmarked_start(path) ? OURS : NOT_OURS; /* a crash before the marker: nothing to lose */
}

/* A real folder (not a link), as states saved before the marker are. */
static int classify_legacy(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* One of our names, or a temporary file atomic_file made for one. */
static int is_our_file(const char *name) {
  for (size_t i = 0; i < sizeof our_files / sizeof *our_files; i++) {
    size_t n = strlen(our_files[i]);
    if (!strncmp(name, our_files[i], n) && (!name[n] || !strncmp(name + n, ".tmp.", 5)))
      return 1;
  }
  return 0;
}

/* Removes our files from a folder of ours, then the folder if that emptied
 * it (a file the user put there keeps it). Through a descriptor opened
 * without following links, so nothing outside it is touched. */
static int remove_state_dir(const char *path, lt_error *err) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0) close(fd);
    return lt_fail(err, "%s: cannot list: %s", path, strerror(errno));
  }
  int rc = 0;
  for (struct dirent *e; rc == 0 && (e = readdir(d));)
    if (is_our_file(e->d_name) && unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT)
      rc = lt_fail(err, "%s/%s: cannot remove: %s", path, e->d_name, strerror(errno));
  closedir(d);
  if (rc == 0 && rmdir(path) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
    rc = lt_fail(err, "%s: cannot remove: %s", path, strerror(errno));
  return rc;
}

/* Every step folder of ours but `keep`: the previous state and any a crash
 * left. Folders and links that are not ours stay as they are. */
static int remove_other_states(const char *dir, const char *keep, lt_error *err) {
  DIR *d = opendir(dir);
  if (!d) return lt_fail(err, "%s: cannot list: %s", dir, strerror(errno));
  struct dirent *e;
  char path[CKPT_PATH_CAP];
  int rc = 0;
  while (rc == 0 && (e = readdir(d)))
    if (step_of_name(e->d_name) >= 0 && strcmp(e->d_name, keep)) {
      rc = atomic_file_join(path, sizeof path, dir, e->d_name, err);
      if (rc == 0 && classify(path) == OURS) rc = remove_state_dir(path, err);
    }
  closedir(d);
  return rc ? -1 : 0;
}

/* ---- the settings a resume must match ----------------------------------- */

/* Structural settings decide the state's shape (which tensors and moments
 * exist): no resume across them. The others change only the trajectory: a
 * resume refuses a change unless the caller allows overrides. */
typedef struct {
  char key[16];
  char value[80];
  int overridable;
} ckpt_setting;

static void add_setting(ckpt_setting *s, int *n, int overridable, const char *key,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_setting(ckpt_setting *s, int *n, int overridable, const char *key,
                        const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  snprintf(s[*n].key, sizeof s[*n].key, "%s", key);
  vsnprintf(s[*n].value, sizeof s[*n].value, fmt, ap);
  va_end(ap);
  s[*n].overridable = overridable;
  (*n)++;
}

enum { STRUCTURAL = 0, TRAJECTORY = 1 };

static void optimizer_settings(const opt_config *o, ckpt_setting *s, int *n) {
  static const char *const schedules[] = {"constant", "cosine"};
  add_setting(s, n, TRAJECTORY, "lr", "%.9g", o->lr);
  add_setting(s, n, TRAJECTORY, "schedule", "%s", schedules[o->schedule]);
  add_setting(s, n, TRAJECTORY, "warmup", "%d", o->warmup);
  add_setting(s, n, TRAJECTORY, "weight_decay", "%.9g", o->weight_decay);
  add_setting(s, n, TRAJECTORY, "grad_clip", "%.9g", o->grad_clip);
  add_setting(s, n, TRAJECTORY, "adamw", "%.9g,%.9g,%.9g", o->beta1, o->beta2, o->eps);
  if (o->schedule == OPT_COSINE) /* the horizon shapes every step's lr */
    add_setting(s, n, TRAJECTORY, "cosine", "%lld steps to %.9g", (long long)o->total_steps,
                o->min_lr_frac);
}

/* The tokens as read (ids widened to 32 bits), so a re-encoded file with the
 * same ids is the same data. */
static void data_setting(const trainer *t, ckpt_setting *s, int *n) {
  add_setting(s, n, TRAJECTORY, "data", "%016llx, %lld tokens",
              (unsigned long long)t->data_hash, (long long)t->data.n_tokens);
}

/* Checked in this order: method first (the LISA settings exist only for
 * LISA), grad_slots last (it follows from the others, which name the cause). */
static int settings_of(const trainer *t, ckpt_setting *s) {
  static const char *const modes[] = {"uniform", "bernoulli", "lua"};
  static const char *const methods[] = {"ft", "lisa", "lora"};
  const train_config *c = &t->cfg;
  int n = 0;
  add_setting(s, &n, STRUCTURAL, "method", "%s", methods[c->method]);
  add_setting(s, &n, STRUCTURAL, "model", "%s", t->ir.name);
  add_setting(s, &n, TRAJECTORY, "seed", "%llu", (unsigned long long)c->seed);
  /* the whole batch: a state resumes at another rank count with the same rows */
  add_setting(s, &n, TRAJECTORY, "batch", "%d", c->batch * dist_size(c->comm));
  add_setting(s, &n, TRAJECTORY, "seq", "%d", c->seq);
  add_setting(s, &n, TRAJECTORY, "grad_accum", "%d", trainer_grad_accum(t));
  add_setting(s, &n, TRAJECTORY, "numerics", "%s", c->numerics ? c->numerics : "fp32");
  optimizer_settings(&c->opt, s, &n);
  data_setting(t, s, &n);
  if (c->method == TRAIN_LISA) {
    add_setting(s, &n, TRAJECTORY, "gamma", "%d", c->lisa.gamma);
    add_setting(s, &n, TRAJECTORY, "interval", "%lld", (long long)c->lisa.interval);
    add_setting(s, &n, TRAJECTORY, "sampling", "%s", modes[c->lisa.mode]);
    if (c->lisa.mode == LISA_SAMPLE_LUA)
      add_setting(s, &n, TRAJECTORY, "policy", "%016llx", (unsigned long long)t->policy_hash);
  }
  if (c->method == TRAIN_LORA) {
    add_setting(s, &n, STRUCTURAL, "lora_rank", "%d", c->lora_rank);
    add_setting(s, &n, TRAJECTORY, "lora_alpha", "%.17g", c->lora_alpha);
    add_setting(s, &n, STRUCTURAL, "lora_targets", "%.70s",
                c->lora_targets ? c->lora_targets : "all");
  }
  add_setting(s, &n, STRUCTURAL, "train_embed", "%d", c->train_embed);
  add_setting(s, &n, STRUCTURAL, "train_head", "%d", c->train_head);
  add_setting(s, &n, STRUCTURAL, "grad_slots", "%d", t->state.n_grad_slots);
  return n;
}

static const char *meta_get(const st_file *f, const char *key, lt_error *err) {
  const char *v = st_metadata(f, key);
  if (!v) lt_fail(err, "%s: no '%s' in the metadata (not a state ckpt_save wrote?)", f->path, key);
  return v;
}

/* Notes an allowed change in ov->changes ("key saved -> now; ..."). */
static void note_override(ckpt_overrides *ov, const char *key, const char *saved,
                          const char *now) {
  size_t k = strlen(ov->changes);
  snprintf(ov->changes + k, sizeof ov->changes - k, "%s%s %s -> %s", k ? "; " : "", key,
           saved ? saved : "(not recorded)", now);
  ov->n_changed++;
}

static int check_settings(const trainer *t, const st_file *f, ckpt_overrides *ov,
                          lt_error *err) {
  ckpt_setting want[CKPT_MAX_SETTINGS];
  int n = settings_of(t, want);
  int allow = ov && ov->allow;
  for (int i = 0; i < n; i++) {
    const char *saved = st_metadata(f, want[i].key);
    if (saved && !strcmp(saved, want[i].value)) continue;
    if (allow && want[i].overridable) {
      note_override(ov, want[i].key, saved, want[i].value);
      continue;
    }
    const char *hint = want[i].overridable ? " (--override resumes anyway)" : "";
    if (!saved)
      return lt_fail(err, "%s: the state does not record %s (saved by an older lisa?); this run "
                     "has %s %s%s", f->path, want[i].key, want[i].key, want[i].value, hint);
    return lt_fail(err, "%s: the state was saved with %s %s, this run has %s %s%s", f->path,
                   want[i].key, saved, want[i].key, want[i].value, hint);
  }
  return 0;
}

static int meta_int(const st_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out,
                    lt_error *err) {
  const char *text = meta_get(f, key, err);
  if (!text) return -1;
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end || v < lo || v > hi)
    return lt_fail(err, "%s: metadata '%s' is '%s', not an integer in [%lld, %lld]", f->path, key,
                   text, (long long)lo, (long long)hi);
  *out = v;
  return 0;
}

/* ---- per-block norms as text: "%.17g" reads back to the same double ----- */

static char *format_norms(const double *v, int n) {
  size_t cap = (size_t)n * 26 + 1, k = 0; /* "%.17g" is at most 24 chars */
  char *s = malloc(cap);
  if (!s) return NULL;
  s[0] = '\0';
  for (int i = 0; i < n; i++) k += (size_t)snprintf(s + k, cap - k, i ? ",%.17g" : "%.17g", v[i]);
  return s;
}

static int parse_norms(const st_file *f, const char *key, double *out, int n, lt_error *err) {
  const char *text = meta_get(f, key, err), *p = text;
  if (!text) return -1;
  for (int i = 0; i < n; i++) {
    char *end;
    out[i] = strtod(p, &end);
    if (end == p || *end != (i + 1 < n ? ',' : '\0')) break;
    p = end + 1;
  }
  if (n ? p == text + strlen(text) + 1 : !*text) return 0;
  return lt_fail(err, "%s: metadata '%s' is not %d comma-separated numbers", f->path, key, n);
}

/* ---- saving -------------------------------------------------------------- */

/* A moment's bytes from the store, in the writer's pieces. */
typedef struct {
  const param_store *ps;
  int which;
} moment_fill;

static int fill_moment(void *ctx, uint64_t at, void *out, size_t bytes, lt_error *err) {
  const moment_fill *f = ctx;
  return f->ps->get_moments(f->ps->ctx, f->which, (int64_t)(at / 4), (int64_t)(bytes / 4), out,
                            err);
}

static int write_optimizer(const trainer *t, const char *path, const int32_t *ints,
                           const char *const *meta, int n_meta, lt_error *err) {
  const ms_state *s = &t->state;
  int n_regions = t->opt.n_regions, n_layer = t->ir.n_layer;
  const int32_t *steps = ints, *slots = ints + n_regions, *active = slots + n_layer;
  moment_fill m = {trainer_store(t), 0}, v = {trainer_store(t), 1};
  st_entry entries[] = {
      {"adamw.m", ST_F32, 1, {s->n_grad_scalars}, NULL, fill_moment, &m},
      {"adamw.v", ST_F32, 1, {s->n_grad_scalars}, NULL, fill_moment, &v},
      {"adamw.t", ST_I32, 1, {n_regions}, steps, NULL, NULL},
      {"grad_slot", ST_I32, 1, {n_layer}, slots, NULL, NULL},
      {"active", ST_I32, 1, {t->sched.n_active}, active, NULL, NULL},
  };
  return st_write(path, entries, 5, meta, n_meta, err);
}

/* ints: [n_regions] step counts, [n_layer] slots, [n_active] active blocks. */
static int fill_ints(const trainer *t, const char *path, int32_t *ints, lt_error *err) {
  int n_regions = t->opt.n_regions, n_layer = t->ir.n_layer;
  for (int r = 0; r < n_regions; r++) {
    if (t->opt.t[r] > INT32_MAX)
      return lt_fail(err, "%s: AdamW step count %lld does not fit in I32", path,
                     (long long)t->opt.t[r]);
    ints[r] = (int32_t)t->opt.t[r];
  }
  for (int l = 0; l < n_layer; l++) ints[n_regions + l] = t->state.grad_slot[l];
  int n_active;
  const int *active = sched_active(&t->sched, &n_active);
  for (int i = 0; i < n_active; i++) ints[n_regions + n_layer + i] = active[i];
  return 0;
}

static int save_optimizer(const trainer *t, const char *path, lt_error *err) {
  int n_layer = t->ir.n_layer;
  ckpt_setting set[CKPT_MAX_SETTINGS];
  int n_set = settings_of(t, set);
  char step[24], sampled[4];
  snprintf(step, sizeof step, "%" PRId64, t->step);
  snprintf(sampled, sizeof sampled, "%d", sched_is_sampled(&t->sched));
  int32_t *ints = malloc(sizeof(int32_t) * (size_t)(t->opt.n_regions + 2 * n_layer) + 1);
  char *grad_norms = format_norms(t->grad_norms, n_layer);
  char *weight_norms = format_norms(t->weight_norms, n_layer);
  int rc = ints && grad_norms && weight_norms ? 0 : lt_fail(err, "%s: out of memory", path);
  if (rc == 0) rc = fill_ints(t, path, ints, err);
  if (rc == 0) {
    const char *meta[2 * (CKPT_MAX_SETTINGS + 5)] = {
        "lisa_state", CKPT_FORMAT, "step", step, "sampled", sampled,
        "grad_norms", grad_norms, "weight_norms", weight_norms};
    int n_meta = 5;
    for (int i = 0; i < n_set; i++, n_meta++)
      meta[2 * n_meta] = set[i].key, meta[2 * n_meta + 1] = set[i].value;
    rc = write_optimizer(t, path, ints, meta, n_meta, err);
  }
  free(ints);
  free(grad_norms);
  free(weight_norms);
  return rc;
}

/* A folder for the new state, marked as ours. One of ours of the same name
 * that latest does not name is what a crash left: start it afresh. One that
 * is not ours (the user's, or a link) is never written into. */
static int make_step_dir(const char *dir, const char *name, char *step_dir, lt_error *err) {
  char current[40], marker[CKPT_PATH_CAP];
  lt_error ignored;
  if (atomic_file_make_dir(dir, err) || atomic_file_join(step_dir, CKPT_PATH_CAP, dir, name, err) ||
      atomic_file_join(marker, sizeof marker, step_dir, CKPT_MARKER, err))
    return -1;
  int is_latest = read_latest(dir, current, sizeof current, &ignored) == 0 && !strcmp(current, name);
  int kind = classify(step_dir);
  if (kind == NOT_OURS && !(is_latest && classify_legacy(step_dir)))
    return lt_fail(err, "%s: exists and was not written by lisa (no %s file in it, or not a "
                   "folder); move it away to save this state", step_dir, CKPT_MARKER);
  if (kind == OURS && !is_latest && remove_state_dir(step_dir, err)) return -1;
  return atomic_file_make_dir(step_dir, err) ||
         atomic_file_write_text(marker, "a state lisa train wrote; lisa may remove this folder\n", err)
             ? -1 : 0;
}

int ckpt_save(const trainer *t, const char *dir, lt_error *err) {
  char name[40], step_dir[CKPT_PATH_CAP], path[CKPT_PATH_CAP];
  step_name(t->step, name, sizeof name);
  if (make_step_dir(dir, name, step_dir, err)) return -1;
  if (atomic_file_join(path, sizeof path, step_dir, "model.safetensors", err) ||
      wt_save_into(&t->ir, trainer_store(t), path, 0, ST_F32, err))
    return -1;
  if (atomic_file_join(path, sizeof path, step_dir, "optimizer.safetensors", err) ||
      save_optimizer(t, path, err))
    return -1;
  if (atomic_file_sync_dir(step_dir, err) || write_latest(dir, name, err)) return -1;
  if (remove_other_states(dir, name, err)) {
    lt_error cause = *err;
    return lt_fail(err, "%s (the state of step %" PRId64 " is saved in %s)", cause.msg, t->step,
                   step_dir);
  }
  return 0;
}

int ckpt_save_ranks(trainer *t, const char *dir, lt_error *err) {
  if (dist_size(t->cfg.comm) == 1) return ckpt_save(t, dir, err);
  int rc = trainer_moments_full(t, 1, err);
  if (rc == 0 && dist_rank(t->cfg.comm) == 0) rc = ckpt_save(t, dir, err);
  lt_error shard_err;
  const int back = trainer_moments_shard(t, rc ? &shard_err : err);
  return rc || back ? -1 : 0;
}

/* ---- resuming ------------------------------------------------------------ */

/* A one-dimensional tensor of n values (n < 0: any count up to -n). */
static const st_tensor *find_vector(const st_file *f, const char *name, int dtype, int64_t n,
                                    lt_error *err) {
  const st_tensor *t = st_find(f, name);
  if (!t) {
    lt_fail(err, "%s: missing tensor '%s'", f->path, name);
    return NULL;
  }
  int count_ok = n >= 0 ? st_numel(t) == n : st_numel(t) <= -n;
  if (t->dtype != dtype || t->ndim != 1 || !count_ok) {
    lt_fail(err, "%s: tensor '%s' is %s with %d dimension(s) and %lld values; this run needs "
            "one dimension of %s%lld %s values", f->path, name, t->dtype_name, t->ndim,
            (long long)st_numel(t), n < 0 ? "at most " : "", (long long)(n < 0 ? -n : n),
            dtype == ST_F32 ? "F32" : "I32");
    return NULL;
  }
  return t;
}

/* The moments into the store in pieces; each value finite, and a second
 * moment (a mean of squares) not negative. */
#define CKPT_MOMENT_CHUNK ((int64_t)1 << 20)

static int read_moment(trainer *t, const st_file *f, const st_tensor *x, int which, float *buf,
                       lt_error *err) {
  const param_store *ps = trainer_store(t);
  int64_t n = st_numel(x);
  for (int64_t at = 0; at < n; at += CKPT_MOMENT_CHUNK) {
    int64_t k = n - at < CKPT_MOMENT_CHUNK ? n - at : CKPT_MOMENT_CHUNK;
    if (st_read_f32_finite_range(f, x, at, k, buf, err)) return -1;
    for (int64_t i = 0; which && i < k; i++)
      if (buf[i] < 0)
        return lt_fail(err, "%s: tensor '%s' holds %g at element %lld: second moments cannot "
                       "be negative", f->path, x->name, buf[i], (long long)(at + i));
    if (ps->put_moments(ps->ctx, which, at, k, buf, err)) return -1;
  }
  return 0;
}

static int read_moments(trainer *t, const st_file *f, lt_error *err) {
  int64_t n = t->state.n_grad_scalars;
  const st_tensor *m = find_vector(f, "adamw.m", ST_F32, n, err);
  const st_tensor *v = m ? find_vector(f, "adamw.v", ST_F32, n, err) : NULL;
  float *buf = v ? malloc(sizeof(float) * (size_t)(n < CKPT_MOMENT_CHUNK ? n + 1 : CKPT_MOMENT_CHUNK)) : NULL;
  int rc = !v ? -1 : !buf ? lt_fail(err, "%s: out of memory", f->path)
                          : read_moment(t, f, m, 0, buf, err) || read_moment(t, f, v, 1, buf, err);
  free(buf);
  return rc ? -1 : 0;
}

static int read_ints(const st_file *f, const char *name, int64_t n, int32_t *out, int64_t *count,
                     lt_error *err) {
  const st_tensor *x = find_vector(f, name, ST_I32, n, err);
  if (!x || st_read_i32(f, x, out, err)) return -1;
  *count = st_numel(x);
  return 0;
}

/* The step counts, slots and active set; ints as fill_ints lays them out,
 * blocks: room for 2 n_layer ints. */
static int read_period(trainer *t, const st_file *f, int64_t step, int sampled, int32_t *ints,
                       int *blocks, lt_error *err) {
  int n_regions = t->opt.n_regions, n_layer = t->ir.n_layer;
  int32_t *steps = ints, *slots = ints + n_regions, *active = slots + n_layer;
  int64_t n, n_active;
  if (read_ints(f, "adamw.t", n_regions, steps, &n, err) ||
      read_ints(f, "grad_slot", n_layer, slots, &n, err) ||
      read_ints(f, "active", -(int64_t)n_layer, active, &n_active, err))
    return -1;
  for (int r = 0; r < n_regions; r++) {
    if (steps[r] < 0) return lt_fail(err, "%s: adamw.t[%d] = %d is negative", f->path, r, steps[r]);
    if (steps[r] > step) /* a region takes at most one AdamW step per step */
      return lt_fail(err, "%s: adamw.t[%d] = %d, more than the %lld steps run", f->path, r,
                     steps[r], (long long)step);
    t->opt.t[r] = steps[r];
  }
  int *slot_of = blocks, *active_blocks = blocks + n_layer;
  for (int l = 0; l < n_layer; l++) slot_of[l] = slots[l];
  for (int i = 0; i < n_active; i++) active_blocks[i] = active[i];
  if (trainer_restore_period(t, slot_of, active_blocks, (int)n_active, sampled, err)) {
    lt_error cause = *err;
    return lt_fail(err, "%s: %s", f->path, cause.msg);
  }
  return 0;
}

static int restore_optimizer(trainer *t, const st_file *f, int64_t dir_step,
                             ckpt_overrides *ov, lt_error *err) {
  const char *format = meta_get(f, "lisa_state", err);
  if (!format) return -1;
  if (strcmp(format, CKPT_FORMAT))
    return lt_fail(err, "%s: state format '%s', this build reads '%s'", f->path, format,
                   CKPT_FORMAT);
  int64_t step, sampled;
  if (check_settings(t, f, ov, err) || meta_int(f, "step", 0, INT64_MAX, &step, err) ||
      meta_int(f, "sampled", 0, 1, &sampled, err))
    return -1;
  if (step != dir_step)
    return lt_fail(err, "%s: metadata step %lld, but its folder is step-%lld", f->path,
                   (long long)step, (long long)dir_step);
  int n_layer = t->ir.n_layer;
  int32_t *ints = malloc(sizeof(int32_t) * (size_t)(t->opt.n_regions + 2 * n_layer) + 1);
  int *blocks = malloc(sizeof(int) * (size_t)(2 * n_layer) + 1);
  int rc = ints && blocks ? 0 : lt_fail(err, "%s: out of memory", f->path);
  /* the period first: a device's store binds the active blocks' slots
     before their moments arrive */
  if (rc == 0) rc = read_period(t, f, step, (int)sampled, ints, blocks, err) || read_moments(t, f, err);
  if (rc == 0)
    rc = parse_norms(f, "grad_norms", t->grad_norms, n_layer, err) ||
         parse_norms(f, "weight_norms", t->weight_norms, n_layer, err);
  free(ints);
  free(blocks);
  if (rc) return -1;
  t->step = step;
  return 0;
}

static int resume_whole(trainer *t, const char *dir, ckpt_overrides *ov, lt_error *err);

/* --zero 1: the state's whole moments loaded, this rank's shard kept. */
int ckpt_resume(trainer *t, const char *dir, ckpt_overrides *ov, lt_error *err) {
  if (trainer_moments_full(t, 0, err)) return -1;
  const int rc = resume_whole(t, dir, ov, err);
  lt_error shard_err;
  const int back = trainer_moments_shard(t, rc ? &shard_err : err);
  return rc || back ? -1 : 0;
}

static int resume_whole(trainer *t, const char *dir, ckpt_overrides *ov, lt_error *err) {
  if (ov) ov->changes[0] = '\0', ov->n_changed = 0;
  char name[40], step_dir[CKPT_PATH_CAP], path[CKPT_PATH_CAP];
  if (read_latest(dir, name, sizeof name, err) || atomic_file_join(step_dir, sizeof step_dir, dir, name, err) ||
      atomic_file_join(path, sizeof path, step_dir, "optimizer.safetensors", err))
    return -1;
  st_file f;
  if (st_open(&f, path, err)) return -1;
  int rc = restore_optimizer(t, &f, step_of_name(name), ov, err);
  st_close(&f);
  if (rc || atomic_file_join(path, sizeof path, step_dir, "model.safetensors", err)) return -1;
  const param_store *ps = trainer_store(t);
  if (wt_load_into(&t->ir, ps, path, NULL, 0, err)) return -1;
  return ps->restored ? ps->restored(ps->ctx, err) : 0;
}
