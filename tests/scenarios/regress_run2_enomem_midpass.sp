# Regression (found by sim_random_stress, seed 117657212377524): run=2 fails
# with ENOMEM half way through a full scan on a tiny machine.  The unstable
# items of the interrupted pass must be taken out of the trees, or the next
# pass finds them flagged as linked in trees that were reset.  Ends with check.
machine nodes=2 pages=69 page_size=64
set merge_across_nodes 0
set max_page_sharing 256
set smart_scan 0
set use_zero_pages 0
set pages_to_scan 17
set run 1
mm m4 node=1
mmap m4 0 40 mergeable
scan 80
fill m4 20 7 0x2a
fill m4 24 1 0
scan 70
scan full 1
expect-error ENOMEM madvise m4 39 5 unmergeable
fill m4 4 3 0
mm m3 node=1
mmap m3 0 40 mergeable
scan 90
scan 37
scan 76
scan 10
fill m4 23 6 0x2a
munmap m3 25 2
fill m4 34 4 0
expect-error EFAULT fill m3 23 7 0x2a
fill m3 1 4 0x2a
write m3 18 35 42
set sleep_millisecs 10
fill m3 2 2 1
mmap m3 37 8
scan 71
exit m3
mm m0 node=0
mmap m0 0 40 mergeable
migrate m4 4 0
write m0 33 32 1
scan 39
fill m4 7 7 0
mm m2 node=1
mmap m2 0 40 mergeable
write m0 23 8 42
scan 86
expect-error EINVAL swapout m0 4
fill m0 22 3 0
expect-error EINVAL swapin m4 16
fill m0 18 8 random
fill m0 5 5 0x2a
offline 1
scan full 1
scan 2
scan 19
fill m2 27 6 seq
scan full 1
fill m0 35 4 seq
write m4 39 4 42
scan 53
set stable_node_chains_prune_millisecs 18
scan 37
fork m0 m1
set run 0
fork m4 m3
write m1 25 2 42
write m3 5 61 42
fork m4 m5
fill m4 11 3 0
fill m0 25 4 'x'
scan 117
exit m5
write m0 20 4 42
expect-error EINVAL swapin m3 17
set run 1
fill m4 13 6 seq
fill m4 16 7 0
scan full 1
munmap m1 9 8
scan full 1
expect-error EBUSY offline 0
fill m1 21 5 1
scan 82
migrate m3 35 0
fill m1 18 8 0
expect-error ENOMEM set run 2
expect-error ENOMEM fill m2 18 3 seq
expect-error ENOENT migrate m2 16 0
expect-error ENOMEM madvise m1 6 7 mergeable
scan 105
scan full 1
scan 117
expect-error EINVAL swapin m4 13
expect-error ENOMEM write m3 39 60 42
mm m5 node=0
mmap m5 0 40 mergeable
scan 22
set run 1
expect-error ENOMEM madvise m2 36 7 unmergeable
expect-error ENOMEM fill m3 34 3 seq
scan 60
check
