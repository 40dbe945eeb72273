// libckpt store: from a path to a locked medium, choosing the writer.
//
//   missing path        -> created regular file (O_EXCL), a growing file store
//   /dev/daxX.Y         -> DAX (character device of the "dax" subsystem)
//   regular file        -> DAX when libpmem2 maps it with MAP_SYNC, else io_uring (O_DIRECT
//                          when the file system takes it)
//   block device        -> io_uring, O_DIRECT, fixed size
// The lock is a POSIX record lock (fcntl F_SETLK, F_WRLCK over the whole file) plus a
// process-wide registry of open stores:
//  - POSIX locks are dropped as the dying process closes its descriptors. flock and OFD locks
//    live as long as the open file description, which an io_uring instance keeps referenced
//    until its asynchronous teardown finishes (5-50 ms after SIGKILL, measured here): a
//    restart right after kill -9 then got EBUSY. They are also inherited by fork(), so a child
//    that outlives the program kept the store locked.
//  - POSIX locks don't conflict within one process, so the registry refuses a second open of
//    the same store (device and inode) in this process.
// Both work for regular files and device nodes alike.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>

#include "format.hpp"
#include "medium.hpp"

namespace ckpt::store {
namespace {

std::mutex g_open_mu;                                  // protects g_open
std::set<std::pair<dev_t, ino_t>> g_open;              // stores open in this process

// Takes the store lock on fd: 0, -EBUSY (held here or by another process), or -errno.
int lock_store(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  std::lock_guard<std::mutex> g(g_open_mu);
  if (g_open.count({st.st_dev, st.st_ino})) return -EBUSY;
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file, however it grows
  if (fcntl(fd, F_SETLK, &fl) != 0) return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
  g_open.insert({st.st_dev, st.st_ino});
  return 0;
}

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

  if (int e = lock_store(fd); e != 0) {
    info->created = false;  // not ours to remove
    return fail(e, e == -EBUSY ? "the store is already open (in this or another process)"
                               : "cannot lock the store");
  }
  // From here on, failures must drop the registration too.
  auto fail_locked = [&](int e, const char* what) {
    close_locked(fd);
    fd = -1;
    if (info->created) unlink(path.c_str());
    return err(why, e, path, what);
  };
  struct stat st;
  if (fstat(fd, &st) != 0) return fail_locked(-errno, "fstat");

  if (S_ISCHR(st.st_mode)) {
    if (!is_dax_chardev(st)) return fail_locked(-EINVAL, "a character device that is not device-DAX");
    if (opts.writer == Writer::kUring)
      return fail_locked(-EOPNOTSUPP, "device-DAX has no read/write path for io_uring");
    info->device = true;
    int r = dax_medium(fd, false, out, why);
    if (r) return fail_locked(r, why->c_str());
    return 0;
  }

  if (S_ISBLK(st.st_mode)) {
    if (opts.writer == Writer::kDax) return fail_locked(-EOPNOTSUPP, "a block device is not DAX here");
    info->device = true;
    uint64_t bytes = 0;
    if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) return fail_locked(-errno, "BLKGETSIZE64");
    int flags = fcntl(fd, F_GETFL);
    bool direct = flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
    int r = uring_medium(fd, false, direct, bytes & ~uint64_t(fmt::kBlockSize - 1), out, why);
    if (r) return fail_locked(r, why->c_str());
    return 0;
  }

  if (!S_ISREG(st.st_mode)) return fail_locked(-EINVAL, "neither a regular file nor a device");

  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0 && opts.no_modify) return fail_locked(-ENODATA, "an empty file holds no ckpt store");
  if (size == 0) {
    // A new (or empty) file store: give it its initial size before anything maps it.
    uint64_t want = std::max<uint64_t>(opts.create_size, kMinFileStore);
    want = (want + fmt::kBlockSize - 1) & ~uint64_t(fmt::kBlockSize - 1);
    if (fallocate(fd, 0, 0, static_cast<off_t>(want)) != 0) {
      int e = errno;
      if (e != EOPNOTSUPP || ftruncate(fd, static_cast<off_t>(want)) != 0)
        return fail_locked(e == EFBIG ? -ENOSPC : -e, "cannot size the new store");
    }
    size = want;
    if (info->created) fsync_parent(path);
  }

  if (opts.writer != Writer::kUring) {
    int r = dax_medium(fd, true, out, why);
    if (r == 0) return 0;
    if (r != -EOPNOTSUPP || opts.writer == Writer::kDax)
      return fail_locked(r, opts.writer == Writer::kDax ? "not on a DAX file system (no MAP_SYNC)"
                                                 : why->c_str());
  }
  int flags = fcntl(fd, F_GETFL);
  bool direct = flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
  int r = uring_medium(fd, true, direct, size & ~uint64_t(fmt::kBlockSize - 1), out, why);
  if (r) return fail_locked(r, why->c_str());
  return 0;
}

}  // namespace ckpt::store

namespace ckpt::store {

void close_locked(int fd) {
  struct stat st;
  if (fstat(fd, &st) == 0) {
    std::lock_guard<std::mutex> g(g_open_mu);
    g_open.erase({st.st_dev, st.st_ino});
  }
  close(fd);  // drops the POSIX lock
}

}  // namespace ckpt::store
