"""mailhelpdesk: a helpdesk that lives inside a shared mailbox."""

__version__ = "0.1.0"
