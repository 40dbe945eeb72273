// SPDX-License-Identifier: GPL-2.0
/* ckpt.ko: module entry points. The device lives in dev.c. */
#include <linux/module.h>
#include "ckpt.h"

static int __init ckpt_init(void)
{
	int ret;

	ret = ckpt_dev_init();
	if (ret)
		return ret;
	pr_info("ckpt: loaded, API %llu\n", CKPT_API_VERSION);
	return 0;
}

static void __exit ckpt_exit(void)
{
	ckpt_dev_exit();
}

module_init(ckpt_init);
module_exit(ckpt_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ckpt: write tracking and restore for checkpointing user programs");
MODULE_AUTHOR("ckpt developers");
