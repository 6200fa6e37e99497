# Tests of the PCP (RFC 6887) and NAT-PMP (RFC 6886) codec in src/dpm/ (docs/pcp.md).
dpm_unit_test(pcp_test dpm_core)
dpm_unit_test(natpmp_test dpm_core)
