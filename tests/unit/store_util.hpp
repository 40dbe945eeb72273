// SPDX-License-Identifier: MIT
// Helpers shared by the store tests: temporary directories, file images, an oracle of region
// contents per epoch, and a check that a store holds exactly one oracle epoch.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store.hpp"

namespace store_test {

using ckpt::store::Options;
using ckpt::store::ReadReport;
using ckpt::store::Store;
using ckpt::store::Txn;

class TempDir {
 public:
  explicit TempDir(const char* base = "/tmp") {
    std::string t = std::string(base) + "/ckpt-store-XXXXXX";
    std::vector<char> b(t.begin(), t.end());
    b.push_back(0);
    if (mkdtemp(b.data())) path_ = b.data();
  }
  ~TempDir() {
    if (!path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& n) const { return path_ + "/" + n; }

 private:
  std::string path_;
};

inline std::vector<uint8_t> read_file(const std::string& p) {
  std::vector<uint8_t> v;
  int fd = open(p.c_str(), O_RDONLY);
  if (fd < 0) return v;
  struct stat st;
  fstat(fd, &st);
  v.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < v.size()) {
    ssize_t n = pread(fd, v.data() + got, v.size() - got, static_cast<off_t>(got));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  v.resize(got);
  close(fd);
  return v;
}

inline bool write_file(const std::string& p, const std::vector<uint8_t>& v) {
  int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return false;
  size_t put = 0;
  while (put < v.size()) {
    ssize_t n = write(fd, v.data() + put, v.size() - put);
    if (n <= 0) break;
    put += static_cast<size_t>(n);
  }
  close(fd);
  return put == v.size();
}

// Region contents by name, as of one epoch.
using Contents = std::map<std::string, std::vector<uint8_t>>;

inline std::vector<uint8_t> page_of(uint64_t seed) {
  std::vector<uint8_t> p(4096);
  std::mt19937_64 r(seed);
  for (size_t i = 0; i < p.size(); i += 8) {
    uint64_t v = r();
    std::memcpy(&p[i], &v, 8);
  }
  return p;
}

// What the store reads as its read epoch, by region name ("" on error, with rc set).
inline int read_all(Store& s, Contents* out) {
  out->clear();
  for (const auto& r : s.regions()) {
    std::vector<uint8_t> buf(r.size);
    ReadReport rep;
    int rc = s.read_region(r.id, buf.data(), r.size, &rep);
    if (rc == -ENOENT) continue;  // defined but not committed
    if (rc) return rc;
    (*out)[r.name] = std::move(buf);
  }
  return 0;
}

// A scripted checkpoint: define regions, write pages, commit. Applies to the oracle too.
// npages > 1: a run of pages [page, page + npages) with seeds seed, seed + 1, ..., staged with
// one Txn::put_pages from an unaligned buffer.
struct Write {
  std::string region;
  uint64_t page;
  uint64_t seed;
  uint64_t npages = 1;
};

// A region change before a checkpoint: resize to `size` bytes, or remove when size is 0.
struct Change {
  std::string region;
  uint64_t size;
};

inline int apply_changes(Store& s, Txn& t, const std::vector<Change>& changes, Contents* oracle) {
  for (const Change& c : changes) {
    uint32_t id = 0;
    for (const auto& ri : s.regions())
      if (ri.name == c.region) id = ri.id;
    if (!id) return -ENOENT;
    int r = c.size ? t.resize_region(id, c.size) : t.remove_region(id);
    if (r) return r;
    if (c.size)
      (*oracle)[c.region].resize(c.size, 0);  // a shrink drops pages, a grow adds zeros
    else
      oracle->erase(c.region);
  }
  return 0;
}

// A layout change in a transaction that is then abandoned: it stays in the view, pending for
// the next commit (store.hpp, Txn).
inline int txn_resize(Store& s, uint32_t id, uint64_t size) {
  std::unique_ptr<Txn> t;
  if (int r = s.begin(&t)) return r;
  return t->resize_region(id, size);
}
inline int txn_remove(Store& s, uint32_t id) {
  std::unique_ptr<Txn> t;
  if (int r = s.begin(&t)) return r;
  return t->remove_region(id);
}
inline int apply_changes(Store& s, const std::vector<Change>& changes, Contents* oracle) {
  std::unique_ptr<Txn> t;
  if (int r = s.begin(&t)) return r;
  return apply_changes(s, *t, changes, oracle);
}

// Begin; changes first (so a removed name may be defined again), then definitions, writes,
// commit.
inline int checkpoint(Store& s, const std::map<std::string, uint64_t>& defs,
                      const std::vector<Write>& writes, Contents* oracle,
                      const std::vector<Change>& changes = {}) {
  std::unique_ptr<Txn> t;
  int r = s.begin(&t);
  if (r) return r;
  if ((r = apply_changes(s, *t, changes, oracle))) return r;
  for (const auto& [name, size] : defs) {
    uint32_t id;
    r = s.define_region(name, size, &id);
    if (r) return r;
    if (!oracle->count(name)) (*oracle)[name] = std::vector<uint8_t>(size, 0);
  }
  std::map<std::string, uint32_t> ids;
  for (const auto& ri : s.regions()) {
    ids[ri.name] = ri.id;
    if (!oracle->count(ri.name)) (*oracle)[ri.name] = std::vector<uint8_t>(ri.size, 0);
  }
  for (const Write& w : writes) {
    if (w.npages > 1) {
      std::vector<uint8_t> buf(w.npages * 4096 + 8);
      for (uint64_t i = 0; i < w.npages; i++)
        std::memcpy(buf.data() + 8 + i * 4096, page_of(w.seed + i).data(), 4096);
      r = t->put_pages(ids.at(w.region), w.page, buf.data() + 8, w.npages);
      if (r) return r;
      std::memcpy((*oracle)[w.region].data() + w.page * 4096, buf.data() + 8, w.npages * 4096);
      continue;
    }
    auto p = page_of(w.seed);
    r = t->put_page(ids.at(w.region), w.page, p.data());
    if (r) return r;
    std::memcpy((*oracle)[w.region].data() + w.page * 4096, p.data(), 4096);
  }
  return t->commit();
}

}  // namespace store_test
