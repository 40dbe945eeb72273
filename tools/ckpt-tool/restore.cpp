// SPDX-License-Identifier: MIT
// ckpt-tool restore: recreate a process from a whole-process image in a store, through ckpt.ko.
//
// The tool opens one Reader of the store (its newest intact epoch, picked once) and reads that
// epoch's metadata through it (preflight.cpp), forks a child that turns itself into the image
// reading the pages through the same Reader (become*.cpp) and, meanwhile, checks what can be
// checked before anything starts (files unchanged, same kernel vdso, CPU features); the child
// goes past its own process only on that word. The outcome comes back on a pipe.
// The restored process runs with the image's credentials, which must be the caller's unless
// --as-image-user (check_creds, become_image_user), with its PID again when that is free and
// the caller may choose PIDs (fork_as), else a new one.
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "key.hpp"
#include "proc.hpp"
#include "restore.hpp"
#include "wp.hpp"

namespace ckpt_tool {
namespace restore {
namespace {

// With CKPT_TOOL_PHASES set: when each step of the restore happened (stderr, for profiling).
double g_t0 = 0;
bool g_phases = false;
double now_s() {
  // The raw syscall: the child moves its vdso, where glibc's clock_gettime would jump.
  timespec ts;
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace

void phase(const char* what) {
  if (g_phases)
    std::fprintf(stderr, "ckpt-tool phases: restore %s at %.4f s\n", what, now_s() - g_t0);
}

Clone3::Clone3(uint64_t flags, uint64_t id, bool ask) {
  a.flags = flags;
  a.exit_signal = (flags & CLONE_THREAD) ? 0 : SIGCHLD;
  if (ask && id > 1 && id <= INT32_MAX) {
    want = pid_t(id);
    a.set_tid = uint64_t(uintptr_t(&want));
    a.set_tid_size = 1;
  }
}


namespace {

using namespace image;

// 0 in the child, the child's PID, or -errno. A fork in all but glibc's own bookkeeping, none of
// which the restorer needs in the child: no atfork handlers are registered, the process has
// one thread, and glibc's cached TID of the child (the parent's) is read by nothing the child
// calls (raise() asks the kernel) before the image replaces it.
long clone3_fork(Clone3& c) {
  long r = syscall(SYS_clone3, &c.a, sizeof(c.a));
  return r < 0 ? -errno : r;
}
// fork(), the child taking the image's PID if it is free and the caller may choose it
// (Clone3). The dumped process's PID may still be held a moment after it was killed, until its
// parent reaps it: an EEXIST is tried again for up to 10 ms before the child takes a new PID.
pid_t fork_as(uint64_t want) {
  long pid = -EEXIST;
  for (int tries = 0; pid == -EEXIST && tries <= 10; tries++) {
    Clone3 c(0, want, true);
    if (!c.want) break;
    if (tries) usleep(1000);
    pid = clone3_fork(c);
  }
  if (pid >= 0) return pid_t(pid);  // 0 in the child
  // set_tid refused: EPERM (the caller may not choose PIDs), EEXIST (in use), or an old
  // kernel's ENOSYS / E2BIG / EINVAL. A new PID, from glibc's own fork.
  return fork();
}

// With CKPT_TOOL_PHASES: how long the start of ckpt-tool itself took (exec, loader, main).
void print_start() {
  std::string st;
  timespec bt;
  syscall(SYS_clock_gettime, CLOCK_BOOTTIME, &bt);
  if (proc::read_file("/proc/self/stat", &st) == 0 && st.rfind(')') != std::string::npos) {
    unsigned long long start = 0;
    const char* p = st.c_str() + st.rfind(')') + 2;
    for (int field = 3; *p && field < 22; field++) p = strchr(p, ' ') ? strchr(p, ' ') + 1 : "";
    start = strtoull(p, nullptr, 10);
    std::fprintf(stderr, "ckpt-tool phases: restore entered %.3f s after exec (boot time %.3f)\n",
                 double(bt.tv_sec) + 1e-9 * double(bt.tv_nsec) - double(start) / double(sysconf(_SC_CLK_TCK)),
                 double(bt.tv_sec) + 1e-9 * double(bt.tv_nsec));
  }
}

// The child's word on the status pipe `fd` (closed here): returns when it restored, else
// throws why it failed.
void outcome(int fd, pid_t pid) {
  int64_t st = 0;
  size_t got = 0;
  while (got < sizeof(st)) {
    ssize_t n = read(fd, reinterpret_cast<char*>(&st) + got, sizeof(st) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  std::string msg;
  if (got == sizeof(st) && st == kStatusFailed) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) msg.append(buf, size_t(n));
  }
  close(fd);
  if (got != sizeof(st) || st != 0) {
    int ws = 0;
    waitpid(pid, &ws, 0);
    if (got == sizeof(st) && st == kStatusFailed) throw Error{kFailed, msg};
    if (got == sizeof(st))
      throw Error{kFailed, std::string("the kernel failed the restore past the point of no "
                                       "return: ") + strerror(int(-st))};
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 99)
      throw Error{kFailed, "ckpt.ko refused RESTORE_COMMIT"};
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 98)
      throw Error{kFailed, "ckpt.ko refused RESTORE_THREAD"};
    throw Error{kFailed, "the restorer died before the restore (wait status " +
                             std::to_string(ws) + ")"};
  }
}

// Fork the child that becomes the image and wait for its outcome; returns its pid.
// The child starts at once and builds the layout and reads the pages while this process checks
// what can be refused before anything starts (check_image: the mapped files, the vdso, the
// CPU); it goes on to PREPARE only on this process's word, so a refusal here wins over
// anything the child met, and the child dies having touched nothing but itself.
pid_t start_child(const Image& img, Loaded& ld, bool as_image_user) {
  int pfd[2], go[2];
  // go: a socket, so that telling a child that died already is an error, not SIGPIPE.
  if (pipe(pfd) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) < 0)
    throw Error{kFailed, std::string("pipe: ") + strerror(errno)};
  fflush(nullptr);
  pid_t pid = fork_as(img.pid);
  if (pid < 0) throw Error{kFailed, std::string("fork: ") + strerror(errno)};
  if (pid == 0) {
    close(pfd[0]);
    close(go[1]);
    child(img, ld, pfd[1], go[0], as_image_user);
  }
  close(pfd[1]);
  close(go[0]);
  try {
    check_image(img);
  } catch (...) {
    close(go[1]);
    close(pfd[0]);
    kill(pid, SIGKILL);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
  phase("checked");
  char one = 1;
  (void)!send(go[1], &one, 1, MSG_NOSIGNAL);  // if the child is gone, its status says why
  close(go[1]);
  outcome(pfd[0], pid);
  return pid;
}

// The whole restore; *out_pid gets the restored process's PID. quiet: no summary line.
void do_restore(const std::string& store, pid_t* out_pid, bool quiet, bool as_image_user) {
  auto t0 = std::chrono::steady_clock::now();
  g_phases = getenv("CKPT_TOOL_PHASES") != nullptr;
  g_t0 = now_s();
  if (g_phases) print_start();
  Image img;
  Loaded ld;
  load(store, &img, &ld);
  check_creds(img, as_image_user);
  *out_pid = start_child(img, ld, as_image_user);
  ld.rd.reset();
  ld.st.reset();  // the store's lock goes now, not when the process exits
  phase("store closed");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  phase("done");
  if (g_phases) {
    timespec bt;
    syscall(SYS_clock_gettime, CLOCK_BOOTTIME, &bt);
    std::fprintf(stderr, "ckpt-tool phases: restore done at boot time %.3f\n",
                 double(bt.tv_sec) + 1e-9 * double(bt.tv_nsec));
  }
  if (!quiet)
    std::fprintf(stderr, "ckpt-tool restore: pid %" PRIu64 " (epoch %" PRIu64
                 ") restored as pid %d in %.3f s\n", img.pid, ld.epoch, *out_pid, secs);
}

int wait_child(pid_t pid) {
  int ws;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR) throw Error{kFailed, std::string("waitpid: ") + strerror(errno)};
  if (WIFEXITED(ws)) return WEXITSTATUS(ws);
  return 128 + WTERMSIG(ws);
}

}  // namespace

}  // namespace restore

void wp::restore(const std::string& store, pid_t* pid) {
  restore::do_restore(store, pid, true, false);
}

void add_restore(CLI::App& app, Runner& run) {
  struct Opts {
    std::string store;
    bool wait = false;
    bool as_image_user = false;
    unsigned interval = 0;
    std::string stats;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "restore", "Recreate a process from the newest intact checkpoint in a store (its PID if "
                 "free and you may choose PIDs, else a new one; an image made with other "
                 "credentials than yours is refused unless --as-image-user)");
  add_key_file_option(sub);
  sub->add_option("--store", o->store, "store written by dump or run")->required();
  sub->add_flag("--wait", o->wait,
                "wait for the restored process and exit with its status (128+N if killed by "
                "signal N)");
  sub->add_option("--interval", o->interval,
                  "keep checkpointing the restored process into the same store every MS "
                  "milliseconds (and on SIGUSR1), as `run` does (implies --wait)");
  sub->add_option("--stats", o->stats, "with --interval: as run --stats");
  sub->add_flag("--as-image-user", o->as_image_user,
                "restore an image made by another user (or with other groups or capabilities "
                "than yours) with the image's credentials: needs the right to give them (root); "
                "never more than the image had");
  sub->callback([&run, o] {
    run = [o] {
      pid_t pid = 0;
      if (o->interval) wp::catch_checkpoint_requests();
      restore::do_restore(o->store, &pid, false, o->as_image_user);
      // The restored process keeps its PID, but its /proc/PID/exe names ckpt-tool (it cannot
      // be set back), so dump's check that the store holds this process's image would refuse
      // its first checkpoint: it is the process made from this very store.
      if (o->interval)
        return wp::supervise(o->store, pid, o->interval, o->stats, false, false, true);
      return o->wait ? restore::wait_child(pid) : int(kOk);
    };
  });
}

}  // namespace ckpt_tool
