// SPDX-License-Identifier: MIT
// ckpt-tool restore: recreate a process from a whole-process image in a store, through ckpt.ko.
//
// The tool reads the metadata of the store's newest committed epoch, checks what can be checked
// before anything starts (files unchanged, same kernel vdso, CPU features) and forks. The child
// turns itself into the image. It moves its [vvar]/[vdso] to the image's addresses and maps
// every private mapping of the image at its address itself, reading the image's pages from the
// store straight into it (the store checks every page's checksum as it copies): one copy, and
// a damaged page is refused with its mapping and address before anything is torn down. Only a
// mapping that collides with the child's own (or a shared one) is staged in a memfd for the
// module to fill. It sets what a process can set on itself (working directory, open files,
// umask, name, signal handlers, alternate stack), hands the layout to
// CKPT_IOC_RESTORE_PREPARE (CKPT_VMA_PREBUILT: keep what the child built), then from one asm
// block (no libc: TLS goes away with the fs base) sets fs/gs base, loads the image's FPU/AVX
// state with XRSTOR and calls CKPT_IOC_RESTORE_COMMIT, which unmaps the rest of the child,
// maps and fills the staged mappings and returns into the image's registers. The outcome
// comes back on a pipe.
// The restored process runs with the image's credentials, which must be the caller's unless
// --as-image-user (check_creds, become_image_user), with its PID again when that is free and
// the caller may choose PIDs (fork_as), else a new one.
#include <cpuid.h>
#include <fcntl.h>
#include <linux/ckpt.h>
#include <linux/sched.h>  // struct clone_args (glibc 2.36 has no clone3 wrapper)
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/time.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "key.hpp"
#include "ckptdev.hpp"
#include "cmd.hpp"
#include "image.hpp"
#include "proc.hpp"
#include "store.hpp"
#include "wp.hpp"

namespace ckpt_tool {
namespace {

using namespace image;

struct Error {
  int code;
  std::string msg;
};

uint64_t xgetbv0() {
  uint32_t lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return uint64_t(hi) << 32 | lo;
}

// The components XRSTOR loads: every user component the OS enabled, but AMX tile data, which
// is refused in images and may be armed for #NM (XFD) in this process.
uint64_t rfbm() { return xgetbv0() & ~(1ull << 18); }

bool has_xsave() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  return (c & bit_OSXSAVE) != 0;
}

struct Vdso {
  uint64_t vvar_start = 0, vvar_end = 0, vdso_start = 0, vdso_end = 0;
};

int own_vdso(Vdso* v) {
  std::vector<proc::MapsLine> maps;
  if (int e = proc::read_maps(0, &maps); e) return e;
  for (const auto& m : maps) {
    if (m.path == "[vvar]") v->vvar_start = m.start, v->vvar_end = m.end;
    if (m.path == "[vdso]") v->vdso_start = m.start, v->vdso_end = m.end;
  }
  return 0;
}

uint64_t mtime_ns(const struct stat& st) {
  return uint64_t(st.st_mtim.tv_sec) * 1000000000ull + uint64_t(st.st_mtim.tv_nsec);
}

void check_xsave(const std::vector<uint8_t>& xsave);

// Everything that can be refused before anything is started (the pages were checked when read).
void check_image(const Image& img) {
  // One stat per file, not per mapping of it (a library has 4-5 mappings; a stat on the
  // 9p root of the VM is a round trip to the host).
  std::map<std::string, struct stat> seen;
  auto same_file = [&seen](const FileId& f, bool exact, const std::string& what) {
    auto it = seen.find(f.path);
    if (it == seen.end()) {
      struct stat fresh;
      if (stat(f.path.c_str(), &fresh) < 0)
        throw Error{kFailed, what + " " + f.path + ": " + strerror(errno)};
      it = seen.emplace(f.path, fresh).first;
    }
    const struct stat& st = it->second;
    if (!S_ISREG(st.st_mode) || st.st_ino != f.ino ||
        (exact && (uint64_t(st.st_size) != f.size || mtime_ns(st) != f.mtime_ns)))
      throw Error{kFailed, what + " " + f.path +
                               " changed on disk since the dump; the image does not fit"};
  };
  for (const auto& v : img.vmas)
    if (v.kind == kFile) same_file(v.file, true, "mapped file");
  for (const auto& f : img.fds)
    if (f.kind == kFdRegular) same_file(f.file, false, "open file");

  Vdso own;
  if (int e = own_vdso(&own); e) throw Error{kFailed, "/proc/self/maps: " + std::string(strerror(-e))};
  if (img.vdso_start) {
    if (!own.vdso_start || own.vvar_end != own.vdso_start ||
        own.vvar_end - own.vvar_start != img.vdso_start - img.vvar_start ||
        own.vdso_end - own.vdso_start != img.vdso_end - img.vdso_start ||
        hash(reinterpret_cast<const void*>(own.vdso_start), own.vdso_end - own.vdso_start) !=
            img.vdso_hash)
      throw Error{kFailed, "the image's vdso differs from this kernel's: it was dumped under "
                           "another kernel; not supported"};
  }
  if (!has_xsave()) throw Error{kFailed, "this CPU/kernel has no XSAVE; not supported"};
  for (const auto& t : img.threads) check_xsave(t.xsave);
}

void check_xsave(const std::vector<uint8_t>& xsave) {
  uint64_t bv;
  std::memcpy(&bv, xsave.data() + 512, 8);
  // AMX tile data needs a per-process permission (ARCH_REQ_XCOMP_PERM) this does not restore.
  if (bv & (1ull << 18)) throw Error{kFailed, "the image holds AMX tile state: not supported"};
  if (bv & ~xgetbv0())
    throw Error{kFailed, "the image uses CPU state (XCR0 features 0x" + [&] {
                  char b[32];
                  snprintf(b, sizeof b, "%" PRIx64, bv & ~xgetbv0());
                  return std::string(b);
                }() + ") this CPU does not enable"};
  for (int i = 2; i < 64; i++) {
    if (!(bv & (1ull << i))) continue;
    unsigned a, b, c, d;
    __cpuid_count(0xd, i, a, b, c, d);
    if (uint64_t(a) + b > xsave.size())
      throw Error{kFailed, "corrupted image: FPU state shorter than its components"};
  }
}

// --- The child. Errors go to the status pipe as (s64 1, text); then _exit(1). ---

int g_status = -1;
bool g_as_image_user = false;  // restore --as-image-user

// Status words on the pipe: 0 restored, 1 + text failed, 2 + (region, offset, length) the
// store fell back to its older epoch while the child read that range (the parent replays the
// read so that its own view of the store falls back too, and starts again), negative: the
// kernel's -errno past the point of no return.
constexpr int64_t kStatusFailed = 1, kStatusFellBack = 2;

[[noreturn]] void die(const std::string& msg) {
  int64_t one = kStatusFailed;
  if (write(g_status, &one, sizeof(one)) == sizeof(one))
    (void)!write(g_status, msg.data(), msg.size());
  _exit(1);
}

[[noreturn]] void fell_back(uint32_t region, uint64_t off, uint64_t len) {
  uint64_t w[4] = {uint64_t(kStatusFellBack), region, off, len};
  (void)!write(g_status, w, sizeof(w));
  _exit(1);
}

int move_high(int fd, int floor) {
  int n = fcntl(fd, F_DUPFD, floor);
  if (n < 0) die(std::string("F_DUPFD: ") + strerror(errno));
  close(fd);
  return n;
}

struct KSigaction {
  uint64_t handler, flags, restorer, mask;
};

void set_signals(const Image& img) {
  for (int sig = 1; sig <= kNsig; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    const SigAction& a = img.actions[sig - 1];
    KSigaction k{a.handler, a.flags, a.restorer, a.mask};
    if (syscall(SYS_rt_sigaction, sig, &k, nullptr, 8) < 0)
      die("restoring the handler of signal " + std::to_string(sig) + ": " + strerror(errno));
  }
}

// The image's resource limits, set last (just before COMMIT): a low RLIMIT_AS, NPROC or
// NOFILE must not get in the way of the restorer's own work. Raising a hard limit needs
// CAP_SYS_RESOURCE, as it would for the process itself: refused otherwise.
void set_rlimits(const Image& img) {
  static const char* const kNames[kNlimits] = {
      "RLIMIT_CPU",    "RLIMIT_FSIZE",  "RLIMIT_DATA",   "RLIMIT_STACK",
      "RLIMIT_CORE",   "RLIMIT_RSS",    "RLIMIT_NPROC",  "RLIMIT_NOFILE",
      "RLIMIT_MEMLOCK", "RLIMIT_AS",    "RLIMIT_LOCKS",  "RLIMIT_SIGPENDING",
      "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"};
  if (!img.has_rlimits) return;
  for (int i = 0; i < kNlimits; i++) {
    struct rlimit rl = {rlim_t(img.rlimits[i].cur), rlim_t(img.rlimits[i].max)};
    if (prlimit(0, __rlimit_resource(i), &rl, nullptr) < 0)
      die(std::string("restoring ") + kNames[i] + ": " + strerror(errno) +
          (errno == EPERM ? " (the image's hard limit is above yours)" : ""));
  }
}

// A syscall without errno: -errno on failure. The helper threads (helper_main) may use nothing
// else.
long raw_syscall(long nr, long a1, long a2 = 0, long a3 = 0, long a4 = 0) {
  register long rax asm("rax") = nr;
  register long rdi asm("rdi") = a1;
  register long rsi asm("rsi") = a2;
  register long rdx asm("rdx") = a3;
  register long r10 asm("r10") = a4;
  asm volatile("syscall" : "+r"(rax) : "r"(rdi), "r"(rsi), "r"(rdx), "r"(r10) : "rcx", "r11", "memory");
  return rax;
}

// Queue `q`'s signals again, to the calling thread (thread) or to the process: 0, or -errno
// with *signo the signal refused. Every signal is blocked in the restorer, so they wait, and
// COMMIT's mask decides which are delivered on the way into the image. A thread may queue any
// siginfo to itself, but no other thread may queue it a kernel-made or tgkill one (si_code >= 0
// or SI_TKILL): each queues its own, the helper threads too (raw syscalls only, no allocation).
long requeue(const std::vector<std::vector<uint8_t>>& q, bool thread, int* signo) {
  const long pid = raw_syscall(SYS_getpid, 0), tid = thread ? raw_syscall(SYS_gettid, 0) : 0;
  for (const auto& si : q) {
    siginfo_t info;
    std::memcpy(&info, si.data(), sizeof(info));
    *signo = info.si_signo;
    long e = thread ? raw_syscall(SYS_rt_tgsigqueueinfo, pid, tid, info.si_signo, long(&info))
                    : raw_syscall(SYS_rt_sigqueueinfo, pid, info.si_signo, long(&info));
    if (e < 0) return e;
  }
  return 0;
}

void queue_signals(const std::vector<std::vector<uint8_t>>& q, bool thread) {
  int signo = 0;
  if (long e = requeue(q, thread, &signo); e < 0)
    die("queueing signal " + std::to_string(signo) + " again: " + strerror(int(-e)) +
        (e == -EAGAIN ? " (RLIMIT_SIGPENDING)" : ""));
}

void set_fds(const Image& img, std::vector<int*> helpers) {
  int floor = 3;
  for (const auto& f : img.fds) floor = std::max(floor, int(f.fd) + 1);
  for (int* h : helpers) *h = move_high(*h, floor);
  std::vector<bool> keep(size_t(floor) + 1, false);
  for (const auto& f : img.fds) {
    keep[f.fd] = true;
    if (f.kind == kFdInherit) continue;
    int fl = int(f.flags) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);
    int fd = open(f.file.path.c_str(), fl | O_CLOEXEC);
    if (fd < 0) die("reopening fd " + std::to_string(f.fd) + " (" + f.file.path + "): " + strerror(errno));
    if (f.kind == kFdRegular && lseek(fd, off_t(f.pos), SEEK_SET) < 0)
      die("seeking fd " + std::to_string(f.fd) + ": " + strerror(errno));
    if (fd != int(f.fd)) {
      if (dup2(fd, int(f.fd)) < 0) die(std::string("dup2: ") + strerror(errno));
      close(fd);
    }
    if (fcntl(int(f.fd), F_SETFD, f.cloexec ? FD_CLOEXEC : 0) < 0)
      die(std::string("F_SETFD: ") + strerror(errno));
  }
  // Everything else the restorer had open goes, but our helpers.
  std::vector<int> open_fds;
  proc::list_fds(0, &open_fds);
  for (int fd : open_fds) {
    bool helper = false;
    for (int* h : helpers) helper |= *h == fd;
    if (helper || (fd < floor && keep[size_t(fd)])) continue;
    close(fd);
  }
}

void move_vdso(const Image& img, Vdso* own) {
  if (!img.vdso_start || own->vvar_start == img.vvar_start) return;
  uint64_t vvar_len = own->vvar_end - own->vvar_start, vdso_len = own->vdso_end - own->vdso_start;
  // Park both in a fresh spot first, so that moving one can never land on the other.
  void* tmp = mmap(nullptr, vvar_len + vdso_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (tmp == MAP_FAILED) die(std::string("mmap: ") + strerror(errno));
  auto mv = [](uint64_t from, uint64_t len, uint64_t to) {
    if (mremap(reinterpret_cast<void*>(from), len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
               reinterpret_cast<void*>(to)) == MAP_FAILED)
      die(std::string("moving the vdso: ") + strerror(errno));
  };
  uint64_t t = reinterpret_cast<uint64_t>(tmp);
  mv(own->vvar_start, vvar_len, t);
  mv(own->vdso_start, vdso_len, t + vvar_len);
  std::vector<proc::MapsLine> maps;
  proc::read_maps(0, &maps);
  for (const auto& m : maps)
    if (m.start < img.vdso_end && m.end > img.vvar_start)
      die("the image's vdso address is in use in the restorer (an ASLR collision); run the "
          "restore again");
  mv(t, vvar_len, img.vvar_start);
  mv(t + vvar_len, vdso_len, img.vdso_start);
}

// One thread's XSAVE image, aligned for XRSTOR.
struct alignas(64) Xsave {
  uint8_t b[kMaxXsave];
};

// Set fs/gs base, load the FPU/AVX state, and enter ckpt.ko with ioctl(fd, cmd, arg), which
// returns into the image's registers. If anything fails, exit_group(code).
[[noreturn]] void jump(uint64_t fs, uint64_t gs, const Xsave* xs, uint64_t rfbm, int fd,
                       unsigned long cmd, uint64_t arg, int code) {
  register uint64_t r8 asm("r8") = fs;
  register uint64_t r9 asm("r9") = gs;
  register const Xsave* r10 asm("r10") = xs;
  register uint64_t r12 asm("r12") = rfbm;
  register uint64_t r13 asm("r13") = uint64_t(fd);
  register uint64_t r14 asm("r14") = cmd;
  register uint64_t r15 asm("r15") = arg;
  register uint64_t rbx asm("rbx") = uint64_t(code);
  // From here on no TLS (fs changes), no vector registers (xrstor), no stack protector: one
  // block of raw syscalls.
  asm volatile(
      "mov $158, %%eax\n\t"  // arch_prctl(ARCH_SET_FS, fs)
      "mov $0x1002, %%edi\n\t"
      "mov %%r8, %%rsi\n\t"
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 9f\n\t"
      "mov $158, %%eax\n\t"  // arch_prctl(ARCH_SET_GS, gs)
      "mov $0x1001, %%edi\n\t"
      "mov %%r9, %%rsi\n\t"
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 9f\n\t"
      "mov %%r12, %%rax\n\t"
      "mov %%r12, %%rdx\n\t"
      "shr $32, %%rdx\n\t"
      "xrstor64 (%%r10)\n\t"
      "mov $16, %%eax\n\t"  // ioctl(fd, cmd, arg)
      "mov %%r13, %%rdi\n\t"
      "mov %%r14, %%rsi\n\t"
      "mov %%r15, %%rdx\n\t"
      "syscall\n\t"
      "9:\n\t"
      "mov $231, %%eax\n\t"  // exit_group(code)
      "mov %%rbx, %%rdi\n\t"
      "syscall\n\t"
      "ud2\n\t"
      :
      : "r"(r8), "r"(r9), "r"(r10), "r"(r12), "r"(r13), "r"(r14), "r"(r15), "r"(rbx)
      : "rax", "rcx", "rdx", "rsi", "rdi", "r11", "memory");
  __builtin_unreachable();
}

// The calling thread's alternate signal stack as the image had it: 0 or -errno. Raw syscalls
// only, like requeue: the helper threads call it too.
long altstack(const Thread& t) {
  if (!t.sas_size) return 0;
  stack_t ss{};
  ss.ss_sp = reinterpret_cast<void*>(t.sas_sp);
  ss.ss_size = t.sas_size;
  ss.ss_flags = int(t.sas_flags & (1u << 31));  // SS_AUTODISARM
  return raw_syscall(SYS_sigaltstack, long(&ss));
}

void set_altstack(const Thread& t) {
  if (long e = altstack(t); e < 0)
    die(std::string("restoring the alternate signal stack: ") + strerror(int(-e)));
}

// What an image thread sets on itself when ckpt.ko restores it.
void thread_state(const Thread& t, ckpt_thread_state* s) {
  static_assert(sizeof(s->regs) == sizeof(t.regs));
  std::memcpy(&s->regs, &t.regs, sizeof(s->regs));
  s->sigmask = t.sigmask;
  s->clear_child_tid = t.clear_child_tid;
  s->robust_list = t.robust_list;
  s->rseq = t.rseq;
  s->rseq_sig = t.rseq_sig;
}

// A helper thread: becomes one of the image's threads.
struct Helper {
  const Thread* t = nullptr;
  int fd = -1;  // its own /dev/ckpt session
  ckpt_restore_thread req{};
  Xsave* xs = nullptr;
  pid_t tid = 0;  // what clone3 gave it
};

// The helper threads are raw clone3 threads, not pthreads, so that each can ask for its image
// thread's TID (set_tid; see Clone3). They run on a stack of their own but share the main
// thread's TLS, which they only read (the stack protector's canary): nothing here may write
// errno, allocate, or take a lock: raw syscalls only.
[[noreturn]] void helper_fail(const char* what, long err) {
  int64_t one = kStatusFailed;
  const char* why = strerrordesc_np(int(-err));
  if (write(g_status, &one, sizeof(one)) == sizeof(one)) {
    (void)!write(g_status, what, strlen(what));
    (void)!write(g_status, ": ", 2);
    (void)!write(g_status, why ? why : "?", why ? strlen(why) : 1);
  }
  syscall(SYS_exit_group, 1);
  __builtin_unreachable();
}

void helper_main(void* arg) {
  auto* h = static_cast<Helper*>(arg);
  if (long e = altstack(*h->t); e < 0)
    helper_fail("restoring a thread's alternate signal stack", e);
  int signo;
  if (long e = requeue(h->t->pending, true, &signo); e < 0)
    helper_fail("queueing a thread's pending signal again", e);
  thread_state(*h->t, &h->req.thread);
  h->req.self_fd = uint64_t(h->fd);
  jump(h->t->regs.fs_base, h->t->regs.gs_base, h->xs, rfbm(), h->fd, CKPT_IOC_RESTORE_THREAD,
       uint64_t(uintptr_t(&h->req)), 98);
}

uint64_t g_features = 0;  // of the module, from the first session

int open_session() {
  ckptdev::Session dev;
  if (int e = dev.open()) {
    if (e == -EPROTONOSUPPORT)
      die("this ckpt.ko speaks API version " + std::to_string(dev.module_api()) +
          ", ckpt-tool " + std::to_string(CKPT_API_VERSION));
    die(std::string("/dev/ckpt: ") + strerror(-e) + " (is ckpt.ko loaded?)");
  }
  if (!dev.has(CKPT_FEATURE_RESTORE)) die("this ckpt.ko does not offer CKPT_FEATURE_RESTORE");
  g_features = dev.features();
  return dev.take_fd();
}

// With CKPT_TOOL_PHASES set: when each step of the restore happened (stderr, for profiling).
double g_t0 = 0;
bool g_phases = false;
double now_s() {
  // The raw syscall: the child moves its vdso, where glibc's clock_gettime would jump.
  timespec ts;
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
void phase(const char* what) {
  if (g_phases) std::fprintf(stderr, "ckpt-tool phases: restore %s at %.4f s\n", what, now_s() - g_t0);
}

// The store and the newest intact epoch's metadata; the child reads the pages.
struct Loaded {
  std::unique_ptr<ckpt::store::Store> st;
  std::map<std::string, ckpt::store::RegionInfo> regions;
  uint64_t epoch = 0;
};

std::string hex(uint64_t v) {
  char b[32];
  snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

std::string damaged_msg(const std::string& what, const ckpt::store::ReadReport& rep,
                        uint64_t base) {
  std::string m = "corrupted image: " + what + " fails its checksum in every retained epoch";
  for (size_t k = 0; k < rep.damaged.size() && k < 4; k++)  // addresses, or page indices
    m += (k ? ", " : " (page ") +
         (base ? hex(base + rep.damaged[k] * kPage) : std::to_string(rep.damaged[k]));
  if (!rep.damaged.empty()) m += rep.damaged.size() > 4 ? ", ...)" : ")";
  return m;
}

// In the child: read run r of mapping v from the store into dst, or die naming what failed.
void read_run(Loaded& ld, const Vma& v, const Run& r, void* dst) {
  auto it = ld.regions.find(vma_region(v.start));
  if (it == ld.regions.end() || it->second.size < v.runs.back().offset + v.runs.back().len)
    die("corrupted image: the store has no pages for the mapping at " + hex(v.start));
  ckpt::store::ReadReport rr;
  int e = ld.st->read_range(it->second.id, r.offset, dst, r.len, &rr);
  if (rr.epoch != ld.epoch) fell_back(it->second.id, r.offset, r.len);
  if (e == -EIO) die(damaged_msg("the mapping at " + hex(v.start), rr, v.start));
  if (e) die("reading the mapping at " + hex(v.start) + ": " + strerror(-e));
}

// ITIMER_REAL as the dump found it (format 2.3): the time it had left, and its interval. It is
// the process's (this child becomes the restored process), armed last, just before COMMIT; a
// SIGALRM that comes before the image's handlers are in place stays pending (every signal is
// blocked here) and is delivered under the image's mask.
void set_itimer(const Image& img) {
  if (!img.itimer_real_ns && !img.itimer_real_interval_ns) return;
  auto tv = [](uint64_t ns) {
    return timeval{time_t(ns / 1000000000), suseconds_t(ns % 1000000000 / 1000)};
  };
  // No time left but an interval: it fired while the process was stopped and the kernel would
  // have re-armed it for one interval when the (restored, pending) SIGALRM was dequeued.
  itimerval it{tv(img.itimer_real_interval_ns),
               tv(img.itimer_real_ns ? img.itimer_real_ns : img.itimer_real_interval_ns)};
  if (!it.it_value.tv_sec && !it.it_value.tv_usec) it.it_value.tv_usec = 1;  // < 1 us left
  if (setitimer(ITIMER_REAL, &it, nullptr) < 0) die(std::string("setitimer: ") + strerror(errno));
}

// personality(2) and prctl(2) state (format 2.4), set in the child before its mappings are
// built and its threads created, all of which inherit it: THP disabled (so that the reads do
// not fault huge pages in), no_new_privs (a one-way switch: the restored process never has
// fewer restrictions than the dump found), the personality. An older image leaves the
// restorer's own.
void set_task_state(const Image& img) {
  if (!img.has_task_state) return;
  if ((img.task_flags & kTaskThpDisable) && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0)
    die(std::string("PR_SET_THP_DISABLE: ") + strerror(errno));
  if ((img.task_flags & kTaskNoNewPrivs) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    die(std::string("PR_SET_NO_NEW_PRIVS: ") + strerror(errno));
  personality(static_cast<unsigned long>(img.personality));
  if (uint64_t(unsigned(personality(0xffffffff))) != img.personality)
    die("the personality " + hex(img.personality) + " was not taken");
}

// restore --as-image-user: the image's credentials (format 2.5), exactly, or the restore fails.
// Set in the child once its /dev/ckpt sessions are open (the image's user need not be in the
// ckpt group) and before it opens or maps any file of the image, which it then does with the
// image's rights, not the caller's. The bounding set first (dropping needs CAP_SETPCAP), then
// groups, gids, uids (capabilities kept across the uid change), then the capability sets,
// which may only shrink: an image with a capability the caller lacks is refused. The child is
// single-threaded here, so the set*id calls concern it alone.
void become_image_user(const Image& img) {
  const Creds& c = img.creds;
  for (int cap = 0; cap < 64; cap++)
    if (!(c.cap_bnd >> cap & 1) && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 &&
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
      die("dropping capability " + std::to_string(cap) + " from the bounding set: " +
          strerror(errno));
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) die(std::string("PR_SET_KEEPCAPS: ") + strerror(errno));
  std::vector<gid_t> groups(c.groups.begin(), c.groups.end());
  auto need = [&](const char* what, long rc) {
    if (rc < 0)
      die(std::string("running as the image's user (uid ") + std::to_string(c.uid[1]) +
          ", gid " + std::to_string(c.gid[1]) + "): " + what + ": " + strerror(errno) +
          (errno == EPERM ? " (only a caller with CAP_SETUID and CAP_SETGID may)" : ""));
  };
  need("setgroups", setgroups(groups.size(), groups.data()));
  need("setresgid", setresgid(gid_t(c.gid[0]), gid_t(c.gid[1]), gid_t(c.gid[2])));
  setfsgid(gid_t(c.gid[3]));
  need("setresuid", setresuid(uid_t(c.uid[0]), uid_t(c.uid[1]), uid_t(c.uid[2])));
  setfsuid(uid_t(c.uid[3]));
  prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2] = {};
  for (int i = 0; i < 2; i++) {
    d[i].effective = uint32_t(c.cap_eff >> (32 * i));
    d[i].permitted = uint32_t(c.cap_prm >> (32 * i));
    d[i].inheritable = uint32_t(c.cap_inh >> (32 * i));
  }
  if (syscall(SYS_capset, &h, d) < 0)
    die(std::string("setting the image's capabilities: ") + strerror(errno) +
        (errno == EPERM ? " (the image had capabilities you do not have)" : ""));
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  for (int cap = 0; cap < 64; cap++)
    if ((c.cap_amb >> cap & 1) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
      die("raising ambient capability " + std::to_string(cap) + ": " + strerror(errno));
  // A uid change made the child non-dumpable (its /proc files root's): a process of that user
  // started normally is dumpable, and restore writes its own /proc/self/oom_score_adj.
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  std::string st;
  Creds now;
  if (proc::read_file("/proc/self/status", &st) || proc::creds_from_status(st, &now) || !(now == c))
    die("the restorer's credentials could not be made exactly the image's");
}

// Scheduling and oom_score_adj (format 2.5), set just before COMMIT (after the resource
// limits: RLIMIT_NICE and RLIMIT_RTPRIO may be what allows them) for every thread: `tids`.
// What the caller may not set (a negative nice value or a real-time policy without
// CAP_SYS_NICE or the limit, a lower oom_score_adj without CAP_SYS_RESOURCE) fails the restore.
void set_sched(const Image& img, const std::vector<pid_t>& tids) {
  if (!img.has_creds) return;
  static const char* const kPolicy[] = {"SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH",
                                        "?",           "SCHED_IDLE"};
  for (pid_t tid : tids) {
    sched_param sp{};
    sp.sched_priority = int(img.sched_priority);
    if (sched_setscheduler(tid, int(img.sched_policy), &sp) < 0)
      die(std::string("restoring the scheduling policy ") + kPolicy[img.sched_policy] +
          " (priority " + std::to_string(img.sched_priority) + "): " + strerror(errno));
    if (setpriority(PRIO_PROCESS, id_t(tid), int(img.nice)) < 0)
      die("restoring nice " + std::to_string(img.nice) + ": " + strerror(errno) +
          (errno == EACCES || errno == EPERM ? " (a lower nice value needs CAP_SYS_NICE or RLIMIT_NICE)" : ""));
  }
  std::string cur;
  if (proc::read_file("/proc/self/oom_score_adj", &cur) == 0 &&
      strtol(cur.c_str(), nullptr, 10) == img.oom_score_adj)
    return;
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  const std::string v = std::to_string(img.oom_score_adj);
  if (fd < 0 || write(fd, v.data(), v.size()) != ssize_t(v.size()))
    die("restoring oom_score_adj " + v + ": " + strerror(errno) +
        (errno == EACCES ? " (a lower value needs CAP_SYS_RESOURCE)" : ""));
  close(fd);
}

// madvise(2) state the image recorded for a mapping (format 2.2), set before its pages are
// read: a THP-backed mapping gets huge pages again as the reads fault it in, and one the
// process kept off THP stays off.
void set_advice(const Vma& v) {
  static const struct {
    uint64_t bit;
    int advice;
    const char* name;
  } kAdvice[] = {{kAdvHugepage, MADV_HUGEPAGE, "MADV_HUGEPAGE"},
                 {kAdvNoHugepage, MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"},
                 {kAdvDontfork, MADV_DONTFORK, "MADV_DONTFORK"},
                 {kAdvDontdump, MADV_DONTDUMP, "MADV_DONTDUMP"},
                 {kAdvWipeonfork, MADV_WIPEONFORK, "MADV_WIPEONFORK"}};
  for (const auto& a : kAdvice)
    if ((v.advice & a.bit) &&
        madvise(reinterpret_cast<void*>(v.start), v.end - v.start, a.advice) < 0)
      die(std::string("restoring ") + a.name + " on the mapping at " + hex(v.start) + ": " +
          strerror(errno));
}

// In the child: map the image's private mappings at their addresses and read their pages
// into them. Returns per mapping whether it was built (CKPT_VMA_PREBUILT); the others (shared,
// or colliding with the child's own mappings) get their pages staged in *data for the module,
// at the offsets pushed to *data_off (one per run, in image order).
// Every mapping is placed before any page is read: the store's big reads run on threads whose
// stacks must not take an address the image needs.
std::vector<bool> build_layout(const Image& img, Loaded& ld, const std::vector<int>& vfd,
                               int* data, std::vector<uint64_t>* data_off) {
  std::vector<bool> built(img.vmas.size(), false);
  bool can = g_features & CKPT_FEATURE_RESTORE_PREBUILT;
  for (size_t i = 0; can && i < img.vmas.size(); i++) {
    const Vma& v = img.vmas[i];
    if (v.kind == kSharedAnon) continue;
    int prot = v.runs.empty() ? int(v.prot) : PROT_READ | PROT_WRITE;
    int flags = MAP_PRIVATE | MAP_FIXED_NOREPLACE | (v.kind == kFile ? 0 : MAP_ANONYMOUS) |
                (v.growsdown ? MAP_GROWSDOWN : 0);
    void* want = reinterpret_cast<void*>(v.start);
    void* m = mmap(want, v.end - v.start, prot, flags, v.kind == kFile ? vfd[i] : -1,
                   off_t(v.kind == kFile ? v.pgoff : 0));
    if (m == MAP_FAILED) {
      if (errno == EEXIST) continue;  // taken by the child itself: the module maps it
      die("mapping " + hex(v.start) + ": " + strerror(errno));
    }
    if (m != want) {  // a kernel without MAP_FIXED_NOREPLACE placed it elsewhere
      munmap(m, v.end - v.start);
      continue;
    }
    set_advice(v);
    built[i] = true;
  }
  phase("layout placed");
  for (size_t i = 0; i < img.vmas.size(); i++) {
    if (!built[i]) continue;
    const Vma& v = img.vmas[i];
    for (const auto& r : v.runs) read_run(ld, v, r, reinterpret_cast<uint8_t*>(v.start + r.offset));
    if (!v.runs.empty() && int(v.prot) != (PROT_READ | PROT_WRITE) &&
        mprotect(reinterpret_cast<void*>(v.start), v.end - v.start, int(v.prot)) < 0)
      die("mprotect " + hex(v.start) + ": " + strerror(errno));
  }
  uint64_t total = 0;
  for (size_t i = 0; i < img.vmas.size(); i++)
    if (!built[i])
      for (const auto& r : img.vmas[i].runs) total += r.len;
  *data = memfd_create("ckpt-restore", MFD_CLOEXEC);
  if (*data < 0 || ftruncate(*data, off_t(total)) < 0)
    die(std::string("memfd: ") + strerror(errno));
  if (!total) return built;
  void* m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, *data, 0);
  if (m == MAP_FAILED) die(std::string("mmap: ") + strerror(errno));
  auto* map = static_cast<uint8_t*>(m);
  uint64_t off = 0;
  for (size_t i = 0; i < img.vmas.size(); i++) {
    if (built[i]) continue;
    for (const auto& r : img.vmas[i].runs) {
      read_run(ld, img.vmas[i], r, map + off);
      data_off->push_back(off);
      off += r.len;
    }
  }
  munmap(m, total);
  return built;
}

// The parent's word that its checks (check_image) passed: one byte on this pipe; end of file
// (the checks refused the image, or the parent died) ends the child before PREPARE.
int g_go = -1;

// The image's PID and TIDs again, when they are free and the caller may choose them
// (CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN over the PID namespace): clone3's set_tid asks for
// exactly one ID and fails rather than give another, so nothing else on the system can take
// it in between, as it could between a write to ns_last_pid and a fork (what CRIU did before
// set_tid, and this tool until it used set_tid). Why it matters: glibc caches every thread's
// TID in its struct pthread (pthread_kill, pthread_sigqueue, error-checking and robust mutex
// owners), and a PI or robust futex word holds its owner's TID, which the kernel checks.
// Without the right (EPERM), or with the ID in use (EEXIST), the clone takes a new one.
struct Clone3 {
  clone_args a{};
  pid_t want = 0;
  // flags, plus set_tid when want is a usable ID and `ask` is set.
  Clone3(uint64_t flags, uint64_t id, bool ask) {
    a.flags = flags;
    a.exit_signal = (flags & CLONE_THREAD) ? 0 : SIGCHLD;
    if (ask && id > 1 && id <= INT32_MAX) {
      want = pid_t(id);
      a.set_tid = uint64_t(uintptr_t(&want));
      a.set_tid_size = 1;
    }
  }
};

// 0 in the child, the child's PID, or -errno. A fork in all but glibc's own bookkeeping, none of
// which the restorer needs in the child: no atfork handlers are registered, the process has
// one thread, and glibc's cached TID of the child (the parent's) is read by nothing the child
// calls (raise() asks the kernel) before the image replaces it.
long clone3_fork(Clone3& c) {
  long r = syscall(SYS_clone3, &c.a, sizeof(c.a));
  return r < 0 ? -errno : r;
}

// A thread running fn(arg) on [stack, stack + size), sharing everything (CLONE_THREAD) but the
// stack: its TID, or -errno. fn must not return.
extern "C" long restore_clone3_thread(clone_args* args, size_t size, void (*fn)(void*), void* arg);
asm(R"(
  .text
  .p2align 4
  .type restore_clone3_thread, @function
restore_clone3_thread:
  mov %rdx, %r8
  mov %rcx, %r9
  mov $435, %eax
  syscall
  test %rax, %rax
  jnz 1f
  xor %ebp, %ebp
  mov %r9, %rdi
  call *%r8
  ud2
1:
  ret
  .size restore_clone3_thread, . - restore_clone3_thread
)");

[[noreturn]] void child(const Image& img, Loaded& ld, int status_w, int go_r) {
  g_status = status_w;
  g_go = go_r;
  phase("child started");
  const Thread& t = img.threads[0];
  // No signal may run a handler of the image before the image is there.
  uint64_t all = ~0ull;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, nullptr, 8);

  set_task_state(img);
  int ckpt = open_session();
  std::vector<Helper> helpers_(img.threads.size() - 1);
  for (size_t i = 0; i < helpers_.size(); i++) {
    helpers_[i].t = &img.threads[i + 1];
    helpers_[i].fd = open_session();
    helpers_[i].xs = new Xsave;
    std::memset(helpers_[i].xs, 0, sizeof(Xsave));
    std::memcpy(helpers_[i].xs->b, img.threads[i + 1].xsave.data(), img.threads[i + 1].xsave.size());
  }
  if (g_as_image_user) become_image_user(img);
  // One descriptor per mapping (each is handed to the module and closed on its own), but
  // one open per file: the others are dups (an open on the VM's 9p root is a round trip).
  std::vector<int> vfd(img.vmas.size(), -1);
  std::map<std::string, int> opened;
  for (size_t i = 0; i < img.vmas.size(); i++) {
    if (img.vmas[i].kind != kFile) continue;
    const std::string& path = img.vmas[i].file.path;
    auto it = opened.find(path);
    vfd[i] = it == opened.end() ? open(path.c_str(), O_RDONLY | O_CLOEXEC)
                                : fcntl(it->second, F_DUPFD_CLOEXEC, 0);
    if (vfd[i] < 0) die(path + ": " + strerror(errno));
    opened.emplace(path, vfd[i]);
  }
  // The image's vdso address first: the mappings built next must not take it.
  Vdso own;
  if (own_vdso(&own)) die("/proc/self/maps");
  move_vdso(img, &own);
  int data = -1;
  std::vector<uint64_t> data_off;
  std::vector<bool> built = build_layout(img, ld, vfd, &data, &data_off);
  phase("pages read");

  // The store's descriptors go with everything else the image does not have.
  std::vector<int*> helpers = {&ckpt, &data, &g_status, &g_go};
  for (int& fd : vfd)
    if (fd >= 0) helpers.push_back(&fd);
  for (auto& h : helpers_) helpers.push_back(&h.fd);
  set_fds(img, helpers);

  if (chdir(img.cwd.c_str()) < 0) die("working directory " + img.cwd + ": " + strerror(errno));
  umask(mode_t(img.umask));
  prctl(PR_SET_NAME, img.comm.c_str(), 0, 0, 0);
  set_signals(img);

  std::vector<ckpt_restore_vma> vmas;
  std::vector<ckpt_restore_run> runs;
  size_t run_no = 0;
  for (size_t i = 0; i < img.vmas.size(); i++) {
    const Vma& v = img.vmas[i];
    ckpt_restore_vma k{};
    k.start = v.start;
    k.len = v.end - v.start;
    k.prot = v.prot;
    k.flags = (v.kind == kFile ? CKPT_VMA_FILE : 0) | (v.kind == kSharedAnon ? CKPT_VMA_SHARED : 0) |
              (v.growsdown ? CKPT_VMA_GROWSDOWN : 0) | (built[i] ? CKPT_VMA_PREBUILT : 0);
    if (v.kind == kFile) {
      k.fd = uint64_t(vfd[i]);
      k.pgoff = v.pgoff;
    }
    vmas.push_back(k);
    if (!built[i])
      for (const auto& r : v.runs)
        runs.push_back({.addr = v.start + r.offset, .len = r.len, .data_off = data_off[run_no++],
                        .reserved = 0});
  }
  ckpt_restore_prepare p{};
  p.flags = CKPT_RESTORE_STATUS_FD;
  p.self_fd = uint64_t(ckpt);
  p.vmas = uint64_t(uintptr_t(vmas.data()));
  p.nr_vmas = vmas.size();
  p.runs = uint64_t(uintptr_t(runs.data()));
  p.nr_runs = runs.size();
  p.vma_size = sizeof(ckpt_restore_vma);
  p.run_size = sizeof(ckpt_restore_run);
  p.data_fd = uint64_t(data);
  p.status_fd = uint64_t(g_status);
  if (img.vdso_start) {
    p.keep_start = img.vvar_start;
    p.keep_end = img.vdso_end;
  }
  p.start_code = img.start_code;
  p.end_code = img.end_code;
  p.start_data = img.start_data;
  p.end_data = img.end_data;
  p.start_brk = img.start_brk;
  p.brk = img.brk;
  p.start_stack = img.start_stack;
  p.arg_start = img.arg_start;
  p.arg_end = img.arg_end;
  p.env_start = img.env_start;
  p.env_end = img.env_end;
  thread_state(t, &p.thread);
  // Nothing so far touched anything but this child; what follows hands it to the module.
  char go = 0;
  ssize_t got;
  do got = read(g_go, &go, 1); while (got < 0 && errno == EINTR);
  if (got != 1) _exit(1);
  close(g_go);
  phase("PREPARE");
  if (int rc = ckptdev::restore_prepare(ckpt, &p)) {
    int e = -rc;
    const char* hint = e == EINVAL ? " (the image's layout or registers were refused)"
                       : e == EACCES ? " (a mapped file is not a regular file)"
                                     : "";
    die(std::string("ckpt.ko RESTORE_PREPARE: ") + strerror(e) + hint);
  }
  // The kernel holds its own references now.
  close(data);
  for (int fd : vfd)
    if (fd >= 0) close(fd);

  // The other threads park in the kernel; COMMIT wants them all there.
  // Each asks for its image thread's TID first; those refused go in a second round, so that
  // one taking a new TID cannot take the old TID of another image thread still to come (a
  // permuted TID would misdirect signals; a new one only makes them fail).
  const uint64_t kThreadFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                                CLONE_SYSVSEM;
  constexpr size_t kHelperStack = 64 << 10;
  for (int round = 0; round < 2; round++)
    for (auto& h : helpers_) {
      if (h.tid > 0) continue;
      Clone3 c(kThreadFlags, h.t->tid, round == 0);
      if (round == 0 && !c.want) continue;
      void* stack = mmap(nullptr, kHelperStack, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (stack == MAP_FAILED) die(std::string("a thread's stack: ") + strerror(errno));
      c.a.stack = uint64_t(uintptr_t(stack));
      c.a.stack_size = kHelperStack;
      long tid = restore_clone3_thread(&c.a, sizeof(c.a), helper_main, &h);
      if (tid > 0) {
        h.tid = pid_t(tid);
        continue;
      }
      munmap(stack, kHelperStack);
      if (round == 1 || (tid != -EEXIST && tid != -EPERM && tid != -EINVAL && tid != -E2BIG &&
                         tid != -ENOSYS))
        die(std::string("creating a thread: ") + strerror(int(-tid)));
    }
  for (int i = 0;; i++) {
    int e = ckptdev::restore_commit_check(ckpt);
    if (e == 0) break;
    if (e != -EBUSY) die(std::string("ckpt.ko RESTORE_COMMIT check: ") + strerror(-e));
    if (i > 30000) die("the helper threads did not park in ckpt.ko within 30 s");
    usleep(1000);
  }
  queue_signals(img.shared_pending, false);
  queue_signals(t.pending, true);
  set_rlimits(img);
  {
    std::vector<pid_t> tids{pid_t(syscall(SYS_gettid))};
    for (const auto& h : helpers_) tids.push_back(h.tid);
    set_sched(img, tids);
  }
  set_altstack(t);
  set_itimer(img);
  phase("COMMIT");
  static Xsave xs;
  std::memcpy(xs.b, t.xsave.data(), t.xsave.size());
  jump(t.regs.fs_base, t.regs.gs_base, &xs, rfbm(), ckpt, CKPT_IOC_RESTORE_COMMIT, 0, 99);
}

// Open the store and read the metadata of its newest intact epoch (the pages are read by the
// child, from the same epoch: a fallback midway makes it start again).
void load(const std::string& path, Image* img, Loaded* ld) {
  using ckpt::store::Store;
  ckpt::store::Options o;
  o.no_modify = true;  // a restore never creates, formats or repairs a store
  o.mac_key = store_key();
  std::string why;
  o.why = &why;
  int e = ld->st ? 0 : Store::open(path, o, &ld->st);
  if (e == -ENOENT) throw Error{kUnavailable, path + ": no such store"};
  if (e == -ENODATA) throw Error{kUnavailable, why.empty() ? path + ": not a ckpt store" : why};
  if (e == -EBUSY)
    throw Error{kUnavailable, path + ": the store is open in another program (a `run` still "
                                     "checkpointing into it?)"};
  if (e) throw Error{kFailed, why.empty() ? path + ": " + strerror(-e) : why};
  phase("store open");
  Store& st = *ld->st;
  ld->regions.clear();
  for (auto& r : st.regions()) ld->regions[r.name] = r;
  auto pr = ld->regions.find(kProcessRegion);
  if (st.epoch() == 0 || pr == ld->regions.end())
    throw Error{kUnavailable, path + " holds no process image (no \"process\" region committed)"};
  std::vector<uint8_t> meta(pr->second.size);
  ckpt::store::ReadReport rep;
  e = st.read_region(pr->second.id, meta.data(), meta.size(), &rep);
  if (e == -EIO) throw Error{kFailed, damaged_msg("the process metadata", rep, 0)};
  if (e) throw Error{kFailed, path + ": reading the process metadata: " + strerror(-e)};
  ld->regions.clear();  // again: a fallback while reading changes them
  for (auto& r : st.regions()) ld->regions[r.name] = r;
  ld->epoch = rep.epoch;
  phase("metadata read");
  *img = Image{};
  if (decode_process(meta, img, &why)) throw Error{kFailed, path + ": " + why};
}

pid_t start_child(const Image& img, Loaded& ld);

std::string id_list(const uint64_t* v, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; i++) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// The image's credentials against what the restore would give it (the caller's): another
// user's image, or one whose groups or capabilities differ, is refused unless
// --as-image-user. A 2.4 or older image records none and runs as the caller.
void check_creds(const Image& img) {
  if (!img.has_creds) return;
  std::string st;
  Creds me;
  if (proc::read_file("/proc/self/status", &st) || proc::creds_from_status(st, &me))
    throw Error{kFailed, "/proc/self/status: cannot read this process's credentials"};
  const Creds& c = img.creds;
  if (me == c) return;
  if (g_as_image_user) return;  // the child becomes the image's user, or fails saying why
  std::string what;
  if (!std::equal(c.uid, c.uid + 4, me.uid))
    what = "was made by uid " + id_list(c.uid, 4) + " (real, effective, saved, fs); you are " +
           id_list(me.uid, 4);
  else if (!std::equal(c.gid, c.gid + 4, me.gid))
    what = "was made with gid " + id_list(c.gid, 4) + "; you have " + id_list(me.gid, 4);
  else if (c.groups != me.groups)
    what = "was made with supplementary groups " +
           (c.groups.empty() ? std::string("(none)") : id_list(c.groups.data(), c.groups.size())) +
           "; you have " +
           (me.groups.empty() ? std::string("(none)") : id_list(me.groups.data(), me.groups.size()));
  else
    what = "was made with other capabilities (effective " + hex(c.cap_eff) + ", permitted " +
           hex(c.cap_prm) + ", bounding " + hex(c.cap_bnd) + ") than yours (" + hex(me.cap_eff) +
           ", " + hex(me.cap_prm) + ", " + hex(me.cap_bnd) + ")";
  throw Error{kRefused, "the image " + what +
                            "; --as-image-user restores it with the image's credentials (if "
                            "you may give them)"};
}

int do_restore(const std::string& store, pid_t* out_pid, bool quiet) {
  auto t0 = std::chrono::steady_clock::now();
  g_phases = getenv("CKPT_TOOL_PHASES") != nullptr;
  g_t0 = now_s();
  if (g_phases) {  // how long the start of ckpt-tool itself took (exec, loader, main)
    std::string st;
    timespec bt;
    syscall(SYS_clock_gettime, CLOCK_BOOTTIME, &bt);
    if (proc::read_file("/proc/self/stat", &st) == 0 && st.rfind(')') != std::string::npos) {
      unsigned long long start = 0;
      const char* p = st.c_str() + st.rfind(')') + 2;
      for (int field = 3; *p && field < 22; field++) p = strchr(p, ' ') ? strchr(p, ' ') + 1 : "";
      start = strtoull(p, nullptr, 10);
      std::fprintf(stderr, "ckpt-tool phases: restore entered %.3f s after exec (boot time %.3f)\n",
                   double(bt.tv_sec) + 1e-9 * double(bt.tv_nsec) - double(start) / double(sysconf(_SC_CLK_TCK)),
                   double(bt.tv_sec) + 1e-9 * double(bt.tv_nsec));
    }
  }
  Image img;
  Loaded ld;
  for (int attempt = 0;; attempt++) {
    if (attempt == 3) throw Error{kFailed, store + ": the store kept changing epoch while read"};
    load(store, &img, &ld);
    check_creds(img);
    pid_t pid = start_child(img, ld);
    if (pid > 0) {
      *out_pid = pid;
      break;
    }
  }
  ld.st.reset();  // the store's lock goes now, not when the process exits
  phase("store closed");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  phase("done");
  if (g_phases) {
    timespec bt;
    syscall(SYS_clock_gettime, CLOCK_BOOTTIME, &bt);
    std::fprintf(stderr, "ckpt-tool phases: restore done at boot time %.3f\n",
                 double(bt.tv_sec) + 1e-9 * double(bt.tv_nsec));
  }
  if (!quiet)
    std::fprintf(stderr, "ckpt-tool restore: pid %" PRIu64 " (epoch %" PRIu64
                 ") restored as pid %d in %.3f s\n", img.pid, ld.epoch, *out_pid, secs);
  return kOk;
}

// fork(), the child taking the image's PID if it is free and the caller may choose it
// (Clone3). The dumped process's PID may still be held a moment after it was killed, until its
// parent reaps it: an EEXIST is tried again for up to 10 ms before the child takes a new PID.
pid_t fork_as(uint64_t want) {
  long pid = -EEXIST;
  for (int tries = 0; pid == -EEXIST && tries <= 10; tries++) {
    Clone3 c(0, want, true);
    if (!c.want) break;
    if (tries) usleep(1000);
    pid = clone3_fork(c);
  }
  if (pid >= 0) return pid_t(pid);  // 0 in the child
  // set_tid refused: EPERM (the caller may not choose PIDs), EEXIST (in use), or an old
  // kernel's ENOSYS / E2BIG / EINVAL. A new PID, from glibc's own fork.
  return fork();
}

// Fork the child that becomes the image and wait for its outcome. Returns its pid, or 0 when
// the store fell back to its older epoch while the child read (after replaying the read here).
// The child starts at once and builds the layout and reads the pages while this process checks
// what can be refused before anything starts (check_image: the mapped files, the vdso, the
// CPU); it goes on to PREPARE only on this process's word, so a refusal here wins over
// anything the child met, and the child dies having touched nothing but itself.
pid_t start_child(const Image& img, Loaded& ld) {
  int pfd[2], go[2];
  // go: a socket, so that telling a child that died already is an error, not SIGPIPE.
  if (pipe(pfd) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) < 0)
    throw Error{kFailed, std::string("pipe: ") + strerror(errno)};
  fflush(nullptr);
  pid_t pid = fork_as(img.pid);
  if (pid < 0) throw Error{kFailed, std::string("fork: ") + strerror(errno)};
  if (pid == 0) {
    close(pfd[0]);
    close(go[1]);
    child(img, ld, pfd[1], go[0]);
  }
  close(pfd[1]);
  close(go[0]);
  try {
    check_image(img);
  } catch (...) {
    close(go[1]);
    close(pfd[0]);
    kill(pid, SIGKILL);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
  phase("checked");
  char one = 1;
  (void)!send(go[1], &one, 1, MSG_NOSIGNAL);  // if the child is gone, its status says why
  close(go[1]);
  int64_t st = 0;
  size_t got = 0;
  while (got < sizeof(st)) {
    ssize_t n = read(pfd[0], reinterpret_cast<char*>(&st) + got, sizeof(st) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  std::string msg;
  uint64_t fb[3] = {};
  bool fell = got == sizeof(st) && st == kStatusFellBack &&
              read(pfd[0], fb, sizeof(fb)) == ssize_t(sizeof(fb));
  if (got == sizeof(st) && st == kStatusFailed) {
    char buf[4096];
    ssize_t n;
    while ((n = read(pfd[0], buf, sizeof buf)) > 0) msg.append(buf, size_t(n));
  }
  close(pfd[0]);
  if (got != sizeof(st) || st != 0) {
    int ws = 0;
    waitpid(pid, &ws, 0);
    if (fell) {
      // The child saw a damaged page and the store's fallback; do the same read here so that
      // this store object falls back too, and start again from the older epoch's metadata.
      std::vector<uint8_t> buf(fb[2]);
      ckpt::store::ReadReport rr;
      int e = ld.st->read_range(uint32_t(fb[0]), fb[1], buf.data(), buf.size(), &rr);
      if (rr.epoch == ld.epoch)
        throw Error{kFailed, "the store fell back to an older epoch in the restorer but not "
                             "here" + (e ? std::string(": ") + strerror(-e) : std::string())};
      return 0;
    }
    if (got == sizeof(st) && st == kStatusFailed) throw Error{kFailed, msg};
    if (got == sizeof(st))
      throw Error{kFailed, std::string("the kernel failed the restore past the point of no "
                                       "return: ") + strerror(int(-st))};
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 99)
      throw Error{kFailed, "ckpt.ko refused RESTORE_COMMIT"};
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 98)
      throw Error{kFailed, "ckpt.ko refused RESTORE_THREAD"};
    throw Error{kFailed, "the restorer died before the restore (wait status " +
                             std::to_string(ws) + ")"};
  }
  return pid;
}

int wait_child(pid_t pid) {
  int ws;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR) throw Error{kFailed, std::string("waitpid: ") + strerror(errno)};
  if (WIFEXITED(ws)) return WEXITSTATUS(ws);
  return 128 + WTERMSIG(ws);
}

}  // namespace

int wp::restore(const std::string& store, pid_t* pid, std::string* why) {
  try {
    return do_restore(store, pid, true);
  } catch (const Error& e) {
    *why = e.msg;
    return e.code;
  }
}

void add_restore(CLI::App& app, Runner& run) {
  struct Opts {
    std::string store;
    bool wait = false;
    bool as_image_user = false;
    unsigned interval = 0;
    std::string stats;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "restore", "Recreate a process from the newest intact checkpoint in a store (its PID if "
                 "free and you may choose PIDs, else a new one; an image made with other "
                 "credentials than yours is refused unless --as-image-user)");
  add_key_file_option(sub);
  sub->add_option("--store", o->store, "store written by dump or run")->required();
  sub->add_flag("--wait", o->wait,
                "wait for the restored process and exit with its status (128+N if killed by "
                "signal N)");
  sub->add_option("--interval", o->interval,
                  "keep checkpointing the restored process into the same store every MS "
                  "milliseconds (and on SIGUSR1), as `run` does (implies --wait)");
  sub->add_option("--stats", o->stats, "with --interval: as run --stats");
  sub->add_flag("--as-image-user", o->as_image_user,
                "restore an image made by another user (or with other groups or capabilities "
                "than yours) with the image's credentials: needs the right to give them (root); "
                "never more than the image had");
  sub->callback([&run, o] {
    run = [o] {
      try {
        pid_t pid = 0;
        if (o->interval) wp::catch_checkpoint_requests();
        g_as_image_user = o->as_image_user;
        int rc = do_restore(o->store, &pid, false);
        if (rc != kOk) return rc;
        // The restored process keeps its PID, but its /proc/PID/exe names ckpt-tool (it cannot
        // be set back), so dump's check that the store holds this process's image would refuse
        // its first checkpoint: it is the process made from this very store.
        if (o->interval)
          return wp::supervise(o->store, pid, o->interval, o->stats, false, false, true);
        return o->wait ? wait_child(pid) : int(kOk);
      } catch (const Error& e) {
        std::fprintf(stderr, "ckpt-tool restore: %s\n", e.msg.c_str());
        return e.code;
      }
    };
  });
}

}  // namespace ckpt_tool
