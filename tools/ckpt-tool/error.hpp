// SPDX-License-Identifier: MIT
// ckpt-tool's one error style. Code that fails throws Error: the exit status (cmd.hpp's Exit)
// and the message for the user. main() catches it once and prints "ckpt-tool SUBCOMMAND:
// message"; the few places that handle a failure rather than report it (run's supervisor, a
// restore falling back to an older epoch) catch it themselves. The small readers below the
// commands (proc.hpp, image.hpp), shared with the tests, return -errno like libckpt; their
// callers turn that into an Error.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

namespace ckpt_tool {

struct Error {
  Error(int c, std::string m, std::string n = {})
      : code(c), msg(std::move(m)), note(std::move(n)) {}
  int code;          // exit status
  std::string msg;   // what failed and why, one line
  std::string note;  // optional: a second line, printed after it with the same prefix
};

// strerror of a -errno.
inline std::string errstr(int neg) { return std::strerror(-neg); }

// "0x7f..." for addresses in messages.
inline std::string hex(uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

inline bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace ckpt_tool
