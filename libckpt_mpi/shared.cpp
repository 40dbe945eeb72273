// SPDX-License-Identifier: MIT
// libckpt-mpi: the second level: every K-th globally complete epoch copied in the background
// to a shared directory, and a rank's restore from its copy.
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
static int write_atomic(const std::string &path, const void *hdr, size_t hlen,
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

} // namespace ckpt_mpi_detail

using namespace ckpt_mpi_detail;

extern "C" {

int ckpt_mpi_wait_shared(ckpt_mpi_t *c)
{
	if (!c)
		return -EINVAL;
	return wait_copy(c);
}

} // extern "C"
