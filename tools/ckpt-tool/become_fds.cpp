// SPDX-License-Identifier: MIT
// ckpt-tool restore, become (restore.hpp): the child's fd table, reopened by path at the image's
// numbers. A new kind of descriptor (capture_fds.cpp) is restored here.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "proc.hpp"
#include "restore.hpp"

namespace ckpt_tool::restore {
namespace {

using namespace image;

int move_high(int fd, int floor) {
  int n = fcntl(fd, F_DUPFD, floor);
  if (n < 0) throw Error{kFailed, std::string("F_DUPFD: ") + strerror(errno)};
  close(fd);
  return n;
}

}  // namespace

void set_fds(const Image& img, std::vector<int*> helpers) {
  int floor = 3;
  for (const auto& f : img.fds) floor = std::max(floor, int(f.fd) + 1);
  for (int* h : helpers) *h = move_high(*h, floor);
  std::vector<bool> keep(size_t(floor) + 1, false);
  for (const auto& f : img.fds) {
    keep[f.fd] = true;
    if (f.kind == kFdInherit) continue;
    int fl = int(f.flags) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);
    int fd = open(f.file.path.c_str(), fl | O_CLOEXEC);
    if (fd < 0) throw Error{kFailed, "reopening fd " + std::to_string(f.fd) + " (" + f.file.path + "): " + strerror(errno)};
    if ((f.kind == kFdRegular || f.kind == kFdDirectory) && lseek(fd, off_t(f.pos), SEEK_SET) < 0)
      throw Error{kFailed, "seeking fd " + std::to_string(f.fd) + ": " + strerror(errno)};
    if (fd != int(f.fd)) {
      if (dup2(fd, int(f.fd)) < 0) throw Error{kFailed, std::string("dup2: ") + strerror(errno)};
      close(fd);
    }
    if (fcntl(int(f.fd), F_SETFD, f.cloexec ? FD_CLOEXEC : 0) < 0)
      throw Error{kFailed, std::string("F_SETFD: ") + strerror(errno)};
  }
  // Everything else the restorer had open goes, but our helpers.
  std::vector<int> open_fds;
  proc::list_fds(0, &open_fds);
  for (int fd : open_fds) {
    bool helper = false;
    for (int* h : helpers) helper |= *h == fd;
    if (helper || (fd < floor && keep[size_t(fd)])) continue;
    close(fd);
  }
}

}  // namespace ckpt_tool::restore
