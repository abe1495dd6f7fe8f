# The knobs' defaults are the kernel's.
machine nodes=1
expect run 0
expect pages_to_scan 100
expect sleep_millisecs 20
expect merge_across_nodes 1
expect max_page_sharing 256
expect use_zero_pages 0
expect smart_scan 1
expect stable_node_chains_prune_millisecs 2000
expect full_scans 0
expect pages_shared 0
expect pages_sharing 0
expect pages_unshared 0
expect pages_volatile 0
expect pages_scanned 0
expect pages_skipped 0
expect stable_node_chains 0
expect stable_node_dups 0
expect ksm_zero_pages 0
expect general_profit 0
# With run 0 the scanner does nothing.
mm A
mmap A 0 2 mergeable
fill A 0 2 'q'
scan full 3
expect full_scans 0
expect pages_scanned 0
expect A:ksm_rmap_items 0
set pages_to_scan 7
expect pages_to_scan 7
set sleep_millisecs 0
expect sleep_millisecs 0
check
