// SPDX-License-Identifier: GPL-2.0
/*
 * Generic netlink status family CKPT_GENL_NAME: one dump command listing the sessions with
 * their counters. Callers see their own sessions (same effective uid as the session's
 * process); with CAP_SYS_PTRACE they see all.
 *
 * The dump takes no sleeping lock: it walks the sessions and their regions under RCU and
 * reads their counters racily (struct ckpt_session), so a session whose ioctl sleeps with its
 * lock held (RESTORE_THREAD, a long COLLECT) neither blocks the dump nor, through it, anyone.
 */
#include <linux/cred.h>
#include <net/genetlink.h>
#include "ckpt.h"

static struct genl_family ckpt_genl_family;

/* Under rcu_read_lock(). */
static int put_session(struct sk_buff *skb, struct netlink_callback *cb, struct ckpt_session *s)
{
	struct ckpt_stats st = {};
	char comm[TASK_COMM_LEN];
	void *hdr;

	ckpt_session_sum(s, &st);
	/* ATTACH may rewrite it meanwhile: a copy, terminated. */
	memcpy(comm, s->comm, sizeof(comm));
	comm[sizeof(comm) - 1] = 0;

	hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq, &ckpt_genl_family,
			  NLM_F_MULTI, CKPT_GENL_CMD_GET_SESSIONS);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_u32(skb, CKPT_GENL_A_PID, READ_ONCE(s->tgid)) ||
	    nla_put_string(skb, CKPT_GENL_A_COMM, comm) ||
	    nla_put_u64_64bit(skb, CKPT_GENL_A_REGIONS, st.regions, CKPT_GENL_A_PAD) ||
	    nla_put_u64_64bit(skb, CKPT_GENL_A_PAGES, st.pages, CKPT_GENL_A_PAD) ||
	    nla_put_u64_64bit(skb, CKPT_GENL_A_DIRTY, st.dirty, CKPT_GENL_A_PAD) ||
	    nla_put_u64_64bit(skb, CKPT_GENL_A_FAULTS, st.faults, CKPT_GENL_A_PAD) ||
	    nla_put_u64_64bit(skb, CKPT_GENL_A_COLLECTS, st.collects, CKPT_GENL_A_PAD) ||
	    nla_put_u64_64bit(skb, CKPT_GENL_A_COLLECTED, st.collected, CKPT_GENL_A_PAD) ||
	    nla_put_u64_64bit(skb, CKPT_GENL_A_KEPT, st.kept, CKPT_GENL_A_PAD) ||
	    nla_put_u64_64bit(skb, CKPT_GENL_A_INVALIDATIONS, st.invalidations, CKPT_GENL_A_PAD) ||
	    nla_put_u64_64bit(skb, CKPT_GENL_A_THP_SPLITS, st.thp_splits, CKPT_GENL_A_PAD)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

/* cb->args[0]: sessions already dumped (the list may change between calls; best effort). */
static int ckpt_genl_dump(struct sk_buff *skb, struct netlink_callback *cb)
{
	bool all = netlink_capable(cb->skb, CAP_SYS_PTRACE);
	kuid_t me = current_euid();
	struct ckpt_session *s;
	long i = 0;

	rcu_read_lock();
	list_for_each_entry_rcu(s, &ckpt_sessions, node) {
		if (!all && !uid_eq(READ_ONCE(s->uid), me))
			continue;
		if (i++ < cb->args[0])
			continue;
		if (put_session(skb, cb, s)) {
			i--;
			break;
		}
	}
	rcu_read_unlock();
	cb->args[0] = i;
	return skb->len;
}

static const struct genl_small_ops ckpt_genl_ops[] = {
	{
		.cmd = CKPT_GENL_CMD_GET_SESSIONS,
		.validate = GENL_DONT_VALIDATE_STRICT | GENL_DONT_VALIDATE_DUMP,
		.dumpit = ckpt_genl_dump,
	},
};

static struct genl_family ckpt_genl_family __ro_after_init = {
	.name = CKPT_GENL_NAME,
	.version = CKPT_GENL_VERSION,
	.maxattr = CKPT_GENL_A_MAX,
	.module = THIS_MODULE,
	.small_ops = ckpt_genl_ops,
	.n_small_ops = ARRAY_SIZE(ckpt_genl_ops),
	.resv_start_op = CKPT_GENL_CMD_GET_SESSIONS + 1,
	.netnsok = true,
};

int ckpt_genl_init(void)
{
	return genl_register_family(&ckpt_genl_family);
}

void ckpt_genl_exit(void)
{
	genl_unregister_family(&ckpt_genl_family);
}
