"""(c) of the segment benchmark: Flask sends the segment bytes itself (`send_file`), no X-Accel."""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, abort, send_file
from werkzeug.security import safe_join


def create_app() -> Flask:
    app = Flask(__name__)
    hls = Path(os.environ["MEDIA_DIR"]) / "hls"

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/hls/<path:name>")
    def segment(name: str):
        path = safe_join(str(hls), name)
        if path is None or not os.path.isfile(path):
            abort(404)
        return send_file(path, mimetype="video/MP2T", conditional=True)

    return app
