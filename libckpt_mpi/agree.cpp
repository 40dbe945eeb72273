// SPDX-License-Identifier: MIT
// libckpt-mpi: the collective checkpoint (local commit on every rank, one agreement, then
// each rank's record of the globally complete epoch) and its test-only fault injection.
// The protocol and why it is safe: Documentation/design.md, "MPI jobs".
#include "mpi_impl.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <mutex>
#include <signal.h>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>
#include <xxhash.h>

namespace ckpt_mpi_detail {

static uint64_t record_sum(const Record &r)
{
	return XXH3_64bits(&r, offsetof(Record, csum));
}

// Test-only fault injection (tests/mpi): CKPT_MPI_FAULT=<point>:<epoch>:<rank>[,...] (rank "*":
// every rank) makes that rank act at <point> of the checkpoint of <epoch>: SIGKILL itself at
// "after-local-commit" (its store holds the epoch, no agreement yet), "after-agreement" (agreed,
// its record not yet written) or "after-local-commit-retry" (as after-local-commit, in the
// checkpoint that retries an epoch whose first attempt failed); or, at "fail-local-commit", fail
// its local commit of the epoch's first attempt with -EIO (the store untouched).
bool fault_at(const char *point, uint64_t epoch, int rank)
{
	const char *f = getenv("CKPT_MPI_FAULT");
	while (f && *f) {
		char name[64], rk[16];
		unsigned long long e;
		if (sscanf(f, "%63[^:,]:%llu:%15[^,]", name, &e, rk) == 3 && !strcmp(name, point) &&
		    e == epoch && (!strcmp(rk, "*") || atoi(rk) == rank))
			return true;
		f = strchr(f, ',');
		if (f)
			f++;
	}
	return false;
}

void fault_point(const char *point, uint64_t epoch, int rank)
{
	if (fault_at(point, epoch, rank))
		raise(SIGKILL);
}

int record_sync_wait(ckpt_mpi *c)
{
	if (c->syncer.joinable())
		c->syncer.join();
	int r = c->sync_result;
	c->sync_result = 0;
	if (r) {
		c->record_dirty = true;
		set_err(c, fmt("rank %d: fdatasync of the record %s: %s", c->rank,
			       c->record_path.c_str(), strerror(-r)));
	}
	return r;
}

// Write the record into its next slot. sync: make it durable before returning; else the
// fdatasync runs in the background and record_sync_wait() (called before the next local
// commit, the first write that could depend on it) collects it.
int record_write(ckpt_mpi *c, bool sync)
{
	record_sync_wait(c);
	memcpy(c->rec.magic, kRecordMagic, 8);
	c->rec.rank = uint32_t(c->rank);
	c->rec.size = uint32_t(c->size);
	c->rec.seq++;
	c->rec.csum = record_sum(c->rec);
	int r = 0;
	if (c->record_fd < 0) {
		c->record_fd = open(c->record_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (c->record_fd < 0)
			r = -errno;
		else
			r = fsync_dir_of(c->record_path);	// the new name is durable
	}
	if (!r && pwrite(c->record_fd, &c->rec, sizeof(c->rec), off_t(c->rec.seq % 2) * kSlot) !=
		      ssize_t(sizeof(c->rec)))
		r = errno ? -errno : -EIO;
	if (!r && sync && fdatasync(c->record_fd) < 0)
		r = -errno;
	if (!r && !sync)
		c->syncer = std::thread([c] { c->sync_result = fdatasync(c->record_fd) < 0 ? -errno : 0; });
	c->record_dirty = r != 0;
	if (r)
		set_err(c, fmt("rank %d: writing the record %s: %s", c->rank, c->record_path.c_str(),
			       strerror(-r)));
	return r;
}

bool record_read(ckpt_mpi *c, Record *out)
{
	int fd = open(c->record_path.c_str(), O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool found = false;
	for (off_t slot = 0; slot < 2; slot++) {
		Record r;
		if (pread(fd, &r, sizeof(r), slot * kSlot) != ssize_t(sizeof(r)) ||
		    memcmp(r.magic, kRecordMagic, 8) || r.csum != record_sum(r) ||
		    r.rank != uint32_t(c->rank) || r.size != uint32_t(c->size))
			continue;
		if (!found || r.seq > out->seq)
			*out = r;
		found = true;
	}
	if (found)
		c->record_fd = fd;
	else
		close(fd);
	return found;
}

// The local epoch that holds job epoch g by the record's mapping; 0 if none.
uint64_t local_of(const Record &r, uint64_t g)
{
	// base may be "negative" (a store numbered ahead of the job after a restore from the
	// shared copy): the arithmetic wraps, as it does where local epochs are mapped.
	uint64_t L = g - r.base;
	if (g && r.valid_from && L >= r.valid_from && L < (1ull << 62))
		return L;
	if (g && r.extra_epoch == g)
		return r.extra_local;
	return 0;
}

// Agree on a status: 0 on every rank if all are 0, else the first failing rank's -errno on every
// rank, with that rank's error text.
int agree_status(ckpt_mpi *c, MPI_Comm comm, int status, std::string *msg)
{
	int key = status ? c->rank : c->size, first;
	MPI_Allreduce(&key, &first, 1, MPI_INT, MPI_MIN, comm);
	if (first == c->size)
		return 0;
	char buf[512] = {0};
	int code = status;
	if (c->rank == first)
		snprintf(buf, sizeof(buf), "%s", msg->c_str());
	MPI_Bcast(&code, 1, MPI_INT, first, comm);
	MPI_Bcast(buf, sizeof(buf), MPI_CHAR, first, comm);
	*msg = buf;
	return code;
}

} // namespace ckpt_mpi_detail

using namespace ckpt_mpi_detail;

extern "C" {

int ckpt_mpi_checkpoint(ckpt_mpi_t *c)
{
	if (!c)
		return -EINVAL;
	uint64_t g = c->epoch + 1;
	bool copy = !c->shared_dir.empty() && g % c->shared_every == 0;
	int status = 0;
	std::string msg;
	if (!c->restored_or_started) {
		// Checkpointing without a restore starts the job afresh: a new timeline, so that the
		// records of the old one are outvoted should this rank crash before its next record.
		if (c->plan_complete)
			c->rec.gen = c->plan_gen + 1;
		c->rec.complete = c->epoch;
		c->restored_or_started = true;
		c->record_dirty = true;
	}
	if (copy)
		wait_copy(c);
	// A retry after a failed agreement: if this rank's local commit of the failed attempt
	// succeeded, its store's newest epoch was never agreed on. Committing on top of it would push
	// the last complete epoch out of the two-epoch store (a crash in the retry would then leave
	// no local copy of it); go back to the complete epoch instead, memory as it is, so this
	// commit is g again on top of g-1 and supersedes the failed attempt (design.md, "MPI jobs").
	uint64_t Lc = local_of(c->rec, c->epoch);
	if (Lc && ckpt_epoch(c->s) > Lc && ckpt_supersede(c->s, Lc) == 0)
		c->local_next = Lc + 1;
	// Keep local epoch numbers aligned with the job's: the next local commit must be g.
	if (c->local_next + c->rec.base != g) {
		// The complete epoch keeps its local number in `extra` while the store holds it (after
		// a failed collective checkpoint whose attempt could not be superseded, it is the
		// store's previous epoch).
		if (Lc && Lc < c->local_next) {
			c->rec.extra_local = Lc;
			c->rec.extra_epoch = c->epoch;
		} else if (c->rec.extra_epoch != c->epoch)
			c->rec.extra_local = c->rec.extra_epoch = 0;
		c->rec.base = g - c->local_next;
		c->rec.valid_from = c->local_next;
		c->record_dirty = true;
	}
	// The record must exist before the store's first commit under it: a rank killed after the
	// agreement but before writing its first record would otherwise leave epochs no record
	// maps (found by the kill campaign: every rank then failed with -ENODATA).
	if (c->record_fd < 0)
		c->record_dirty = true;
	// The record of g-1 must be durable before the local commit of g, which may forget g-2
	// (a background fdatasync not finished yet is waited for here, in the local time).
	uint64_t t0 = now_ns();
	record_sync_wait(c);
	if (c->record_dirty) {
		int r = record_write(c);
		if (r)
			status = r, msg = c->err;
	}
	if (!status && c->failed_epoch != g && fault_at("fail-local-commit", g, c->rank))
		status = -EIO, msg = fmt("rank %d: local commit of epoch %llu: injected fault",
					 c->rank, (unsigned long long)g);
	if (!status) {
		int r = ckpt_checkpoint(c->s);
		if (!r)
			r = ckpt_wait(c->s);
		if (r < 0)
			status = r, msg = fmt("rank %d: local commit of epoch %llu: %s", c->rank,
					      (unsigned long long)g, ckpt_last_error(c->s));
		else {
			c->local_next = ckpt_epoch(c->s) + 1;
			if (c->local_next - 1 + c->rec.base != g)
				status = -EPROTO,
				msg = fmt("rank %d: the store committed local epoch %llu, not %llu",
					  c->rank, (unsigned long long)(c->local_next - 1),
					  (unsigned long long)(g - c->rec.base));
		}
	}
	uint64_t t1 = now_ns();
	if (!status)
		fault_point(c->failed_epoch == g ? "after-local-commit-retry" : "after-local-commit",
			    g, c->rank);
	status = agree_status(c, c->comm, status, &msg);
	if (status) {
		c->failed_epoch = g;
		c->err = msg;
		reset_trigger(c);
		return status;
	}
	fault_point("after-agreement", g, c->rank);
	// g is globally complete: every rank has committed it. Record it (a failure here is retried
	// before the next local commit, which waits for it: see design.md).
	c->rec.complete = g;
	c->epoch = g;
	record_write(c, false);
	uint64_t t2 = now_ns();
	c->st.checkpoints++;
	c->st.last_local_ns = t1 - t0;
	c->st.last_agree_ns = t2 - t1;
	c->st.total_local_ns += t1 - t0;
	c->st.total_agree_ns += t2 - t1;
	if (copy && !c->regions.empty()) {
		build_snapshot(c, g);
		c->copy_result = 0;
		c->copier = std::thread(copy_job, c);
	}
	reset_trigger(c);
	return 0;
}

} // extern "C"
