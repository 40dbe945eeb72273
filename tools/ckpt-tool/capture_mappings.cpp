// SPDX-License-Identifier: MIT
// ckpt-tool dump, capture: the mappings, from /proc/PID/maps or smaps.
#include <sys/mman.h>

#include <string>
#include <vector>

#include "cmd.hpp"
#include "dump.hpp"
#include "refusals.hpp"

namespace ckpt_tool::dump {
namespace {

using namespace image;

bool same_layout(const std::vector<proc::MapsLine>& a, const std::vector<proc::MapsLine>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (a[i].start != b[i].start || a[i].end != b[i].end || a[i].perms != b[i].perms ||
        a[i].offset != b[i].offset || a[i].ino != b[i].ino || a[i].path != b[i].path)
      return false;
  return true;
}

// The layout, and each mapping's VmFlags: the madvise state restore reproduces (THP or not,
// DONTFORK, WIPEONFORK, DONTDUMP). Only smaps has VmFlags, and the kernel walks every page
// table to print it (a 64 MiB process: 4-12 ms under TCG, most of an incremental checkpoint).
// So with `last` (run's checkpoints: the previous one's mappings and flags), maps is read
// first, and smaps only when the layout differs from last time; an unchanged layout keeps
// the flags read then. The price: a madvise() that changes the flags of a whole existing
// mapping, and nothing else in the layout, reaches the image at the next checkpoint whose
// layout changed (or the next full one), not at once. Memory contents are not concerned.
// Every VmFlags smaps may show (6.1-6.12), and what the image does with it. A flag in none of
// these lists is refused (refuse::vm_flag); Documentation/whole-process.md has the same lists
// and tests/e2e/vm-proc-audit.sh checks them against a live process's flags.
//   saved: rd wr ex (protections), sh (the mapping's kind; a shared file mapping is saved
//          only without mw, below), hg nh dc dd wf sr rr mg nr
//          (advice_from_vmflags), gd on [stack];
//   derived from what is saved (the kernel sets them again when the mapping is made): mr mw
//          me ms (what the file or mapping type allows), ac (commit accounting of a private
//          writable mapping without nr), sd (soft-dirty: every new mapping starts with it).
bool saved_vmflag(const std::string& f, const proc::MapsLine& m, uint64_t kind) {
  static const char* kSaved[] = {"rd", "wr", "ex", "sh", "hg", "nh", "dc", "dd", "wf",
                                 "sr", "rr", "mg", "mr", "mw", "me", "ms", "ac", "sd"};
  for (const char* k : kSaved)
    if (f == k) return true;
  if (f == "gd") return m.path == "[stack]";
  if (f == "nr") return kind == kAnon || kind == kFile;
  return false;
}

void check_vmflags(const std::string& where, const proc::MapsLine& m, uint64_t kind) {
  for (size_t a = 0; a < m.vmflags.size();) {
    size_t b = m.vmflags.find(' ', a);
    if (b == std::string::npos) b = m.vmflags.size();
    const std::string f = m.vmflags.substr(a, b - a);
    a = b + 1;
    if (!f.empty() && !saved_vmflag(f, m, kind)) refuse::vm_flag(where, f);
  }
}

// A NUMA memory policy (set_mempolicy for the process, mbind for a mapping) is not saved: the
// policy of each mapping, or the process's where it has none, is in numa_maps (a kernel
// without NUMA has no numa_maps: nothing to refuse). Read with smaps, when the layout changed:
// run's checkpoints see a set_mempolicy() at the next layout change.
void check_mempolicy(int pid) {
  std::string t;
  if (proc::read_file("/proc/" + std::to_string(pid) + "/numa_maps", &t)) return;
  for (size_t a = 0; a < t.size();) {
    size_t e = t.find('\n', a);
    if (e == std::string::npos) e = t.size();
    const std::string line = t.substr(a, e - a);
    a = e + 1;
    size_t s1 = line.find(' ');
    if (s1 == std::string::npos) continue;
    size_t s2 = line.find(' ', s1 + 1);
    const std::string policy = line.substr(s1 + 1, s2 == std::string::npos ? s2 : s2 - s1 - 1);
    if (policy != "default")
      refuse::mempolicy("mapping at 0x" + line.substr(0, s1), policy);
  }
}

}  // namespace

void capture_mappings(int pid, Image* img, KnownFiles* known, std::vector<proc::MapsLine>* last) {
  std::vector<proc::MapsLine> maps;
  if (last && !last->empty()) {
    if (int e = proc::read_maps(pid, &maps); e) throw Error{kFailed, "maps: " + errstr(e)};
    if (same_layout(maps, *last))
      maps = *last;  // with the flags
    else
      maps.clear();
  }
  if (maps.empty()) {
    if (int e = proc::read_smaps(pid, &maps); e) throw Error{kFailed, "smaps: " + errstr(e)};
    check_mempolicy(pid);
  }
  if (last) *last = maps;
  uint64_t vvar_end = 0;
  for (const auto& m : maps) {
    const std::string where = "mapping " + m.path + " at " + hex(m.start);
    if (m.path == "[vsyscall]") continue;
    if (m.path == "[vvar]") {
      img->vvar_start = m.start;
      vvar_end = m.end;
      continue;
    }
    if (m.path == "[vdso]") {
      img->vdso_start = m.start;
      img->vdso_end = m.end;
      continue;
    }
    Vma v;
    v.start = m.start;
    v.end = m.end;
    v.prot = (m.perms[0] == 'r' ? PROT_READ : 0) | (m.perms[1] == 'w' ? PROT_WRITE : 0) |
             (m.perms[2] == 'x' ? PROT_EXEC : 0);
    bool shared = m.perms[3] == 's';  // VM_MAYSHARE: mmap(MAP_SHARED)
    if (shared && (m.path.empty() || m.path == "/dev/zero (deleted)")) {
      if (!(v.prot & PROT_WRITE)) refuse::mapping(where, refuse::Mapping::kReadOnlySharedAnon);
      v.kind = kSharedAnon;
    } else if (shared) {
      // A file's own pages: the image keeps a reference to the file, not its bytes (the file
      // holds them), and restore maps the same file again, checked unchanged. Only read-only
      // ones, of a file opened read-only: no `mw` (VM_MAYWRITE) in VmFlags, so no mprotect
      // can make it writable, and the kernel made it without VM_SHARED (as ckpt.ko's check
      // of a mapping the restorer built wants). What the process writes through a writable
      // one is in the file's page cache, not in the image: refused.
      if (m.path.rfind("/SYSV", 0) == 0) refuse::mapping(where, refuse::Mapping::kSysvShm);
      if (m.path.rfind("/memfd:", 0) == 0) refuse::mapping(where, refuse::Mapping::kMemfd);
      if (ends_with(m.path, " (deleted)")) refuse::mapping(where, refuse::Mapping::kDeletedFile);
      if (m.path[0] != '/') refuse::mapping(where, refuse::Mapping::kSpecial);
      if (v.prot & PROT_WRITE) refuse::mapping(where, refuse::Mapping::kWritableSharedFile);
      if ((" " + m.vmflags + " ").find(" mw ") != std::string::npos)
        refuse::mapping(where, refuse::Mapping::kMayWriteSharedFile);
      v.kind = kSharedFile;
      v.pgoff = m.offset;
      v.file = file_id(m.path, m.ino, "mapped file", known);
    } else if (m.path.empty() || m.path == "[heap]" || m.path == "[stack]" ||
               m.path.rfind("[anon:", 0) == 0) {
      v.kind = kAnon;
      v.growsdown = m.path == "[stack]";
    } else if (m.path[0] == '[') {
      refuse::mapping(where, refuse::Mapping::kSpecial);
    } else {
      if (ends_with(m.path, " (deleted)")) refuse::mapping(where, refuse::Mapping::kDeletedFile);
      v.kind = kFile;
      v.pgoff = m.offset;
      v.file = file_id(m.path, m.ino, "mapped file", known);
    }
    check_vmflags(where, m, v.kind);
    v.advice = advice_from_vmflags(m.vmflags);
    img->vmas.push_back(std::move(v));
  }
  if (img->vdso_start && (!img->vvar_start || vvar_end != img->vdso_start))
    throw Error{kFailed, "unexpected layout: [vvar] is not directly below [vdso]"};
}

}  // namespace ckpt_tool::dump
