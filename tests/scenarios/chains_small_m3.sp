# Kernel selftest formula with a small limit: N=7, M=3: 7 % 3 == 1 ->
# shared = 7/3 = 2, sharing = 2 * (3-1) = 4; the 7th page stays unshared.
# Pass 2: p0+p1+p2 -> dup 1 (full); p3 unstable, p4 -> dup 2 (chain), p5 joins
# dup 2 (full); p6 unstable.
machine nodes=1
set max_page_sharing 3
mm A
mmap A 0 7 mergeable
fill A 0 7 'n'
set run 1
scan full 2
expect pages_shared 2
expect pages_sharing 4
expect pages_unshared 1
expect stable_node_chains 1
expect stable_node_dups 2
expect-shared A 0 A 2
expect-shared A 3 A 5
expect-not-shared A 2 A 3
expect-ksm A 6 no
set smart_scan 0
scan full 3
expect pages_shared 2
expect pages_sharing 4
expect pages_unshared 1
check
