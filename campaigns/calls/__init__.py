"""The advisers' call list: queue and leases, bridged calls, the supervisor's board."""
