# Seed 001, case (b) for a KSM page mapped ONCE: merge_across_nodes=0, the
# page migrates to a node that already has an equal KSM page.  Seed 001 meant
# its mapping to move onto that page.  Linux never does it (3.9 as in 6.1 and
# today): the scanner takes the rmap_item off the migrated page's stable node
# and then fails to merge it, because the kernel finds where a page is mapped
# through the page's anon_vma (page_address_in_vma(), first thing in
# write_protect_page()), and a page that is already a KSM page has none.  So
# the mapping stays on its own KSM page, in no tree (volatile), its node parked
# on migrate_nodes: not stale, its page still points back to it.  samepage
# follows the kernel; `make numa` shows the kernel doing it (story e).  Once
# the page is written, its KSM page is freed and the parked node is stale:
# the next full scan prunes it (tests/seed_d_prune_emptied_node.c checks the
# list itself).
machine nodes=2
set merge_across_nodes 0
set smart_scan 0
mm A node=0
mmap A 0 2 mergeable
fill A 0 2 'm'
mm B node=1
mmap B 0 3 mergeable
fill B 0 3 'm'
set run 1
scan full 2
# node 0: A's KSM page (2 mappings); node 1: B's (3)
expect pages_shared 2
expect pages_sharing 3
expect-not-shared A 0 B 0
# A:1 written: A's KSM page is left with one mapping
write A 1 0 'w'
scan full 1
expect pages_shared 2
expect pages_sharing 2
expect pages_unshared 0
expect pages_volatile 1
check
migrate A 0 1
expect-node A 0 1
expect-ksm A 0 yes
expect pages_shared 2
check
# the scanner finds A's node misplaced (parked), finds B's equal page on node
# 1, takes A:0 off its node (pages_shared 2 -> 1) and fails to merge it:
# A:0 is volatile now, beside A:1 (not yet visited in this pass)
scan 1
expect pages_shared 1
expect pages_sharing 2
expect pages_unshared 0
expect pages_volatile 2
expect-ksm A 0 yes
expect-not-shared A 0 B 0
expect-node A 0 1
expect A:ksm_merging_pages 0
expect B:ksm_merging_pages 3
check
# every later pass tries again, and fails the same way: nothing changes
scan full 5
expect pages_shared 1
expect pages_sharing 2
expect pages_unshared 1
expect pages_volatile 1
expect-ksm A 0 yes
expect-not-shared A 0 B 0
expect-byte A 0 4095 'm'
expect-byte A 1 0 'w'
check
# A:0 written: its KSM page is freed, the parked node goes stale; one full
# scan prunes it (and A:0, a new content, only records its checksum)
write A 0 0 'v'
expect-ksm A 0 no
check
scan full 1
expect pages_shared 1
expect pages_sharing 2
expect pages_unshared 1
expect pages_volatile 1
check
# and the two unique pages of A then wait in node 0's unstable tree
scan full 1
expect pages_shared 1
expect pages_sharing 2
expect pages_unshared 2
expect pages_volatile 0
expect-byte A 0 0 'v'
expect-byte A 0 1 'm'
expect-byte B 2 4095 'm'
check
