"""ums: a unified messaging server core (fax, voice, SMS to e-mail or a local store)."""

__version__ = "0.1.0"
