// libckpt internal: trackers find the pages written since the last collect.
//
// A tracker watches regions (page-aligned ranges). collect() returns the page indices written
// since the previous collect of that region (a superset: never omits a changed page) and
// re-arms tracking on exactly those pages, so its cost follows the dirty pages. The session
// serialises calls (not thread-safe); the program's threads may write tracked memory at any time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ckpt {

enum class TrackerKind { kAuto = 0, kModule = 1, kUffd = 2, kMprotect = 3, kFull = 4 };

class Tracker {
 public:
  virtual ~Tracker() = default;
  virtual const char* name() const = 0;
  // Start tracking [addr, addr+len) as region `rid` (unique per tracker). dirty: every page is
  // reported by the first collect; otherwise only pages written from now on.
  virtual int add(uint32_t rid, void* addr, size_t len, bool dirty) = 0;
  virtual int remove(uint32_t rid) = 0;
  // Append dirty page indices of region rid (ascending) to *pages and re-protect them.
  virtual int collect(uint32_t rid, std::vector<uint64_t>* pages) = 0;
};

// Create a tracker. kAuto: env CKPT_TRACKER, else module > uffd > mprotect. -ENODEV if the
// requested kind is not available here, -EINVAL for an unknown CKPT_TRACKER value.
int make_tracker(TrackerKind kind, std::unique_ptr<Tracker>* out, std::string* why);

int make_full_tracker(std::unique_ptr<Tracker>* out);
int make_mprotect_tracker(std::unique_ptr<Tracker>* out);
int make_uffd_tracker(std::unique_ptr<Tracker>* out);
int make_module_tracker(std::unique_ptr<Tracker>* out);

}  // namespace ckpt
