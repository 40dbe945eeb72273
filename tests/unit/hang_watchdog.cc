// SPDX-License-Identifier: MIT
// A test that hangs is shown, not only timed out: when one GoogleTest test has run longer than
// CKPT_TEST_WATCHDOG seconds (set per executable by tests/unit's CMake, a little under CTest's
// TIMEOUT), every thread of the process is printed to stderr with its state, wait channel,
// system call and kernel stack (/proc/self/task; the stack needs root, as in CI), then gdb's
// backtrace of every thread where gdb is installed, and the process aborts. CTest's own timeout
// kills the test with SIGKILL and prints nothing of where it was.
//
// Linked into the test executables as an object: a static initialiser appends a GoogleTest
// listener. The watchdog thread starts with the first test, after main() has begun, so
// programs that fork before any test runs are not affected; a forked child has no watchdog
// (threads do not survive fork).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void show_threads() {
  DIR* d = opendir("/proc/self/task");
  if (!d) return;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string t = std::string("/proc/self/task/") + e->d_name;
    std::string comm = slurp(t + "/comm"), stat = slurp(t + "/stat");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    const size_t rp = stat.rfind(')');
    const char state = rp != std::string::npos && rp + 2 < stat.size() ? stat[rp + 2] : '?';
    fprintf(stderr, "watchdog: thread %s (%s) state %c wchan %s syscall %s", e->d_name,
            comm.c_str(), state, slurp(t + "/wchan").c_str(), slurp(t + "/syscall").c_str());
    std::string stack = slurp(t + "/stack");
    if (stack.empty()) stack = "  (kernel stack not readable: needs root)\n";
    fprintf(stderr, "%s", stack.c_str());
  }
  closedir(d);
}

void gdb_backtrace() {
  const pid_t self = getpid();
  prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);  // Yama: let a child trace us
  const pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    dup2(STDERR_FILENO, STDOUT_FILENO);
    const std::string p = std::to_string(self);
    execlp("gdb", "gdb", "-batch", "-nx", "-p", p.c_str(), "-ex", "thread apply all bt",
           static_cast<char*>(nullptr));
    _exit(127);  // no gdb: the kernel stacks above are what there is
  }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
}

class Watchdog : public testing::EmptyTestEventListener {
 public:
  void OnTestStart(const testing::TestInfo& info) override {
    std::lock_guard<std::mutex> g(mu_);
    name_ = std::string(info.test_suite_name()) + "." + info.name();
    started_ = std::chrono::steady_clock::now();
    running_ = true;
    if (!thread_started_) {
      const char* env = getenv("CKPT_TEST_WATCHDOG");
      limit_ = env ? atoi(env) : 0;
      if (limit_ > 0) {
        std::thread([this] { watch(); }).detach();
      }
      thread_started_ = true;
    }
  }
  void OnTestEnd(const testing::TestInfo&) override {
    std::lock_guard<std::mutex> g(mu_);
    running_ = false;
  }

 private:
  void watch() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::string name;
      {
        std::lock_guard<std::mutex> g(mu_);
        if (!running_ || std::chrono::steady_clock::now() - started_ < std::chrono::seconds(limit_))
          continue;
        name = name_;
      }
      fprintf(stderr, "watchdog: %s has run for more than %d s (CKPT_TEST_WATCHDOG); its threads:\n",
              name.c_str(), limit_);
      show_threads();
      gdb_backtrace();
      fprintf(stderr, "watchdog: aborting %s\n", name.c_str());
      signal(SIGABRT, SIG_DFL);
      abort();
    }
  }

  std::mutex mu_;  // guards everything below
  std::string name_;
  std::chrono::steady_clock::time_point started_;
  bool running_ = false, thread_started_ = false;
  int limit_ = 0;
};

const bool registered = [] {
  testing::UnitTest::GetInstance()->listeners().Append(new Watchdog);
  return true;
}();

}  // namespace
