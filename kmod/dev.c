// SPDX-License-Identifier: GPL-2.0
/* /dev/ckpt: the character device, one session per open file, and the ioctl dispatch. */
#include <linux/cdev.h>
#include <linux/cred.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "ckpt.h"

/* Every optional behaviour this module has (the UAPI header's "Feature bits"). */
#define SUPPORTED_FEATURES                                                                    \
	(CKPT_FEATURE_TRACK | CKPT_FEATURE_THP_SPLIT | CKPT_FEATURE_URING_CMD |                \
	 CKPT_FEATURE_ATTACH | CKPT_FEATURE_GENL | CKPT_FEATURE_RESTORE | CKPT_FEATURE_DUMP |   \
	 CKPT_FEATURE_RESTORE_PREBUILT | CKPT_FEATURE_HOLD | CKPT_FEATURE_DUMP_PROCESS |      \
	 CKPT_FEATURE_DUMP_TIMERS | CKPT_FEATURE_WATCH)

/*
 * Every session, for the netlink status: RCU readers, writers (open, close) hold the
 * spinlock for the list operation only. No session's lock is ever taken under it, so a session
 * stuck in an ioctl cannot hold up another process's open, close or status dump.
 */
LIST_HEAD(ckpt_sessions);
DEFINE_SPINLOCK(ckpt_sessions_lock);

static int ckpt_open(struct inode *inode, struct file *file)
{
	struct ckpt_user *u = ckpt_user_get(current_euid());
	struct ckpt_session *s;

	if (IS_ERR(u))
		return PTR_ERR(u);	/* -EMFILE: max_user_sessions (user.c) */
	s = kzalloc(sizeof(*s), GFP_KERNEL_ACCOUNT);
	if (!s) {
		ckpt_user_put(u);
		return -ENOMEM;
	}
	s->user = u;
	mutex_init(&s->lock);
	INIT_LIST_HEAD(&s->regions);
	/* Bound to the opener's address space; kernel threads have none (-ESRCH later). */
	if (current->mm) {
		mmgrab(current->mm);
		s->mm = current->mm;
	}
	s->tgid = task_tgid_vnr(current);
	get_task_comm(s->comm, current);
	s->uid = current_euid();
	spin_lock(&ckpt_sessions_lock);
	list_add_tail_rcu(&s->node, &ckpt_sessions);
	spin_unlock(&ckpt_sessions_lock);
	file->private_data = s;
	return 0;
}

static int ckpt_release(struct inode *inode, struct file *file)
{
	struct ckpt_session *s = file->private_data;

	spin_lock(&ckpt_sessions_lock);
	list_del_rcu(&s->node);
	spin_unlock(&ckpt_sessions_lock);
	ckpt_session_teardown(s);
	ckpt_restore_free(s->restore);
	ckpt_user_put(s->user);	/* after everything charged to it is freed */
	mutex_destroy(&s->lock);
	kfree_rcu(s, rcu);	/* a status dump may still be reading it */
	return 0;
}

static u64 supported_ioctls(void);

static long ioc_api(struct ckpt_session *s, void __user *uarg)
{
	struct ckpt_api a;
	long ret = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (s->api_done)
		return -EBUSY;
	/* The caller learns what the module speaks from what is copied back, whatever failed. */
	if (a.api != CKPT_API_VERSION)
		ret = -EPROTONOSUPPORT;
	else if (!ckpt_all_zero(a.reserved, ARRAY_SIZE(a.reserved)))
		ret = -EINVAL;
	else if (a.features)	/* no feature is opted in to at this version */
		ret = -EOPNOTSUPP;
	a.api = CKPT_API_VERSION;
	a.features = SUPPORTED_FEATURES;
	a.ioctls = supported_ioctls();
	a.page_size = PAGE_SIZE;
	memset(a.reserved, 0, sizeof(a.reserved));
	if (copy_to_user(uarg, &a, sizeof(a)))
		return -EFAULT;
	if (!ret)
		s->api_done = true;
	return ret;
}

static long ioc_collect(struct ckpt_session *s, void __user *uarg)
{
	u64 count;

	return ckpt_ioc_collect(s, uarg, &count);
}

/*
 * The commands, by number. ckpt_ioctl() checks, for all of them in one place, that @cmd is
 * the header's number exactly: type, number, direction and argument size (a caller built
 * against another layout of a struct gets -ENOTTY, never a misread), and that the handshake
 * was done (every command but CKPT_IOC_API: -EINVAL before it). Each handler then runs under
 * the session's lock and copies its own argument in and out (some copy out on failure too:
 * API its version, COLLECT and RELEASE what they did).
 */
struct ckpt_ioc {
	unsigned int cmd;
	long (*fn)(struct ckpt_session *s, void __user *uarg);
};

#define CKPT_IOC(_cmd, _fn) [_IOC_NR(_cmd)] = { .cmd = (_cmd), .fn = (_fn) }
static const struct ckpt_ioc ckpt_iocs[] = {
	CKPT_IOC(CKPT_IOC_API, ioc_api),
	CKPT_IOC(CKPT_IOC_REGISTER, ckpt_ioc_register),
	CKPT_IOC(CKPT_IOC_UNREGISTER, ckpt_ioc_unregister),
	CKPT_IOC(CKPT_IOC_COLLECT, ioc_collect),
	CKPT_IOC(CKPT_IOC_STATS, ckpt_ioc_stats),
	CKPT_IOC(CKPT_IOC_ATTACH, ckpt_ioc_attach),
	CKPT_IOC(CKPT_IOC_RELEASE, ckpt_ioc_release),
	CKPT_IOC(CKPT_IOC_WATCH, ckpt_ioc_watch),
	CKPT_IOC(CKPT_IOC_RESTORE_PREPARE, ckpt_ioc_restore_prepare),
	CKPT_IOC(CKPT_IOC_RESTORE_COMMIT, ckpt_ioc_restore_commit),
	CKPT_IOC(CKPT_IOC_RESTORE_THREAD, ckpt_ioc_restore_thread),
	CKPT_IOC(CKPT_IOC_DUMP_TASK, ckpt_ioc_dump_task),
};
/* ckpt_api.ioctls has a bit per command number. */
static_assert(ARRAY_SIZE(ckpt_iocs) <= 64);

/* ckpt_api.ioctls: bit (1 << _IOC_NR(cmd)) for every command of the table. */
static u64 supported_ioctls(void)
{
	u64 bits = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ckpt_iocs); i++)
		if (ckpt_iocs[i].fn)
			bits |= 1ULL << i;
	return bits;
}

/*
 * IORING_OP_URING_CMD: COLLECT only. The first 8 bytes of sqe->cmd hold the address of a
 * struct ckpt_collect. COLLECT sleeps (mmap lock, session lock), so a non-blocking issue is
 * answered -EAGAIN and io_uring reissues it from an io-wq worker, which shares the
 * submitter's address space: the submitter does not block. cqe->res = pages or -errno.
 */
static int ckpt_uring_cmd(struct io_uring_cmd *ioucmd, unsigned int issue_flags)
{
	struct ckpt_session *s = ioucmd->file->private_data;
	u64 uptr, count = 0;
	long ret;

	if (ioucmd->cmd_op != CKPT_IOC_COLLECT)
		return -ENOTTY;
	if (issue_flags & IO_URING_F_NONBLOCK)
		return -EAGAIN;
	uptr = READ_ONCE(*(const u64 *)ckpt_uring_cmd_payload(ioucmd));
	if (mutex_lock_killable(&s->lock))
		return -EINTR;
	ret = s->api_done ? ckpt_ioc_collect(s, u64_to_user_ptr(uptr), &count) : -EINVAL;
	mutex_unlock(&s->lock);
	if (ret)
		return ret;
	/*
	 * 6.1's io_uring_cmd() only handles a negative return or -EIOCBQUEUED: a positive value
	 * would be taken for an issue error. Post the count ourselves (6.12 accepts this too).
	 */
	io_uring_cmd_done(ioucmd, min_t(u64, count, INT_MAX), 0, issue_flags);
	return -EIOCBQUEUED;
}

static long ckpt_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct ckpt_session *s = file->private_data;
	const struct ckpt_ioc *ioc;
	long ret;

	if (_IOC_TYPE(cmd) != CKPT_IOC_MAGIC || _IOC_NR(cmd) >= ARRAY_SIZE(ckpt_iocs))
		return -ENOTTY;
	ioc = &ckpt_iocs[_IOC_NR(cmd)];
	if (!ioc->fn || ioc->cmd != cmd)
		return -ENOTTY;

	/* Another thread may sleep in this session for long (RESTORE_THREAD): stay killable. */
	if (mutex_lock_killable(&s->lock))
		return -EINTR;
	if (s->api_done || cmd == CKPT_IOC_API)
		ret = ioc->fn(s, (void __user *)arg);
	else
		ret = -EINVAL;
	mutex_unlock(&s->lock);
	return ret;
}

static const struct file_operations ckpt_fops = {
	.owner = THIS_MODULE,
	.open = ckpt_open,
	.release = ckpt_release,
	.unlocked_ioctl = ckpt_ioctl,
	.uring_cmd = ckpt_uring_cmd,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/*
 * The device node. Whoever may open /dev/ckpt may track their own memory, prepare and commit a
 * restore of their own process and ATTACH to their own ptrace stops (admin-guide.md, "Security
 * model"): the node is for a group an administrator chooses, never for every local user. udev
 * sets it (udev/60-ckpt.rules: group ckpt, 0660); without udev, devtmpfs creates it with these
 * two parameters, read when the module loads.
 */
static ushort dev_mode = 0600;
module_param(dev_mode, ushort, 0444);
MODULE_PARM_DESC(dev_mode, "mode of /dev/ckpt as devtmpfs creates it (default 0600; bits for others are refused)");
static uint dev_gid;
module_param(dev_gid, uint, 0444);
MODULE_PARM_DESC(dev_gid, "group of /dev/ckpt as devtmpfs creates it (default 0, root)");

/* A device of our own rather than a misc one: only a device_type's devnode sets the group. */
static char *ckpt_devnode(CKPT_DEVNODE_CONST struct device *dev, umode_t *mode, kuid_t *uid,
			  kgid_t *gid)
{
	if (mode)
		*mode = dev_mode;
	if (gid)
		*gid = make_kgid(&init_user_ns, dev_gid);
	return NULL;
}

static const struct device_type ckpt_dev_type = {
	.name = CKPT_DEVICE_NAME,
	.devnode = ckpt_devnode,
};

static dev_t ckpt_devt;
static struct class *ckpt_class;
static struct cdev ckpt_cdev;
static struct device *ckpt_device;

static void ckpt_device_release(struct device *dev)
{
	kfree(dev);
}

int ckpt_dev_init(void)
{
	int ret;

	if (dev_mode & ~0660) {
		pr_err("ckpt: dev_mode=%#o: only owner and group bits (0660) are allowed\n", dev_mode);
		return -EINVAL;
	}
	if (!gid_valid(make_kgid(&init_user_ns, dev_gid))) {
		pr_err("ckpt: dev_gid=%u is not a valid group\n", dev_gid);
		return -EINVAL;
	}
	ret = alloc_chrdev_region(&ckpt_devt, 0, 1, CKPT_DEVICE_NAME);
	if (ret)
		return ret;
	ckpt_class = ckpt_class_create(CKPT_DEVICE_NAME);
	if (IS_ERR(ckpt_class)) {
		ret = PTR_ERR(ckpt_class);
		goto out_region;
	}
	ckpt_device = kzalloc(sizeof(*ckpt_device), GFP_KERNEL);
	if (!ckpt_device) {
		ret = -ENOMEM;
		goto out_class;
	}
	device_initialize(ckpt_device);
	ckpt_device->devt = ckpt_devt;
	ckpt_device->class = ckpt_class;
	ckpt_device->type = &ckpt_dev_type;
	ckpt_device->release = ckpt_device_release;
	ret = dev_set_name(ckpt_device, CKPT_DEVICE_NAME);
	if (ret)
		goto out_device;
	cdev_init(&ckpt_cdev, &ckpt_fops);
	ckpt_cdev.owner = THIS_MODULE;
	ret = cdev_device_add(&ckpt_cdev, ckpt_device);
	if (ret)
		goto out_device;
	return 0;

out_device:
	put_device(ckpt_device);
out_class:
	class_destroy(ckpt_class);
out_region:
	unregister_chrdev_region(ckpt_devt, 1);
	return ret;
}

void ckpt_dev_exit(void)
{
	cdev_device_del(&ckpt_cdev, ckpt_device);
	put_device(ckpt_device);
	class_destroy(ckpt_class);
	unregister_chrdev_region(ckpt_devt, 1);
}
