# Sourced by scripts/vm/run (host) and tests/vm/run-all (guest): the kernel-log lines that
# fail a run (grep -E). One list, so the two checks cannot drift apart.
#   (BUG|WARNING):          BUG()/WARN() reports, "BUG: Bad page state", "BUG: unable to handle ..."
#   kernel BUG at           BUG_ON() (also what usercopy hardening and list debugging end in)
#   BUG <cache> (...)       SLUB debugging (slub_debug=FZPU, vm/run's default): "BUG kmalloc-64
#                           (Tainted: ...): Poison overwritten" / "Redzone overwritten" /
#                           "Object padding overwritten" / "Object already free" / ...
#   pagealloc:              page poisoning (page_poison=1): a freed page written before reuse
#   list_(add|del) corruption   CONFIG_DEBUG_LIST
#   usercopy:               CONFIG_HARDENED_USERCOPY refusing a copy
# shellcheck disable=SC2034
CKPT_LOG_PROBLEMS='(BUG|WARNING):|kernel BUG at|BUG [^ ]+ \((Not tainted|Tainted)|Poison overwritten|Redzone overwritten|Object padding overwritten|Freepointer corrupt|Object already free|pagealloc: (memory corruption|single bit error)|list_(add|del) corruption|usercopy: |Oops|kernel tried to execute|general protection fault|unreferenced object|UBSAN:|refcount_t:|blocked for more than|detected stalls'
