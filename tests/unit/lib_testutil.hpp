// SPDX-License-Identifier: MIT
// Helpers shared by the libckpt unit tests (lib_*_test.cc).
//
// Environment (the VM suite tests/e2e/vm-lib.sh sets these):
//   CKPT_TEST_TRACKERS  comma-separated trackers to run parametrized tests with
//                       (default: full,mprotect,uffd, plus uffd-async where the kernel has
//                       it, plus module when /dev/ckpt tracks)
//   CKPT_TEST_STORE     a store path to reuse (a DAX device or a file on /mnt/pmem); each test
//                       formats it first (CKPT_CFG_FORMAT). Default: a fresh file per test.
#pragma once

#include <ckpt/ckpt.h>
#include <gtest/gtest.h>
#include <linux/ckpt.h>

#include "ckptdev.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/syscall.h>
#include <random>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace ckpt_test {

inline size_t ps() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

// Whether /dev/ckpt is there and tracks (the project's one client, libckpt/dev/ckptdev.hpp).
inline bool module_tracks() {
  ckptdev::Session dev;
  return dev.open() == 0 && dev.has(CKPT_FEATURE_TRACK);
}

// Whether this kernel offers what the uffd-async tracker needs (probed here independently of
// libckpt: UFFD_FEATURE_WP_ASYNC + WP_UNPOPULATED, and PAGEMAP_SCAN on /proc/self/pagemap).
inline bool uffd_async_available() {
  int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (uffd < 0 && errno == EPERM) uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1));
  if (uffd < 0) return false;
  struct uffdio_api api;
  memset(&api, 0, sizeof(api));
  api.api = UFFD_API;
  api.features = (1ULL << 15) | (1ULL << 13);  // WP_ASYNC, WP_UNPOPULATED
  bool ok = ioctl(uffd, UFFDIO_API, &api) == 0;
  close(uffd);
  if (!ok) return false;
  int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pm < 0) return false;
  uint64_t arg[12] = {sizeof(arg)};  // struct pm_scan_arg: size, then an empty range
  ok = ioctl(pm, _IOWR('f', 16, uint64_t[12]), arg) == 0;
  close(pm);
  return ok;
}

inline std::vector<std::string> trackers() {
  std::vector<std::string> out;
  const char* env = getenv("CKPT_TEST_TRACKERS");
  std::string def = "full,mprotect,uffd";
  if (uffd_async_available()) def += ",uffd-async";
  if (module_tracks()) def += ",module";
  std::string s = env && *env ? env : def;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t c = s.find(',', pos);
    if (c == std::string::npos) c = s.size();
    if (c > pos) out.push_back(s.substr(pos, c - pos));
    pos = c + 1;
  }
  return out;
}

// A tracker's name as a test name (gtest allows [A-Za-z0-9_]): uffd-async -> uffd_async.
inline std::string test_name(std::string t) {
  std::replace(t.begin(), t.end(), '-', '_');
  return t;
}

inline uint32_t tracker_kind(const std::string& t) {
  if (t == "module") return CKPT_TRACKER_MODULE;
  if (t == "uffd") return CKPT_TRACKER_UFFD;
  if (t == "uffd-async") return CKPT_TRACKER_UFFD_ASYNC;
  if (t == "mprotect") return CKPT_TRACKER_MPROTECT;
  if (t == "full") return CKPT_TRACKER_FULL;
  return CKPT_TRACKER_AUTO;
}

// A store location for one test. The first open formats a shared store (CKPT_TEST_STORE).
class StorePath {
 public:
  StorePath() {
    const char* env = getenv("CKPT_TEST_STORE");
    if (env && *env) {
      path_ = env;
      shared_ = true;
    } else {
      char tmpl[] = "/tmp/ckpt-test-XXXXXX";
      dir_ = mkdtemp(tmpl);
      path_ = dir_ + "/store";
    }
  }
  ~StorePath() {
    if (!dir_.empty()) {
      unlink(path_.c_str());
      rmdir(dir_.c_str());
    }
  }
  const std::string& path() const { return path_; }
  // Config flags for the first open of this test.
  uint32_t first_flags() const { return shared_ ? CKPT_CFG_FORMAT : 0; }

 private:
  std::string path_, dir_;
  bool shared_ = false;
};

// Page-aligned anonymous private memory.
class Mem {
 public:
  explicit Mem(size_t pages) : len_(pages * ps()) {
    p_ = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p_ == MAP_FAILED) p_ = nullptr;
  }
  ~Mem() {
    if (p_) munmap(p_, len_);
  }
  Mem(const Mem&) = delete;
  Mem& operator=(const Mem&) = delete;
  unsigned char* data() const { return static_cast<unsigned char*>(p_); }
  size_t size() const { return len_; }

 private:
  void* p_ = nullptr;
  size_t len_;
};

inline ckpt_config_t config(const std::string& tracker, uint32_t flags = 0) {
  ckpt_config_t c;
  ckpt_config_init(&c);
  c.tracker = tracker_kind(tracker);
  c.flags = flags;
  return c;
}

// A test parametrized by tracker name, on the test's store (StorePath): open() opens it with
// that tracker (formatting a shared store on the first open) and checks the tracker in use.
class TrackerSession : public ::testing::TestWithParam<std::string> {
 protected:
  ckpt_t* open(uint32_t flags = 0, uint64_t interval_ms = 0, uint64_t every_n = 0) {
    ckpt_config_t cfg = config(GetParam(), flags | (first_ ? sp_.first_flags() : 0));
    cfg.interval_ms = interval_ms;
    cfg.every_n = every_n;
    first_ = false;
    ckpt_t* c = nullptr;
    int r = ckpt_open(sp_.path().c_str(), &cfg, &c);
    EXPECT_EQ(r, 0) << "ckpt_open(" << sp_.path() << "): " << strerror(-r);
    if (c) {
      ckpt_session_stats st;
      EXPECT_EQ(ckpt_get_stats(c, &st), 0);
      EXPECT_STREQ(st.tracker, GetParam().c_str());
    }
    return c;
  }
  StorePath sp_;
  bool first_ = true;
};

}  // namespace ckpt_test
