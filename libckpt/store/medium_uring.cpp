// SPDX-License-Identifier: MIT
// libckpt store: the io_uring writer, for regular files and block devices.
//
// write() copies the caller's block into a slot of one registered staging buffer and queues a
// WRITE_FIXED; writes to consecutive offsets from consecutive slots are merged into one SQE.
// SQEs go to the kernel in batches. barrier() reaps every completion (a short or failed write
// fails it), then calls fdatasync() itself: data, the file's size and its extents are
// durable when it returns. The descriptor has O_DIRECT where the file system allows it, so the
// page cache is bypassed; otherwise the fsync does the same job through it.
//
// write_nocopy() (put_pages' runs) queues a plain WRITE from the caller's memory instead:
// consecutive ones are merged up to 256 KiB per SQE and submitted at once, so the kernel copies
// (or DMAs) one run while the store checksums the next; settle() reaps them before put_pages
// returns. Under O_DIRECT a source not aligned to 512 bytes goes through the staging slots.
//
// Independent SQEs may complete in any order (a contended O_DIRECT write is punted to an
// io-wq worker), so a write overlapping one not yet completed (the store rewriting a page in
// one checkpoint) first drains: the later bytes must win, as medium.hpp promises.
#include <fcntl.h>
#include <liburing.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "format.hpp"
#include "medium.hpp"

namespace ckpt::store {
namespace {

constexpr unsigned kSlots = 256;        // 1 MiB of staging
constexpr unsigned kQueueDepth = 64;
constexpr unsigned kSubmitBatch = 32;
constexpr size_t kSlotBytes = fmt::kBlockSize;
constexpr size_t kBounceBytes = 256 * 1024;
// A write_nocopy SQE grows to this, then is submitted: small enough that the kernel starts
// copying a run (in an io-wq worker, for a file system without async buffered writes, e.g.
// tmpfs) while put_pages still checksums the rest of it, large enough that the submissions
// cost little (4 per MiB).
constexpr size_t kPieceMax = 256 << 10;
constexpr uint64_t kPieceBit = 1ull << 63;  // user_data: a piece (write_nocopy), not a slot

class UringMedium final : public Medium {
 public:
  UringMedium(int fd, bool growable, bool direct, uint64_t size)
      : fd_(fd), growable_(growable), direct_(direct), size_(size) {}

  ~UringMedium() override {
    if (ring_ok_) {
      drain();
      io_uring_queue_exit(&ring_);
    }
    std::free(staging_);
    std::free(bounce_);
    if (fd_ >= 0) close_locked(fd_);
  }

  int init(std::string* why) {
    // The CQ ring holds a completion for everything that can be in flight at once (a slot
    // write each, pieces up to the queue depth, the barrier's fsync): a completion that
    // overflows it is kept by the kernel only if an atomic allocation succeeds, and one it
    // drops would leave drain() waiting for ever.
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = 2 * (kSlots + kQueueDepth);
    int r = io_uring_queue_init_params(kQueueDepth, &ring_, &p);
    if (r < 0) {
      *why = "io_uring_queue_init failed";
      return r;
    }
    ring_ok_ = true;
    if (posix_memalign(reinterpret_cast<void**>(&staging_), 4096, kSlots * kSlotBytes) ||
        posix_memalign(reinterpret_cast<void**>(&bounce_), 4096, kBounceBytes)) {
      *why = "out of memory for io_uring buffers";
      return -ENOMEM;
    }
    iovec iov{staging_, kSlots * kSlotBytes};
    // Registered buffers save a page pin per I/O; RLIMIT_MEMLOCK may refuse them, and plain
    // writes then do the same job.
    registered_ = io_uring_register_buffers(&ring_, &iov, 1) == 0;
    return 0;
  }

  void disown_fd() { fd_ = -1; }
  const char* name() const override { return "io_uring"; }
  uint64_t size() const override { return size_; }
  bool growable() const override { return growable_; }
  size_t tear_unit() const override { return 512; }

  int grow(uint64_t n) override {
    if (!growable_) return -ENOSPC;
    if (n <= size_) return 0;
    // fallocate reserves the blocks now, so a later write cannot fail for lack of space.
    // Only the new part: what lies below size_ was reserved when the file got there (a grow
    // from 0 walked every page again, on tmpfs a page-cache lookup each).
    if (int e = reserve_file(fd_, size_, n - size_, true)) return e;
    size_ = n;
    return 0;
  }

  int read(uint64_t off, void* dst, size_t len) override {
    if (off > size_ || len > size_ - off) return -EIO;
    auto* d = static_cast<uint8_t*>(dst);
    const bool aligned = (reinterpret_cast<uintptr_t>(d) % 512 == 0) && off % 512 == 0 &&
                         len % 512 == 0;
    while (len > 0) {
      size_t n = len;
      uint8_t* buf = d;
      if (direct_ && !aligned) {
        n = std::min(len, kBounceBytes);
        buf = bounce_;
      }
      ssize_t got = pread(fd_, buf, n, static_cast<off_t>(off));
      if (got < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
      if (got == 0) return -EIO;  // past the end: the store was truncated
      if (buf != d) std::memcpy(d, buf, static_cast<size_t>(got));
      d += got;
      off += static_cast<uint64_t>(got);
      len -= static_cast<size_t>(got);
    }
    return 0;
  }

  int write(uint64_t off, const void* src, size_t len) override {
    if (err_) return err_;
    if (off % 512 || len % 512) return -EINVAL;
    if (off > size_ || len > size_ - off) return -ENOSPC;
    auto* s = static_cast<const uint8_t*>(src);
    while (len > 0) {
      const size_t n = std::min(len, kSlotBytes);
      const uint64_t b0 = off / kSlotBytes, b1 = (off + n - 1) / kSlotBytes;
      if (used_ == kSlots || unreaped_.count(b0) || unreaped_.count(b1) ||
          in_pieces(off, n)) {
        int r = drain();
        if (r) return r;
      }
      unreaped_.insert(b0);
      unreaped_.insert(b1);
      const unsigned slot = used_++;
      uint8_t* buf = staging_ + size_t(slot) * kSlotBytes;
      std::memcpy(buf, s, n);
      if (last_ && !last_piece_ && last_off_end_ == off && last_buf_end_ == buf) {
        last_->len += static_cast<unsigned>(n);  // merge: not submitted yet
        last_->user_data += n;  // the length is the low 32 bits
      } else {
        io_uring_sqe* sqe;
        if (int r = next_sqe(&sqe)) return r;
        if (registered_)
          io_uring_prep_write_fixed(sqe, fd_, buf, static_cast<unsigned>(n), off, 0);
        else
          io_uring_prep_write(sqe, fd_, buf, static_cast<unsigned>(n), off);
        sqe->user_data = (uint64_t(slot) << 32) | n;
        slot_off_[slot] = off;
        last_ = sqe;
        last_piece_ = false;
        queued_++;
      }
      last_off_end_ = off + n;
      last_buf_end_ = buf + n;
      s += n;
      off += n;
      len -= n;
      if (queued_ >= kSubmitBatch) {
        int r = submit();
        if (r) return r;
      }
    }
    return 0;
  }

  int write_nocopy(uint64_t off, const void* src, size_t len) override {
    if (err_) return err_;
    if (off % 512 || len % 512) return -EINVAL;
    if (off > size_ || len > size_ - off) return -ENOSPC;
    const auto* s = static_cast<const uint8_t*>(src);
    if (len == 0) return 0;
    if (direct_ && reinterpret_cast<uintptr_t>(s) % 512) return write(off, src, len);
    // A block still in flight from an earlier write: that one lands first (medium.hpp). The
    // pieces themselves are not added block by block to unreaped_ (a 64 MiB run would be 16,384
    // insertions): later writes check the pieces' ranges (in_pieces).
    bool overlap = in_pieces(off, len);
    if (!unreaped_.empty())
      for (uint64_t b = off / kSlotBytes; b <= (off + len - 1) / kSlotBytes && !overlap; b++)
        overlap = unreaped_.count(b);
    if (overlap) {
      int r = drain();
      if (r) return r;
    }
    while (len > 0) {
      if (last_ && last_piece_ && last_off_end_ == off && last_src_end_ == s &&
          last_->len < kPieceMax) {  // merge: not submitted yet
        const size_t n = std::min<size_t>(len, kPieceMax - last_->len);
        last_->len += static_cast<unsigned>(n);
        last_->user_data += n;
        pieces_[(last_->user_data & ~kPieceBit) >> 32].len += n;
        s += n, off += n, len -= n;
      } else {
        if (inflight_ + queued_ >= kQueueDepth) {  // bound what is in flight (and the CQ ring)
          int r = drain();
          if (r) return r;
        }
        io_uring_sqe* sqe;
        if (int r = next_sqe(&sqe)) return r;
        const size_t n = std::min(len, kPieceMax);
        io_uring_prep_write(sqe, fd_, s, static_cast<unsigned>(n), off);
        sqe->user_data = kPieceBit | (uint64_t(pieces_.size()) << 32) | n;
        pieces_.push_back({off, s, n});
        last_ = sqe;
        last_piece_ = true;
        queued_++;
        s += n, off += n, len -= n;
      }
      last_off_end_ = off;
      last_src_end_ = s;
      if (last_->len >= kPieceMax) {
        int r = submit();
        if (r) return r;
      }
    }
    return 0;
  }

  // The pieces are submitted and reaped (with everything else in flight).
  int settle() override { return pieces_.empty() ? err_ : drain(); }

  // The writes are reaped first (a short or failed one fails the barrier), then fdatasync runs
  // on this thread. Not as an IORING_OP_FSYNC: the ring cannot complete an fsync without
  // blocking, so it always hands it to an io-wq worker, and the caller waits for it anyway;
  // the hand-off cost two thread switches per barrier (two per commit) and nothing else.
  int barrier() override {
    int r = drain();
    if (r) return r;
    int rc;
    do rc = fdatasync(fd_); while (rc != 0 && errno == EINTR);
    return rc ? fail(-errno) : 0;
  }

 private:
  int pwrite_all(const uint8_t* p, size_t len, uint64_t off) {
    while (len > 0) {
      ssize_t n = pwrite(fd_, p, len, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -errno;
      if (n == 0) return -EIO;  // the device ended
      p += n;
      off += static_cast<uint64_t>(n);
      len -= static_cast<size_t>(n);
    }
    return 0;
  }

  // [off, off + len) overlaps a write_nocopy piece not reaped yet (few: at most the queue's
  // depth between drains, and none at all outside a put_pages call).
  bool in_pieces(uint64_t off, size_t len) const {
    for (const Piece& p : pieces_)
      if (off < p.off + p.len && p.off < off + len) return true;
    return false;
  }

  int fail(int e) {
    if (!err_) err_ = e;
    return err_;
  }

  // An SQE, submitting what is queued if the ring is full. 0 or -errno.
  int next_sqe(io_uring_sqe** out) {
    *out = io_uring_get_sqe(&ring_);
    if (!*out) {
      if (int r = submit()) return r;
      *out = io_uring_get_sqe(&ring_);
      if (!*out) return -EBUSY;
    }
    return 0;
  }

  // The kernel may take fewer SQEs than were queued (a request it cannot allocate: -EAGAIN or
  // a short count); the rest stay in the SQ ring. Counting them in flight would make drain()
  // wait for completions of writes the kernel never saw, so each accepted batch is counted and
  // the rest submitted again, after reaping what is done if the kernel accepted none.
  int submit() {
    last_ = nullptr;
    while (queued_ > 0) {
      int r = io_uring_submit(&ring_);
      if (r == -EINTR) continue;
      if (r == -EAGAIN || r == -EBUSY || r == 0) {
        if (inflight_ == 0) return fail(r ? r : -EAGAIN);
        reap_one();  // let something complete, then try again
        continue;
      }
      if (r < 0) return fail(r);
      const unsigned took = std::min(static_cast<unsigned>(r), queued_);
      inflight_ += took;
      queued_ -= took;
    }
    return 0;
  }

  // Wait for one completion and account for it. An interrupted or short write is finished
  // synchronously from the same staging slot or caller's memory (untouched until drain ends).
  void reap_one() {
    io_uring_cqe* cqe;
    int w;
    do w = io_uring_wait_cqe(&ring_, &cqe); while (w == -EINTR);
    if (w < 0) {
      fail(w);
      inflight_ = 0;  // the ring is unusable: nothing more will be reaped from it
      return;
    }
    const int res = cqe->res;
    const uint64_t ud = cqe->user_data;
    io_uring_cqe_seen(&ring_, cqe);
    const size_t len = ud & 0xffffffffu;
    if (res == -EINTR || res == -EAGAIN || (res >= 0 && static_cast<size_t>(res) < len)) {
      const size_t done = res > 0 ? static_cast<size_t>(res) : 0;
      const unsigned ix = static_cast<unsigned>((ud & ~kPieceBit) >> 32);
      const bool piece = ud & kPieceBit;
      const uint8_t* from = piece ? pieces_[ix].src : staging_ + size_t(ix) * kSlotBytes;
      const uint64_t at = piece ? pieces_[ix].off : slot_off_[ix];
      int e = pwrite_all(from + done, len - done, at + done);
      if (e) fail(e);
    } else if (res < 0) {
      fail(res);
    }
    inflight_--;
  }

  // Submit what is queued and reap every completion; the staging slots are free after.
  int drain() {
    int r = submit();
    while (inflight_ > 0) reap_one();
    used_ = 0;
    unreaped_.clear();
    pieces_.clear();
    return err_ ? err_ : r;
  }

  int fd_;
  bool growable_, direct_;
  uint64_t size_;
  io_uring ring_{};
  bool ring_ok_ = false, registered_ = false;
  uint8_t* staging_ = nullptr;  // kSlots blocks, registered as buffer 0
  uint8_t* bounce_ = nullptr;   // unaligned reads through O_DIRECT
  uint64_t slot_off_[kSlots] = {};  // file offset of the SQE that starts at each slot
  unsigned used_ = 0, queued_ = 0, inflight_ = 0;
  std::unordered_set<uint64_t> unreaped_;  // blocks written since the last drain
  io_uring_sqe* last_ = nullptr;  // newest SQE not yet submitted, for merging
  bool last_piece_ = false;       // ... and it writes from the caller's memory
  uint64_t last_off_end_ = 0;
  const uint8_t* last_buf_end_ = nullptr;
  const uint8_t* last_src_end_ = nullptr;
  struct Piece {  // a write_nocopy SQE (index in user_data), until the drain that reaps it
    uint64_t off;
    const uint8_t* src;
    size_t len;
  };
  std::vector<Piece> pieces_;
  int err_ = 0;  // sticky: after a failed write the medium's contents are unknown
};

}  // namespace

int uring_medium(int fd, bool growable, bool direct, uint64_t size, std::unique_ptr<Medium>* out,
                 std::string* why) {
  auto m = std::make_unique<UringMedium>(fd, growable, direct, size);
  int r = m->init(why);
  if (r) {
    m->disown_fd();  // the caller keeps the descriptor on failure
    return r;
  }
  *out = std::move(m);
  return 0;
}

}  // namespace ckpt::store
