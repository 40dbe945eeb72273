// SPDX-License-Identifier: MIT
// ckpt-tool restore, preflight (restore.hpp): in the parent, before anything is changed. The
// store's newest intact metadata, the credentials it asks for, and what can be refused before
// the child goes past its own process: the files unchanged, the same kernel vdso, the CPU.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "key.hpp"
#include "proc.hpp"
#include "restore.hpp"

namespace ckpt_tool::restore {

using namespace image;

int own_vdso(Vdso* v) {
  std::vector<proc::MapsLine> maps;
  if (int e = proc::read_maps(0, &maps); e) return e;
  for (const auto& m : maps) {
    if (m.path == "[vvar]") v->vvar_start = m.start, v->vvar_end = m.end;
    if (m.path == "[vdso]") v->vdso_start = m.start, v->vdso_end = m.end;
  }
  return 0;
}

namespace {

uint64_t mtime_ns(const struct stat& st) {
  return uint64_t(st.st_mtim.tv_sec) * 1000000000ull + uint64_t(st.st_mtim.tv_nsec);
}

}  // namespace


// Everything that can be refused before anything is started (the pages were checked when read).
void check_image(const Image& img) {
  // One stat per file, not per mapping of it (a library has 4-5 mappings; a stat on the
  // 9p root of the VM is a round trip to the host).
  std::map<std::string, struct stat> seen;
  auto same_file = [&seen](const FileId& f, bool exact, const std::string& what) {
    auto it = seen.find(f.path);
    if (it == seen.end()) {
      struct stat fresh;
      if (stat(f.path.c_str(), &fresh) < 0)
        throw Error{kFailed, what + " " + f.path + ": " + strerror(errno)};
      it = seen.emplace(f.path, fresh).first;
    }
    const struct stat& st = it->second;
    if (!S_ISREG(st.st_mode) || st.st_ino != f.ino ||
        (exact && (uint64_t(st.st_size) != f.size || mtime_ns(st) != f.mtime_ns)))
      throw Error{kFailed, what + " " + f.path +
                               " changed on disk since the dump; the image does not fit"};
  };
  for (const auto& v : img.vmas)
    if (v.kind == kFile || v.kind == kSharedFile) same_file(v.file, true, "mapped file");
  for (const auto& f : img.fds) {
    if (f.kind == kFdRegular) same_file(f.file, false, "open file");
    if (f.kind != kFdDirectory && f.kind != kFdPath) continue;
    struct stat st;  // a directory's size and mtime change with its entries: the inode only
    if (stat(f.file.path.c_str(), &st) < 0)
      throw Error{kFailed, "open " + std::string(f.kind == kFdPath ? "O_PATH file " : "directory ") +
                               f.file.path + ": " + strerror(errno)};
    if (st.st_ino != f.file.ino || (f.kind == kFdDirectory && !S_ISDIR(st.st_mode)) ||
        !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
      throw Error{kFailed, "fd " + std::to_string(f.fd) + ": " + f.file.path +
                               " is another file than at the dump; the image does not fit"};
  }

  Vdso own;
  if (int e = own_vdso(&own); e) throw Error{kFailed, "/proc/self/maps: " + std::string(strerror(-e))};
  if (img.vdso_start) {
    if (!own.vdso_start || own.vvar_end != own.vdso_start ||
        own.vvar_end - own.vvar_start != img.vdso_start - img.vvar_start ||
        own.vdso_end - own.vdso_start != img.vdso_end - img.vdso_start ||
        hash(reinterpret_cast<const void*>(own.vdso_start), own.vdso_end - own.vdso_start) !=
            img.vdso_hash)
      throw Error{kFailed, "the image's vdso differs from this kernel's: it was dumped under "
                           "another kernel; not supported"};
  }
  arch::check_cpu();
  for (const auto& t : img.threads) arch::check_xstate(t.xsave);
}

std::string damaged_msg(const std::string& what, const ckpt::store::ReadReport& rep,
                        uint64_t base) {
  std::string m = "corrupted image: " + what + " fails its checksum in every retained epoch";
  for (size_t k = 0; k < rep.damaged.size() && k < 4; k++)  // addresses, or page indices
    m += (k ? ", " : " (page ") +
         (base ? hex(base + rep.damaged[k] * kPage) : std::to_string(rep.damaged[k]));
  if (!rep.damaged.empty()) m += rep.damaged.size() > 4 ? ", ...)" : ")";
  return m;
}

// Open the store and a Reader of its newest intact epoch, and read that epoch's metadata (the
// child reads the pages through the same Reader). The store picks the epoch here, once: when
// it holds a retained epoch to fall back to, it checks every page of the newest first and, if
// one is damaged and the retained epoch is intact, reads the retained epoch from then on.
void load(const std::string& path, Image* img, Loaded* ld) {
  using ckpt::store::Store;
  ckpt::store::Options o;
  o.no_modify = true;  // a restore never creates, formats or repairs a store
  o.mac_key = store_key();
  std::string why;
  o.why = &why;
  int e = Store::open(path, o, &ld->st);
  if (e == -ENOENT) throw Error{kUnavailable, path + ": no such store"};
  if (e == -ENODATA) throw Error{kUnavailable, why.empty() ? path + ": not a ckpt store" : why};
  if (e == -EBUSY)
    throw Error{kUnavailable, path + ": the store is open in another program (a `run` still "
                                     "checkpointing into it?)"};
  if (e) throw Error{kFailed, why.empty() ? path + ": " + strerror(-e) : why};
  phase("store open");
  Store& st = *ld->st;
  const std::string no_image = path + " holds no process image (no \"process\" region committed)";
  if (st.epoch() == 0) throw Error{kUnavailable, no_image};
  e = st.open_reader(0, &ld->rd);
  if (e == -ENOENT) throw Error{kUnavailable, no_image};
  if (e) throw Error{kFailed, path + ": choosing the epoch to restore: " + strerror(-e)};
  phase("epoch chosen");
  ckpt::store::Reader& rd = *ld->rd;
  ld->epoch = rd.epoch();
  ld->regions.clear();
  for (auto& r : rd.regions()) ld->regions[r.name] = r;
  auto pr = ld->regions.find(kProcessRegion);
  if (pr == ld->regions.end()) throw Error{kUnavailable, no_image};
  std::vector<uint8_t> meta(pr->second.size);
  ckpt::store::ReadReport rep;
  e = rd.read_region(pr->second.id, meta.data(), meta.size(), &rep);
  if (e == -EIO) throw Error{kFailed, damaged_msg("the process metadata", rep, 0)};
  if (e) throw Error{kFailed, path + ": reading the process metadata: " + strerror(-e)};
  phase("metadata read");
  *img = Image{};
  if (decode_process(meta, img, &why)) throw Error{kFailed, path + ": " + why};
}

namespace {

std::string id_list(const uint64_t* v, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; i++) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

}  // namespace

// The image's credentials against what the restore would give it (the caller's): another
// user's image, or one whose groups or capabilities differ, is refused unless
// --as-image-user. A 2.4 or older image records none and runs as the caller.
void check_creds(const Image& img, bool as_image_user) {
  if (!img.has_creds) return;
  std::string st;
  Creds me;
  if (proc::read_file("/proc/self/status", &st) || proc::creds_from_status(st, &me))
    throw Error{kFailed, "/proc/self/status: cannot read this process's credentials"};
  const Creds& c = img.creds;
  if (me == c) return;
  if (as_image_user) return;  // the child becomes the image's user, or fails saying why
  std::string what;
  if (!std::equal(c.uid, c.uid + 4, me.uid))
    what = "was made by uid " + id_list(c.uid, 4) + " (real, effective, saved, fs); you are " +
           id_list(me.uid, 4);
  else if (!std::equal(c.gid, c.gid + 4, me.gid))
    what = "was made with gid " + id_list(c.gid, 4) + "; you have " + id_list(me.gid, 4);
  else if (c.groups != me.groups)
    what = "was made with supplementary groups " +
           (c.groups.empty() ? std::string("(none)") : id_list(c.groups.data(), c.groups.size())) +
           "; you have " +
           (me.groups.empty() ? std::string("(none)") : id_list(me.groups.data(), me.groups.size()));
  else
    what = "was made with other capabilities (effective " + hex(c.cap_eff) + ", permitted " +
           hex(c.cap_prm) + ", bounding " + hex(c.cap_bnd) + ") than yours (" + hex(me.cap_eff) +
           ", " + hex(me.cap_prm) + ", " + hex(me.cap_bnd) + ")";
  throw Error{kRefused, "the image " + what +
                            "; --as-image-user restores it with the image's credentials (if "
                            "you may give them)"};
}

}  // namespace ckpt_tool::restore
