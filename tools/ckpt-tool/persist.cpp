// SPDX-License-Identifier: MIT
// ckpt-tool dump, persist: the image and the pages into the store, one transaction per
// checkpoint. The store's regions follow the mappings (image.hpp names them); the pages go
// from the process to the store in batches of up to 1 MiB; the metadata region last; one
// commit makes the checkpoint live, and a crash at any instant leaves the previous one.
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cmd.hpp"
#include "dump.hpp"
#include "key.hpp"

namespace ckpt_tool {
namespace dump {
namespace {

using namespace image;
using ckpt::store::RegionInfo;

std::string store_error(const ckpt::store::Store& s, int e, const char* what) {
  std::string m = std::string(what) + ": " + strerror(-e);
  if (!s.last_error().empty()) m += " (" + s.last_error() + ")";
  return m;
}

}  // namespace

void open_store(wp::Series& tr) {
  if (tr.store) return;
  ckpt::store::Options o;
  std::string why;
  o.why = &why;
  o.mac_key = store_key();
  o.create = tr.create;
  o.force_format = tr.force;
  int e = ckpt::store::Store::open(tr.path, o, &tr.store);
  if (e == -EBUSY)
    throw Error{kUnavailable, "--store " + tr.path + ": open in another program" +
                                  (why.empty() ? "" : " (" + why + ")")};
  // Nothing there is a store, and formatting it would destroy (or claim) it: the store's
  // reason names what it holds and the option that asks for it.
  if (e == -ENODATA || e == -EEXIST) throw Error{kRefused, "--store " + why};
  if (e)
    throw Error{kFailed, "--store " + tr.path + ": " + (why.empty() ? strerror(-e) : why)};
  // A store that holds something else (a libckpt program's regions) is not overwritten.
  for (const RegionInfo& r : tr.store->regions())
    if (r.name != kProcessRegion && r.name.rfind("vma:", 0) != 0) {
      tr.store.reset();
      throw Error{kFailed, "--store " + tr.path + " holds region \"" + r.name +
                               "\", not a process image; use another store"};
    }
}

// dump: a store that holds the image of another process (another PID, or another program at
// that PID) is not overwritten unless --replace. A process restored from the store keeps its
// PID and program, so dumping it again into its own store needs no option.
void check_replace(wp::Series& tr, const Image& img) {
  if (tr.replace || tr.store->epoch() == 0) return;
  uint32_t id = 0;
  uint64_t size = 0;
  for (const RegionInfo& r : tr.store->regions())
    if (r.name == kProcessRegion) id = r.id, size = r.size;
  if (!id) return;
  std::vector<uint8_t> meta(size);
  Image old;
  std::string why;
  if (tr.store->read_region(id, meta.data(), meta.size(), nullptr) != 0 ||
      decode_process(meta, &old, &why) != 0) {
    tr.store.reset();
    throw Error{kRefused, "--store " + tr.path + " holds a process image that cannot be read (" +
                              (why.empty() ? "damaged" : why) + "); --replace overwrites it"};
  }
  if (old.pid == img.pid && old.exe == img.exe) return;
  tr.store.reset();
  throw Error{kRefused, "--store " + tr.path + " holds the image of another process (pid " +
                            std::to_string(old.pid) + ", " + old.exe +
                            "); --replace overwrites it"};
}

  // 2. The store's regions follow the mappings: one per mapping with pages in the image,
  // resized as its pages change, removed when it is gone or empty; the metadata's.
  // A region ends with the mapping's last page in the image, not with the mapping: the store
  // reserves room for every region's full size, and a mostly untouched reservation (a big
  // malloc, a thread arena) would otherwise cost its whole size. Shrinking drops only pages
  // that are in no run; growing keeps every page.
  // All in the checkpoint's transaction (txn), before its pages.
  // Order: removals and shrinks first, then one reserve() for the whole new layout, then the
  // definitions and growths — so the store grows a file once, to exactly what the layout
  // needs, instead of a quarter more at each step (a 64 MiB dump made an 85 MB file).
std::unique_ptr<ckpt::store::Txn> begin_txn(wp::Series& tr) {
  std::unique_ptr<ckpt::store::Txn> txn;
  if (int e = tr.store->begin(&txn); e) throw Error{kFailed, store_error(*tr.store, e, "store")};
  return txn;
}

uint32_t place_regions(wp::Series& tr, ckpt::store::Txn& txn, const Image& img,
                       const std::vector<uint8_t>& meta, std::vector<Plan>& plan) {
  ckpt::store::Store& st = *tr.store;
  std::map<std::string, uint64_t> layout;  // name -> size after this checkpoint
  for (const Vma& v : img.vmas)
    if (!v.runs.empty()) layout[vma_region(v.start)] = v.runs.back().offset + v.runs.back().len;
  layout[kProcessRegion] = meta.size();
  std::map<std::string, RegionInfo> have;
  for (RegionInfo& r : st.regions()) have[r.name] = r;
  uint64_t layout_bytes = 0;
  for (const auto& [name, size] : layout) layout_bytes += size;
  for (auto it = have.begin(); it != have.end();) {
    auto w = layout.find(it->first);
    if (w == layout.end()) {
      if (int e = txn.remove_region(it->second.id); e)
        throw Error{kFailed, store_error(st, e, ("removing region " + it->first).c_str())};
      it = have.erase(it);
      continue;
    }
    if (w->second < it->second.size) {
      if (int e = txn.resize_region(it->second.id, w->second); e)
        throw Error{kFailed, store_error(st, e, ("resizing region " + it->first).c_str())};
      it->second.size = w->second;
    }
    ++it;
  }
  // run's later checkpoints write copies of the pages they change beside the committed ones:
  // a quarter more room now, so that those do not grow the file inside a pause (a growth of
  // 16 MiB on tmpfs cost the first incremental checkpoint of a 64 MiB process 0.15 s).
  // The quarter is a wish, not a need: a fixed-size store (a DAX device) or a full file
  // system that has room for the layout itself still takes the checkpoint.
  const uint64_t slack = tr.track ? layout_bytes / 4 / kPage * kPage : 0;
  int reserved = st.reserve(layout_bytes + slack, layout.size());
  if (reserved == -ENOSPC && slack) reserved = st.reserve(layout_bytes, layout.size());
  if (reserved) throw Error{kFailed, store_error(st, reserved, "making room in the store")};
  auto region = [&](const std::string& name) -> uint32_t {
    const uint64_t size = layout.at(name);
    auto it = have.find(name);
    uint32_t id;
    if (it == have.end()) {
      if (int e = st.define_region(name, size, &id); e)
        throw Error{kFailed, store_error(st, e, ("defining region " + name).c_str())};
      return id;
    }
    if (it->second.size != size)
      if (int e = txn.resize_region(it->second.id, size); e)
        throw Error{kFailed, store_error(st, e, ("resizing region " + name).c_str())};
    return it->second.id;
  };
  for (size_t i = 0; i < img.vmas.size(); i++)
    if (!img.vmas[i].runs.empty()) plan[i].region = region(vma_region(img.vmas[i].start));
  return region(kProcessRegion);
}

namespace {

// Batches of up to kBatch pages of one mapping: plan[vma].put[first, first + n).
struct Batch {
  size_t vma, first, n;
};

// One put_pages per run of consecutive pages: the store checksums and writes a run in few
// large writes.
void store_batch(ckpt::store::Store& st, ckpt::store::Txn& txn, const std::vector<Plan>& plan,
                 const Batch& b, const uint8_t* buf) {
  const Plan& p = plan[b.vma];
  for (size_t j = 0; j < b.n;) {
    size_t e = j + 1;
    while (e < b.n && p.put[b.first + e] == p.put[b.first + j] + (e - j)) e++;
    if (int err = txn.put_pages(p.region, p.put[b.first + j], buf + j * kPage, e - j); err)
      throw Error{kFailed, store_error(st, err, "writing the store")};
    j = e;
  }
}

// What the page writers share.
struct Pages {
  ckpt::store::Store& st;
  ckpt::store::Txn& txn;
  const Image& img;
  const std::vector<Plan>& plan;
  const std::vector<Batch>& batches;
  MemReader& mem;
  uint8_t* bufs;  // kDepth buffers of kBatch pages
};

// A small checkpoint (run's incremental ones; pages of several mappings): every page is
// read first, packed into the buffers, then the process goes on during the store's part.
// A thread would cost more than it overlaps.
void write_small(const Pages& w, const std::function<void()>& release, Phases& ph) {
  const auto& batches = w.batches;
  std::vector<size_t> at(batches.size());
  size_t next = 0;
  auto r0 = std::chrono::steady_clock::now();
  for (size_t b = 0; b < batches.size(); b++) {
    at[b] = next;
    w.mem.read(w.img.vmas[batches[b].vma], &w.plan[batches[b].vma].put[batches[b].first],
               batches[b].n, w.bufs + next * kPage);
    next += batches[b].n;
  }
  ph.read = since(r0);
  release();
  for (size_t b = 0; b < batches.size(); b++)
    store_batch(w.st, w.txn, w.plan, batches[b], w.bufs + at[b] * kPage);
}

// A reader thread fills the next buffers with process_vm_readv while this one checksums
// and hands the last to the store (its writes run in io_uring's workers): the copy out of
// the process, the checksums and the store's copy in then share the CPUs instead of
// taking turns. Buffers are reused (a fresh one costs a page fault per page).
void write_pipelined(const Pages& w, Phases& ph) {
  const auto& batches = w.batches;
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    size_t read = 0, stored = 0;  // batches done by each side
    bool stop = false;            // the writer gave up
    std::exception_ptr failed;    // the reader's error
    double read_s = 0;
  } sh;
  const size_t nb = batches.size();
  std::thread reader([&] {
    double busy = 0;
    try {
      for (size_t b = 0; b < nb; b++) {
        {
          std::unique_lock<std::mutex> l(sh.mu);
          sh.cv.wait(l, [&] { return sh.stop || b - sh.stored < kDepth; });
          if (sh.stop) break;
        }
        const Batch& x = batches[b];
        auto r0 = std::chrono::steady_clock::now();
        w.mem.read(w.img.vmas[x.vma], &w.plan[x.vma].put[x.first], x.n,
                   w.bufs + (b % kDepth) * kBatch * kPage);
        busy += since(r0);
        std::lock_guard<std::mutex> l(sh.mu);
        sh.read = b + 1;
        sh.cv.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> l(sh.mu);
      sh.failed = std::current_exception();
      sh.cv.notify_all();
    }
    std::lock_guard<std::mutex> l(sh.mu);
    sh.read_s = busy;
  });
  auto finish = [&] {
    {
      std::lock_guard<std::mutex> l(sh.mu);
      sh.stop = true;
      sh.cv.notify_all();
    }
    reader.join();
  };
  try {
    for (size_t b = 0; b < nb; b++) {
      {
        std::unique_lock<std::mutex> l(sh.mu);
        sh.cv.wait(l, [&] { return sh.read > b || sh.failed; });
        if (sh.read <= b) std::rethrow_exception(sh.failed);
      }
      store_batch(w.st, w.txn, w.plan, batches[b], w.bufs + (b % kDepth) * kBatch * kPage);
      std::lock_guard<std::mutex> l(sh.mu);
      sh.stored = b + 1;
      sh.cv.notify_all();
    }
  } catch (...) {
    finish();
    throw;
  }
  finish();
  ph.read = sh.read_s;
}

}  // namespace

void write_and_commit(wp::Series& tr, std::unique_ptr<ckpt::store::Txn> txn, const Image& img,
                      const std::vector<Plan>& plan, uint64_t put, MemReader& mem,
                      uint32_t meta_region, const std::vector<uint8_t>& meta,
                      const std::function<void()>& release, Phases& ph) {
  ckpt::store::Store& st = *tr.store;
  ph.begin = since(ph.t);
  std::vector<Batch> batches;
  for (size_t i = 0; i < img.vmas.size(); i++)
    for (size_t k = 0; k < plan[i].put.size(); k += kBatch)
      batches.push_back({i, k, std::min(kBatch, plan[i].put.size() - k)});
  const Pages w{st, *txn, img, plan, batches, mem, tr.buffers(kDepth)};
  if (put <= kDepth * kBatch)
    write_small(w, release, ph);
  else
    write_pipelined(w, ph);
  if (int e = txn->put_pages(meta_region, 0, meta.data(), meta.size() / kPage); e)
    throw Error{kFailed, store_error(st, e, "writing the store")};
  ph.pages = ph.begin + since(ph.t);
  // The pages are in the store's hands: the process may run on while the commit persists.
  release();
  if (int e = txn->commit(); e) throw Error{kFailed, store_error(st, e, "committing the store")};
  ph.commit = since(ph.t);
}

}  // namespace dump

bool wp::holds_image(const std::string& path, std::string* what) {
  using namespace image;
  using ckpt::store::RegionInfo;
  ckpt::store::Options o;
  o.no_modify = true;
  o.mac_key = store_key();
  std::unique_ptr<ckpt::store::Store> st;
  if (ckpt::store::Store::open(path, o, &st) != 0 || st->epoch() == 0) return false;
  for (const RegionInfo& r : st->regions()) {
    if (r.name != kProcessRegion) continue;
    std::vector<uint8_t> meta(r.size);
    Image img;
    *what = "a process";
    if (st->read_region(r.id, meta.data(), meta.size(), nullptr) == 0 &&
        decode_process(meta, &img, nullptr) == 0)
      *what = "process " + std::to_string(img.pid) + " (" + img.exe + ")";
    return true;
  }
  return false;
}

}  // namespace ckpt_tool
