"""Keep every message in the local store: content and a metadata record."""

from ums_core.hookspecs import hookimpl

from .store import store_message

UMS_ROLE = "archive"


@hookimpl
def ums_store_message(message, ctx):
    return store_message(message, ctx)
