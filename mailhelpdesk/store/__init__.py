"""The state on disk: the TinyDB file and its journal, the archive, the records in the mailbox, rebuild."""
