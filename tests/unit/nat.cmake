# Tests of the NAT engine and its packet views (docs/nat.md): ctest -R "unit.(Checksum|Ipv4View|Nat)"
dpm_unit_test(checksum_test dpm_wire)
dpm_unit_test(ipv4_view_test dpm_wire)
dpm_unit_test(nat_engine_test dpm_nat)
