// SPDX-License-Identifier: MIT
// ckpt-tool: /proc readers (proc.hpp).
#include "proc.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

namespace ckpt_tool::proc {
namespace {

std::string base(int pid) { return pid ? "/proc/" + std::to_string(pid) : std::string("/proc/self"); }

int list_dir_numbers(const std::string& dir, std::vector<int>* out) {
  DIR* d = opendir(dir.c_str());
  if (!d) return -errno;
  out->clear();
  while (dirent* e = readdir(d)) {
    char* end;
    long v = strtol(e->d_name, &end, 10);
    if (*e->d_name && !*end && v >= 0) out->push_back(int(v));
  }
  closedir(d);
  std::sort(out->begin(), out->end());
  return 0;
}

}  // namespace

int read_file(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  out->clear();
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if (n == 0) break;
    out->append(buf, size_t(n));
  }
  close(fd);
  return 0;
}

int read_stat(int pid, std::vector<uint64_t>* out) {
  std::string st;
  if (int e = read_file(base(pid) + "/stat", &st); e) return e;
  size_t rp = st.rfind(')');
  if (rp == std::string::npos || rp + 2 > st.size()) return -EINVAL;
  out->clear();
  const char* p = st.c_str() + rp + 2;
  while (*p) {
    char* end;
    out->push_back(strtoull(p, &end, 10));
    if (end == p) {  // the state letter
      while (*p && *p != ' ') p++;
    } else {
      p = end;
    }
    while (*p == ' ' || *p == '\n') p++;
  }
  return 0;
}

int read_link(const std::string& path, std::string* out) {
  char buf[8192];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
  if (n < 0) return -errno;
  if (size_t(n) == sizeof(buf)) return -ENAMETOOLONG;
  out->assign(buf, size_t(n));
  return 0;
}

namespace {

// A maps line ("start-end perms offset dev inode path") rather than an smaps field ("Rss: 4 kB").
bool is_maps_line(const std::string& line) {
  size_t sp = line.find(' '), dash = line.find('-');
  if (sp == std::string::npos || dash == std::string::npos || dash > sp || dash == 0) return false;
  for (size_t i = 0; i < sp; i++)
    if (i != dash && !isxdigit(static_cast<unsigned char>(line[i]))) return false;
  return true;
}

int parse_maps(const std::string& text, std::vector<MapsLine>* out) {
  out->clear();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (!is_maps_line(line)) {
      if (out->empty()) return -EINVAL;
      if (line.rfind("VmFlags:", 0) == 0) {
        size_t v = line.find_first_not_of(' ', 8);
        out->back().vmflags = v == std::string::npos ? "" : line.substr(v);
      }
      continue;
    }
    MapsLine m;
    char perms[8] = {};
    unsigned maj, min;
    int used = 0;
    if (sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 " %n",
               &m.start, &m.end, perms, &m.offset, &maj, &min, &m.ino, &used) < 7)
      return -EINVAL;
    m.perms = perms;
    m.path = line.substr(size_t(used));
    out->push_back(std::move(m));
  }
  return 0;
}

}  // namespace

int read_maps(int pid, std::vector<MapsLine>* out) {
  std::string text;
  if (int e = read_file(base(pid) + "/maps", &text); e) return e;
  return parse_maps(text, out);
}

int read_smaps(int pid, std::vector<MapsLine>* out) {
  std::string text;
  if (int e = read_file(base(pid) + "/smaps", &text); e) return e;
  return parse_maps(text, out);
}

int list_fds(int pid, std::vector<int>* out) { return list_dir_numbers(base(pid) + "/fd", out); }

std::string status_line(const std::string& status, const char* name) {
  const std::string key = std::string("\n") + name + ":\t";
  size_t p = status.find(key);
  if (p == std::string::npos) return "";
  p += key.size();
  return status.substr(p, status.find('\n', p) - p);
}

std::vector<uint64_t> numbers(const std::string& v, int base) {
  std::vector<uint64_t> out;
  const char* p = v.c_str();
  for (;;) {
    char* end;
    uint64_t n = strtoull(p, &end, base);
    if (end == p) return out;
    out.push_back(n);
    p = end;
  }
}

int creds_from_status(const std::string& st, image::Creds* c) {
  *c = image::Creds{};
  std::vector<uint64_t> u = numbers(status_line(st, "Uid"), 10), g = numbers(status_line(st, "Gid"), 10);
  if (u.size() != 4 || g.size() != 4) return -EINVAL;
  std::copy(u.begin(), u.end(), c->uid);
  std::copy(g.begin(), g.end(), c->gid);
  c->groups = numbers(status_line(st, "Groups"), 10);
  std::sort(c->groups.begin(), c->groups.end());
  uint64_t* caps[] = {&c->cap_inh, &c->cap_prm, &c->cap_eff, &c->cap_bnd, &c->cap_amb};
  const char* names[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
  for (int i = 0; i < 5; i++) {
    std::vector<uint64_t> v = numbers(status_line(st, names[i]), 16);
    if (v.size() != 1) return -EINVAL;
    *caps[i] = v[0];
  }
  return 0;
}

int list_tasks(int pid, std::vector<int>* out) { return list_dir_numbers(base(pid) + "/task", out); }

}  // namespace ckpt_tool::proc
