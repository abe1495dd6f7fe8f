# Knob rules: values out of range give EINVAL and change nothing.
machine nodes=2
expect-error EINVAL set run 3
expect-error EINVAL set run 4
expect run 0
expect-error EINVAL set merge_across_nodes 2
expect merge_across_nodes 1
expect-error EINVAL set max_page_sharing 1
expect-error EINVAL set max_page_sharing 0
expect max_page_sharing 256
expect-error EINVAL set use_zero_pages 2
expect use_zero_pages 0
expect-error EINVAL set smart_scan 2
expect smart_scan 1
# the smallest legal values
set max_page_sharing 2
expect max_page_sharing 2
set merge_across_nodes 0
expect merge_across_nodes 0
set use_zero_pages 1
expect use_zero_pages 1
set smart_scan 0
expect smart_scan 0
set run 2
expect run 2
set run 0
expect run 0
check
