# Kernel selftest formula, N=513, M=256: N % M == 1 -> shared = N/M = 2,
# sharing = shared * (M-1) = 510; the last page stays alone in the unstable tree.
machine nodes=1
mm A
mmap A 0 513 mergeable
fill A 0 513 0x5B
set run 1
scan full 2
expect pages_shared 2
expect pages_sharing 510
expect pages_unshared 1
expect stable_node_chains 1
expect stable_node_dups 2
expect-ksm A 512 no
check
