"""The read path: cache-aside with leases, the near cache and its tracking connection, the resources, the check."""
