// SPDX-License-Identifier: MIT
// ckpt-tool restore, become (restore.hpp): the child's memory. The vdso moved to the image's
// address, every private mapping of the image built at its address and filled from the store
// through the restore's Reader (which checks every page's checksum as it copies: a damaged
// page is refused with its mapping and address before anything is torn down), the others
// staged for the module.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "proc.hpp"
#include "restore.hpp"

namespace ckpt_tool::restore {

using namespace image;

void move_vdso(const Image& img, Vdso* own) {
  if (!img.vdso_start || own->vvar_start == img.vvar_start) return;
  uint64_t vvar_len = own->vvar_end - own->vvar_start, vdso_len = own->vdso_end - own->vdso_start;
  // Park both in a fresh spot first, so that moving one can never land on the other.
  void* tmp = mmap(nullptr, vvar_len + vdso_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (tmp == MAP_FAILED) throw Error{kFailed, std::string("mmap: ") + strerror(errno)};
  auto mv = [](uint64_t from, uint64_t len, uint64_t to) {
    if (mremap(reinterpret_cast<void*>(from), len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
               reinterpret_cast<void*>(to)) == MAP_FAILED)
      throw Error{kFailed, std::string("moving the vdso: ") + strerror(errno)};
  };
  uint64_t t = reinterpret_cast<uint64_t>(tmp);
  mv(own->vvar_start, vvar_len, t);
  mv(own->vdso_start, vdso_len, t + vvar_len);
  std::vector<proc::MapsLine> maps;
  proc::read_maps(0, &maps);
  for (const auto& m : maps)
    if (m.start < img.vdso_end && m.end > img.vvar_start)
      throw Error{kFailed, "the image's vdso address is in use in the restorer (an ASLR collision); run the "
          "restore again"};
  mv(t, vvar_len, img.vvar_start);
  mv(t + vvar_len, vdso_len, img.vdso_start);
}

namespace {

// Read run r of mapping v into dst through the restore's Reader (its one epoch, the
// metadata's); throws naming what failed.
void read_run(Loaded& ld, const Vma& v, const Run& r, void* dst) {
  auto it = ld.regions.find(vma_region(v.start));
  if (it == ld.regions.end() || it->second.size < v.runs.back().offset + v.runs.back().len)
    throw Error{kFailed, "corrupted image: the store has no pages for the mapping at " + hex(v.start)};
  ckpt::store::ReadReport rr;
  int e = ld.rd->read_range(it->second.id, r.offset, dst, r.len, &rr);
  if (e == 0 && rr.epoch != ld.epoch)  // a Reader reads its own epoch only; never expected
    throw Error{kFailed, "reading the mapping at " + hex(v.start) + ": read epoch " +
                             std::to_string(rr.epoch) + ", not the metadata's " +
                             std::to_string(ld.epoch)};
  if (e == -EIO) throw Error{kFailed, damaged_msg("the mapping at " + hex(v.start), rr, v.start)};
  if (e) throw Error{kFailed, "reading the mapping at " + hex(v.start) + ": " + strerror(-e)};
}

// madvise(2) state the image recorded for a mapping (format 2.2; sequential, random and
// mergeable 2.6), set before its pages are read: a THP-backed mapping gets huge pages again
// as the reads fault it in, and one the process kept off THP stays off. (MAP_NORESERVE is
// given to mmap, build_layout.)
void set_advice(const Vma& v) {
  static const struct {
    uint64_t bit;
    int advice;
    const char* name;
  } kAdvice[] = {{kAdvHugepage, MADV_HUGEPAGE, "MADV_HUGEPAGE"},
                 {kAdvNoHugepage, MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"},
                 {kAdvDontfork, MADV_DONTFORK, "MADV_DONTFORK"},
                 {kAdvDontdump, MADV_DONTDUMP, "MADV_DONTDUMP"},
                 {kAdvWipeonfork, MADV_WIPEONFORK, "MADV_WIPEONFORK"},
                 {kAdvSequential, MADV_SEQUENTIAL, "MADV_SEQUENTIAL"},
                 {kAdvRandom, MADV_RANDOM, "MADV_RANDOM"},
                 {kAdvMergeable, MADV_MERGEABLE, "MADV_MERGEABLE"}};
  for (const auto& a : kAdvice)
    if ((v.advice & a.bit) &&
        madvise(reinterpret_cast<void*>(v.start), v.end - v.start, a.advice) < 0)
      throw Error{kFailed, std::string("restoring ") + a.name + " on the mapping at " + hex(v.start) + ": " +
          strerror(errno)};
}

}  // namespace

// In the child: map the image's private mappings at their addresses and read their pages
// into them. Returns per mapping whether it was built (CKPT_VMA_PREBUILT); the others (shared,
// or colliding with the child's own mappings) get their pages staged in *data for the module,
// at the offsets pushed to *data_off (one per run, in image order).
// Every mapping is placed before any page is read: the store's big reads run on threads whose
// stacks must not take an address the image needs.
std::vector<bool> build_layout(const Image& img, Loaded& ld, const std::vector<int>& vfd,
                               bool prebuilt, int* data, std::vector<uint64_t>* data_off) {
  std::vector<bool> built(img.vmas.size(), false);
  bool can = prebuilt;
  if (!prebuilt)
    for (const Vma& v : img.vmas)
      if (v.kind == kSharedFile)
        throw Error{kUnavailable, "the image has a shared file mapping, which needs a ckpt.ko "
                                  "with CKPT_FEATURE_RESTORE_PREBUILT"};
  for (size_t i = 0; can && i < img.vmas.size(); i++) {
    const Vma& v = img.vmas[i];
    if (v.kind == kSharedAnon) continue;
    const bool file = v.kind == kFile || v.kind == kSharedFile;
    int prot = v.runs.empty() ? int(v.prot) : PROT_READ | PROT_WRITE;
    int flags = (v.kind == kSharedFile ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE |
                (file ? 0 : MAP_ANONYMOUS) |
                (v.growsdown ? MAP_GROWSDOWN : 0) |
                (v.advice & kAdvNoreserve ? MAP_NORESERVE : 0);
    void* want = reinterpret_cast<void*>(v.start);
    void* m = mmap(want, v.end - v.start, prot, flags, file ? vfd[i] : -1,
                   off_t(file ? v.pgoff : 0));
    if (m == MAP_FAILED) {
      // Taken by the child itself: the module maps it. Not a shared file mapping, which the
      // module maps only private.
      if (errno == EEXIST && v.kind != kSharedFile) continue;
      if (errno == EEXIST)
        throw Error{kFailed, "the shared file mapping at " + hex(v.start) + " (" + v.file.path +
                                 ") collides with the restorer's own mappings (an ASLR "
                                 "accident); run the restore again"};
      throw Error{kFailed, "mapping " + hex(v.start) + ": " + strerror(errno)};
    }
    if (m != want) {  // a kernel without MAP_FIXED_NOREPLACE placed it elsewhere
      munmap(m, v.end - v.start);
      continue;
    }
    set_advice(v);
    built[i] = true;
  }
  phase("layout placed");
  for (size_t i = 0; i < img.vmas.size(); i++) {
    if (!built[i]) continue;
    const Vma& v = img.vmas[i];
    for (const auto& r : v.runs) read_run(ld, v, r, reinterpret_cast<uint8_t*>(v.start + r.offset));
    if (!v.runs.empty() && int(v.prot) != (PROT_READ | PROT_WRITE) &&
        mprotect(reinterpret_cast<void*>(v.start), v.end - v.start, int(v.prot)) < 0)
      throw Error{kFailed, "mprotect " + hex(v.start) + ": " + strerror(errno)};
  }
  uint64_t total = 0;
  for (size_t i = 0; i < img.vmas.size(); i++)
    if (!built[i])
      for (const auto& r : img.vmas[i].runs) total += r.len;
  *data = memfd_create("ckpt-restore", MFD_CLOEXEC);
  if (*data < 0 || ftruncate(*data, off_t(total)) < 0)
    throw Error{kFailed, std::string("memfd: ") + strerror(errno)};
  if (!total) return built;
  void* m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, *data, 0);
  if (m == MAP_FAILED) throw Error{kFailed, std::string("mmap: ") + strerror(errno)};
  auto* map = static_cast<uint8_t*>(m);
  uint64_t off = 0;
  for (size_t i = 0; i < img.vmas.size(); i++) {
    if (built[i]) continue;
    for (const auto& r : img.vmas[i].runs) {
      read_run(ld, img.vmas[i], r, map + off);
      data_off->push_back(off);
      off += r.len;
    }
  }
  munmap(m, total);
  return built;
}

}  // namespace ckpt_tool::restore
