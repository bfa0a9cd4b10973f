"""The catalog's internal API (docs/architecture.md "Catalog <-> transcoder"), as the transcoder uses it."""
from __future__ import annotations

import logging

import requests

from videoflix_shared import Settings

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10


class VideoGone(Exception):
    """The catalog no longer knows the video (deleted meanwhile): stop working on it, quietly."""


class CatalogClient:
    def __init__(self, base_url: str, service_token: str, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {service_token}"

    @classmethod
    def from_settings(cls, settings: Settings) -> "CatalogClient":
        return cls(settings.catalog_url, settings.service_token())

    def _request(self, method: str, video_id: int, action: str = "", body: dict | None = None) -> dict:
        url = f"{self.base_url}/internal/videos/{video_id}" + (f"/{action}" if action else "")
        response = self.session.request(method, url, json=body, timeout=TIMEOUT_SECONDS)
        if response.status_code == 404:
            raise VideoGone(video_id)
        response.raise_for_status()
        return response.json() if response.content else {}

    def video(self, video_id: int) -> dict:
        return self._request("GET", video_id)

    def report_probe(self, video_id: int, duration: float, width: int, height: int, has_audio: bool,
                     rungs: list[str]) -> dict:
        return self._request("POST", video_id, "probe", {
            "duration": duration, "width": width, "height": height, "has_audio": has_audio, "rungs": rungs,
        })

    def report_progress(self, video_id: int, rung: str, percent: int) -> None:
        """Best effort: a lost progress update must not fail a transcode."""
        try:
            self._request("POST", video_id, "progress", {"rung": rung, "percent": percent})
        except requests.RequestException as error:
            log.warning("progress report failed", extra={"fields": {"video_id": video_id, "error": str(error)}})

    def report_rendition(self, video_id: int, rung: str, width: int, height: int, bandwidth: int,
                         growing: bool = False) -> dict:
        """A rung is published: complete, or `growing` (playable while it is still being encoded)."""
        return self._request("POST", video_id, "renditions", {
            "rung": rung, "width": width, "height": height, "bandwidth": bandwidth, "growing": growing,
        })

    def report_thumbnail(self, video_id: int, path: str) -> dict:
        return self._request("POST", video_id, "thumbnail", {"path": path})

    def report_failed(self, video_id: int, reason: str, rung: str | None = None) -> dict:
        body = {"reason": reason} | ({"rung": rung} if rung else {})
        return self._request("POST", video_id, "failed", body)
