// SPDX-License-Identifier: MIT
// ckpt-tool: the whole-process image, as it lives in a libckpt store (libckpt/store/store.hpp).
//
// A process image is a store whose regions are
//   "process"         the metadata below (process, threads, mappings, files), encoded by
//                     encode_process(): "CKPTPROC", format version, length, then encode_meta()
//   "vma:<start hex>" one per mapping with pages to keep, from the mapping's start to the end of
//                     its last run: page i holds the mapping's page i when the mapping's runs
//                     say it is present
// and every checkpoint commits all of them in one store transaction, so the store's atomic
// commit, checksums and fallback epoch make the image consistent. Pages a mapping does not list
// in its runs are not part of the image (restore leaves them to the kernel: zero for anonymous
// memory, the file's content for a private file mapping), whatever the region holds there.
// Documentation/whole-process.md has the field-by-field description.
//
// decode_meta() validates everything a restore relies on (bounds, alignment, ordering, sizes,
// register values the kernel would refuse) and returns -EBADMSG with a reason for anything
// else; it never reads outside its input. Not thread-safe (plain values).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt_tool::image {

inline constexpr char kMagic[8] = {'C', 'K', 'P', 'T', 'P', 'R', 'O', 'C'};
inline constexpr uint32_t kVersionMajor = 2;  // 1 was the standalone image file, gone
inline constexpr uint32_t kVersionMinor = 9;  // 2.1: resource limits (2.0 images have none);
                                              // 2.2: madvise state of mappings (Vma::advice);
                                              // 2.3: ITIMER_REAL (Image::itimer_real_ns);
                                              // 2.4: personality, no_new_privs, THP disable;
                                              // 2.5: credentials, scheduling, oom_score_adj;
                                              // 2.6: more madvise state (sr, rr, mg, nr),
                                              //      directory and O_PATH descriptors;
                                              // 2.7: read-only MAP_SHARED file mappings;
                                              // 2.8: coredump_filter, timer slack, CPU
                                              //      affinity, process group/session leader;
                                              // 2.9: eventfd, signalfd, timerfd descriptors
inline constexpr uint64_t kPage = 4096;
inline constexpr uint64_t kProcessHeader = 24;  // magic, version, metadata length
inline constexpr uint64_t kMaxMeta = 1ull << 30;
inline constexpr char kProcessRegion[] = "process";
inline constexpr uint64_t kUserTop = 0x00007ffffffff000ULL;  // x86-64 TASK_SIZE_MAX, 4-level
inline constexpr size_t kMaxString = 4096;
inline constexpr size_t kMaxXsave = 64 * 1024;
inline constexpr size_t kMinXsave = 576;  // legacy area (512) + XSAVE header (64)
inline constexpr size_t kMaxThreads = 1024;
inline constexpr size_t kMaxVmas = 65530;
inline constexpr size_t kMaxRuns = 1 << 22;
inline constexpr size_t kMaxFiles = 65536;
inline constexpr int kNsig = 64;
inline constexpr int kNlimits = 16;  // RLIM_NLIMITS on Linux
inline constexpr size_t kSiginfo = 128;         // sizeof(siginfo_t)
inline constexpr size_t kMaxPending = 1 << 16;  // queued signals per queue
inline constexpr size_t kMaxGroups = 65536;     // NGROUPS_MAX
inline constexpr uint64_t kCapMask = (1ull << 41) - 1;  // CAP_LAST_CAP 40 (6.1, 6.12)

// struct user_regs_struct order (x86-64).
struct Regs {
  uint64_t r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
  uint64_t ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
  uint64_t fs_base, gs_base, ds, es, fs, gs;
};
static_assert(sizeof(Regs) == 27 * 8);

struct SigAction {
  uint64_t handler = 0, flags = 0, restorer = 0, mask = 0;
};

struct Thread {
  uint64_t tid = 0;
  Regs regs{};
  std::vector<uint8_t> xsave;  // NT_X86_XSTATE, standard (non-compacted) format
  uint64_t sigmask = 0;
  uint64_t clear_child_tid = 0, robust_list = 0;
  uint64_t sas_sp = 0, sas_size = 0, sas_flags = 0;
  uint64_t rseq = 0, rseq_sig = 0;
  // Signals queued for this thread alone (tgkill, raise, ...), each a raw siginfo_t of
  // kSiginfo bytes, oldest first (PTRACE_PEEKSIGINFO). Since format 2.1.
  std::vector<std::vector<uint8_t>> pending;
};

// A run of pages whose bytes are in the image: [vma.start + offset, + len) is in the mapping's
// region at the same offset.
struct Run {
  uint64_t offset = 0;  // from the vma's start, page-aligned
  uint64_t len = 0;     // page multiple, > 0
};

enum VmaKind : uint64_t {
  kAnon = 0,        // private anonymous (heap, stack, malloc arenas, ...)
  kFile = 1,        // private file mapping; runs hold the pages the process wrote
  kSharedAnon = 2,  // MAP_SHARED|MAP_ANONYMOUS; runs hold every page
  kSharedFile = 3,  // (2.7) read-only MAP_SHARED of a file opened read-only: no runs, the file
                    // holds the bytes; mapped again from the same file (checked unchanged)
};

// A file the restore must find unchanged.
struct FileId {
  std::string path;
  uint64_t ino = 0, size = 0, mtime_ns = 0;
};

// What madvise(2) or mmap(2) set on a mapping that the kernel keeps as a flag of it (VmFlags
// in /proc/PID/smaps: hg, nh, dc, dd, wf since format 2.2; sr, rr, mg, nr since 2.6). Older
// images read as none.
enum VmaAdvice : uint64_t {
  kAdvHugepage = 1 << 0,    // MADV_HUGEPAGE (hg)
  kAdvNoHugepage = 1 << 1,  // MADV_NOHUGEPAGE (nh)
  kAdvDontfork = 1 << 2,    // MADV_DONTFORK (dc)
  kAdvDontdump = 1 << 3,    // MADV_DONTDUMP (dd)
  kAdvWipeonfork = 1 << 4,  // MADV_WIPEONFORK (wf), private anonymous only
  kAdvAll22 = (1 << 5) - 1,  // what 2.2-2.5 images may hold
  kAdvSequential = 1 << 5,  // MADV_SEQUENTIAL (sr)
  kAdvRandom = 1 << 6,      // MADV_RANDOM (rr)
  kAdvMergeable = 1 << 7,   // MADV_MERGEABLE (mg, KSM)
  kAdvNoreserve = 1 << 8,   // mmap MAP_NORESERVE (nr), private mappings only
  kAdvAll = (1 << 9) - 1,
};

struct Vma {
  uint64_t start = 0, end = 0;
  uint64_t prot = 0;  // PROT_*
  uint64_t kind = kAnon;
  bool growsdown = false;
  uint64_t pgoff = 0;  // kFile, kSharedFile: byte offset
  FileId file;         // kFile, kSharedFile
  std::vector<Run> runs;  // ascending, not overlapping
  uint64_t advice = 0;    // VmaAdvice bits (2.2)
};

// An open file descriptor.
enum FdKind : uint64_t {
  kFdInherit = 0,  // 0-2 that are a tty, pipe or socket: the restore gives its own
  kFdRegular = 1,  // a regular file, reopened by path at its offset with its flags
  kFdDevice = 2,   // /dev/null, /dev/zero, /dev/random, /dev/urandom: reopened by path
  kFdDirectory = 3,  // (2.6) a directory, reopened by path (the same inode) at its position
  kFdPath = 4,       // (2.6) O_PATH, of a regular file or a directory: reopened by path
  kFdEventfd = 5,    // (2.9) eventfd: Fd::count, Fd::semaphore
  kFdSignalfd = 6,   // (2.9) signalfd: Fd::sigmask
  kFdTimerfd = 7,    // (2.9) timerfd: Fd::clock, timer_flags, count, value_ns, interval_ns
};
// timerfd_settime flags a timerfd keeps (TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET).
inline constexpr uint64_t kTimerAbstime = 1, kTimerCancelOnSet = 2;
inline constexpr uint64_t kTimerFlags = kTimerAbstime | kTimerCancelOnSet;
// A timerfd's expiry or interval beyond this (a century) is no real timer.
inline constexpr uint64_t kMaxTimerNs = 100ull * 366 * 86400 * 1000000000ull;

struct Fd {
  uint64_t fd = 0;
  uint64_t kind = kFdInherit;
  uint64_t flags = 0;  // open(2) flags from fdinfo (O_ACCMODE, O_APPEND, O_NONBLOCK, ...)
  uint64_t pos = 0;
  bool cloexec = false;
  FileId file;  // not for kFdInherit and the event descriptors (2.9)
  // 2.9, the event descriptors (their open flags: O_RDWR, maybe O_NONBLOCK; no file):
  uint64_t count = 0;        // eventfd: the counter (< 2^64 - 1); timerfd: expirations not
                             // yet read (restored with TFD_IOC_SET_TICKS)
  bool semaphore = false;    // eventfd: EFD_SEMAPHORE
  uint64_t sigmask = 0;      // signalfd: the signals it reads, bit n-1 = signal n (never
                             // SIGKILL, SIGSTOP)
  uint64_t clock = 0;        // timerfd: its clock (CLOCK_REALTIME, MONOTONIC, BOOTTIME and
                             // their _ALARM)
  uint64_t timer_flags = 0;  // timerfd: kTimerFlags bits of its last timerfd_settime
  uint64_t value_ns = 0;     // timerfd: time left at the dump (0: disarmed, or expired)
  uint64_t interval_ns = 0;  // timerfd: its interval
};

// The credentials of a process (every thread's are the same, or dump refuses): /proc/PID/status.
struct Creds {
  uint64_t uid[4] = {}, gid[4] = {};  // real, effective, saved, filesystem
  std::vector<uint64_t> groups;       // supplementary groups, as the kernel lists them (sorted)
  uint64_t cap_inh = 0, cap_prm = 0, cap_eff = 0, cap_bnd = 0, cap_amb = 0;
  bool operator==(const Creds&) const = default;
};

struct Image {
  uint64_t pid = 0;
  std::string comm, cwd, exe;
  uint64_t umask = 022;
  // mm fields, in struct ckpt_restore_prepare order.
  uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
  uint64_t start_brk = 0, brk = 0, start_stack = 0;
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
  SigAction actions[kNsig];
  // [vvar] directly below [vdso]; all 0 if the process had none.
  uint64_t vvar_start = 0, vdso_start = 0, vdso_end = 0;
  uint64_t vdso_hash = 0;  // xxh64 of the vdso's bytes: same kernel or refuse
  std::vector<Thread> threads;
  std::vector<Vma> vmas;
  std::vector<Fd> fds;
  // Resource limits (getrlimit order, RLIMIT_CPU = 0 ...), since format 2.1. has_rlimits false:
  // an image that does not record them (restore leaves the restorer's own).
  bool has_rlimits = false;
  // Signals queued for the whole process (kill, sigqueue, ...), as Thread::pending. 2.1.
  std::vector<std::vector<uint8_t>> shared_pending;
  struct Rlimit {
    uint64_t cur = 0, max = 0;
  } rlimits[kNlimits];
  // ITIMER_REAL (setitimer, alarm) at the dump: time left and interval, both 0 = disarmed; no
  // time left with an interval = a periodic timer that fired while the process was stopped
  // (SIGALRM pending). 2.3. Restore arms it again with the time it had left (the time between
  // dump and restore does not count), or one interval. Other timers are refused at dump.
  uint64_t itimer_real_ns = 0, itimer_real_interval_ns = 0;
  // 2.4: personality(2) and prctl(2) state. has_task_state false (an older image): restore
  // leaves the restorer's own. no_new_privs is per thread: set if any thread had it (restore
  // gives it to every thread, never fewer restrictions than the dump found).
  bool has_task_state = false;
  uint64_t personality = 0;
  uint64_t task_flags = 0;  // kTask*
  // 2.5: who made the image and how it was scheduled. has_creds false (an older image): restore
  // runs it with the caller's credentials and its own scheduling, as before.
  bool has_creds = false;
  Creds creds;
  int64_t nice = 0;            // getpriority(PRIO_PROCESS), -20..19
  uint64_t sched_policy = 0;   // SCHED_OTHER 0, FIFO 1, RR 2, BATCH 3, IDLE 5
  uint64_t sched_priority = 0; // real-time priority: 1..99 for FIFO/RR, else 0
  int64_t oom_score_adj = 0;   // -1000..1000
  // 2.8: what the process set on itself and its children would inherit. has_attrs false (an
  // older image): restore leaves the restorer's own.
  bool has_attrs = false;
  uint64_t coredump_filter = 0;    // /proc/PID/coredump_filter, bits 0-8
  uint64_t timer_slack_ns = 0;     // the main thread's (PR_GET_TIMERSLACK); 0: not read (the
                                   // caller lacked CAP_SYS_NICE) or a real-time thread's
  std::vector<uint64_t> affinity;  // CPU mask, bit n = CPU n, at most kMaxCpuWords words;
                                   // empty: ckpt-tool's own at the dump (not set at restore)
};
inline constexpr uint64_t kTaskNoNewPrivs = 1, kTaskThpDisable = 2;
inline constexpr uint64_t kTaskAll24 = kTaskNoNewPrivs | kTaskThpDisable;  // 2.4-2.7
// 2.8: the process led its process group (setpgid(0, 0)) or its session (setsid(), without a
// controlling terminal: dump refuses one with a terminal).
inline constexpr uint64_t kTaskPgrpLeader = 4, kTaskSessionLeader = 8;
inline constexpr uint64_t kTaskAll = kTaskAll24 | kTaskPgrpLeader | kTaskSessionLeader;
inline constexpr size_t kMaxCpuWords = 16;  // 1024 CPUs: glibc's cpu_set_t

// Metadata only (no page data).
std::vector<uint8_t> encode_meta(const Image& img);
// Validate and decode metadata. 0 or -EBADMSG with *why set.
// `minor`: the format's minor version the metadata was written with (2.0 has no rlimits).
int decode_meta(std::span<const uint8_t> meta, Image* img, std::string* why,
                uint32_t minor = kVersionMinor);

// The "process" region's bytes: header + metadata, zero-padded to a page multiple.
std::vector<uint8_t> encode_process(const Image& img);
// Decode a "process" region. -ENODATA: not a process image (bad magic); -EPROTO: another
// format version; -EBADMSG: damaged (length or metadata). *why says which.
int decode_process(std::span<const uint8_t> region, Image* img, std::string* why);

// The region of the mapping starting at `start`: "vma:<start in hex>".
std::string vma_region(uint64_t start);

uint64_t hash(const void* p, size_t n, uint64_t seed = 0);

// VmaAdvice bits of a mapping from its smaps VmFlags ("rd wr mr mw me ac hg").
uint64_t advice_from_vmflags(std::string_view vmflags);

}  // namespace ckpt_tool::image
