// ckpt-tool run: start a program (or resume it from its image) and checkpoint it periodically.
//
// Every interval the program is stopped, dumped into the image (written beside it and renamed
// over it, so a crash at any instant leaves the previous or the new checkpoint) and let go.
// The first checkpoint is full; later ones are incremental through ckpt.ko's tracking
// (wp::checkpoint): the pause costs the pages written since, not the whole memory.
#include <fcntl.h>
#include <sys/wait.h>
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
#include "wp.hpp"

namespace ckpt_tool {
namespace {

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

}  // namespace

int wp::supervise(const std::string& store, pid_t pid, unsigned interval_ms) {
  uint64_t n = 0;
  double max_pause = 0, sum_pause = 0;
  auto tracker = make_tracker();
  for (;;) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(interval_ms);
    while (std::chrono::steady_clock::now() < until) {
      int st = poll_child(pid);
      if (st > 0) {
        if (n)
          std::fprintf(stderr, "ckpt-tool: %" PRIu64 " checkpoints, pause mean %.1f ms, max %.1f ms\n",
                       n, 1e3 * sum_pause / double(n), 1e3 * max_pause);
        return finish(st, pid);
      }
      if (st < 0) return kFailed;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(interval_ms, 20u)));
    }
    DumpStats ds;
    std::string why;
    int rc = checkpoint(store, pid, tracker.get(), &ds, &why);
    if (rc != kOk) {
      int st = poll_child(pid);
      if (st > 0) return finish(st, pid);
      if (st < 0) {
        std::fprintf(stderr, "ckpt-tool: pid %d exited during a checkpoint\n", pid);
        return kFailed;
      }
      std::fprintf(stderr, "ckpt-tool: checkpoint of pid %d failed: %s\n", pid, why.c_str());
      return rc;
    }
    n++;
    sum_pause += ds.stopped_s;
    max_pause = std::max(max_pause, ds.stopped_s);
    std::fprintf(stderr, "ckpt-tool: checkpoint %" PRIu64 " of pid %d: %" PRIu64
                 " pages read, %" PRIu64 " kept from the previous image, paused %.1f ms\n",
                 n, pid, ds.pages, ds.reused, 1e3 * ds.stopped_s);
  }
}

void add_run(CLI::App& app, Runner& run) {
  struct Opts {
    std::string store;
    unsigned interval = 1000;
    bool resume = false;
    std::vector<std::string> argv;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "run", "Start PROG (or, with --resume, restore it from the image) and checkpoint it "
             "every --interval; exit with its status");
  sub->add_option("--store", o->store, "image file, replaced atomically at each checkpoint")
      ->required();
  sub->add_option("--interval", o->interval, "milliseconds between checkpoints (default 1000)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--resume", o->resume, "restore from the image when it exists, else start PROG");
  sub->add_option("prog", o->argv, "program and its arguments (after --)")->required();
  sub->callback([&run, o] {
    run = [o]() -> int {
      pid_t pid = 0;
      std::string why;
      if (o->resume && access(o->store.c_str(), F_OK) == 0) {
        int rc = wp::restore(o->store, true, &pid, &why);
        if (rc != kOk) {
          std::fprintf(stderr, "ckpt-tool run: %s\n", why.c_str());
          return rc;
        }
        std::fprintf(stderr, "ckpt-tool run: resumed as pid %d\n", pid);
      } else {
        std::vector<char*> args;
        for (auto& a : o->argv) args.push_back(a.data());
        args.push_back(nullptr);
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0) return kFailed;
        std::fflush(nullptr);
        pid = fork();
        if (pid < 0) {
          std::fprintf(stderr, "ckpt-tool run: fork: %s\n", strerror(errno));
          return kFailed;
        }
        if (pid == 0) {
          close(pfd[0]);
          execvp(args[0], args.data());
          int e = errno;
          (void)!write(pfd[1], &e, sizeof(e));
          _exit(127);
        }
        close(pfd[1]);
        int e = 0;
        if (read(pfd[0], &e, sizeof(e)) == sizeof(e)) {
          close(pfd[0]);
          waitpid(pid, nullptr, 0);
          std::fprintf(stderr, "ckpt-tool run: %s: %s\n", args[0], strerror(e));
          return kUnavailable;
        }
        close(pfd[0]);
        std::fprintf(stderr, "ckpt-tool run: started pid %d\n", pid);
      }
      return wp::supervise(o->store, pid, o->interval);
    };
  });
}

}  // namespace ckpt_tool
