# Kernel selftest formula, N=700, M=256: N % M == 188 -> shared = N/M + 1 = 3,
# sharing = N - shared = 697 (dups of 256, 256 and 188 mappings).
machine nodes=1
mm A
mmap A 0 700 mergeable
fill A 0 700 0x5C
set run 1
scan full 2
expect pages_shared 3
expect pages_sharing 697
expect pages_unshared 0
expect stable_node_chains 1
expect stable_node_dups 3
expect-shared A 512 A 699
expect-not-shared A 511 A 512
check
