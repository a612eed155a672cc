"""The exceptions streamal raises: one root, a few named kinds."""


def first_line(error: BaseException) -> str:
    r"""The first line of ``error``'s message, or its type's name when it has none.

    >>> first_line(ValueError("bad shape\nmore detail")), first_line(KeyError())
    ('bad shape', 'KeyError')
    """
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class StreamalError(Exception):
    """Root of every error streamal raises on purpose."""


class ConfigError(StreamalError):
    """A configuration value is invalid; the message is one line naming the field."""


class MessageError(StreamalError):
    """A record could not be decoded into the expected message."""


class TransportError(StreamalError):
    """The transport failed (broker unreachable, fenced, closed, corrupt log)."""


class FencedError(TransportError):
    """This consumer no longer owns a partition it tried to commit; the batch must be redone."""


class RegistryError(StreamalError):
    """A configured name has no implementation; the message lists the allowed names."""


class ModelError(StreamalError):
    """A model or checkpoint is unusable (corrupt, mismatched, foreign); the old one stays."""


class BridgeError(StreamalError):
    """An annotation tool is unreachable, refused the bridge's token, or failed a call."""
