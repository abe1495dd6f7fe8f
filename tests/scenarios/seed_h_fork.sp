# Seed 004, case (h): a forked KSM page is recognised through its back pointer
# (page -> stable node) without a checksum pass or a tree search.  Like the
# kernel, a fork may take a stable node beyond max_page_sharing
# (max_page_sharing_bypass): the limit is for merging, not for fork.
machine nodes=1
set max_page_sharing 2
set smart_scan 0
mm A
mmap A 0 3 mergeable
fill A 0 2 'h'
fill A 2 1 'i'
set run 1
scan full 2
# A:0 + A:1: one full KSM page (2 = max_page_sharing); A:2 unstable
expect pages_shared 1
expect pages_sharing 1
expect pages_unshared 1
fork A C
expect C:ksm_merging_pages 0
expect C:ksm_rmap_items 0
expect-ksm C 0 yes
expect-shared C 1 A 0
# C:2 shares A:2's ordinary anonymous page copy-on-write (not KSM)
expect-ksm C 2 no
expect-shared C 2 A 2
check
scan full 1
# C:0, C:1 joined the full stable node on their first visit: 4 mappings
expect C:ksm_rmap_items 3
expect C:ksm_merging_pages 2
expect pages_shared 1
expect pages_sharing 3
expect stable_node_chains 0
# C:2 only had its checksum recorded
expect pages_unshared 1
check
scan full 1
# C:2's page IS A:2's page (fork): found in the unstable tree it is neither
# merged with itself nor inserted: volatile (6 - 1 - 3 - 1 = 1)
expect pages_unshared 1
expect pages_volatile 1
expect pages_sharing 3
# writes in the child copy; the parent's pages are untouched
write C 0 0 'c'
write C 2 0 'c'
expect-byte A 0 0 'h'
expect-byte A 2 0 'i'
expect-byte C 0 1 'h'
scan full 1
expect pages_sharing 2
expect C:ksm_merging_pages 1
check
