// SPDX-License-Identifier: MIT
// ckpt-tool's supervisor (wp::supervise), for run and restore --interval: checkpoint a child
// periodically and on SIGUSR1 until it exits.
//
// Each checkpoint stops the program, puts what changed into the store and lets it go; the
// store's atomic commit makes a crash at any instant leave the previous or the new checkpoint.
// The first checkpoint is full; later ones are incremental through ckpt.ko's tracking
// (wp::checkpoint): the pause and the writes cost the pages written since, not the memory.
// The supervisor reports on stderr as "ckpt-tool: ..." (its progress and its child's end) and
// returns the child's exit status; a failed checkpoint ends it with the checkpoint's status.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cmd.hpp"
#include "error.hpp"
#include "proc.hpp"
#include "wp.hpp"

namespace ckpt_tool {
namespace {

// Set by SIGUSR1: checkpoint now. The supervisor polls it between its short sleeps.
volatile sig_atomic_t g_requested = 0;

void on_request(int) { g_requested = 1; }

// 0: still running; else the exit status (128+N for signal N); -1 on ECHILD (already reaped).
int poll_child(pid_t pid) {
  int ws;
  pid_t r = waitpid(pid, &ws, WNOHANG);
  if (r == 0) return 0;
  if (r < 0 && errno == EINTR) return 0;
  if (r < 0 && !wp::reaped_status(pid, &ws)) return -1;
  if (WIFEXITED(ws)) return WEXITSTATUS(ws) ? WEXITSTATUS(ws) : 256;  // 256: exit 0
  if (WIFSIGNALED(ws)) return 128 + WTERMSIG(ws);
  return 0;
}

int finish(int st, pid_t pid) {
  if (st == 256) st = 0;
  if (st > 128)
    std::fprintf(stderr, "ckpt-tool: pid %d killed by signal %d; resume it with: ckpt-tool "
                 "restore --store ... --interval ...\n", pid, st - 128);
  else
    std::fprintf(stderr, "ckpt-tool: pid %d exited with status %d\n", pid, st);
  return st;
}

// The supervisor's own code stays in memory while it supervises: a checkpoint's pause must not
// include reading the tool's own text from its file system. Without this, the first
// incremental checkpoint faulted in the code of the incremental path inside the pause (in the
// VM, whose root is 9p without a page cache: 0.3-1 ms a page, a few ms per first incremental),
// and under memory pressure any checkpoint could. mlockall(MCL_CURRENT) locks what is mapped
// now: the tool's text and data, its libraries, heap and stack — not the store's mapping or
// the buffers, which come later (MCL_FUTURE would lock a DAX store's whole mapping). Without
// the right to lock (RLIMIT_MEMLOCK), the file-backed pages are at least read in now.
void keep_resident() {
  if (mlockall(MCL_CURRENT) == 0) return;
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
  std::vector<proc::MapsLine> maps;
  if (proc::read_maps(0, &maps)) return;
  for (const auto& m : maps)
    if (!m.perms.empty() && m.perms[0] == 'r' && !m.path.empty() && m.path[0] == '/')
      madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_POPULATE_READ);  // best effort
}

}  // namespace

void wp::catch_checkpoint_requests() {
  struct sigaction sa{};
  sa.sa_handler = on_request;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
}

int wp::supervise(const std::string& store, pid_t pid, unsigned interval_ms,
                  const std::string& stats_path, bool create, bool force, bool replace) {
  catch_checkpoint_requests();
  keep_resident();
  FILE* stats = nullptr;
  if (!stats_path.empty()) {
    stats = std::fopen(stats_path.c_str(), "ae");
    if (!stats) {
      std::fprintf(stderr, "ckpt-tool: --stats %s: %s\n", stats_path.c_str(), strerror(errno));
      return kUsage;
    }
  }
  std::unique_ptr<FILE, int (*)(FILE*)> stats_guard(stats, [](FILE* f) { return f ? std::fclose(f) : 0; });
  uint64_t n = 0;
  double max_pause = 0, sum_pause = 0;
  auto series = make_series();
  set_store_mode(series.get(), create, force, replace);
  for (;;) {
    // Wait for the interval (forever with --interval 0) or a SIGUSR1, watching the child.
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(interval_ms);
    while (!g_requested && (!interval_ms || std::chrono::steady_clock::now() < until)) {
      int st = poll_child(pid);
      if (st > 0) {
        if (n)
          std::fprintf(stderr, "ckpt-tool: %" PRIu64 " checkpoints, pause mean %.1f ms, max %.1f ms\n",
                       n, 1e3 * sum_pause / double(n), 1e3 * max_pause);
        return finish(st, pid);
      }
      if (st < 0) return kFailed;
      // One nanosleep, not a loop over EINTR: a SIGUSR1 ends the nap at once.
      unsigned nap = interval_ms ? std::min(interval_ms, 20u) : 20u;
      timespec ts{0, long(nap) * 1000000L};
      nanosleep(&ts, nullptr);
    }
    g_requested = 0;
    DumpStats ds;
    Error failed{kOk, {}};
    try {
      checkpoint(store, pid, series.get(), &ds);
    } catch (const Error& e) {
      failed = e;  // handled below: the child may just have died
    }
    if (failed.code != kOk) {
      // A checkpoint fails when the program is killed during it, and a SIGKILLed task takes a
      // moment to become a zombie: give it that moment before calling it a real failure.
      int st = poll_child(pid);
      for (int i = 0; i < 100 && st == 0 && kill(pid, 0) == 0; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        st = poll_child(pid);
      }
      if (st > 0) return finish(st, pid);
      if (st < 0) {
        std::fprintf(stderr, "ckpt-tool: pid %d exited during a checkpoint\n", pid);
        return kFailed;
      }
      std::fprintf(stderr, "ckpt-tool: checkpoint of pid %d failed: %s\n", pid, failed.msg.c_str());
      return failed.code;
    }
    n++;
    sum_pause += ds.stopped_s;
    max_pause = std::max(max_pause, ds.stopped_s);
    std::fprintf(stderr, "ckpt-tool: checkpoint %" PRIu64 " of pid %d: %" PRIu64
                 " pages written, %" PRIu64 " kept, paused %.1f ms, %.1f ms in all\n",
                 n, pid, ds.pages, ds.reused, 1e3 * ds.stopped_s, 1e3 * ds.total_s);
    if (stats) {
      std::fprintf(stats,
                   "{\"checkpoint\": %" PRIu64 ", \"epoch\": %" PRIu64 ", \"pages\": %" PRIu64
                   ", \"pages_kept\": %" PRIu64 ", \"mappings\": %" PRIu64
                   ", \"threads\": %" PRIu64 ", \"pause_s\": %.6f, \"total_s\": %.6f"
                   ", \"bytes\": %" PRIu64 "}\n",
                   n, ds.epoch, ds.pages, ds.reused, ds.vmas, ds.threads, ds.stopped_s, ds.total_s,
                   ds.bytes);
      std::fflush(stats);
    }
  }
}

}  // namespace ckpt_tool
