"""Account mail (plain text + HTML), sent over SMTP with Flask-Mail on a background thread.

Sending in the background keeps every answer as fast whether or not a mail goes out (so timing does
not reveal which addresses have accounts) and keeps a slow or dead SMTP server out of the request.
A failed send is logged; the account is already committed and the user can ask for a new mail
(`POST /api/activation/resend/`, `POST /api/password_reset/`).
"""
from __future__ import annotations

import logging
import smtplib
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Callable

from flask import Flask, current_app, render_template
from flask_mail import Mail, Message

log = logging.getLogger(__name__)
mail = Mail()


def init_mail(app: Flask) -> None:
    mail.init_app(app)
    app.extensions["mail_outbox"] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mail")


def send(recipient: str, subject: str, template: str, **context) -> Future:
    """Render `templates/mail/<template>.txt|.html` now and deliver them in the background."""
    message = Message(
        subject=f"Videoflix: {subject}",
        recipients=[recipient],
        body=render_template(f"mail/{template}.txt", subject=subject, **context),
        html=render_template(f"mail/{template}.html", subject=subject, **context),
    )
    app = current_app._get_current_object()
    return app.extensions["mail_outbox"].submit(_deliver, app, message, template)


def in_background(work: Callable[..., None], *args) -> Future:
    """Run `work(*args)` on the mail thread in an app context: the look-up, the link and the mail.

    For answers that must not tell whether an address has an account: the request does the same
    (nothing) either way, the database work and the mail happen after the answer.
    """
    app = current_app._get_current_object()
    return app.extensions["mail_outbox"].submit(_run, app, work, args)


def _run(app: Flask, work: Callable[..., None], args: tuple) -> None:
    with app.app_context():
        try:
            work(*args)
        except Exception:  # a background job has no caller to raise to
            log.exception("background account mail job failed")


def describe(duration: timedelta) -> str:
    """'24 hours', '1 hour', '15 minutes': how long a mailed link stays valid."""
    minutes = int(duration.total_seconds() // 60)
    amount, unit = (minutes // 60, "hour") if minutes >= 60 and minutes % 60 == 0 else (minutes, "minute")
    return f"{amount} {unit}{'' if amount == 1 else 's'}"


def _deliver(app: Flask, message: Message, template: str) -> None:
    with app.app_context():
        try:
            mail.send(message)
        except (OSError, smtplib.SMTPException):
            log.exception("could not send %s mail", template, extra={"fields": {
                "mail": template, "recipient": message.recipients[0], "smtp_failed": True,
            }})
            return
    log.info("sent %s mail", template, extra={"fields": {"mail": template}})
