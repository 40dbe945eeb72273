// SPDX-License-Identifier: GPL-2.0
/*
 * The generic netlink status family, read with libnl-genl-3 as a tool would: the family
 * resolves by name, the dump lists this process's sessions with counters that match STATS,
 * a closed session disappears, and an unprivileged caller sees only its own sessions.
 */
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <sys/wait.h>

#include "track_util.h"
#include "kselftest_harness.h"

struct row {
	uint32_t pid;
	char comm[32];
	uint64_t v[CKPT_GENL_A_MAX + 1];
};

struct dump {
	struct row rows[64];
	int n;
};

static int on_msg(struct nl_msg *msg, void *arg)
{
	struct dump *d = arg;
	struct nlattr *tb[CKPT_GENL_A_MAX + 1];
	struct genlmsghdr *gh = nlmsg_data(nlmsg_hdr(msg));
	struct row *r;

	if (nla_parse(tb, CKPT_GENL_A_MAX, genlmsg_attrdata(gh, 0), genlmsg_attrlen(gh, 0), NULL))
		return NL_SKIP;
	if (d->n == 64 || !tb[CKPT_GENL_A_PID])
		return NL_SKIP;
	r = &d->rows[d->n++];
	memset(r, 0, sizeof(*r));
	r->pid = nla_get_u32(tb[CKPT_GENL_A_PID]);
	if (tb[CKPT_GENL_A_COMM])
		snprintf(r->comm, sizeof(r->comm), "%s", nla_get_string(tb[CKPT_GENL_A_COMM]));
	for (int a = CKPT_GENL_A_REGIONS; a <= CKPT_GENL_A_MAX; a++)
		if (tb[a] && a != CKPT_GENL_A_PAD)
			r->v[a] = nla_get_u64(tb[a]);
		else
			r->v[a] = ~0ULL;	/* missing: fails any EXPECT_EQ below */
	return NL_OK;
}

/* Dump the sessions; returns the number of rows or -errno. */
static int dump_sessions(struct dump *d)
{
	struct nl_sock *sk = nl_socket_alloc();
	int fam, e;

	d->n = 0;
	if (!sk)
		return -ENOMEM;
	e = genl_connect(sk);
	if (e)
		goto out;
	fam = genl_ctrl_resolve(sk, CKPT_GENL_NAME);
	if (fam < 0) {
		e = fam;
		goto out;
	}
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_msg, d);
	e = genl_send_simple(sk, fam, CKPT_GENL_CMD_GET_SESSIONS, CKPT_GENL_VERSION, NLM_F_DUMP);
	if (e >= 0)
		e = nl_recvmsgs_default(sk);
out:
	nl_socket_free(sk);
	return e < 0 ? -ENOENT : d->n;
}

static struct row *find_pid(struct dump *d, uint32_t pid, uint64_t pages)
{
	for (int i = 0; i < d->n; i++)
		if (d->rows[i].pid == pid && d->rows[i].v[CKPT_GENL_A_PAGES] == pages)
			return &d->rows[i];
	return NULL;
}

TEST(status_matches_stats)
{
	static struct dump d;
	char *m = ck_map(32 * PAGE, PAGE);
	uint64_t out[32];
	struct ckpt_stats st;
	struct row *r;
	int fd = ck_open();
	long id;

	ASSERT_LE(0, fd);
	madvise(m, 32 * PAGE, MADV_NOHUGEPAGE);
	memset(m, 0, 32 * PAGE);
	id = ck_register(fd, m, 32 * PAGE, 0);
	ASSERT_LT(0, id);
	for (int i = 0; i < 5; i++)
		m[i * PAGE] = 1;
	ASSERT_EQ(5, ck_collect(fd, id, out, 32, 0, NULL));
	m[9 * PAGE] = 1;
	m[10 * PAGE] = 1;
	ASSERT_EQ(0, ck_stats(fd, 0, &st));

	ASSERT_LE(1, dump_sessions(&d));
	r = find_pid(&d, getpid(), 32);
	ASSERT_NE(NULL, r);
	EXPECT_EQ(0, strncmp(r->comm, "track_genl_test", 15));
	EXPECT_EQ(1, r->v[CKPT_GENL_A_REGIONS]);
	EXPECT_EQ(2, r->v[CKPT_GENL_A_DIRTY]);
	EXPECT_EQ(st.faults, r->v[CKPT_GENL_A_FAULTS]);
	EXPECT_EQ(7, r->v[CKPT_GENL_A_FAULTS]);
	EXPECT_EQ(1, r->v[CKPT_GENL_A_COLLECTS]);
	EXPECT_EQ(5, r->v[CKPT_GENL_A_COLLECTED]);
	EXPECT_EQ(st.kept, r->v[CKPT_GENL_A_KEPT]);
	EXPECT_EQ(0, r->v[CKPT_GENL_A_KEPT]);
	EXPECT_EQ(st.invalidations, r->v[CKPT_GENL_A_INVALIDATIONS]);
	EXPECT_EQ(st.thp_splits, r->v[CKPT_GENL_A_THP_SPLITS]);
	close(fd);
	ASSERT_LE(0, dump_sessions(&d));
	EXPECT_EQ(NULL, find_pid(&d, getpid(), 32));
	munmap(m, 32 * PAGE);
}

TEST(many_sessions_dump)
{
	static struct dump d;
	int fds[40];
	char *m = ck_map(40 * PAGE, PAGE);
	int seen = 0;

	for (int i = 0; i < 40; i++) {
		fds[i] = ck_open();
		ASSERT_LT(0, ck_register(fds[i], m + i * PAGE, PAGE, 0));
	}
	/* Every session is listed, however many dump rounds it takes. */
	ASSERT_LE(40, dump_sessions(&d));
	for (int i = 0; i < d.n; i++)
		seen += d.rows[i].pid == (uint32_t)getpid();
	EXPECT_EQ(40, seen);
	for (int i = 0; i < 40; i++)
		close(fds[i]);
	munmap(m, 40 * PAGE);
}

TEST(other_users_sessions_hidden)
{
	char *m = ck_map(PAGE * 3, PAGE);
	int fd = ck_open(), status;
	pid_t pid;

	ASSERT_LT(0, ck_register(fd, m, 3 * PAGE, 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		static struct dump d;

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(10);
		if (dump_sessions(&d) < 0)
			_exit(11);
		/* Root's session (pages == 3) must not be listed to nobody. */
		_exit(find_pid(&d, getppid(), 3) ? 12 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	close(fd);
	munmap(m, 3 * PAGE);
}

TEST_HARNESS_MAIN
