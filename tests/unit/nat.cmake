# Tests of the NAT engine and its packet views (docs/nat.md): ctest -R "unit.(Checksum|Ipv4View|Nat)"
dpm_unit_test(checksum_test dpm_wire)
dpm_unit_test(ipv4_view_test dpm_wire)
dpm_unit_test(nat_engine_test dpm_nat)
# The pieces of src/nat on their own: ctest -R "unit.Nat(TcpTracking|FragmentTracker|Rewrite|TableMemory)"
dpm_unit_test(tcp_tracking_test dpm_nat)
dpm_unit_test(fragments_test dpm_nat)
dpm_unit_test(rewrite_test dpm_nat)
dpm_unit_test(table_memory_test dpm_nat)
