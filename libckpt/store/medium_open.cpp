// SPDX-License-Identifier: MIT
// libckpt store: from a path to a locked medium, choosing the writer.
//
//   missing path        -> created regular file (never replacing anything: link() of a stamped
//                          temporary file, see create_stamped), a growing file store
//   /dev/daxX.Y         -> DAX (character device of the "dax" subsystem)
//   regular file        -> DAX when libpmem2 maps it with MAP_SYNC, else io_uring (O_DIRECT
//                          when the file system takes it)
//   block device        -> io_uring, O_DIRECT, fixed size
//   Options::no_modify  -> opened O_RDONLY under a shared lock, read through the read-only
//                          medium (medium_read.cpp): no ring, no staging buffer, no libpmem2
// Symlinks in the path are followed, as by any open(): /dev/disk/by-id/... names are links.
// Creation never goes through one: O_CREAT | O_EXCL refuses a dangling link (EEXIST), so a
// missing store is created only where the path itself names nothing. MediumInfo::path is the
// path as given and MediumInfo::target what it resolves to, for messages.
//
// The lock is a POSIX record lock (fcntl F_SETLK over the whole file; F_WRLCK for a writer,
// F_RDLCK for a reader) plus a process-wide registry of open stores:
//  - POSIX locks are dropped as the dying process closes its descriptors. flock and OFD locks
//    live as long as the open file description, which an io_uring instance keeps referenced
//    until its asynchronous teardown finishes (5-50 ms after SIGKILL, measured here): a
//    restart right after kill -9 then got EBUSY. They are also inherited by fork(), so a child
//    that outlives the program kept the store locked.
//  - POSIX locks don't conflict within one process, so the registry refuses a second open of
//    the same store (device and inode) in this process unless both are readers. Closing any
//    descriptor of a file drops every POSIX lock the process holds on it, so when one of two
//    readers closes, the other's read lock is taken again.
// Both work for regular files and device nodes alike.
//
// Before a path that holds no store is formatted, libblkid probes it (regular files and block
// devices) for a file system, partition table, RAID member, LUKS header, swap area...; what it
// finds is MediumInfo::signature, and the store refuses to format over it without
// force_format; with force_format every signature libblkid finds is erased (wipe_signatures)
// before the store formats. Device-DAX is not probed: it has no read() path for libblkid, and it cannot
// hold a mounted file system or a partition table; the store formats one only when its header
// blocks are blank (replay.cpp).
#include <blkid/blkid.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "format.hpp"
#include "medium.hpp"
#include "store.hpp"

namespace ckpt::store {
namespace {

// A store open in this process: its descriptors (one for a writer, one per reader).
struct OpenStore {
  bool writer = false;
  std::vector<int> fds;
};
std::mutex g_open_mu;                                   // protects g_open
std::map<std::pair<dev_t, ino_t>, OpenStore> g_open;    // stores open in this process

// A child of fork() holds none of its parent's POSIX locks, so it starts with an empty
// registry: opening its parent's store then meets the parent's lock (-EBUSY), and any other
// store opens. g_open_mu is held across fork() so that the child never inherits it locked.
void atfork_prepare() { g_open_mu.lock(); }
void atfork_parent() { g_open_mu.unlock(); }
void atfork_child() {
  g_open.clear();
  g_open_mu.unlock();
}
const int g_atfork = pthread_atfork(atfork_prepare, atfork_parent, atfork_child);

// Takes the store lock on fd (shared for a reader): 0, -EBUSY (held here or by another
// process), or -errno.
int lock_store(int fd, bool reader) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  std::lock_guard<std::mutex> g(g_open_mu);
  auto it = g_open.find({st.st_dev, st.st_ino});
  if (it != g_open.end() && (!reader || it->second.writer)) return -EBUSY;
  struct flock fl = {};
  fl.l_type = reader ? F_RDLCK : F_WRLCK;
  fl.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file, however it grows
  if (fcntl(fd, F_SETLK, &fl) != 0) return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
  OpenStore& o = g_open[{st.st_dev, st.st_ino}];
  o.writer = !reader;
  o.fds.push_back(fd);
  return 0;
}

// What libblkid recognises on fd ("an ext4 file system", "a dos partition table"), "" if
// nothing. Reads through fd itself (before O_DIRECT is set on it), so it probes what was opened.
std::string probe_signature(int fd) {
  blkid_probe pr = blkid_new_probe();
  if (!pr) return "";
  std::string found;
  if (blkid_probe_set_device(pr, fd, 0, 0) == 0) {
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
    blkid_probe_enable_partitions(pr, 1);
    blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
    int r = blkid_do_safeprobe(pr);
    const char* v = nullptr;
    if (r == 0) {
      if (blkid_probe_lookup_value(pr, "TYPE", &v, nullptr) == 0 && v) {
        const char* usage = nullptr;
        blkid_probe_lookup_value(pr, "USAGE", &usage, nullptr);
        const char* what = "signature";
        if (usage && !strcmp(usage, "filesystem")) what = "file system";
        if (usage && !strcmp(usage, "crypto")) what = "encrypted volume";
        if (usage && !strcmp(usage, "raid")) what = "RAID member";
        found = std::string("a \"") + v + "\" " + what;
      } else if (blkid_probe_lookup_value(pr, "PTTYPE", &v, nullptr) == 0 && v) {
        found = std::string("a \"") + v + "\" partition table";
      } else {
        found = "a signature";
      }
    } else if (r == -2) {
      found = "several signatures (libblkid: ambiguous)";
    }
  }
  blkid_free_probe(pr);
  return found;
}

// Erases every signature libblkid finds on fd — file systems, partition tables (a GPT's backup
// header at the end too), RAID members, LUKS headers, swap areas — as wipefs(8) --all does, and
// says which in *wiped ("ext4, dos"). Called before a forced format: the store's format writes
// only its first blocks, and a signature elsewhere (a btrfs superblock at 64 KiB, a GPT backup
// header or an md superblock at the end) would keep claiming the device for blkid, udev and
// mount, which would then corrupt the store. 0 or -errno.
int wipe_signatures(int fd, std::string* wiped) {
  blkid_probe pr = blkid_new_probe();
  if (!pr) return -ENOMEM;
  int rc = 0;
  if (blkid_probe_set_device(pr, fd, 0, 0) != 0) {
    rc = -EIO;
  } else {
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_TYPE |
                                              BLKID_SUBLKS_BADCSUM);
    blkid_probe_enable_partitions(pr, 1);
    blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
    // Each wipe steps the probe back, so the same chain is probed again for what was under it;
    // bounded in case a signature survives its wipe.
    for (int i = 0; i < 64 && blkid_do_probe(pr) == 0; i++) {
      const char* t = nullptr;
      if (blkid_probe_lookup_value(pr, "TYPE", &t, nullptr) != 0)
        blkid_probe_lookup_value(pr, "PTTYPE", &t, nullptr);
      const std::string type = t ? t : "?";
      errno = 0;
      if (blkid_do_wipe(pr, 0) != 0) {
        rc = errno ? -errno : -EIO;
        break;
      }
      if (wiped->find(type) == std::string::npos) *wiped += (wiped->empty() ? "" : ", ") + type;
    }
  }
  blkid_free_probe(pr);
  return rc;
}

// Whether fd's first two blocks hold the store's superblock magic (a store, maybe damaged:
// the store decides). Reads with pread before O_DIRECT is set.
bool has_store_magic(int fd) {
  for (int i = 0; i < 2; i++) {
    uint64_t magic = 0;
    if (pread(fd, &magic, sizeof(magic), off_t(i) * off_t(fmt::kBlockSize)) == sizeof(magic) &&
        magic == fmt::kSuperMagic)
      return true;
  }
  return false;
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

// Creates `path` (never through a dangling symlink: -1 with errno EEXIST) holding a stamp from
// the moment it appears: the superblock magic and major version with a bad checksum, which the
// store takes for a format cut short (replay.cpp) and formats again. So a program killed while
// it creates its store finds, at its next start, a store to format rather than a file that
// holds none (which it would need CKPT_CFG_CREATE for). The file is made under a hidden
// temporary name in the same directory, stamped, then linked to `path` (link() fails with
// EEXIST rather than replacing anything) and the temporary name removed. Where the file system
// has no hard links, `path` is created O_EXCL and stamped at once. -1 with errno on failure.
int create_stamped(const std::string& path) {
  fmt::SuperBlock sb{};
  sb.magic = fmt::kSuperMagic;
  sb.major = fmt::kFormatMajor;
  auto stamp = [&](int fd) {
    return pwrite(fd, &sb, sizeof(sb), 0) == ssize_t(sizeof(sb)) ? 0 : -1;
  };
  size_t slash = path.rfind('/');
  std::string tmp = (slash == std::string::npos ? "" : path.substr(0, slash + 1)) + ".ckpt-new-XXXXXX";
  int t = mkostemp(tmp.data(), O_CLOEXEC);  // mode 0600
  if (t >= 0) {
    if (stamp(t) == 0 && link(tmp.c_str(), path.c_str()) == 0) {
      unlink(tmp.c_str());
      return t;
    }
    const int e = errno;
    unlink(tmp.c_str());
    close(t);
    if (e != EPERM && e != EOPNOTSUPP && e != EMLINK) {
      errno = e;
      return -1;
    }
  }
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0 && stamp(fd) != 0) {
    const int e = errno;
    close(fd);
    unlink(path.c_str());
    errno = e;
    return -1;
  }
  return fd;
}

int err(std::string* why, int e, const std::string& path, const char* what) {
  *why = path + ": " + what + ": " + strerror(-e);
  return e;
}

}  // namespace

int reserve_file(int fd, uint64_t off, uint64_t len, bool or_truncate) {
  int rc;
  do rc = fallocate(fd, 0, static_cast<off_t>(off), static_cast<off_t>(len));
  while (rc != 0 && errno == EINTR);
  if (rc == 0) return 0;
  const int e = errno;
  if (e == EOPNOTSUPP && or_truncate)
    return ftruncate(fd, static_cast<off_t>(off + len)) == 0 ? 0 : -errno;
  return e == EFBIG ? -ENOSPC : -e;
}

namespace {

// *what = text; returns e.
int said(std::string* what, int e, const char* text) {
  *what = text;
  return e;
}

// The three kinds of medium open_medium opens, fd locked: 0 with *out set, or -errno with
// *what saying why (open_medium then closes and unregisters fd, and names the path).
int open_dax_device(int fd, const struct stat& st, const Options& opts,
                    std::unique_ptr<Medium>* out, MediumInfo* info, std::string* why,
                    std::string* what) {
  if (!is_dax_chardev(st))
    return said(what, -EINVAL, "a character device that is not device-DAX");
  if (opts.writer == Writer::kUring)
    return said(what, -EOPNOTSUPP, "device-DAX has no read/write path for io_uring");
  info->device = true;
  int r = opts.no_modify ? read_medium(fd, st, 0, out, why) : dax_medium(fd, false, out, why);
  if (r) *what = *why;
  return r;
}

int open_block_device(int fd, const struct stat& st, const Options& opts,
                      std::unique_ptr<Medium>* out, MediumInfo* info, std::string* why,
                      std::string* what) {
  if (opts.writer == Writer::kDax) return said(what, -EOPNOTSUPP, "a block device is not DAX here");
  info->device = true;
  uint64_t bytes = 0;
  if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) return said(what, -errno, "BLKGETSIZE64");
  int r;
  if (opts.no_modify) {
    r = read_medium(fd, st, bytes, out, why);
  } else {
    if (!has_store_magic(fd)) info->signature = probe_signature(fd);
    if (opts.force_format) {
      if (int e = wipe_signatures(fd, &info->wiped); e != 0)
        return said(what, e, "cannot erase the signatures libblkid found");
    }
    int flags = fcntl(fd, F_GETFL);
    bool direct = flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
    r = uring_medium(fd, false, direct, bytes & ~uint64_t(fmt::kBlockSize - 1), out, why);
  }
  if (r) *what = *why;
  return r;
}

int open_file(int fd, const struct stat& st, const std::string& path, const Options& opts,
              std::unique_ptr<Medium>* out, MediumInfo* info, std::string* why,
              std::string* what) {
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (opts.no_modify) {
    if (size == 0) return said(what, -ENODATA, "an empty file holds no ckpt store");
    int r = read_medium(fd, st, size, out, why);
    if (r) *what = *why;
    return r;
  }
  if (size != 0 && !has_store_magic(fd)) info->signature = probe_signature(fd);
  if (size != 0 && opts.force_format) {
    if (int e = wipe_signatures(fd, &info->wiped); e != 0)
      return said(what, e, "cannot erase the signatures libblkid found");
  }
  if (size == 0 || info->created) {
    // An empty file holds nothing to lose, but only a new one (or an explicit create) becomes
    // a store: an empty file someone made is theirs.
    if (!info->created && !opts.create && !opts.force_format)
      return said(what, -ENODATA,
                  "an empty file, not a ckpt store: refusing to make it one unless creation is "
                  "asked for (CKPT_CFG_CREATE, --create)");
    // A new (or empty) file store: give it its initial size before anything maps it.
    uint64_t want = std::max<uint64_t>(opts.create_size, kMinFileStore);
    want = (want + fmt::kBlockSize - 1) & ~uint64_t(fmt::kBlockSize - 1);
    if (int e = reserve_file(fd, 0, want, true)) return said(what, e, "cannot size the new store");
    size = want;
    if (info->created) fsync_parent(path);
  }
  if (opts.writer != Writer::kUring) {
    int r = dax_medium(fd, true, out, why);
    if (r == 0) return 0;
    if (r != -EOPNOTSUPP || opts.writer == Writer::kDax) {
      *what = opts.writer == Writer::kDax ? "not on a DAX file system (no MAP_SYNC)" : *why;
      return r;
    }
  }
  int flags = fcntl(fd, F_GETFL);
  bool direct = flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
  int r = uring_medium(fd, true, direct, size & ~uint64_t(fmt::kBlockSize - 1), out, why);
  if (r) *what = *why;
  return r;
}

}  // namespace

int open_medium(const std::string& path, const Options& opts, std::unique_ptr<Medium>* out,
                MediumInfo* info, std::string* why) {
  info->path = path;
  info->created = false;
  info->device = false;
  info->signature.clear();
  info->wiped.clear();
  if (path.empty()) return err(why, -EINVAL, "(empty)", "no store path");
  const bool ro = opts.no_modify;

  int fd = open(path.c_str(), (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && !ro) {
    fd = create_stamped(path);
    if (fd >= 0)
      info->created = true;
    else if (errno == EEXIST)  // lost a creation race, or a dangling symlink (never created through)
      fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  }
  if (fd < 0) {
    const int e = errno;
    return err(why, -e, path, ro && e == ENOENT ? "no such store" : "cannot open the store");
  }
  {
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n > 0) info->target.assign(target, size_t(n));
  }

  auto fail = [&](int e, const char* what) {
    close(fd);
    if (info->created) unlink(path.c_str());
    return err(why, e, path, what);
  };

  if (int e = lock_store(fd, ro); e != 0) {
    info->created = false;  // not ours to remove
    return fail(e, e == -EBUSY ? (ro ? "the store is open for writing (in this or another process)"
                                     : "the store is already open (in this or another process)")
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
  std::string what;
  int r;
  if (S_ISCHR(st.st_mode))
    r = open_dax_device(fd, st, opts, out, info, why, &what);
  else if (S_ISBLK(st.st_mode))
    r = open_block_device(fd, st, opts, out, info, why, &what);
  else if (S_ISREG(st.st_mode))
    r = open_file(fd, st, path, opts, out, info, why, &what);
  else
    r = said(&what, -EINVAL, "neither a regular file nor a device");
  if (r) return fail_locked(r, what.c_str());
  return 0;
}

}  // namespace ckpt::store

namespace ckpt::store {

void close_locked(int fd) {
  struct stat st;
  std::lock_guard<std::mutex> g(g_open_mu);
  if (fstat(fd, &st) != 0) {
    close(fd);
    return;
  }
  auto it = g_open.find({st.st_dev, st.st_ino});
  close(fd);  // drops every POSIX lock this process holds on the file
  if (it == g_open.end()) return;
  auto& fds = it->second.fds;
  fds.erase(std::remove(fds.begin(), fds.end(), fd), fds.end());
  if (fds.empty()) {
    g_open.erase(it);
    return;
  }
  // Another reader here still has it open: take its shared lock again.
  struct flock fl = {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  (void)fcntl(fds.front(), F_SETLK, &fl);
}

}  // namespace ckpt::store
