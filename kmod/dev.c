// SPDX-License-Identifier: GPL-2.0
/* /dev/ckpt: the misc device, one session per open file, and the ioctl dispatch. */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "ckpt.h"

#define SUPPORTED_IOCTLS (1ULL << _IOC_NR(CKPT_IOC_API))
#define SUPPORTED_FEATURES 0ULL

static bool all_zero(const __u64 *v, size_t n)
{
	while (n--)
		if (*v++)
			return false;
	return true;
}

static int ckpt_open(struct inode *inode, struct file *file)
{
	struct ckpt_session *s = kzalloc(sizeof(*s), GFP_KERNEL);

	if (!s)
		return -ENOMEM;
	mutex_init(&s->lock);
	file->private_data = s;
	return 0;
}

static int ckpt_release(struct inode *inode, struct file *file)
{
	struct ckpt_session *s = file->private_data;

	mutex_destroy(&s->lock);
	kfree(s);
	return 0;
}

static long ioctl_api(struct ckpt_session *s, struct ckpt_api __user *uarg)
{
	struct ckpt_api a;
	long ret = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (s->api_done)
		return -EBUSY;
	if (a.api != CKPT_API_VERSION || a.features || !all_zero(a.reserved, ARRAY_SIZE(a.reserved)))
		ret = -EINVAL;
	a.api = CKPT_API_VERSION;
	a.features = SUPPORTED_FEATURES;
	a.ioctls = SUPPORTED_IOCTLS;
	a.page_size = PAGE_SIZE;
	memset(a.reserved, 0, sizeof(a.reserved));
	if (copy_to_user(uarg, &a, sizeof(a)))
		return -EFAULT;
	if (!ret)
		s->api_done = true;
	return ret;
}

static long ckpt_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct ckpt_session *s = file->private_data;
	void __user *uarg = (void __user *)arg;
	long ret;

	if (_IOC_TYPE(cmd) != CKPT_IOC_MAGIC)
		return -ENOTTY;

	mutex_lock(&s->lock);
	switch (cmd) {
	case CKPT_IOC_API:
		ret = ioctl_api(s, uarg);
		break;
	default:
		ret = -ENOTTY;
		break;
	}
	mutex_unlock(&s->lock);
	return ret;
}

static const struct file_operations ckpt_fops = {
	.owner = THIS_MODULE,
	.open = ckpt_open,
	.release = ckpt_release,
	.unlocked_ioctl = ckpt_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice ckpt_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = CKPT_DEVICE_NAME,
	.fops = &ckpt_fops,
	.mode = 0666,
};

int ckpt_dev_init(void)
{
	return misc_register(&ckpt_misc);
}

void ckpt_dev_exit(void)
{
	misc_deregister(&ckpt_misc);
}
