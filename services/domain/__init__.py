"""Pure domain rules: no I/O, no Azure SDK, no clock but the injected one."""
