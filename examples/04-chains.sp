# max_page_sharing: chains and dups
# =================================
# One KSM page may be mapped at most max_page_sharing times (default 256):
# a page shared by too many would make reverse-mapping walks too long.  When
# a KSM page is full, the next identical pages form a NEW KSM page with the
# same content (a "dup"), and the stable tree node becomes a "chain" of dups.
#
# Here max_page_sharing=4 and 10 identical pages:
#   dup 1: pages 0-3 (full), dup 2: pages 4-7 (full), dup 3: pages 8-9.
#
# Run it:   samepage sim examples/04-chains.sp

machine nodes=1
set max_page_sharing 4          # only while nothing is shared (else EBUSY)
mm A
mmap A 0 10 mergeable
fill A 0 10 'c'
set run 1
scan full 2
stats
expect pages_shared 3           # three KSM pages ...
expect pages_sharing 7          # ... for 10 mappings (10 - 3)
expect stable_node_chains 1     # one chain in the stable tree
expect stable_node_dups 3       # holding three dups
expect-shared A 0 A 3
expect-shared A 4 A 7
expect-shared A 8 A 9
expect-not-shared A 3 A 4

# The limit cannot change while pages are shared:
expect-error EBUSY set max_page_sharing 8
check
