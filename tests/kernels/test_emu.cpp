// test_emu.cpp: the CUDA emulator itself (templates/emu/cuda_emu.h): barriers,
// shuffles, ballots, partial warps, shared memory, grids, atomics, bf16
// rounding, lisa_common.cuh's reductions, guards, and the errors it must
// report (deadlock, exited lanes, disagreeing masks, launch limits).
#include "cuda_emu.h"
#include "lisa_common.cuh"

#include <time.h>

#include <vector>

#include "emu_check.h"

static const unsigned kFull = 0xffffffffu;

static double now_s() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// --- Block reduction over shared memory ---------------------------------------

// Tree reduction: a __syncthreads in every iteration of the loop.
__global__ void tree_sum(const float *in, float *out) {
  __shared__ float s[256];
  const unsigned t = threadIdx.x;
  s[t] = in[blockIdx.x * 256 + t];
  __syncthreads();
  for (unsigned stride = 128; stride > 0; stride >>= 1) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

static void test_block_reduction() {
  const int blocks = 5;
  std::vector<float> in(blocks * 256), out(blocks, -1.f);
  for (size_t i = 0; i < in.size(); i++) in[i] = float(i % 97);  // exact sums
  CHECK(emu::launch(dim3(blocks), dim3(256), 0, tree_sum, in.data(), out.data()) == 0);
  for (int b = 0; b < blocks; b++) {
    float ref = 0;
    for (int i = 0; i < 256; i++) ref += in[b * 256 + i];
    CHECK_MSG(out[b] == ref, "block %d: %g, expected %g", b, out[b], ref);
  }
}

// --- Warp shuffles ------------------------------------------------------------------

__global__ void warp_reduce(const int *in, int *out_xor, int *out_down) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  int a = in[i], b = in[i];
  for (int o = 16; o > 0; o >>= 1) {
    a += __shfl_xor_sync(kFull, a, o);
    b += __shfl_down_sync(kFull, b, unsigned(o));
  }
  out_xor[i] = a;   // every lane has the sum
  out_down[i] = b;  // lane 0 has the sum
}

static void test_warp_reduction() {
  const int n = 4 * 64;
  std::vector<int> in(n), x(n), d(n);
  emu::fill_int(in.data(), n, -1000, 1000, 7);
  CHECK(emu::launch(dim3(4), dim3(64), 0, warp_reduce, in.data(), x.data(), d.data()) == 0);
  for (int w = 0; w < n / 32; w++) {
    int ref = 0;
    for (int l = 0; l < 32; l++) ref += in[w * 32 + l];
    for (int l = 0; l < 32; l++) CHECK_MSG(x[w * 32 + l] == ref, "warp %d lane %d", w, l);
    CHECK_MSG(d[w * 32] == ref, "warp %d: %d, expected %d", w, d[w * 32], ref);
  }
}

// out[lane*6 + k]: broadcast, width-8 idx, up/down/xor with width 8 and 16.
__global__ void shfl_variants(int *out) {
  const int lane = int(threadIdx.x);
  const int v = 100 + lane;
  int *o = out + lane * 6;
  o[0] = __shfl_sync(kFull, v, 5);          // broadcast lane 5
  o[1] = __shfl_sync(kFull, v, 11, 8);      // 11 mod 8 = 3 within each group of 8
  o[2] = __shfl_up_sync(kFull, v, 3, 8);    // own value for the first 3 of a group
  o[3] = __shfl_down_sync(kFull, v, 3, 8);  // own value for the last 3 of a group
  o[4] = __shfl_xor_sync(kFull, v, 16, 16); // later group: own; earlier group: read it
  o[5] = int(__shfl_sync(kFull, float(v) + 0.5f, -1));  // -1 wraps to lane 31
}

static void test_shfl_variants() {
  std::vector<int> out(32 * 6, -1);
  CHECK(emu::launch(dim3(1), dim3(32), 0, shfl_variants, out.data()) == 0);
  for (int l = 0; l < 32; l++) {
    const int *o = &out[l * 6], g = l / 8 * 8;
    CHECK_MSG(o[0] == 105, "lane %d broadcast %d", l, o[0]);
    CHECK_MSG(o[1] == 100 + g + 3, "lane %d width 8 idx %d", l, o[1]);
    CHECK_MSG(o[2] == 100 + (l - g < 3 ? l : l - 3), "lane %d up %d", l, o[2]);
    CHECK_MSG(o[3] == 100 + (l - g > 4 ? l : l + 3), "lane %d down %d", l, o[3]);
    CHECK_MSG(o[4] == 100 + (l < 16 ? l : l - 16), "lane %d xor %d", l, o[4]);
    CHECK_MSG(o[5] == 131, "lane %d wrap %d", l, o[5]);
  }
}

__global__ void ballot_kernel(unsigned *out) {
  const unsigned lane = threadIdx.x;
  out[lane * 3] = __ballot_sync(kFull, lane % 3 == 0);
  out[lane * 3 + 1] = unsigned(__any_sync(kFull, lane == 17));
  out[lane * 3 + 2] = unsigned(__all_sync(kFull, lane < 31));
}

static void test_ballot() {
  std::vector<unsigned> out(32 * 3, 7);
  CHECK(emu::launch(dim3(1), dim3(32), 0, ballot_kernel, out.data()) == 0);
  unsigned ref = 0;
  for (int l = 0; l < 32; l += 3) ref |= 1u << l;
  CHECK(ref == 0x49249249u);
  for (int l = 0; l < 32; l++) {
    CHECK_MSG(out[l * 3] == ref, "lane %d ballot 0x%08x", l, out[l * 3]);
    CHECK(out[l * 3 + 1] == 1);
    CHECK(out[l * 3 + 2] == 0);
  }
}

// 40 threads: warp 1 has 8 lanes and names only them.
__global__ void partial_warp(float *out) {
  const unsigned t = threadIdx.x, warp_base = t / 32 * 32;
  const unsigned live = blockDim.x - warp_base >= 32 ? kFull : (1u << (blockDim.x - warp_base)) - 1;
  float v = float(t);
  for (unsigned o = 16; o > 0; o >>= 1) {
    const float w = __shfl_down_sync(live, v, o);
    if (t % 32 + o < 32 && (live >> (t % 32 + o) & 1u)) v += w;
  }
  if (t % 32 == 0) out[t / 32] = v;
  out[2 + t] = float(__ballot_sync(live, 1) == live);
}

static void test_partial_warp() {
  std::vector<float> out(2 + 40, -1.f);
  CHECK(emu::launch(dim3(1), dim3(40), 0, partial_warp, out.data()) == 0);
  CHECK(out[0] == 496.f);  // 0 + ... + 31
  CHECK(out[1] == 284.f);  // 32 + ... + 39
  for (int t = 0; t < 40; t++) CHECK(out[2 + t] == 1.f);
}

// --- Shared memory, grids, atomics ---------------------------------------------

// Reads an unwritten element (NaN: the 0xff fill), then reverses via smem.
__global__ void dyn_smem_kernel(float *out, float *probe) {
  LISA_DYNAMIC_SMEM(float, s);
  const unsigned t = threadIdx.x, n = blockDim.x;
  if (t == 0) probe[blockIdx.x] = s[n];  // never written: NaN in every block
  __syncthreads();
  s[t] = float(blockIdx.x * 1000 + t);
  __syncthreads();
  out[blockIdx.x * n + t] = s[n - 1 - t];
}

static void test_dynamic_smem() {
  const unsigned n = 96, blocks = 3;
  std::vector<float> out(n * blocks), probe(blocks, 0.f);
  CHECK(emu::launch(dim3(blocks), dim3(n), (n + 1) * sizeof(float), dyn_smem_kernel, out.data(),
                    probe.data()) == 0);
  for (unsigned b = 0; b < blocks; b++) {
    CHECK(isnan(probe[b]));
    for (unsigned t = 0; t < n; t++) CHECK(out[b * n + t] == float(b * 1000 + n - 1 - t));
  }
}

// Every thread writes its coordinates at its global linear index.
__global__ void coords(unsigned *out) {
  const unsigned bl = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const unsigned tl = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  unsigned *o = out + 6 * (bl * blockDim.x * blockDim.y * blockDim.z + tl);
  o[0] = blockIdx.x, o[1] = blockIdx.y, o[2] = blockIdx.z;
  o[3] = threadIdx.x, o[4] = threadIdx.y, o[5] = threadIdx.z;
}

static void test_grid_coords() {
  const dim3 g(3, 2, 2), b(4, 3, 2);
  const unsigned nb = 12, nt = 24;
  std::vector<unsigned> out(6 * nb * nt, 9999);
  CHECK(emu::launch(g, b, 0, coords, out.data()) == 0);
  int bad = 0;
  for (unsigned bz = 0; bz < 2; bz++)
    for (unsigned by = 0; by < 2; by++)
      for (unsigned bx = 0; bx < 3; bx++)
        for (unsigned tz = 0; tz < 2; tz++)
          for (unsigned ty = 0; ty < 3; ty++)
            for (unsigned tx = 0; tx < 4; tx++) {
              const unsigned *o = &out[6 * (((bz * 2 + by) * 3 + bx) * nt + (tz * 3 + ty) * 4 + tx)];
              bad += !(o[0] == bx && o[1] == by && o[2] == bz && o[3] == tx && o[4] == ty && o[5] == tz);
            }
  CHECK_MSG(bad == 0, "%d threads with wrong coordinates", bad);
}

__global__ void atomics(float *f, int *i, unsigned *u, int *mx) {
  atomicAdd(f, 0.5f);
  atomicAdd(i, 1);
  atomicAdd(u, 2u);
  atomicMax(mx, int(blockIdx.x * blockDim.x + threadIdx.x));
}

static void test_atomics() {
  float f = 0;
  int i = 0, mx = -1;
  unsigned u = 0;
  CHECK(emu::launch(dim3(10), dim3(128), 0, atomics, &f, &i, &u, &mx) == 0);
  CHECK(f == 640.f);
  CHECK(i == 1280);
  CHECK(u == 2560u);
  CHECK(mx == 1279);
  unsigned long long x = 5;
  CHECK(atomicCAS(&x, 5ull, 9ull) == 5ull && x == 9ull);
  CHECK(atomicCAS(&x, 5ull, 1ull) == 9ull && x == 9ull);
}

// --- bf16 -------------------------------------------------------------------------

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// Expectations worked out from the bit patterns: bf16 keeps the top 16
// bits, and rounds up iff the low 16 exceed 0x8000, or equal it with an odd
// top half.
static void test_bf16() {
  struct Case {
    uint32_t in;
    uint16_t out;
  } cases[] = {
      {0x3f800000u, 0x3f80},  // 1.0
      {0x3f808000u, 0x3f80},  // tie, even top half: down
      {0x3f818000u, 0x3f82},  // tie, odd top half: up
      {0x3f808001u, 0x3f81},  // above the tie
      {0x3f807fffu, 0x3f80},  // below the tie
      {0xbf818000u, 0xbf82},  // negative tie, odd: away from zero
      {0x7f7f0000u, 0x7f7f},  // max finite bf16
      {0x7f7f7fffu, 0x7f7f},  // just below its rounding point
      {0x7f7f8000u, 0x7f80},  // tie, odd: overflows to inf
      {0x7f7fffffu, 0x7f80},  // FLT_MAX rounds to inf
      {0xff7fffffu, 0xff80},  // -FLT_MAX to -inf
      {0x7f800000u, 0x7f80},  // inf
      {0xff800000u, 0xff80},  // -inf
      {0x7fc00000u, 0x7fff},  // quiet NaN: canonical
      {0x7f800001u, 0x7fff},  // signalling NaN must not truncate to inf
      {0xffc00001u, 0x7fff},  // negative NaN
      {0x80000000u, 0x8000},  // -0
      {0x00000000u, 0x0000},  // +0
      {0x00000001u, 0x0000},  // smallest subnormal: down to 0
      {0x00008000u, 0x0000},  // subnormal tie, even: down
      {0x00018000u, 0x0002},  // subnormal tie, odd: up
      {0x00008001u, 0x0001},  // above the tie: smallest bf16 subnormal
      {0x807fffffu, 0x8080},  // largest negative subnormal: up to -2^-126
  };
  for (const Case &c : cases) {
    const uint16_t rn = __bfloat16_as_ushort(__float2bfloat16_rn(from_bits(c.in)));
    const uint16_t plain = __bfloat16_as_ushort(__float2bfloat16(from_bits(c.in)));
    CHECK_MSG(rn == c.out && plain == c.out, "0x%08x -> 0x%04x / 0x%04x, expected 0x%04x", c.in, rn,
              plain, c.out);
  }
  CHECK(__float_as_uint(__bfloat162float(__ushort_as_bfloat16(0x0001))) == 0x00010000u);
  CHECK(__float_as_uint(__bfloat162float(__ushort_as_bfloat16(0xc049))) == 0xc0490000u);
  CHECK(isnan(__bfloat162float(__ushort_as_bfloat16(0x7fff))));
  CHECK(sizeof(__nv_bfloat16) == 2 && alignof(__nv_bfloat16) == 2);
  float r[3] = {from_bits(0x3f818000u), from_bits(0x3f808000u), 1e-45f};
  emu::round_bf16(r, 3);
  CHECK(__float_as_uint(r[0]) == 0x3f820000u && __float_as_uint(r[1]) == 0x3f800000u && r[2] == 0);
}

// --- lisa_common.cuh ---------------------------------------------------------------

template <int THREADS> __global__ void common_reductions(const float *in, float *out) {
  const unsigned i = blockIdx.x * THREADS + threadIdx.x;
  const float v = in[i];
  // Each twice in a row (another value the second time): the barrier before
  // a call writes part protects the previous call's readers, which a warp
  // running ahead (the greedy schedule) would otherwise overwrite.
  const float s = lisa::block_sum<THREADS>(v), s2 = lisa::block_sum<THREADS>(1.f - 2.f * v);
  const float m = lisa::block_max<THREADS>(v), m2 = lisa::block_max<THREADS>(-v);
  out[5 * i] = s;
  out[5 * i + 1] = m;
  out[5 * i + 2] = lisa::warp_sum(v);
  out[5 * i + 3] = s2;
  out[5 * i + 4] = m2;
}

template <int THREADS> static void check_common(int blocks) {
  const int n = blocks * THREADS;
  std::vector<float> in(n), out(5 * n);
  for (int i = 0; i < n; i++) in[i] = float((i * 37) % 101) - 50.f;  // small ints: exact
  CHECK(emu::launch(dim3(blocks), dim3(THREADS), 0, common_reductions<THREADS>, in.data(),
                    out.data()) == 0);
  int bad = 0;
  for (int b = 0; b < blocks; b++) {
    float s = 0, m = lisa::kNegBig, s2 = 0, m2 = lisa::kNegBig;
    for (int t = 0; t < THREADS; t++) {
      const float x = in[b * THREADS + t];
      s += x, m = fmaxf(m, x), s2 += 1.f - 2.f * x, m2 = fmaxf(m2, -x);
    }
    for (int t = 0; t < THREADS; t++) {
      const int i = b * THREADS + t, w = i / 32 * 32;
      float ws = 0;
      for (int l = 0; l < 32; l++) ws += in[w + l];
      bad += out[5 * i] != s || out[5 * i + 1] != m || out[5 * i + 2] != ws ||
             out[5 * i + 3] != s2 || out[5 * i + 4] != m2;
    }
  }
  CHECK_MSG(bad == 0, "THREADS=%d: %d wrong", THREADS, bad);
}

static void test_lisa_common() {
  check_common<32>(3);
  check_common<96>(3);
  check_common<256>(2);
}

// --- Guards, errors, limits ---------------------------------------------------------

__global__ void overrun(float *p, int n) { p[threadIdx.x] = 1.f, (void)n; }

static void test_guard_overrun() {
  emu::Guarded<float> ok(64), bad(60), low(8);
  CHECK(emu::launch(dim3(1), dim3(64), 0, overrun, ok.data(), 64) == 0);
  CHECK(ok.check().ok);
  CHECK(emu::launch(dim3(1), dim3(64), 0, overrun, bad.data(), 60) == 0);
  emu::GuardReport r = bad.check("bad");
  CHECK(!r.ok && !r.before && r.offset == 0);
  CHECK(strstr(r.message.c_str(), "after") != nullptr);
  low.data()[-2] = 0.f;  // the 8 bytes before the data
  r = low.check();
  CHECK(!r.ok && r.before && r.offset == 4);
  CHECK(std::isnan(emu::Guarded<float>(4)[3]));  // fresh data reads as NaN
}

// Threads 0-15 loop over a barrier that 16-31 never reach; 16-31 wait in a
// shuffle for 0-15: nothing can complete.
__global__ void deadlock(float *out) {
  float v = float(threadIdx.x);
  if (threadIdx.x < 16)
    for (int i = 0; i < 3; i++) __syncthreads();
  v = __shfl_xor_sync(kFull, v, 1);
  out[threadIdx.x] = v;
}

__global__ void divergent_barrier(float *out) {
  if (threadIdx.x < 16)
    for (int i = 0; i < 2; i++) __syncthreads();
  __syncthreads();
  out[threadIdx.x] = 1.f;
}

__global__ void exited_lane(float *out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(kFull, 1.f, 1);
}

__global__ void disagreeing_masks(float *out) {
  const unsigned l = threadIdx.x;
  const unsigned mask = l == 0 ? 0x3u : l <= 2 ? 0x7u : 1u << l;
  out[l] = __shfl_sync(mask, float(l), int(l));
}

// A 16-byte vector load 4 bytes past an aligned address: a GPU faults.
__global__ void misaligned_vec(const float *in, float *out) {
  float v[4];
  lisa::vec_load<float, 4>(v, in + 1 + 4 * threadIdx.x);
  out[threadIdx.x] = v[0];
}

static bool has(const char *s, const char *part) { return strstr(s, part) != nullptr; }

// ---- the emulator as an adversary: poisoned shared memory, schedules ----------

// Block 0 writes s[0]; every block reads s[0] before writing it.
__global__ void smem_carry(float *out) {
  __shared__ float s[1];
  if (threadIdx.x == 0) out[blockIdx.x] = s[0], s[0] = 5.f;
}

// Thread i writes s[i], then reads its neighbour with no barrier between:
// a race (step +1 reads a thread that runs later under fifo, -1 an earlier one).
__global__ void neighbour_race(float *out, int step) {
  __shared__ float s[64];
  const int i = threadIdx.x;
  s[i] = float(i);
  out[i] = s[(i + step + 64) % 64];
}

// Each lane records, after a shuffle every lane of its warp takes part in,
// when it got there (an atomic ticket).
__global__ void after_shuffle(int *order, int *ticket) {
  int v = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
  order[threadIdx.x] = atomicAdd(ticket, 1) + 0 * v;
}

static int count_nan(const std::vector<float> &v) {
  int n = 0;
  for (float x : v) n += std::isnan(x);
  return n;
}

static void test_adversary() {
  // shared memory starts as NaN in every block: nothing carries over
  std::vector<float> out(3);
  CHECK(emu::launch(dim3(3), dim3(32), 0, smem_carry, out.data()) == 0);
  CHECK_MSG(count_nan(out) == 3, "a block saw another block's shared memory: %g %g %g", out[0],
            out[1], out[2]);

  // the race shows under some schedule in each direction; fifo and reverse
  // each miss one direction, random catches both
  std::vector<float> o(64);
  const char *names[] = {"fifo", "reverse", "random", "greedy"};
  int nan_up[4], nan_down[4];
  for (int k = 0; k < 4; k++) {
    CHECK(emu::set_schedule(names[k], 7));
    CHECK(emu::launch(dim3(1), dim3(64), 0, neighbour_race, o.data(), 1) == 0);
    nan_up[k] = count_nan(o);
    CHECK(emu::launch(dim3(1), dim3(64), 0, neighbour_race, o.data(), -1) == 0);
    nan_down[k] = count_nan(o);
  }
  CHECK_MSG(nan_up[0] == 63 && nan_down[0] == 1, "fifo: %d, %d", nan_up[0], nan_down[0]);
  CHECK_MSG(nan_up[1] == 1 && nan_down[1] == 63, "reverse: %d, %d", nan_up[1], nan_down[1]);
  CHECK_MSG(nan_up[2] > 0 && nan_down[2] > 0, "random: %d, %d", nan_up[2], nan_down[2]);

  // greedy: warp 0 runs past its shuffle before warp 1 does; fifo interleaves
  for (int k : {0, 3}) {
    CHECK(emu::set_schedule(names[k], 1));
    std::vector<int> order(64), ticket(1, 0);
    CHECK(emu::launch(dim3(1), dim3(64), 0, after_shuffle, order.data(), ticket.data()) == 0);
    int last0 = 0, first1 = 64;
    for (int i = 0; i < 32; i++) last0 = std::max(last0, order[i]);
    for (int i = 32; i < 64; i++) first1 = std::min(first1, order[i]);
    if (k == 3) CHECK_MSG(last0 < first1, "greedy: warp 1 ran at %d before warp 0 ended at %d", first1, last0);
    else CHECK_MSG(last0 > first1, "fifo: the warps did not interleave (%d, %d)", last0, first1);
  }
  CHECK(!emu::set_schedule("sideways", 1));
  emu::set_schedule(getenv("LISA_EMU_SCHEDULE") ? getenv("LISA_EMU_SCHEDULE") : "fifo", 1);
}

static void test_errors() {
  std::vector<float> out(64);
  const double t0 = now_s();
  CHECK(emu::launch(dim3(2), dim3(64), 0, deadlock, out.data()) == -1);
  // the first block run deadlocks: (0,0,0) in grid order, either under other schedules
  CHECK_MSG(has(emu::last_error(), "deadlock") &&
                (has(emu::last_error(), "block (0,0,0)") || has(emu::last_error(), "block (1,0,0)")),
            "%s", emu::last_error());
  CHECK(now_s() - t0 < 1.0);
  CHECK(emu::launch(dim3(1), dim3(32), 0, divergent_barrier, out.data()) == -1);
  CHECK_MSG(has(emu::last_error(), "divergent"), "%s", emu::last_error());
  CHECK(emu::launch(dim3(1), dim3(32), 0, exited_lane, out.data()) == -1);
  CHECK_MSG(has(emu::last_error(), "exited") || has(emu::last_error(), "returned"), "%s",
            emu::last_error());
  CHECK(emu::launch(dim3(1), dim3(32), 0, disagreeing_masks, out.data()) == -1);
  CHECK_MSG(has(emu::last_error(), "disagree") && (has(emu::last_error(), "thread (1,0,0)") ||
                                                    has(emu::last_error(), "lane 1 waits")),
            "%s", emu::last_error());  // lane 1 reports it, or is named by lane 0 (reverse)
  alignas(16) static float vec_in[4 * 32 + 4];
  CHECK(emu::launch(dim3(1), dim3(32), 0, misaligned_vec, vec_in, out.data()) == -1);
  CHECK_MSG(has(emu::last_error(), "misaligned"), "%s", emu::last_error());
  // A launch after a failed one works.
  CHECK(emu::launch(dim3(1), dim3(64), 0, overrun, out.data(), 64) == 0);
  CHECK(emu::last_error()[0] == 0);
}

static void test_limits() {
  std::vector<float> out(1025);
  CHECK(emu::launch(dim3(1), dim3(1025), 0, overrun, out.data(), 0) == -1);
  CHECK(has(emu::last_error(), "1025"));
  CHECK(emu::launch(dim3(1), dim3(32, 32, 2), 0, overrun, out.data(), 0) == -1);
  CHECK(emu::launch(dim3(0), dim3(32), 0, overrun, out.data(), 0) == -1);
  CHECK(emu::launch(dim3(1), dim3(32), 227 * 1024 + 1, overrun, out.data(), 0) == -1);
  CHECK(emu::launch(dim3(1), dim3(32), 227 * 1024, overrun, out.data(), 0) == 0);
}

static void test_1024_threads() {
  std::vector<float> in(1024), out(5 * 1024);
  for (int i = 0; i < 1024; i++) in[i] = float(i % 13);
  CHECK_MSG(emu::launch(dim3(1), dim3(1024), 0, common_reductions<1024>, in.data(), out.data()) == 0,
            "%s", emu::last_error());
  float s = 0;
  for (int i = 0; i < 1024; i++) s += in[i];
  CHECK(out[0] == s && out[5 * 1023] == s && out[1] == 12.f);
}

// --- The raw, C-callable launch -----------------------------------------------------

static void raw_entry(void **args) {  // as a generated trampoline
  float *out = *static_cast<float **>(args[0]);
  const int scale = *static_cast<int *>(args[1]);
  out[blockIdx.x * blockDim.x + threadIdx.x] = float(scale) * lisa::block_sum<64>(1.f);
}

static void test_raw_launch() {
  std::vector<float> out(128);
  float *p = out.data();
  int scale = 3;
  void *args[] = {&p, &scale};
  CHECK(emu_launch_raw(raw_entry, args, dim3(2), dim3(64), 0) == 0);
  CHECK(out[0] == 192.f && out[127] == 192.f);
  CHECK(emu_launch_raw(raw_entry, args, dim3(2), dim3(2000), 0) == -1);
  CHECK(has(emu_last_error(), "2000"));
}

// --- Speed --------------------------------------------------------------------------

__global__ void many_syncs(int iters, float *out) {
  float v = 0;
  for (int i = 0; i < iters; i++) {
    v += 1.f;
    __syncthreads();
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

__global__ void row_sum(const float *in, float *out, int cols) {
  const float *row = in + blockIdx.x * cols;
  float v = 0;
  for (int c = threadIdx.x; c < cols; c += 128) v += row[c];
  v = lisa::block_sum<128>(v);
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}

static void test_speed() {
  std::vector<float> out(64 * 128);
  const int blocks = 64, iters = 200;
  double t0 = now_s();
  CHECK(emu::launch(dim3(blocks), dim3(128), 0, many_syncs, iters, out.data()) == 0);
  double dt = now_s() - t0;
  const double switches = 2.0 * blocks * 128 * (iters + 1);
  CHECK(out[0] == float(iters));
  printf("speed: %.0f context switches in %.3f s: %.1f M/s\n", switches, dt, switches / dt / 1e6);

  const int rows = 300, cols = 768;
  std::vector<float> in(rows * cols), sums(rows);
  emu::fill_uniform(in.data(), in.size(), -1.f, 1.f, 1);
  t0 = now_s();
  CHECK(emu::launch(dim3(rows), dim3(128), 0, row_sum, in.data(), sums.data(), cols) == 0);
  dt = now_s() - t0;
  printf("speed: block_sum<128> row sums, %d x %d: %.2f ms\n", rows, cols, dt * 1e3);
  double worst = 0;
  for (int r = 0; r < rows; r++) {
    double ref = 0;
    for (int c = 0; c < cols; c++) ref += in[r * cols + c];
    worst = fmax(worst, fabs(ref - sums[r]));
  }
  CHECK(worst < 1e-3);
  CHECK(dt < 1.0);
}

static void test_helpers() {
  float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 6}, z[4] = {0, 0, 0, 0};
  CHECK_CLOSE(emu::nmse(b, a, 4), 4.0 / 30.0, 1e-12, 0);
  CHECK(emu::nmse(z, z, 4) == 0);
  CHECK(emu::nmse(a, z, 4) == 30.0);
  CHECK(!emu::has_nan_or_inf(a, 4));
  a[2] = INFINITY;
  CHECK(emu::has_nan_or_inf(a, 4));
  float r1[8], r2[8];
  emu::fill_uniform(r1, 8, -2.f, 3.f, 42);
  emu::fill_uniform(r2, 8, -2.f, 3.f, 42);
  CHECK(memcmp(r1, r2, sizeof r1) == 0);
  for (float v : r1) CHECK(v >= -2.f && v < 3.f);
  __nv_bfloat16 h[8];
  emu::to_bf16(r1, h, 8);
  emu::to_float(h, r2, 8);
  emu::round_bf16(r1, 8);
  CHECK(memcmp(r1, r2, sizeof r1) == 0);
}

int main() {
  RUN(test_block_reduction);
  RUN(test_warp_reduction);
  RUN(test_shfl_variants);
  RUN(test_ballot);
  RUN(test_partial_warp);
  RUN(test_dynamic_smem);
  RUN(test_grid_coords);
  RUN(test_atomics);
  RUN(test_bf16);
  RUN(test_lisa_common);
  RUN(test_guard_overrun);
  RUN(test_errors);
  RUN(test_adversary);
  RUN(test_limits);
  RUN(test_1024_threads);
  RUN(test_raw_launch);
  RUN(test_helpers);
  RUN(test_speed);
  return check_exit();
}
