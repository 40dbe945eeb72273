// SPDX-License-Identifier: MIT
// libckpt store: the running program's provenance (store.hpp), recorded in each commit slot
// since format 1.2.
#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "format.hpp"
#include "store.hpp"

namespace ckpt::store {
namespace {

// The build-id note of the main program: the first object dl_iterate_phdr reports.
int find_build_id(struct dl_phdr_info* info, size_t, void* arg) {
  auto* out = static_cast<std::string*>(arg);
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const auto* p = reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
    const uint8_t* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      ElfW(Nhdr) n;
      std::memcpy(&n, p, sizeof(n));
      const uint8_t* name = p + sizeof(n);
      const uint8_t* desc = name + ((n.n_namesz + 3) & ~3u);
      const uint8_t* next = desc + ((n.n_descsz + 3) & ~3u);
      if (next > end || next < p) break;
      if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0 &&
          n.n_descsz > 0 && n.n_descsz <= fmt::kMaxBuildId) {
        static const char hex[] = "0123456789abcdef";
        for (uint32_t k = 0; k < n.n_descsz; k++) {
          *out += hex[desc[k] >> 4];
          *out += hex[desc[k] & 15];
        }
        return 1;
      }
      p = next;
    }
  }
  return 1;  // only the first object: the main program
}

Provenance compute() {
  Provenance p;
  p.known = true;
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) {
    p.exe.assign(buf, size_t(n));
    // An executable replaced while it runs (rebuilt, upgraded) is still the same program.
    const std::string del = " (deleted)";
    if (p.exe.size() > del.size() && p.exe.compare(p.exe.size() - del.size(), del.size(), del) == 0)
      p.exe.resize(p.exe.size() - del.size());
  }
  if (p.exe.size() > fmt::kMaxProvPath) p.exe.resize(fmt::kMaxProvPath);
  dl_iterate_phdr(find_build_id, &p.build_id);
  return p;
}

}  // namespace

const Provenance& self_provenance() {
  static const Provenance p = compute();
  return p;
}

bool same_program(const Provenance& a, const Provenance& b) {
  if (!a.known || !b.known) return true;  // nothing to compare
  return (!a.exe.empty() && a.exe == b.exe) || (!a.build_id.empty() && a.build_id == b.build_id);
}

}  // namespace ckpt::store
