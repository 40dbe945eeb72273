// SPDX-License-Identifier: MIT
// Tracker selection and the `full` tracker (no tracking: the baseline that copies everything).
#include "tracker.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <unistd.h>

namespace ckpt {

std::atomic<WriteObserver> g_write_observer{nullptr};

namespace {

class FullTracker final : public Tracker {
 public:
  const char* name() const override { return "full"; }
  int add(uint32_t rid, void*, size_t len, bool) override {
    if (pages_.count(rid)) return -EEXIST;
    pages_[rid] = len / static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return 0;
  }
  int remove(uint32_t rid) override { return pages_.erase(rid) ? 0 : -ENOENT; }
  int collect(uint32_t rid, std::vector<uint64_t>* pages) override {
    auto it = pages_.find(rid);
    if (it == pages_.end()) return -ENOENT;
    for (uint64_t i = 0; i < it->second; i++) pages->push_back(i);
    return 0;
  }

 private:
  std::map<uint32_t, uint64_t> pages_;  // region -> page count
};

}  // namespace

int make_full_tracker(std::unique_ptr<Tracker>* out) {
  *out = std::make_unique<FullTracker>();
  return 0;
}

int make_userspace_tracker(std::unique_ptr<Tracker>* out) {
  if (make_uffd_async_tracker(out) == 0) return 0;
  if (make_uffd_tracker(out) == 0) return 0;
  return make_mprotect_tracker(out);
}

int make_tracker(TrackerKind kind, std::unique_ptr<Tracker>* out, std::string* why) {
  if (kind == TrackerKind::kAuto) {
    const char* env = getenv("CKPT_TRACKER");
    if (env && *env) {
      if (!strcmp(env, "module")) kind = TrackerKind::kModule;
      else if (!strcmp(env, "uffd-async")) kind = TrackerKind::kUffdAsync;
      else if (!strcmp(env, "uffd")) kind = TrackerKind::kUffd;
      else if (!strcmp(env, "mprotect")) kind = TrackerKind::kMprotect;
      else if (!strcmp(env, "full")) kind = TrackerKind::kFull;
      else {
        *why = std::string("CKPT_TRACKER=") + env + " is not one of module|uffd-async|uffd|mprotect|full";
        return -EINVAL;
      }
    }
  }
  int ret;
  switch (kind) {
    case TrackerKind::kAuto:
      if (make_module_tracker(out) == 0) return 0;
      return make_userspace_tracker(out);
    case TrackerKind::kModule:
      ret = make_module_tracker(out);
      if (ret) *why = "module tracker unavailable: /dev/ckpt missing or without CKPT_FEATURE_TRACK";
      return ret;
    case TrackerKind::kUffd:
      ret = make_uffd_tracker(out);
      if (ret) *why = "uffd tracker unavailable: userfaultfd write-protect not supported or not permitted";
      return ret;
    case TrackerKind::kUffdAsync:
      ret = make_uffd_async_tracker(out);
      if (ret)
        *why = "uffd-async tracker unavailable: needs Linux >= 6.7 (UFFD_FEATURE_WP_ASYNC, "
               "UFFD_FEATURE_WP_UNPOPULATED, PAGEMAP_SCAN) and userfaultfd permitted: " +
               std::string(strerror(-ret));
      return ret;
    case TrackerKind::kMprotect:
      return make_mprotect_tracker(out);
    case TrackerKind::kFull:
      return make_full_tracker(out);
  }
  *why = "unknown tracker kind";
  return -EINVAL;
}

}  // namespace ckpt
