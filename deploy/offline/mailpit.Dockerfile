# Stands in for axllent/mailpit (`make test-compose`): deploy/offline/mailpit.py (aiosmtpd) keeps every mail
# as /data/mail/<id>.eml, which the e2e suite reads, and /mailpit answers `readyz` as Mailpit does.
# SMTP address from Mailpit's own MP_SMTP_BIND_ADDR (default 0.0.0.0:1025).
ARG PYTHON_IMAGE=videoflix-offline/python:3.11-slim
FROM ${PYTHON_IMAGE}
COPY services/auth/requirements.txt /tmp/auth-requirements.txt
# The aiosmtpd release the auth service pins.
RUN pip install --no-cache-dir "$(grep '^aiosmtpd==' /tmp/auth-requirements.txt)" \
    && rm /tmp/auth-requirements.txt \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /data mailpit \
    && mkdir -p /data/mail && chown mailpit:mailpit /data/mail
COPY deploy/offline/mailpit.py /mailpit
# The healthcheck runs /mailpit itself, as in the real image.
RUN chmod 755 /mailpit
USER 10001:10001
ENTRYPOINT ["/mailpit"]
