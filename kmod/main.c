// SPDX-License-Identifier: GPL-2.0
/* ckpt.ko: module entry points. The device lives in dev.c, tracking in session.c and collect.c. */
#include <linux/module.h>
#include "ckpt.h"

static int __init ckpt_init(void)
{
	int ret;

	ret = ckpt_mm_init();
	if (ret)
		return ret;
	ret = ckpt_fault_init();
	if (ret)
		goto err_mm;
	ret = ckpt_genl_init();
	if (ret)
		goto err_fault;
	ret = ckpt_dev_init();
	if (ret)
		goto err_genl;
	pr_info("ckpt: loaded, API %llu\n", CKPT_API_VERSION);
	return 0;

err_genl:
	ckpt_genl_exit();
err_fault:
	ckpt_fault_exit();
err_mm:
	ckpt_mm_exit();
	return ret;
}

static void __exit ckpt_exit(void)
{
	/* No session is open (each holds a module reference): no region, the probe is off. */
	ckpt_dev_exit();
	ckpt_genl_exit();
	ckpt_fault_exit();
	ckpt_mm_exit();
}

module_init(ckpt_init);
module_exit(ckpt_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ckpt: write tracking and restore for checkpointing user programs");
MODULE_AUTHOR("ckpt developers");
