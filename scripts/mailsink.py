"""A real SMTP server for the local and test stacks: every message lands in a Maildir.

Read mail with any Maildir reader, or just `ls var/mail/new` and open the files.
"""
import argparse
import mailbox
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, default=Path("var/mail"))
    options = parser.parse_args()
    mailbox.Maildir(options.maildir, create=True)
    controller = Controller(Mailbox(options.maildir), hostname=options.host, port=options.port)
    controller.start()
    print(f"SMTP sink on {options.host}:{options.port}, Maildir {options.maildir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
