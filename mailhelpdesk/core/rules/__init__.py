"""One module per rule. Each is a pure function: facts, ticket, config and `now` in; a value out."""
