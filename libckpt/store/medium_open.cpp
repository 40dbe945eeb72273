// libckpt store: from a path to a locked medium, choosing the writer.
//
//   missing path        -> created regular file (O_EXCL), a growing file store
//   /dev/daxX.Y         -> DAX (character device of the "dax" subsystem)
//   regular file        -> DAX when libpmem2 maps it with MAP_SYNC, else io_uring (O_DIRECT
//                          when the file system takes it)
//   block device        -> io_uring, O_DIRECT, fixed size
// The lock is flock(LOCK_EX | LOCK_NB) on the descriptor the medium keeps: it is released
// when the store closes or the process dies, and works for files and device nodes alike.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "format.hpp"
#include "medium.hpp"

namespace ckpt::store {
namespace {

constexpr uint64_t kMinFileStore = 1ull << 20;  // a new file store starts at 1 MiB

bool is_dax_chardev(const struct stat& st) {
  char link[PATH_MAX], path[128];
  snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/subsystem", major(st.st_rdev),
           minor(st.st_rdev));
  ssize_t n = readlink(path, link, sizeof(link) - 1);
  if (n <= 0) return false;
  link[n] = 0;
  const char* base = strrchr(link, '/');
  return strcmp(base ? base + 1 : link, "dax") == 0;
}

void fsync_parent(const std::string& path) {
  std::string dir = path;
  size_t slash = dir.rfind('/');
  dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : dir.substr(0, slash));
  int d = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    fsync(d);
    close(d);
  }
}

int err(std::string* why, int e, const std::string& path, const char* what) {
  *why = path + ": " + what + ": " + strerror(-e);
  return e;
}

}  // namespace

int open_medium(const std::string& path, const Options& opts, std::unique_ptr<Medium>* out,
                MediumInfo* info, std::string* why) {
  info->path = path;
  info->created = false;
  info->device = false;
  if (path.empty()) return err(why, -EINVAL, "(empty)", "no store path");

  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
      info->created = true;
    else if (errno == EEXIST)  // lost a creation race: open what the winner made
      fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  }
  if (fd < 0) return err(why, -errno, path, "cannot open the store");

  auto fail = [&](int e, const char* what) {
    close(fd);
    if (info->created) unlink(path.c_str());
    return err(why, e, path, what);
  };

  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
    info->created = false;  // not ours to remove
    return fail(e, "the store is open in another process");
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return fail(-errno, "fstat");

  if (S_ISCHR(st.st_mode)) {
    if (!is_dax_chardev(st)) return fail(-EINVAL, "a character device that is not device-DAX");
    if (opts.writer == Writer::kUring)
      return fail(-EOPNOTSUPP, "device-DAX has no read/write path for io_uring");
    info->device = true;
    int r = dax_medium(fd, false, out, why);
    if (r) return fail(r, why->c_str());
    return 0;
  }

  if (S_ISBLK(st.st_mode)) {
    if (opts.writer == Writer::kDax) return fail(-EOPNOTSUPP, "a block device is not DAX here");
    info->device = true;
    uint64_t bytes = 0;
    if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) return fail(-errno, "BLKGETSIZE64");
    int flags = fcntl(fd, F_GETFL);
    bool direct = flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
    int r = uring_medium(fd, false, direct, bytes & ~uint64_t(fmt::kBlockSize - 1), out, why);
    if (r) return fail(r, why->c_str());
    return 0;
  }

  if (!S_ISREG(st.st_mode)) return fail(-EINVAL, "neither a regular file nor a device");

  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    // A new (or empty) file store: give it its initial size before anything maps it.
    uint64_t want = std::max<uint64_t>(opts.create_size, kMinFileStore);
    want = (want + fmt::kBlockSize - 1) & ~uint64_t(fmt::kBlockSize - 1);
    if (fallocate(fd, 0, 0, static_cast<off_t>(want)) != 0) {
      int e = errno;
      if (e != EOPNOTSUPP || ftruncate(fd, static_cast<off_t>(want)) != 0)
        return fail(e == EFBIG ? -ENOSPC : -e, "cannot size the new store");
    }
    size = want;
    if (info->created) fsync_parent(path);
  }

  if (opts.writer != Writer::kUring) {
    int r = dax_medium(fd, true, out, why);
    if (r == 0) return 0;
    if (r != -EOPNOTSUPP || opts.writer == Writer::kDax)
      return fail(r, opts.writer == Writer::kDax ? "not on a DAX file system (no MAP_SYNC)"
                                                 : why->c_str());
  }
  int flags = fcntl(fd, F_GETFL);
  bool direct = flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
  int r = uring_medium(fd, true, direct, size & ~uint64_t(fmt::kBlockSize - 1), out, why);
  if (r) return fail(r, why->c_str());
  return 0;
}

}  // namespace ckpt::store
