// SPDX-License-Identifier: MIT
// libckpt store: the read-only medium, for opens with Options::no_modify (ckpt-tool restore,
// inspect, verify). It sets up nothing a reader does not use: no io_uring ring, no staging
// buffer, no libpmem2. A regular file or a block device is read with pread(); device-DAX (which
// has no read path) and a file on a DAX file system are mapped read-only and copied from, as the
// DAX writer's reads are. Every write, grow and barrier is -EROFS.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "format.hpp"
#include "guarded_copy.hpp"
#include "medium.hpp"

namespace ckpt::store {
namespace {

class ReadMedium final : public Medium {
 public:
  ReadMedium(int fd, bool growable, uint64_t size) : fd_(fd), growable_(growable), size_(size) {}
  ~ReadMedium() override {
    if (base_) munmap(base_, size_);
    if (fd_ >= 0) close_locked(fd_);
  }
  void disown_fd() { fd_ = -1; }

  // Map [0, size_) read-only; with sync, MAP_SYNC (which only a DAX file system accepts: it
  // tells which writer writes this file). -EOPNOTSUPP when the file system is not DAX.
  int map(bool sync) {
    void* a = mmap(nullptr, size_, PROT_READ, sync ? MAP_SHARED_VALIDATE | MAP_SYNC : MAP_SHARED,
                   fd_, 0);
    if (a == MAP_FAILED) return -errno;
    base_ = static_cast<uint8_t*>(a);
    guard_sigbus();  // a page that raises SIGBUS reads as -EIO (guarded_copy.hpp)
    return 0;
  }

  // The writer that writes this medium when it is opened for writing: what inspect reports.
  const char* name() const override { return base_ ? "dax" : "io_uring"; }
  uint64_t size() const override { return size_; }
  bool growable() const override { return growable_; }
  size_t tear_unit() const override { return base_ ? 8 : 512; }
  const uint8_t* mapping() const override { return base_; }
  int grow(uint64_t) override { return -EROFS; }
  int write(uint64_t, const void*, size_t) override { return -EROFS; }
  int barrier() override { return -EROFS; }

  int read(uint64_t off, void* dst, size_t len) override {
    if (off > size_ || len > size_ - off) return -EIO;
    if (base_) return guarded_copy(dst, base_ + off, len);  // SIGBUS: -EIO (guarded_copy.hpp)
    auto* d = static_cast<uint8_t*>(dst);
    while (len > 0) {
      ssize_t n = pread(fd_, d, len, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -errno;
      if (n == 0) return -EIO;  // the file or device ended
      d += n;
      off += static_cast<uint64_t>(n);
      len -= static_cast<size_t>(n);
    }
    return 0;
  }

 private:
  int fd_;
  bool growable_;
  uint64_t size_;
  uint8_t* base_ = nullptr;
};

// Device-DAX's size, from sysfs (libpmem2 is not needed to read it).
int dax_size(const struct stat& st, uint64_t* size) {
  char path[128];
  snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/size", major(st.st_rdev), minor(st.st_rdev));
  FILE* f = fopen(path, "re");
  if (!f) return -errno;
  unsigned long long n = 0;
  int ok = fscanf(f, "%llu", &n);
  fclose(f);
  if (ok != 1) return -EIO;
  *size = n;
  return 0;
}

}  // namespace

int read_medium(int fd, const struct stat& st, uint64_t size, std::unique_ptr<Medium>* out,
                std::string* why) {
  const bool chr = S_ISCHR(st.st_mode);
  if (chr) {
    int r = dax_size(st, &size);
    if (r) {
      *why = "cannot read the device-DAX size from sysfs";
      return r;
    }
  }
  auto m = std::make_unique<ReadMedium>(fd, S_ISREG(st.st_mode),
                                        size & ~uint64_t(fmt::kBlockSize - 1));
  if (chr || S_ISREG(st.st_mode)) {
    // device-DAX: mapped or nothing. A file: mapped when it is on a DAX file system (so that
    // inspect names the writer that wrote it), else read with pread.
    int r = size ? m->map(true) : -EOPNOTSUPP;
    if (r && chr) r = m->map(false);
    if (r && chr) {
      m->disown_fd();
      *why = "cannot map the device-DAX read-only";
      return r;
    }
  }
  *out = std::move(m);
  return 0;
}

}  // namespace ckpt::store
