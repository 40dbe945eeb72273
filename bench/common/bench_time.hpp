// SPDX-License-Identifier: MIT
// The clocks, the median and the memory-bound loop the benchmarks here share (bench/host,
// bench/ckpt, bench/track).
#pragma once

#include <time.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bench {

// Wall clock, monotonic, in ns.
inline double now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

// The calling process's CPU time in ns: all its threads (a tracker's handler thread, io_uring's
// workers) included, none of the time a shared machine gave to others.
inline double cpu_ns() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

// The upper median (v[n/2] of the sorted values); 0 for none.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// One step of the memory-bound loop of the slowdown benchmarks (bench/ckpt's slowdown, bench/host's):
// read 16 pages of the working set from page *rpos on (into *sum), then write one byte into the
// next page of the write window [wbase, wbase + win) (page numbers modulo the working set's
// pages); *steps counts the steps and picks the byte.
struct MemLoop {
  unsigned char* ws;
  size_t pages, win;
  size_t rpos = 0, wbase = 0, wcur = 0;
  uint64_t sum = 0, steps = 0;
  static constexpr size_t kReadPages = 16, kPage = 4096;
  void step() {
    const uint64_t* q = reinterpret_cast<const uint64_t*>(ws + rpos * kPage);
    for (size_t i = 0; i < kReadPages * kPage / 8; i += 8) sum += q[i] ^ q[i + 1] ^ q[i + 3] ^ q[i + 5];
    rpos = (rpos + kReadPages) % pages;
    ws[((wbase + wcur++ % win) % pages) * kPage + (steps & 4095)] += 1;
    steps++;
  }
  void move_window() {  // the next 1/100 of the pages (checkpointed, or its baseline's instant)
    wbase = (wbase + win) % pages;
    wcur = 0;
  }
};

}  // namespace bench
