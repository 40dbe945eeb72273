// SPDX-License-Identifier: MIT
// ckpt-tool run: start a program (or resume it from its store) and checkpoint it periodically
// and on SIGUSR1 (the supervisor: supervise.cpp).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "error.hpp"
#include "key.hpp"
#include "wp.hpp"

namespace ckpt_tool {
namespace {

// --resume: the process of the store's image, restored; 0 when there is none to restore (no
// store, or no process image in it yet: PROG starts instead).
pid_t resume(const std::string& store) {
  pid_t pid = 0;
  try {
    wp::restore(store, &pid);
  } catch (const Error& e) {
    if (e.code != kUnavailable) throw;
    return 0;
  }
  std::fprintf(stderr, "ckpt-tool run: resumed as pid %d\n", pid);
  return pid;
}

// PROG, started as a child; an exec failure is reported as such (kUnavailable).
pid_t start(std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) throw Error{kFailed, std::string("pipe: ") + strerror(errno)};
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw Error{kFailed, std::string("fork: ") + strerror(errno)};
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
    throw Error{kUnavailable, std::string(args[0]) + ": " + strerror(e)};
  }
  close(pfd[0]);
  std::fprintf(stderr, "ckpt-tool run: started pid %d\n", pid);
  return pid;
}

}  // namespace

void add_run(CLI::App& app, Runner& run) {
  struct Opts {
    std::string store;
    unsigned interval = 1000;
    bool resume = false;
    StoreMode mode;
    std::string stats;
    std::vector<std::string> argv;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "run", "Start PROG (or, with --resume, restore it from the store) and checkpoint it "
             "every --interval and on SIGUSR1; exit with its status");
  add_key_file_option(sub);
  sub->add_option("--store", o->store,
                  "store (file, DAX file or device-DAX; created if missing); each checkpoint "
                  "is one atomic commit")
      ->required();
  sub->add_option("--interval", o->interval,
                  "milliseconds between checkpoints (default 1000; 0: only on SIGUSR1)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--stats", o->stats,
                  "append one JSON line per checkpoint to this file (epoch, pages, mappings, "
                  "pause_s, total_s, bytes)");
  add_store_mode_flags(sub, &o->mode,
                       "start PROG although the store holds a process image (its first "
                       "checkpoint overwrites it; --resume restores it instead)");
  sub->add_flag("--resume", o->resume,
                "restore from the store when it holds a process image, else start PROG");
  sub->add_option("prog", o->argv, "program and its arguments (after --)")->required();
  sub->callback([&run, o] {
    run = [o]() -> int {
      // Before the child exists: a SIGUSR1 sent as soon as its pid is known must not kill us.
      wp::catch_checkpoint_requests();
      pid_t pid = o->resume ? resume(o->store) : 0;
      if (!pid) {
        // Not over an image the store holds (without --resume, or one --resume could not
        // restore): the first checkpoint would overwrite it.
        std::string held;
        if (!o->mode.replace && wp::holds_image(o->store, &held))
          throw Error{kRefused, "--store " + o->store + " holds the image of " + held +
                                    "; --resume restores it, --replace overwrites it"};
        pid = start(o->argv);
      }
      return wp::supervise(o->store, pid, o->interval, o->stats, o->mode.create, o->mode.force);
    };
  });
}

}  // namespace ckpt_tool
