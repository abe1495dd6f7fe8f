# Regression (found by sim_random_stress): run=2 at a pass boundary used to
# free rmap_items still linked in the unstable tree (a crash in rb_erase).
machine nodes=1 pages=66 page_size=256
mm m3 node=0
mmap m3 0 40 mergeable
fork m3 m5
fill m5 7 7 0x2a
fill m5 19 5 0x2a
fill m3 22 6 random
fill m3 32 5 0x2a
fork m3 m2
fill m3 26 2 0x2a
fork m3 m0
fork m3 m4
fill m0 24 8 0x2a
madvise m5 9 4 unmergeable
fill m3 16 4 1
munmap m3 9 8
set max_page_sharing 2
fill m3 32 8 0x2a
fill m2 2 5 random
fill m5 13 8 0x2a
fill m2 19 1 random
fill m2 28 3 'x'
fill m4 33 4 seq
write m0 32 28 119
write m4 12 23 206
fill m3 26 1 seq
write m4 22 20 42
set run 1
scan 50
scan 33
expect-error ENOMEM set run 2
set run 1
scan 23
check
