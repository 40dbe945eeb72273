// SPDX-License-Identifier: MIT
// The session's restore side (session.hpp): ckpt_restore, ckpt_restore_epoch and
// ckpt_supersede. A restore checks the registered regions against the epoch, opens the store's
// Reader of that epoch (chosen once, before anything is filled) and fills every region from
// it; a supersede selects an older epoch for the next checkpoint to build on, reading nothing.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "session.hpp"

using ckpt::Region;

// Before anything is filled: every registered region must be in the epoch, and (unless
// CKPT_CFG_PARTIAL_RESTORE) every region of the epoch registered. `held`: the epoch's regions;
// `exact` (ckpt_restore_epoch): a registered region must also have the size it has there (the
// newest epoch's size is checked by the read, -EINVAL).
int ckpt_handle::restore_check_locked(const std::vector<ckpt::store::RegionInfo>& held, bool exact) {
  if (!(cfg.flags & CKPT_CFG_PARTIAL_RESTORE)) {
    std::string extra;
    for (auto& ri : held)  // threads' regions are theirs to restore (ckpt_thread_restore)
      if (!find_locked(ri.name) && ckpt::owner_of(ri.name).empty())
        extra += (extra.empty() ? "'" : ", '") + ri.name + "'";
    if (!extra.empty())
      return set_error(-ESRCH, "the checkpoint holds regions that are not registered: " + extra +
                                   " (register them, or set CKPT_CFG_PARTIAL_RESTORE)");
  }
  std::string missing;
  for (auto& r : regions) {
    if (!r.owner.empty()) continue;
    bool in = false;
    for (auto& ri : held) in |= ri.name == r.name && ri.id == r.sid && (!exact || ri.size == r.len);
    if (!in) missing += (missing.empty() ? "'" : ", '") + r.name + "'";
  }
  if (!missing.empty())
    return set_error(-ESRCH, "registered regions not in the checkpoint: " + missing +
                                 " (nothing was restored)");
  return 0;
}

// Fill every registered region from the reader's epoch and re-arm its tracker clean (the
// memory is the epoch's: the next checkpoint's delta is relative to it). A region that could
// not be filled is re-armed dirty, whole, so the next checkpoint writes it as it is now.
// The reader's epoch was chosen before anything is filled (Store::open_reader): every region
// comes from it, never a mix, and damage in it is -EIO.
int ckpt_handle::restore_fill_locked(ckpt::store::Reader& rd) {
  int ret = 0;
  std::string missing;
  std::vector<bool> filled(regions.size());
  for (size_t i = 0; i < regions.size() && !ret; i++) {
    Region& r = regions[i];
    if (!r.owner.empty()) {  // a thread's region: its own ckpt_thread_restore fills it
      filled[i] = true;
      continue;
    }
    r.tracker->remove(r.rid);
    ckpt::store::ReadReport rep;
    int e = rd.read_region(r.sid, reinterpret_cast<void*>(r.addr), r.len, &rep);
    int a = r.tracker->add(r.rid, reinterpret_cast<void*>(r.addr), r.len, e != 0);
    r.carry.clear();
    filled[i] = e == 0 && a == 0;
    if (e == -ENOENT) {
      missing += (missing.empty() ? "'" : ", '") + r.name + "'";
    } else if (e == -EIO) {
      std::string pages;
      for (size_t k = 0; k < rep.damaged.size() && k < 16; k++) pages += " " + std::to_string(rep.damaged[k]);
      ret = set_error(e, "region '" + r.name + "': damaged pages with no intact older copy:" + pages);
    } else if (e) {
      ret = set_error(e, "region '" + r.name + "': read failed: " + strerror(-e));
    } else if (a) {
      ret = set_error(a, "region '" + r.name + "': re-arming the tracker failed: " + strerror(-a));
    }
  }
  if (!ret && !missing.empty())
    ret = set_error(-ESRCH, "registered regions not in the checkpoint: " + missing);
  if (ret)
    for (size_t i = 0; i < regions.size(); i++) {
      if (filled[i]) continue;
      Region& r = regions[i];
      r.tracker->remove(r.rid);
      r.tracker->add(r.rid, reinterpret_cast<void*>(r.addr), r.len, true);
    }
  return ret;
}

// restore_check_locked against epoch `want` as committed, before it is selected.
int ckpt_handle::restore_check_epoch_locked(uint64_t want) {
  std::vector<ckpt::store::RegionInfo> held;
  if (int e = store->regions_of(want, &held))
    return set_error(e, "the store does not hold epoch " + std::to_string(want) + " intact");
  return restore_check_locked(held, true);
}

// Open the reader: `want` 0, the newest epoch that verifies (the store falls back to the
// retained epoch if the newest is damaged and it is intact); else exactly epoch `want`, checked
// before it is selected (the next checkpoint then builds on it). Then the regions are checked
// against the reader's epoch.
int ckpt_handle::restore_open_locked(uint64_t want, std::unique_ptr<ckpt::store::Reader>* rd) {
  if (want)
    if (int e = restore_check_epoch_locked(want)) return e;
  int e = store->open_reader(want, rd);
  if (e && want) return set_error(e, "selecting epoch " + std::to_string(want) + ": " + store->last_error());
  if (e) return set_error(e, "opening the store's newest epoch: " + store->last_error());
  return want ? 0 : restore_check_locked((*rd)->regions(), false);
}

// The restore hooks of `filled`, in order, with the session unlocked (mu not held: a hook may
// call ckpt_register etc. for its own transient state); the first that fails is the error.
int ckpt_handle::run_restore_hooks(const std::vector<ckpt::Region>& filled) {
  for (auto& r : filled) {
    if (!r.hook) continue;
    int h = r.hook(r.hook_arg, r.name.c_str(), reinterpret_cast<void*>(r.addr), r.len);
    if (h < 0) {
      std::lock_guard<std::mutex> g(mu);
      return set_error(h, "restore hook of region '" + r.name + "' failed: " + strerror(-h));
    }
  }
  return 0;
}

// want 0: the newest epoch that verifies (falling back to the retained one on damage); else
// exactly epoch `want`, which the next checkpoint then builds on (ckpt_restore_epoch).
int ckpt_handle::restore(uint64_t want) {
  world_stop();
  std::unique_lock<std::mutex> g = lock();
  int ret = 0;
  if (store->epoch() == 0)
    ret = set_error(-ENOENT, "the store holds no committed checkpoint");
  std::unique_ptr<ckpt::store::Reader> rd;
  if (!ret) ret = restore_open_locked(want, &rd);
  if (!ret) ret = restore_fill_locked(*rd);
  // Restore hooks run with the world stopped and the session unlocked, so they may call
  // ckpt_register etc. for their own transient state.
  std::vector<Region> snapshot;
  if (!ret) {
    stats.restores++;
    stats.epoch = store->epoch();
    for (auto& r : regions)
      if (r.owner.empty()) r.await_restore = false;  // filled from the epoch
    compute_pending_locked();
    ckpt::transient_restored();  // ckpt::transient<T> members read as reset from now on
    for (auto& r : regions)
      if (r.owner.empty()) {
        reset_transients_locked(r);
        snapshot.push_back(r);
      }
  }
  g.unlock();
  if (!ret) ret = run_restore_hooks(snapshot);
  world_resume();
  return ret;
}

// The next checkpoint builds on `want` (older than the newest epoch) and supersedes the newer
// ones, from memory as it is: nothing is read. That checkpoint must write every page that differs
// between `want` and memory: the pages written since the newest epoch (the trackers still hold
// them dirty, and carry what a failed commit collected) and the pages the superseded epoch
// changed relative to `want` (the store lists them: Store::changed_since), added to carry. A
// region registered since `want` is not in it: it is written whole, as are regions the store
// cannot list (ckpt_supersede).
int ckpt_handle::supersede(uint64_t want) {
  world_stop();
  std::unique_lock<std::mutex> g = lock();
  int ret = 0;
  if (want == 0 || store->epoch() == 0)
    ret = set_error(-ENOENT, "the store holds no epoch " + std::to_string(want));
  else if (want == store->epoch()) {
    g.unlock();
    world_resume();
    return 0;
  }
  if (!ret) {
    std::vector<ckpt::store::RegionInfo> held;
    if (int e = store->regions_of(want, &held))
      ret = set_error(e, "the store does not hold epoch " + std::to_string(want) + " intact");
    // Registered regions `want` does not hold are fine here (defined again and written whole);
    // one it holds with another size is not.
    for (size_t i = 0; !ret && i < regions.size(); i++) {
      const Region& r = regions[i];
      bool named = false;
      for (auto& ri : held) named |= ri.name == r.name && ri.id == r.sid;
      if (r.owner.empty() && !named) held.push_back({r.name, r.len, r.sid});
    }
    if (!ret) ret = restore_check_locked(held, true);
  }
  // Before select_epoch: the store lists the newer epoch's changes only while it is the newest.
  std::vector<std::vector<uint64_t>> changed(regions.size());
  std::vector<bool> listed(regions.size());
  for (size_t i = 0; !ret && i < regions.size(); i++)
    listed[i] = store->changed_since(want, regions[i].sid, &changed[i]) == 0;
  if (!ret) {
    ret = store->select_epoch(want);
    if (ret) set_error(ret, "selecting epoch " + std::to_string(want) + ": " + store->last_error());
  }
  for (size_t i = 0; !ret && i < regions.size(); i++) {
    Region& r = regions[i];
    if (listed[i]) {
      r.carry.insert(r.carry.end(), changed[i].begin(), changed[i].end());
      std::sort(r.carry.begin(), r.carry.end());
      r.carry.erase(std::unique(r.carry.begin(), r.carry.end()), r.carry.end());
      continue;
    }
    r.tracker->remove(r.rid);
    int a = r.tracker->add(r.rid, reinterpret_cast<void*>(r.addr), r.len, true);
    r.carry.clear();
    if (a) ret = set_error(a, "region '" + r.name + "': re-arming the tracker failed: " + strerror(-a));
  }
  if (!ret) stats.epoch = store->epoch();
  g.unlock();
  world_resume();
  return ret;
}
