"""One exception tree: every error we raise on purpose carries a message a founder can act on."""


class MailHelpdeskError(Exception):
    """Base of every error mailhelpdesk raises on purpose."""

    exit_code = 1


class ConfigError(MailHelpdeskError):
    """The config file is missing, unreadable or invalid."""

    exit_code = 2


class StoreError(MailHelpdeskError):
    """The state file cannot be read or written."""


class MailboxError(MailHelpdeskError):
    """The mailbox cannot be reached or refused what we asked."""


class AuthError(MailboxError):
    """Login or token problem: the message says what to run or fix."""

    exit_code = 2


class CapabilityError(MailboxError):
    """The server lacks something we need."""

    exit_code = 2


class SendError(MailHelpdeskError):
    """Mail could not be sent. `permanent` when trying again cannot help (a refused address, a 5xx)."""

    def __init__(self, message: str, permanent: bool = False, only_this: bool = False, reason: str = ""):
        super().__init__(message)
        self.permanent = permanent
        self.only_this = only_this  # the server works but refused this message (a recipient, its content) for now
        self.reason = reason  # what is wrong with the server, for `status` (no Message-ID); "" when it says nothing
        # about the server (the daemon is stopping, a message that cannot be written)


class LockError(MailHelpdeskError):
    """Another mailhelpdesk instance already works on this state file."""


class SetupError(MailHelpdeskError):
    """Something to fix in the setup (a host, a port, a security setting, a folder, a path): exit code 2."""

    exit_code = 2


class MailboxSetupError(SetupError, MailboxError):
    """The mail server cannot be reached or used as configured; a running daemon still retries it."""


class SmtpSetupError(SetupError, SendError):
    """SMTP cannot be used as configured (unreachable, no TLS, no AUTH); the outbox waits, nothing is lost."""

    def __init__(self, message: str):
        SendError.__init__(self, message, permanent=False, reason=message)


class SmtpUnavailableError(SmtpSetupError):
    """The SMTP server is not there or busy now (refused, silent, 421): `check` reports it, `run` starts anyway and
    mail waits in the outbox. Only what a change of settings fixes (a login, TLS, a name) stops `run`."""


class StateFileError(SetupError, StoreError):
    """The state file's folder is missing or cannot be written."""


class StateLostError(SetupError, StoreError):
    """The mailbox shows mailhelpdesk has worked on it, but the state file is missing or empty: rebuild first."""
