"""gunicorn settings for every Flask service; everything comes from the environment."""
import os

bind = f"{os.environ.get('BIND_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Uploads of large files are long requests; the gateway enforces its own client timeouts.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
# On SIGTERM, workers get this long to finish the requests they are serving.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# The gateway keeps idle connections to each service open for its upstream keepalive_timeout (60 s,
# deploy/nginx.conf). Held longer here, the gateway is always the side that closes one: with gunicorn's
# 2 s default, gunicorn could close a connection just as nginx sends a request on it, and a POST lost
# that way is not retried (a 502 to the client).
keepalive = 75
accesslog = None
errorlog = "-"
# nginx already caps request headers (large_client_header_buffers); letting gunicorn accept as many
# means an oversized request is refused by nginx as JSON, never by gunicorn's HTML error page.
limit_request_fields = 32768
limit_request_field_size = 0
limit_request_line = 0


def child_exit(server, worker):
    """A worker that exits takes its live gauges with it (prometheus_client multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
