/* test_schedule: LISA's schedule on its own (schedule.h), over a 6-block
 * model's gradient slots. Sets are drawn at period starts only; a block
 * that stays keeps its slot, one that enters gets a free slot reported as
 * fresh; paths follow the set (FORWARD below the lowest active block when
 * E is frozen); FT binds every block for good; a restored period is not
 * re-drawn, and a schedule started mid-period draws that period's set. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "autodiff.h"
#include "check.h"
#include "model_yaml.h"
#include "path.h"
#include "schedule.h"

#define N_LAYER 6
#define GAMMA 2
#define K 3

static char model_path[128], dir[] = "/tmp/lisa-sched-XXXXXX";
static ir_model model;
static double zeros[N_LAYER];

static int make_state(ms_state *s, int n_slots, int slotless) {
  lt_error err;
  if (ms_create_layout(s, &model, 1, 4, n_slots, slotless, NULL, &err) == 0) return 0;
  fprintf(stderr, "ms_create_layout: %s\n", err.msg);
  check_failures++;
  return -1;
}

static int make_sched(lisa_schedule *s, ms_state *st, int sample, int train_embed) {
  lt_error err;
  sched_config c = {.sample = sample, .train_embed = train_embed, .train_head = 1, .seed = 11,
                    .lisa = {.mode = LISA_SAMPLE_UNIFORM, .gamma = GAMMA, .interval = K}};
  if (sched_create(s, st, &c, &err) == 0) return 0;
  fprintf(stderr, "sched_create: %s\n", err.msg);
  check_failures++;
  return -1;
}

static int begin(lisa_schedule *s, int64_t step) {
  lisa_layer_stats stats = {zeros, zeros};
  lt_error err;
  int switched = -1;
  if (sched_begin_step(s, step, &stats, &switched, &err)) {
    fprintf(stderr, "sched_begin_step %lld: %s\n", (long long)step, err.msg);
    check_failures++;
  }
  return switched;
}

static int in_set(const int *set, int n, int x) {
  for (int i = 0; i < n; i++)
    if (set[i] == x) return 1;
  return 0;
}

/* Slots: each active block holds one, no two share, idle blocks none;
 * regions on exactly for E, H and the bound slots. */
static void check_binding(const lisa_schedule *s, const ms_state *st, int train_embed) {
  int n_active, seen[N_LAYER] = {0};
  const int *active = sched_active(s, &n_active);
  for (int l = 0; l < N_LAYER; l++) {
    int slot = st->grad_slot[l], act = in_set(active, n_active, l);
    CHECK(act ? slot >= 0 && slot < st->n_grad_slots : slot == -1);
    if (slot >= 0) CHECK(seen[slot]++ == 0);
    CHECK(sched_block_region(s, l) == (slot < 0 ? -1 : SCHED_REGION_SLOTS + slot));
  }
  CHECK(sched_region_on(s, SCHED_REGION_EMBED) == train_embed);
  CHECK(sched_region_on(s, SCHED_REGION_HEAD) == 1);
  for (int slot = 0; slot < st->n_grad_slots; slot++)
    CHECK(sched_region_on(s, SCHED_REGION_SLOTS + slot) == seen[slot]);
}

/* ACTIVE where a block trains; below the lowest active block FORWARD when
 * E is frozen, FROZEN otherwise; the head (which trains) ACTIVE. */
static void check_paths(const lisa_schedule *s, const ms_state *st, int train_embed) {
  int n_active;
  const int *active = sched_active(s, &n_active);
  int lowest = n_active ? active[0] : N_LAYER;
  CHECK(sched_path(s, 0) == (train_embed ? PATH_ACTIVE : PATH_FORWARD));
  for (int l = 0; l < N_LAYER; l++) {
    int want = in_set(active, n_active, l) ? PATH_ACTIVE
               : !train_embed && l < lowest ? PATH_FORWARD : PATH_FROZEN;
    CHECK_MSG(sched_path(s, 1 + l) == want, "block %d: path %d, want %d", l, sched_path(s, 1 + l), want);
  }
  CHECK(sched_path(s, ms_head_inst(st)) == PATH_ACTIVE);
}

/* Periods: a switch exactly at multiples of K; across a switch a staying
 * block keeps its slot and isn't fresh, an entering one is fresh. */
static void test_periods(int train_embed) {
  ms_state st;
  lisa_schedule s;
  if (make_state(&st, GAMMA, 1)) return;
  if (make_sched(&s, &st, 1, train_embed)) return ms_free(&st);
  int prev_slot[N_LAYER], prev_active[N_LAYER], n_prev = 0, stays = 0, enters = 0;
  for (int64_t step = 0; step < 40; step++) {
    for (int l = 0; l < N_LAYER; l++) prev_slot[l] = st.grad_slot[l];
    CHECK(sched_is_new_period(&s, step) == (step % K == 0));
    int switched = begin(&s, step);
    CHECK(switched == (step % K == 0));
    int n_active, n_fresh;
    const int *active = sched_active(&s, &n_active);
    const int *fresh = sched_fresh_slots(&s, &n_fresh);
    CHECK(n_active == GAMMA && active[0] < active[1]);
    check_binding(&s, &st, train_embed);
    check_paths(&s, &st, train_embed);
    if (!switched) {
      CHECK(memcmp(prev_slot, st.grad_slot, sizeof prev_slot) == 0);
      continue;
    }
    int entered = 0;
    for (int i = 0; i < n_active; i++) {
      int l = active[i], stayed = in_set(prev_active, n_prev, l);
      CHECK(in_set(fresh, n_fresh, st.grad_slot[l]) == !stayed);
      if (stayed) stays++;
      if (stayed) CHECK(st.grad_slot[l] == prev_slot[l]);
      else entered++;
    }
    CHECK(n_fresh == entered);
    enters += entered;
    memcpy(prev_active, active, sizeof(int) * (size_t)n_active);
    n_prev = n_active;
  }
  CHECK(stays > 0 && enters > 0); /* both cases were seen */
  sched_free(&s);
  ms_free(&st);
}

/* FT: every block bound for good, all ACTIVE, never a switch. */
static void test_full(void) {
  ms_state st;
  lisa_schedule s;
  if (make_state(&st, N_LAYER, 0)) return;
  if (make_sched(&s, &st, 0, 1)) return ms_free(&st);
  int slots[N_LAYER];
  memcpy(slots, st.grad_slot, sizeof slots);
  for (int64_t step = 0; step < 7; step++) {
    CHECK(!sched_is_new_period(&s, step) && begin(&s, step) == 0);
    int n_active;
    sched_active(&s, &n_active);
    CHECK(n_active == N_LAYER && !sched_samples(&s));
    CHECK(memcmp(slots, st.grad_slot, sizeof slots) == 0);
    check_binding(&s, &st, 1);
    check_paths(&s, &st, 1);
  }
  sched_free(&s);
  ms_free(&st);
}

/* A restored period goes on without a draw and then draws as the run it
 * came from; a schedule begun mid-period draws that period's set. */
static void test_resume(void) {
  ms_state sa, sb, sc;
  lisa_schedule a, b, c;
  if (make_state(&sa, GAMMA, 1) || make_state(&sb, GAMMA, 1) || make_state(&sc, GAMMA, 1)) return;
  if (make_sched(&a, &sa, 1, 0) || make_sched(&b, &sb, 1, 0) || make_sched(&c, &sc, 1, 0)) return;
  int period[GAMMA];
  for (int64_t step = 0; step <= 4; step++) {
    begin(&a, step);
    if (step == 3) memcpy(period, a.active, sizeof period);
  }
  lt_error err;
  int n_active;
  const int *active = sched_active(&a, &n_active);
  CHECK(sched_restore(&b, sa.grad_slot, active, n_active, 1, &err) == 0);
  CHECK(begin(&b, 5) == 0);
  CHECK(memcmp(b.active, a.active, sizeof period) == 0);
  check_paths(&b, &sb, 0);
  CHECK(begin(&c, 4) == 1 && memcmp(c.active, period, sizeof period) == 0);
  for (int64_t step = 5; step < 20; step++) {
    begin(&a, step), begin(&b, step), begin(&c, step);
    CHECK(memcmp(a.active, b.active, sizeof period) == 0);
    CHECK(memcmp(a.active, c.active, sizeof period) == 0);
  }
  int twice[N_LAYER] = {0, 0, -1, -1, -1, -1}, both[GAMMA] = {0, 1};
  CHECK(sched_restore(&b, twice, both, GAMMA, 1, &err) == -1 &&
        strstr(err.msg, "gradient slot 0 is bound twice"));
  sched_free(&a), sched_free(&b), sched_free(&c);
  ms_free(&sa), ms_free(&sb), ms_free(&sc);
}

int main(void) {
  lt_error err;
  if (!mkdtemp(dir)) return 1;
  snprintf(model_path, sizeof model_path, "%s/gpt2-tiny6.yaml", dir);
  if (write_tiny_gpt2(model_path, N_LAYER) || yml_load_model(model_path, &model, &err) ||
      ad_build_backward(&model, &err)) {
    fprintf(stderr, "model: %s\n", err.msg);
    return 1;
  }
  test_periods(1);
  test_periods(0);
  test_full();
  test_resume();
  ir_model_free(&model);
  unlink(model_path);
  rmdir(dir);
  return check_exit();
}
