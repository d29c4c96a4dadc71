"""Closed raw segments → bronze partitions (`daedalus land`), with salvage of damaged segments."""
