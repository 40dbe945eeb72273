// SPDX-License-Identifier: MIT
#include "key.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ckpt_tool {
namespace {

std::string g_key;

constexpr size_t kMinKey = 16, kMaxKey = 64;  // ckpt_config.key_len's range

void load_key(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw CLI::ValidationError("--key-file", path + ": " + std::strerror(errno));
  struct stat st {};
  char buf[kMaxKey + 1];
  ssize_t n = -1;
  int err = 0;
  if (fstat(fd, &st) < 0)
    err = errno;
  else if (S_ISREG(st.st_mode) && (n = read(fd, buf, sizeof buf)) < 0)
    err = errno;
  close(fd);
  if (err) throw CLI::ValidationError("--key-file", path + ": " + std::strerror(err));
  if (!S_ISREG(st.st_mode)) throw CLI::ValidationError("--key-file", path + ": not a regular file");
  // Like ssh with its private keys: a key others can read authenticates nothing.
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    throw CLI::ValidationError("--key-file", path + ": readable or writable by its group or by others (chmod 600 " + path + ")");
  if (size_t(n) < kMinKey || size_t(n) > kMaxKey)
    throw CLI::ValidationError("--key-file", path + ": a key is 16 to 64 bytes, this file holds " +
                                                 (size_t(n) > kMaxKey ? "more" : std::to_string(n)));
  g_key.assign(buf, size_t(n));
}

}  // namespace

void add_key_file_option(CLI::App* sub) {
  sub->add_option_function<std::string>("--key-file", load_key,
                                        "authenticate the store's commit records with the key in FILE "
                                        "(16 to 64 bytes, mode 0600; the store must have been made with it)")
      ->type_name("FILE");
}

const std::string& store_key() { return g_key; }

}  // namespace ckpt_tool
