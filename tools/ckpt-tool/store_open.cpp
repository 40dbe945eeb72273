// SPDX-License-Identifier: MIT
// ckpt-tool: opening a store for inspection (inspect, verify), and sizes for people.
#include "store_open.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "error.hpp"
#include "key.hpp"

namespace ckpt_tool {

std::string human_bytes(unsigned long long b) {
  static const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  char buf[32];
  std::snprintf(buf, sizeof(buf), u ? "%.1f %s" : "%.0f %s", v, unit[u]);
  return buf;
}

std::unique_ptr<ckpt::store::Store> open_for_inspection(const std::string& path) {
  std::unique_ptr<ckpt::store::Store> out;
  ckpt::store::Options o;
  std::string why;
  o.no_modify = true;
  o.mac_key = store_key();
  o.why = &why;
  int r = ckpt::store::Store::open(path, o, &out);
  if (r == 0) return out;
  const char* hint = "";
  if (r == -EBUSY) hint = " (a program has it open; inspect it after it stops)";
  if (r == -EACCES || r == -EPERM) hint = " (permission denied)";
  // The store's reason usually names the error already; add it only when it doesn't.
  std::string msg = why.empty() ? path : why;
  const char* es = std::strerror(-r);
  if (msg.size() < std::strlen(es) || msg.compare(msg.size() - std::strlen(es), std::string::npos, es))
    msg += std::string(": ") + es;
  throw Error{(r == -EUCLEAN || r == -EIO || r == -EPROTO || r == -EKEYREJECTED) ? kFailed
                                                                               : kUnavailable,
              msg + hint};
}

}  // namespace ckpt_tool
