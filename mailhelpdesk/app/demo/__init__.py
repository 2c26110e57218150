"""The sample mailbox behind `mailhelpdesk demo` (no account needed)."""
