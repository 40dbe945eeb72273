// SPDX-License-Identifier: MIT
// ckpt-tool dump, capture: the fd table (/proc/PID/fd, fdinfo). Each descriptor goes to the
// first kind in kKinds that takes it; one no kind takes is refused by name. A new kind of
// descriptor is one more FdKind (and its restore in become_fds.cpp).
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "dump.hpp"
#include "refusals.hpp"

namespace ckpt_tool::dump {

image::FileId file_id(const std::string& path, uint64_t expect_ino, const std::string& what,
                      KnownFiles* known) {
  if (expect_ino)
    if (auto it = known->find({path, expect_ino}); it != known->end()) return it->second;
  struct stat st;
  if (stat(path.c_str(), &st) < 0)
    throw Error{kFailed, what + " " + path + ": " + strerror(errno)};
  if (!S_ISREG(st.st_mode)) throw Error{kFailed, what + " " + path + " is not a regular file"};
  if (expect_ino && st.st_ino != expect_ino)
    throw Error{kFailed, what + " " + path +
                             " is not the file the process has (another mount namespace?)"};
  image::FileId f{path, uint64_t(st.st_ino), uint64_t(st.st_size),
                  uint64_t(st.st_mtim.tv_sec) * 1000000000ull + uint64_t(st.st_mtim.tv_nsec)};
  (*known)[{path, f.ino}] = f;
  return f;
}

namespace {

using namespace image;

// One descriptor of the process as /proc shows it.
struct FdSource {
  int n;              // its number
  std::string link;   // readlink of /proc/PID/fd/N
  struct stat st;     // stat of /proc/PID/fd/N (the file it opens)
  std::string info;   // /proc/PID/fdinfo/N
};

// A kind of descriptor: if `s` is one, fills f.kind and what restore needs, and returns true.
using FdKind = bool (*)(const FdSource& s, Fd* f, KnownFiles* known);

// A regular file, reopened by path at restore (and checked to be the same file).
bool regular_file(const FdSource& s, Fd* f, KnownFiles* known) {
  if (!S_ISREG(s.st.st_mode) || s.link.empty() || s.link[0] != '/' ||
      ends_with(s.link, " (deleted)"))
    return false;
  f->kind = kFdRegular;
  f->file = file_id(s.link, s.st.st_ino, "open file", known);
  return true;
}

// The same file at `s.link` now, for a descriptor whose file restore checks by inode only.
FileId by_inode(const FdSource& s, const char* what) {
  struct stat now;
  if (stat(s.link.c_str(), &now) < 0 || now.st_ino != s.st.st_ino || now.st_dev != s.st.st_dev)
    throw Error{kFailed, std::string(what) + " " + s.link +
                             " is not the file the process has (another mount namespace?)"};
  return FileId{s.link, uint64_t(s.st.st_ino), 0, 0};
}

bool absolute_path(const FdSource& s) {
  return !s.link.empty() && s.link[0] == '/' && !ends_with(s.link, " (deleted)");
}

// An O_PATH descriptor of a regular file or a directory (a handle for openat, fstat, fchdir,
// ...: no offset, no I/O): reopened by path with its flags, checked to be the same inode.
bool path_only(const FdSource& s, Fd* f, KnownFiles*) {
  if (!(f->flags & O_PATH) || !(S_ISREG(s.st.st_mode) || S_ISDIR(s.st.st_mode)) ||
      !absolute_path(s))
    return false;
  f->kind = kFdPath;
  f->pos = 0;
  f->file = by_inode(s, "O_PATH descriptor of");
  return true;
}

// A directory (openat, getdents): reopened by path, checked to be the same inode, at its
// position (the file system's cookie for the next entry, as lseek takes it).
bool directory(const FdSource& s, Fd* f, KnownFiles*) {
  if (!S_ISDIR(s.st.st_mode) || !absolute_path(s)) return false;
  f->kind = kFdDirectory;
  f->file = by_inode(s, "open directory");
  return true;
}

// A character device that holds no state: reopened by path.
bool stateless_device(const FdSource& s, Fd* f, KnownFiles*) {
  static const char* kDevices[] = {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"};
  bool device = false;
  for (const char* d : kDevices) device |= s.link == d;
  if (!S_ISCHR(s.st.st_mode) || !device) return false;
  f->kind = kFdDevice;
  f->file = FileId{s.link, 0, 0, 0};
  return true;
}

// fds 0-2 on a tty, pipe or socket: the restorer's own stdio.
bool inherited_stdio(const FdSource& s, Fd* f, KnownFiles*) {
  if (s.n > 2 || S_ISREG(s.st.st_mode) || S_ISDIR(s.st.st_mode)) return false;
  f->kind = kFdInherit;
  return true;
}

constexpr FdKind kKinds[] = {path_only, regular_file, directory, stateless_device,
                             inherited_stdio};

}  // namespace

void capture_fds(int pid, Image* img, KnownFiles* known) {
  std::string base = "/proc/" + std::to_string(pid);
  std::vector<int> fds;
  if (int e = proc::list_fds(pid, &fds); e) throw Error{kFailed, "fd list: " + errstr(e)};
  for (int n : fds) {
    FdSource s;
    s.n = n;
    std::string fdp = base + "/fd/" + std::to_string(n);
    if (proc::read_link(fdp, &s.link)) continue;  // closed meanwhile
    if (stat(fdp.c_str(), &s.st) < 0)
      throw Error{kFailed, "fd " + std::to_string(n) + ": " + strerror(errno)};
    if (int e = proc::read_file(base + "/fdinfo/" + std::to_string(n), &s.info); e)
      throw Error{kFailed, "fdinfo: " + errstr(e)};
    refuse::if_locked(n, s.link, s.info);
    Fd f;
    f.fd = uint64_t(n);
    size_t p = s.info.find("pos:");
    if (p != std::string::npos) f.pos = strtoull(s.info.c_str() + p + 4, nullptr, 10);
    p = s.info.find("flags:");
    if (p != std::string::npos) f.flags = strtoull(s.info.c_str() + p + 6, nullptr, 8);
    f.cloexec = f.flags & O_CLOEXEC;
    f.flags &= ~uint64_t(O_CLOEXEC);
    bool taken = false;
    for (FdKind kind : kKinds)
      if ((taken = kind(s, &f, known))) break;
    if (!taken) refuse::fd_kind(n, s.link);
    img->fds.push_back(std::move(f));
  }
}

}  // namespace ckpt_tool::dump
