#!/usr/bin/env python
"""`/mailpit`: the mail catcher stand-in's entry point. `/mailpit readyz` exits 0 when the SMTP port
answers (the compose healthcheck); without arguments it runs scripts/mailsink.py on MP_SMTP_BIND_ADDR."""
import os
import smtplib
import sys

host, _, port = os.environ.get("MP_SMTP_BIND_ADDR", "0.0.0.0:1025").rpartition(":")

if sys.argv[1:] == ["readyz"]:
    try:
        smtplib.SMTP("127.0.0.1" if host in ("", "0.0.0.0") else host, int(port), timeout=4).quit()
    except OSError as error:
        sys.exit(f"not ready: {error}")
else:
    os.execvp("python", ["python", "/usr/local/lib/mailsink.py", "--host", host or "0.0.0.0",
                         "--port", port, "--maildir", "/data/mail"])
