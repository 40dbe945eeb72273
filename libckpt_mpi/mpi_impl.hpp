// SPDX-License-Identifier: MIT
// libckpt-mpi's internals, shared by its parts: the rank's handle (struct ckpt_mpi), the
// record's layout and the functions one part calls in another. Not installed.
//   ckpt_mpi.cpp  open, restore, register, close: the handle's life
//   agree.cpp     the collective checkpoint: local commit, agreement, the rank's record
//   trigger.cpp   the collective triggers (every_n, interval): ckpt_mpi_hook
//   shared.cpp    the second level: copies of every K-th complete epoch in a shared directory
// The protocol and why it is safe: Documentation/design.md, "MPI jobs".
#pragma once

#include <ckpt/ckpt_mpi.h>

#include <cstdint>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace ckpt_mpi_detail {

inline constexpr char kRecordMagic[8] = {'C', 'K', 'P', 'T', 'M', 'P', 'I', '1'};
inline constexpr char kSharedMagic[8] = {'C', 'K', 'P', 'T', 'M', 'P', 'S', '1'};

// The rank's record, beside its store: two slots (offsets 0 and 512, each within one sector),
// written alternately in place and made durable with one fdatasync; each slot is checksummed and
// the valid slot with the higher sequence number is the record, so a torn write leaves the
// previous one. Local epoch L >= valid_from holds global epoch L + base. `complete` is the newest epoch this
// rank knows to be globally complete; `gen` counts rollbacks below a complete epoch (a new
// timeline), so records of an abandoned timeline are outvoted.
struct Record {
	char magic[8];
	uint32_t rank, size;
	uint64_t gen, base, valid_from, complete;
	uint64_t seq;
	uint64_t extra_local, extra_epoch;	// one more local epoch -> job epoch (see rebase)
	uint64_t csum;
};
inline constexpr off_t kSlot = 512;

struct Region {
	std::string name;
	void *addr;
	size_t len;
};

} // namespace ckpt_mpi_detail

struct ckpt_mpi {
	MPI_Comm comm = MPI_COMM_NULL;	// checkpoints and restores
	MPI_Comm tcomm = MPI_COMM_NULL;	// the time trigger's non-blocking allreduces
	int rank = 0, size = 0;
	std::string pattern, record_pattern, store_path, record_path, shared_dir;
	uint64_t shared_every = 1;
	ckpt_t *s = nullptr;
	bool store_was_missing = false;

	ckpt_mpi_detail::Record rec{};		// as on disk (or as it will be written)
	int record_fd = -1;
	std::thread syncer;	// the record's background fdatasync (see record_write)
	int sync_result = 0;
	bool record_dirty = false;	// a write failed: retried before the next local commit
	uint64_t epoch = 0;	// last globally complete epoch known here
	uint64_t local_next = 1;	// the local epoch the next ckpt_checkpoint commits
	uint64_t failed_epoch = 0;	// the job epoch whose last collective checkpoint failed
	bool restored_or_started = false;
	uint64_t plan_gen = 0, plan_complete = 0;	// the job's records at open (max gen, its max complete)

	std::vector<ckpt_mpi_detail::Region> regions;

	// triggers
	uint64_t every_n = 0, interval_ms = 0, hooks = 0, last_end = 0;
	MPI_Request treq = MPI_REQUEST_NULL;
	int tsend = 0, trecv = 0;

	// shared copy (background thread: file I/O only, no MPI)
	std::thread copier;
	std::vector<char> snap;
	uint64_t snap_epoch = 0;
	int copy_result = 0;
	uint64_t copies = 0, last_shared_epoch = 0;

	ckpt_mpi_stats st{};
	std::string err, source;
};

namespace ckpt_mpi_detail {

// ckpt_mpi.cpp
extern thread_local std::string t_open_error;	// ckpt_mpi_last_error(NULL)
uint64_t now_ns();
std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
int expand(const char *pat, int rank, std::string *out);	// "%d" -> rank, "%%" -> '%'
inline void set_err(ckpt_mpi *c, std::string m) { c->err = std::move(m); }

// agree.cpp
bool fault_at(const char *point, uint64_t epoch, int rank);
void fault_point(const char *point, uint64_t epoch, int rank);
int record_sync_wait(ckpt_mpi *c);
int record_write(ckpt_mpi *c, bool sync = true);
bool record_read(ckpt_mpi *c, Record *out);
uint64_t local_of(const Record &r, uint64_t g);
int agree_status(ckpt_mpi *c, MPI_Comm comm, int status, std::string *msg);

// trigger.cpp
void reset_trigger(ckpt_mpi *c);

// shared.cpp
int fsync_dir_of(const std::string &path);
std::string shared_name(const ckpt_mpi *c, int rank, uint64_t g);
std::vector<uint64_t> shared_epochs(const ckpt_mpi *c);
void build_snapshot(ckpt_mpi *c, uint64_t g);
void copy_job(ckpt_mpi *c);
int wait_copy(ckpt_mpi *c);
int shared_restore(ckpt_mpi *c, uint64_t g);

} // namespace ckpt_mpi_detail
