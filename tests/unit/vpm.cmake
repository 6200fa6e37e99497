# Tests of virtual port multiplexing (docs/vpm.md): ctest -R "unit.Vpm"
dpm_unit_test(vpm_configurator_test dpm_vpm)
dpm_unit_test(vpm_virtual_ports_test dpm_vpm)
dpm_unit_test(vpm_multiplexer_test dpm_vpm)
dpm_unit_test(vpm_negotiation_test dpm_vpm)
