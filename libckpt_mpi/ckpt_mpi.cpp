// SPDX-License-Identifier: MIT
// libckpt-mpi: one globally consistent epoch across the ranks of an MPI job: the handle's
// life (open, restore from the newest epoch every rank holds, register, close).
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

thread_local std::string t_open_error;

uint64_t now_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, f);
	vsnprintf(buf, sizeof(buf), f, ap);
	va_end(ap);
	return buf;
}

// "%d" -> rank, "%%" -> '%'; exactly one "%d".
int expand(const char *pat, int rank, std::string *out)
{
	int n = 0;
	out->clear();
	for (const char *p = pat; *p; p++) {
		if (*p != '%') {
			out->push_back(*p);
			continue;
		}
		p++;
		if (*p == '%')
			out->push_back('%');
		else if (*p == 'd') {
			out->append(std::to_string(rank));
			n++;
		} else
			return -EINVAL;
	}
	return n == 1 ? 0 : -EINVAL;
}

// This rank's intact local epochs, newest first (the store keeps the newest and the one before).
static int local_epochs(ckpt_mpi *c, uint64_t *v, size_t n) { return ckpt_list_epochs(c->s, v, n); }

static int local_restore(ckpt_mpi *c, uint64_t L) { return ckpt_restore_epoch(c->s, L); }

} // namespace ckpt_mpi_detail

using namespace ckpt_mpi_detail;

extern "C" {

int ckpt_mpi_config_init(ckpt_mpi_config_t *cfg)
{
	if (!cfg)
		return -EINVAL;
	memset(cfg, 0, sizeof(*cfg));
	cfg->size = sizeof(*cfg);
	cfg->shared_every = 1;
	return ckpt_config_init(&cfg->base);
}

int ckpt_mpi_open(MPI_Comm comm, const char *pattern, const ckpt_mpi_config_t *cfg,
		  ckpt_mpi_t **out)
{
	t_open_error.clear();
	if (!pattern || !out)
		return -EINVAL;
	*out = nullptr;
	int inited = 0;
	MPI_Initialized(&inited);
	if (!inited) {
		t_open_error = "MPI is not initialised";
		return -EINVAL;
	}
	ckpt_mpi_config_t def;
	if (!cfg) {
		ckpt_mpi_config_init(&def);
		cfg = &def;
	}
	auto *c = new ckpt_mpi;
	MPI_Comm_dup(comm, &c->comm);
	MPI_Comm_dup(comm, &c->tcomm);
	MPI_Comm_rank(c->comm, &c->rank);
	MPI_Comm_size(c->comm, &c->size);

	int status = 0;
	std::string msg;
	ckpt_config_t base{};
	if (cfg->size != sizeof(*cfg) || cfg->flags)
		status = -EINVAL, msg = "bad ckpt_mpi_config (size or flags)";
	for (auto r : cfg->reserved)
		if (r && !status)
			status = -EINVAL, msg = "ckpt_mpi_config.reserved must be zero";
	if (!status && expand(pattern, c->rank, &c->store_path))
		status = -EINVAL, msg = fmt("store pattern '%s' needs exactly one %%d (the rank)", pattern);
	if (!status) {
		c->pattern = pattern;
		c->record_pattern = cfg->record_pattern ? cfg->record_pattern : c->pattern + ".mpi";
		if (expand(c->record_pattern.c_str(), c->rank, &c->record_path))
			status = -EINVAL, msg = "record pattern needs exactly one %d (the rank)";
	}
	if (!status) {
		if (cfg->shared_dir)
			c->shared_dir = cfg->shared_dir;
		c->shared_every = cfg->shared_every ? cfg->shared_every : 1;
		base = cfg->base;
		c->every_n = base.every_n;
		c->interval_ms = base.interval_ms;
		// The triggers are the job's: the rank's own session gets none.
		base.every_n = 0;
		base.interval_ms = 0;
		base.flags &= ~CKPT_CFG_TIMER;
		struct stat sb;
		c->store_was_missing = stat(c->store_path.c_str(), &sb) < 0 && errno == ENOENT;
		int r = ckpt_open(c->store_path.c_str(), &base, &c->s);
		if (r < 0)
			status = r, msg = fmt("rank %d: store %s: %s", c->rank, c->store_path.c_str(),
					      ckpt_open_error());
	}
	status = agree_status(c, c->comm, status, &msg);
	if (status) {
		t_open_error = msg;
		if (c->s)
			ckpt_close(c->s);
		MPI_Comm_free(&c->comm);
		MPI_Comm_free(&c->tcomm);
		delete c;
		return status;
	}
	c->local_next = ckpt_epoch(c->s) + 1;
	if (c->store_was_missing || !record_read(c, &c->rec)) {
		// No record, or no store: none of the local epochs can be mapped to the job's.
		memset(&c->rec, 0, sizeof(c->rec));
		c->rec.valid_from = c->local_next;
		c->rec.base = 0;
		if (c->record_fd >= 0)
			close(c->record_fd);
		c->record_fd = -1;
		unlink(c->record_path.c_str());	// absent, stale or damaged: a new one
	}
	// The job's plan: the newest generation and the newest complete epoch recorded in it.
	uint64_t g = c->rec.gen, gmax;
	MPI_Allreduce(&g, &gmax, 1, MPI_UINT64_T, MPI_MAX, c->comm);
	uint64_t comp = c->rec.gen == gmax ? c->rec.complete : 0, cmax;
	MPI_Allreduce(&comp, &cmax, 1, MPI_UINT64_T, MPI_MAX, c->comm);
	c->plan_gen = gmax;
	c->plan_complete = cmax;
	c->rec.gen = gmax;
	reset_trigger(c);
	*out = c;
	return 0;
}

const char *ckpt_mpi_last_error(const ckpt_mpi_t *c)
{
	return c ? c->err.c_str() : t_open_error.c_str();
}

ckpt_t *ckpt_mpi_session(ckpt_mpi_t *c) { return c ? c->s : nullptr; }

int ckpt_mpi_register(ckpt_mpi_t *c, const char *name, void *addr, size_t len)
{
	if (!c || !name)
		return -EINVAL;
	int r = ckpt_register(c->s, name, addr, len);
	if (r < 0) {
		set_err(c, fmt("rank %d: %s", c->rank, ckpt_last_error(c->s)));
		return r;
	}
	c->regions.push_back({name, addr, len});
	return 0;
}

int ckpt_mpi_unregister(ckpt_mpi_t *c, const char *name)
{
	if (!c || !name)
		return -EINVAL;
	int r = ckpt_unregister(c->s, name);
	if (r < 0)
		return r;
	for (size_t i = 0; i < c->regions.size(); i++)
		if (c->regions[i].name == name) {
			c->regions.erase(c->regions.begin() + long(i));
			break;
		}
	return 0;
}

uint64_t ckpt_mpi_epoch(const ckpt_mpi_t *c) { return c ? c->epoch : 0; }

const char *ckpt_mpi_restore_source(const ckpt_mpi_t *c) { return c ? c->source.c_str() : ""; }

int ckpt_mpi_restore(ckpt_mpi_t *c)
{
	if (!c)
		return -EINVAL;
	wait_copy(c);
	c->source.clear();
	// What each rank holds: its generation and complete epoch, whether its store was
	// missing, up to 4 local and 4 shared epochs (global numbers).
	enum { GEN, COMP, MISSING, NL, L0, NS = L0 + 4, S0, NF = S0 + 4 };
	uint64_t mine[NF] = {0};
	mine[GEN] = c->rec.gen;
	mine[COMP] = c->rec.complete;
	mine[MISSING] = c->store_was_missing;
	uint64_t le[8];
	int nle = c->store_was_missing ? 0 : local_epochs(c, le, 8);
	nle = std::max(0, std::min(nle, 8));
	for (int i = 0; i < nle && mine[NL] < 4; i++)
		if (le[i] >= c->rec.valid_from && c->rec.valid_from)
			mine[L0 + mine[NL]++] = le[i] + c->rec.base;
		else if (c->rec.extra_epoch && le[i] == c->rec.extra_local)
			mine[L0 + mine[NL]++] = c->rec.extra_epoch;
	static_assert(L0 + 4 == NS, "four local epochs");
	auto sv = shared_epochs(c);
	for (size_t i = 0; i < sv.size() && mine[NS] < 4; i++)
		mine[S0 + mine[NS]++] = sv[i];
	std::vector<uint64_t> all(size_t(NF) * size_t(c->size));
	MPI_Allgather(mine, NF, MPI_UINT64_T, all.data(), NF, MPI_UINT64_T, c->comm);
	auto at = [&](int r, int f) { return all[size_t(r) * NF + size_t(f)]; };
	auto holds = [&](int r, uint64_t g, bool *local) {
		for (uint64_t i = 0; i < at(r, NL); i++)
			if (at(r, L0 + int(i)) == g) {
				*local = true;
				return true;
			}
		for (uint64_t i = 0; i < at(r, NS); i++)
			if (at(r, S0 + int(i)) == g) {
				*local = false;
				return true;
			}
		return false;
	};
	uint64_t gmax = 0, M = 0;
	for (int r = 0; r < c->size; r++)
		gmax = std::max(gmax, at(r, GEN));
	for (int r = 0; r < c->size; r++)
		if (at(r, GEN) == gmax)
			M = std::max(M, at(r, COMP));
	// No record at all (every rank's local storage lost): the shared copies, which are only
	// ever made of complete epochs, say what was complete.
	for (int r = 0; r < c->size && !M; r++)
		for (uint64_t i = 0; i < at(r, NS); i++)
			M = std::max(M, at(r, S0 + int(i)));
	if (M == 0) {
		c->restored_or_started = true;
		c->epoch = 0;
		c->rec.gen = gmax;
		c->rec.complete = 0;
		c->err = "no epoch is globally complete (first run)";
		return -ENOENT;
	}
	// The newest epoch <= M that every rank holds, locally or in the shared directory (it is
	// one of rank 0's, so only those are candidates).
	uint64_t T = 0;
	for (int k = 0; k < 2; k++)
		for (uint64_t i = 0; i < at(0, k ? NS : NL); i++) {
			uint64_t g = at(0, (k ? S0 : L0) + int(i));
			bool ok = g <= M && g > T, dummy;
			for (int r = 1; r < c->size && ok; r++)
				ok = holds(r, g, &dummy);
			if (ok)
				T = g;
		}
	if (!T) {
		int bad = 0;
		bool dummy;
		for (int r = 0; r < c->size; r++)
			if (!holds(r, M, &dummy)) {
				bad = r;
				break;
			}
		std::string p;
		expand(c->pattern.c_str(), bad, &p);
		c->err = fmt("epoch %llu is globally complete, but rank %d holds no epoch that every rank "
			     "holds: its store %s %s, %s", (unsigned long long)M, bad, p.c_str(),
			     at(bad, MISSING) ? "was missing" : "holds no intact copy of it",
			     c->shared_dir.empty() ? "and no shared directory is configured"
						   : "and the shared directory has no copy of it");
		return -ENODATA;
	}
	bool local = false;
	holds(c->rank, T, &local);
	int status;
	std::string msg;
	if (local) {
		uint64_t L = local_of(c->rec, T);
		status = local_restore(c, L);
		if (status < 0)
			msg = fmt("rank %d: restoring epoch %llu (local %llu) from %s: %s", c->rank,
				  (unsigned long long)T, (unsigned long long)L, c->store_path.c_str(),
				  ckpt_last_error(c->s));
		else
			c->local_next = L + 1;
	} else {
		status = shared_restore(c, T);
		if (status < 0)
			msg = c->err;
		else {
			// The local store holds nothing of this timeline: its next commit is T + 1.
			c->rec.base = T + 1 - c->local_next;
			c->rec.valid_from = c->local_next;
			c->rec.extra_local = c->rec.extra_epoch = 0;
		}
	}
	if (!status) {
		if (T < M) {
			// Rolled back below a complete epoch: a new timeline; copies newer than T are
			// of the old one.
			c->rec.gen = gmax + 1;
			for (auto g : sv)
				if (g > T)
					unlink(shared_name(c, c->rank, g).c_str());
		} else
			c->rec.gen = gmax;
		c->rec.complete = T;
		int r = record_write(c);
		if (r)
			status = r, msg = c->err;
	}
	status = agree_status(c, c->comm, status, &msg);
	if (status) {
		c->err = msg;
		return status;
	}
	c->epoch = T;
	c->restored_or_started = true;
	c->store_was_missing = false;
	c->source = local ? "local" : "shared";
	reset_trigger(c);
	return 0;
}

int ckpt_mpi_get_stats(const ckpt_mpi_t *c, struct ckpt_mpi_stats *out)
{
	if (!c || !out)
		return -EINVAL;
	*out = c->st;
	out->epoch = c->epoch;
	out->shared_copies = c->copies;
	out->last_shared_epoch = c->last_shared_epoch;
	return 0;
}

int ckpt_mpi_close(ckpt_mpi_t *c)
{
	if (!c)
		return 0;
	wait_copy(c);
	if (c->treq != MPI_REQUEST_NULL)
		MPI_Wait(&c->treq, MPI_STATUS_IGNORE);
	record_sync_wait(c);
	int r = ckpt_close(c->s);
	if (c->record_fd >= 0)
		close(c->record_fd);
	MPI_Barrier(c->comm);
	MPI_Comm_free(&c->comm);
	MPI_Comm_free(&c->tcomm);
	delete c;
	return r;
}

} // extern "C"
