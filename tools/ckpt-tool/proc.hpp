// SPDX-License-Identifier: MIT
// ckpt-tool: small readers of /proc for dump and restore. Errors are -errno, never errno.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image.hpp"

namespace ckpt_tool::proc {

struct MapsLine {
  uint64_t start = 0, end = 0;
  std::string perms;  // "rwxp"
  uint64_t offset = 0;
  uint64_t ino = 0;
  std::string path;   // "" for anonymous, "[heap]", "/usr/lib/...", "... (deleted)"
  std::string vmflags;  // read_smaps only: the VmFlags line's value ("rd wr mr mw me ac hg")
};

// Parse /proc/<pid>/maps (pid 0: self). 0 or -errno.
int read_maps(int pid, std::vector<MapsLine>* out);
// The same from /proc/<pid>/smaps, with each mapping's VmFlags (the kernel walks every page
// table to print smaps: costlier than maps, which is what to use when the flags are not needed).
int read_smaps(int pid, std::vector<MapsLine>* out);

// The numeric fields of /proc/<pid>/stat from field 3 (state) on: (*out)[n - 3] is field n,
// the state letter reads as 0 (the command name before them may hold spaces and ')').
// 0 or -errno; -EINVAL when the file does not look like one.
int read_stat(int pid, std::vector<uint64_t>* out);

// Whole small file (procfs, sysfs) as a string. 0 or -errno.
int read_file(const std::string& path, std::string* out);

// readlink(2) into a string. 0 or -errno.
int read_link(const std::string& path, std::string* out);

// Every fd number open in /proc/<pid>/fd, ascending. 0 or -errno.
int list_fds(int pid, std::vector<int>* out);

// The value of a "Name:\tvalue" line of a /proc/PID/status text, "" when missing.
std::string status_line(const std::string& status, const char* name);
// The whitespace-separated numbers of a string, in `base`, up to the first that is not one.
std::vector<uint64_t> numbers(const std::string& v, int base);
// A task's credentials from its status text (Uid, Gid, Groups, Cap*). 0 or -EINVAL.
int creds_from_status(const std::string& status, image::Creds* out);

// Every tid in /proc/<pid>/task. 0 or -errno.
int list_tasks(int pid, std::vector<int>* out);

}  // namespace ckpt_tool::proc
