"""The pure core: the data, the rules and duties and their order, the calendar; (state, event, now) -> Plan."""
