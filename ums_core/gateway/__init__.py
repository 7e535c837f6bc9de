"""The SMTP gateway: e-mail to fax and e-mail to SMS."""
