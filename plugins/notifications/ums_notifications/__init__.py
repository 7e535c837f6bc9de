"""The e-mails ums writes itself; each type is its own entry point."""
