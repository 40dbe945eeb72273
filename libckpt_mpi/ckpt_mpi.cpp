// SPDX-License-Identifier: MIT
// libckpt-mpi: one globally consistent epoch across the ranks of an MPI job.
// The protocol and why it is safe: Documentation/design.md, "MPI jobs".
#include <ckpt/ckpt_mpi.h>

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

namespace {

constexpr char kRecordMagic[8] = {'C', 'K', 'P', 'T', 'M', 'P', 'I', '1'};
constexpr char kSharedMagic[8] = {'C', 'K', 'P', 'T', 'M', 'P', 'S', '1'};

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
constexpr off_t kSlot = 512;

struct Region {
	std::string name;
	void *addr;
	size_t len;
};

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

int fsync_dir_of(const std::string &path)
{
	std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
	if (dir.empty())
		dir = path[0] == '/' ? "/" : ".";
	int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

// Write `len` bytes to path atomically: tmp file, fsync, rename, fsync of the directory.
int write_atomic(const std::string &path, const void *hdr, size_t hlen,
		 const std::vector<std::pair<const void *, size_t>> &more = {})
{
	std::string tmp = path + ".tmp";
	int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	auto put = [&](const void *p, size_t n) -> int {
		const char *c = static_cast<const char *>(p);
		while (n) {
			ssize_t w = write(fd, c, n);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			c += w;
			n -= size_t(w);
		}
		return 0;
	};
	int r = put(hdr, hlen);
	for (auto &m : more)
		if (!r)
			r = put(m.first, m.second);
	if (!r && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (!r && rename(tmp.c_str(), path.c_str()) < 0)
		r = -errno;
	if (!r)
		r = fsync_dir_of(path);
	if (r)
		unlink(tmp.c_str());
	return r;
}

uint64_t record_sum(const Record &r)
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

} // namespace

struct ckpt_mpi {
	MPI_Comm comm = MPI_COMM_NULL;	// checkpoints and restores
	MPI_Comm tcomm = MPI_COMM_NULL;	// the time trigger's non-blocking allreduces
	int rank = 0, size = 0;
	std::string pattern, record_pattern, store_path, record_path, shared_dir;
	uint64_t shared_every = 1;
	ckpt_t *s = nullptr;
	bool store_was_missing = false;

	Record rec{};		// as on disk (or as it will be written)
	int record_fd = -1;
	std::thread syncer;	// the record's background fdatasync (see record_write)
	int sync_result = 0;
	bool record_dirty = false;	// a write failed: retried before the next local commit
	uint64_t epoch = 0;	// last globally complete epoch known here
	uint64_t local_next = 1;	// the local epoch the next ckpt_checkpoint commits
	uint64_t failed_epoch = 0;	// the job epoch whose last collective checkpoint failed
	bool restored_or_started = false;
	uint64_t plan_gen = 0, plan_complete = 0;	// the job's records at open (max gen, its max complete)

	std::vector<Region> regions;

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

namespace {

void set_err(ckpt_mpi *c, std::string m) { c->err = std::move(m); }

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
int record_write(ckpt_mpi *c, bool sync = true)
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

// This rank's intact local epochs, newest first (the store keeps the newest and the one before).
int local_epochs(ckpt_mpi *c, uint64_t *v, size_t n) { return ckpt_list_epochs(c->s, v, n); }

int local_restore(ckpt_mpi *c, uint64_t L) { return ckpt_restore_epoch(c->s, L); }

std::string shared_name(const ckpt_mpi *c, int rank, uint64_t g)
{
	return c->shared_dir + fmt("/ckpt-mpi.r%d.e%llu", rank, (unsigned long long)g);
}

// This rank's complete copies in the shared directory, newest first (names only; the content is
// checked when restored).
std::vector<uint64_t> shared_epochs(const ckpt_mpi *c)
{
	std::vector<uint64_t> v;
	if (c->shared_dir.empty())
		return v;
	DIR *d = opendir(c->shared_dir.c_str());
	if (!d)
		return v;
	std::string pre = fmt("ckpt-mpi.r%d.e", c->rank);
	while (struct dirent *e = readdir(d)) {
		if (strncmp(e->d_name, pre.c_str(), pre.size()))
			continue;
		const char *t = e->d_name + pre.size();
		char *end;
		unsigned long long g = strtoull(t, &end, 10);
		if (*t && !*end && g)
			v.push_back(g);
	}
	closedir(d);
	std::sort(v.rbegin(), v.rend());
	return v;
}

// Snapshot of the registered regions (taken at the checkpoint) in the shared copy's format:
// magic, epoch, rank, region count, per region (name length, name, length, XXH3), XXH3 of
// all that; then the regions' bytes.
void build_snapshot(ckpt_mpi *c, uint64_t g)
{
	std::string hdr(kSharedMagic, 8);
	auto put = [&](const void *p, size_t n) { hdr.append(static_cast<const char *>(p), n); };
	uint32_t rk = uint32_t(c->rank), nr = uint32_t(c->regions.size());
	put(&g, 8);
	put(&rk, 4);
	put(&nr, 4);
	size_t total = 0;
	for (auto &r : c->regions) {
		uint32_t nl = uint32_t(r.name.size());
		uint64_t len = r.len, h = XXH3_64bits(r.addr, r.len);
		put(&nl, 4);
		put(r.name.data(), nl);
		put(&len, 8);
		put(&h, 8);
		total += r.len;
	}
	uint64_t hh = XXH3_64bits(hdr.data(), hdr.size());
	put(&hh, 8);
	c->snap.resize(hdr.size() + total);
	memcpy(c->snap.data(), hdr.data(), hdr.size());
	size_t off = hdr.size();
	for (auto &r : c->regions) {
		memcpy(c->snap.data() + off, r.addr, r.len);
		off += r.len;
	}
	c->snap_epoch = g;
}

void copy_job(ckpt_mpi *c)
{
	std::string path = shared_name(c, c->rank, c->snap_epoch);
	int r = write_atomic(path, c->snap.data(), c->snap.size());
	c->copy_result = r;
	if (r)
		return;
	c->copies++;
	c->last_shared_epoch = c->snap_epoch;
	// Keep this copy and the one before it.
	auto v = shared_epochs(c);
	for (size_t i = 2; i < v.size(); i++)
		unlink(shared_name(c, c->rank, v[i]).c_str());
}

int wait_copy(ckpt_mpi *c)
{
	if (c->copier.joinable())
		c->copier.join();
	return c->copy_result;
}

// Restore this rank's regions from its shared copy of epoch g.
int shared_restore(ckpt_mpi *c, uint64_t g)
{
	std::string path = shared_name(c, c->rank, g);
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		set_err(c, fmt("rank %d: shared copy %s: %s", c->rank, path.c_str(), strerror(-e)));
		return e;
	}
	struct stat sb;
	std::vector<char> b;
	if (fstat(fd, &sb) == 0) {
		b.resize(size_t(sb.st_size));
		size_t got = 0;
		while (got < b.size()) {
			ssize_t n = read(fd, b.data() + got, b.size() - got);
			if (n <= 0)
				break;
			got += size_t(n);
		}
		b.resize(got);
	}
	close(fd);
	auto bad = [&](const char *why) {
		set_err(c, fmt("rank %d: shared copy %s: %s", c->rank, path.c_str(), why));
		return -EIO;
	};
	size_t off = 0;
	auto get = [&](void *p, size_t n) {
		if (off + n > b.size())
			return false;
		memcpy(p, b.data() + off, n);
		off += n;
		return true;
	};
	char magic[8];
	uint64_t eg;
	uint32_t rk, nr;
	if (!get(magic, 8) || memcmp(magic, kSharedMagic, 8) || !get(&eg, 8) || !get(&rk, 4) ||
	    !get(&nr, 4) || eg != g || rk != uint32_t(c->rank))
		return bad("not this rank's copy of that epoch (damaged header)");
	struct Ent {
		std::string name;
		uint64_t len, h;
	};
	std::vector<Ent> ents;
	for (uint32_t i = 0; i < nr; i++) {
		uint32_t nl;
		Ent e;
		if (!get(&nl, 4) || nl > 4096 || off + nl > b.size())
			return bad("damaged header");
		e.name.assign(b.data() + off, nl);
		off += nl;
		if (!get(&e.len, 8) || !get(&e.h, 8))
			return bad("damaged header");
		ents.push_back(e);
	}
	uint64_t hh, want = XXH3_64bits(b.data(), off);
	if (!get(&hh, 8) || hh != want)
		return bad("header checksum mismatch");
	if (ents.size() != c->regions.size()) {
		set_err(c, fmt("rank %d: shared copy %s holds %zu regions, %zu are registered", c->rank,
			       path.c_str(), ents.size(), c->regions.size()));
		return -ESRCH;
	}
	size_t doff = off;
	for (auto &e : ents) {
		const Region *r = nullptr;
		for (auto &x : c->regions)
			if (x.name == e.name)
				r = &x;
		if (!r || r->len != e.len) {
			set_err(c, fmt("rank %d: region '%s' of the shared copy is not registered with "
				       "that size", c->rank, e.name.c_str()));
			return -ESRCH;
		}
		if (doff + e.len > b.size() || XXH3_64bits(b.data() + doff, e.len) != e.h)
			return bad(fmt("region '%s' damaged", e.name.c_str()).c_str());
		doff += e.len;
	}
	// Verified whole: now fill memory.
	doff = off;
	for (auto &e : ents) {
		for (auto &x : c->regions)
			if (x.name == e.name)
				memcpy(x.addr, b.data() + doff, e.len);
		doff += e.len;
	}
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

void reset_trigger(ckpt_mpi *c) { c->last_end = now_ns(); }

} // namespace

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
	if (due) {
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

int ckpt_mpi_wait_shared(ckpt_mpi_t *c)
{
	if (!c)
		return -EINVAL;
	return wait_copy(c);
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
