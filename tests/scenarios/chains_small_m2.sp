# Kernel selftest formula with a small limit: N=7, M=2: 7 % 2 == 1 ->
# shared = 7/2 = 3, sharing = 3 * (2-1) = 3; the 7th page stays unshared.
# Pass 2: p0+p1 -> dup 1 (full); p2 unstable, p3 -> dup 2 (chain created);
# p4 unstable, p5 -> dup 3; p6 unstable.
machine nodes=1
set max_page_sharing 2
mm A
mmap A 0 7 mergeable
fill A 0 7 'm'
set run 1
scan full 2
expect pages_shared 3
expect pages_sharing 3
expect pages_unshared 1
expect stable_node_chains 1
expect stable_node_dups 3
expect-shared A 0 A 1
expect-shared A 2 A 3
expect-shared A 4 A 5
expect-not-shared A 1 A 2
expect-not-shared A 3 A 4
expect-ksm A 6 no
check
