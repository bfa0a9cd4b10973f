#!/usr/bin/env python
"""`/mailpit`: the mail catcher stand-in's entry point. `/mailpit readyz` exits 0 when the SMTP port
answers (the compose healthcheck); without arguments it runs an aiosmtpd server on MP_SMTP_BIND_ADDR that
keeps every message as /data/mail/<id>.eml, as maildev does for the local stack (the e2e suite reads them)."""
import os
import signal
import smtplib
import sys
import threading
import uuid
from pathlib import Path

host, _, port = os.environ.get("MP_SMTP_BIND_ADDR", "0.0.0.0:1025").rpartition(":")
MAIL_DIR = Path("/data/mail")


class EmlFiles:
    """aiosmtpd handler: one file per message, written under a hidden name and renamed when whole."""

    async def handle_DATA(self, server, session, envelope):
        name = uuid.uuid4().hex
        partial = MAIL_DIR / f".{name}.tmp"
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(MAIL_DIR / f"{name}.eml")
        return "250 Message accepted for delivery"


def serve() -> None:
    from aiosmtpd.controller import Controller

    MAIL_DIR.mkdir(parents=True, exist_ok=True)
    controller = Controller(EmlFiles(), hostname=host or "0.0.0.0", port=int(port))
    controller.start()
    print(f"SMTP on {host or '0.0.0.0'}:{port}, mail in {MAIL_DIR}/<id>.eml", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if sys.argv[1:] == ["readyz"]:
    try:
        smtplib.SMTP("127.0.0.1" if host in ("", "0.0.0.0") else host, int(port), timeout=4).quit()
    except OSError as error:
        sys.exit(f"not ready: {error}")
else:
    serve()
