"""The one error type users see."""


class UmsError(Exception):
    """An error the user can act on: a one-line message and a hint.

    The CLI prints ``Error: MESSAGE`` (and the hint on its own line) and exits 1.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class MediaError(UmsError):
    """Content that is not a usable fax, voice message or SMS."""


class NumberError(UmsError):
    """A phone number that cannot be understood with the site rules."""


class BusyError(UmsError):
    """Nothing was committed for a passing reason; try again later.

    The database stayed locked, or the disk is full (:class:`NoSpaceError`).
    Whoever handed the message over keeps it and hands it over again.
    """


class PluginError(BusyError):
    """A plugin failed where its answer is needed; nothing was committed.

    The message waits with whoever handed it over until the plugin is fixed
    or disabled: taking it without the plugin's answer could misroute it.
    """


class NoSpaceError(BusyError):
    """A file could not be written: the disk or a size limit is full."""
