# Kernel selftest oracle: 512 identical pages (2 MiB), max_page_sharing 256
# -> shared 2, sharing 510, stable_node_chains 1, stable_node_dups 2.
machine nodes=1
mm A
mmap A 0 512 mergeable
fill A 0 512 0x5A
set run 1
scan full 2
# Pass 2: p0 unstable, p1 merges with it (KSM page 1), p2..p255 join it (256
# mappings = max_page_sharing).  p256 cannot join a full node and goes to the
# unstable tree, p257 merges with it into KSM page 2: the stable node becomes
# a chain of two dups.  p258..p511 join dup 2 -> 256 mappings.
expect max_page_sharing 256
expect pages_shared 2
expect pages_sharing 510
expect stable_node_chains 1
expect stable_node_dups 2
expect pages_unshared 0
expect-shared A 0 A 255
expect-shared A 256 A 511
expect-not-shared A 255 A 256
check
scan full 1
expect pages_shared 2
expect pages_sharing 510
stats
check
