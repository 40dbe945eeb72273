// SPDX-License-Identifier: MIT
// libckpt-mpi: automatic checkpoints are collective (every_n at the same hook call on every
// rank; the interval by a non-blocking MAX-allreduce started one hook call ahead).
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

void reset_trigger(ckpt_mpi *c) { c->last_end = now_ns(); }

} // namespace ckpt_mpi_detail

using namespace ckpt_mpi_detail;

extern "C" {

int ckpt_mpi_hook(ckpt_mpi_t *c)
{
	if (!c)
		return -EINVAL;
	c->hooks++;
	ckpt_safepoint(c->s);
	bool due = c->every_n && c->hooks % c->every_n == 0;
	if (c->interval_ms) {
		if (c->treq != MPI_REQUEST_NULL) {
			MPI_Wait(&c->treq, MPI_STATUS_IGNORE);
			if (c->trecv)
				due = true;
		}
	}
	int ret = 0;
	if (due && !c->restored_or_started && c->plan_complete) {
		// The job holds a complete epoch and this handle has not restored it: the ranks'
		// memory is fresh, and a checkpoint would start a new timeline over the stored one.
		// Skipped on every rank alike (both values are the same everywhere) until
		// ckpt_mpi_restore, or ckpt_mpi_checkpoint (the program starting afresh).
		c->st.skipped_checkpoints++;
		c->err = fmt("automatic checkpoint skipped: the job holds complete epoch %llu, not "
			     "restored yet (ckpt_mpi_restore restores it; ckpt_mpi_checkpoint starts afresh)",
			     (unsigned long long)c->plan_complete);
		ret = -EAGAIN;
		reset_trigger(c);
	} else if (due) {
		int r = ckpt_mpi_checkpoint(c);
		ret = r < 0 ? r : 1;
	}
	if (c->interval_ms) {
		c->tsend = now_ns() - c->last_end >= c->interval_ms * 1000000ull;
		MPI_Iallreduce(&c->tsend, &c->trecv, 1, MPI_INT, MPI_MAX, c->tcomm, &c->treq);
	}
	return ret;
}

int ckpt_mpi_set_timer(ckpt_mpi_t *c, uint64_t interval_ms)
{
	if (!c)
		return -EINVAL;
	if (c->treq != MPI_REQUEST_NULL)
		MPI_Wait(&c->treq, MPI_STATUS_IGNORE);
	c->trecv = 0;
	c->interval_ms = interval_ms;
	reset_trigger(c);
	return 0;
}

} // extern "C"
