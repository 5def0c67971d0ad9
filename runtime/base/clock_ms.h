/* clock_ms.h: the monotonic clock in milliseconds, for step times,
 * profiles and build times. */
#ifndef LT_CLOCK_MS_H
#define LT_CLOCK_MS_H

#include <time.h>

static inline double lt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#endif
