"""Redis stops in the middle of an upload and starts again later (empty, as a non-persistent Redis does):
the upload is kept and the video is transcoded after recovery. Uses a private redis-server."""
from __future__ import annotations

import threading
import uuid

from bench.harness import make_clip, register_and_login, video, wait_for_ladder, wait_until

RECOVERY_TIMEOUT = 180  # the reconciler runs every 30 s, then the transcode itself


class PausingBody:
    """A multipart/form-data upload body with a Content-Length that stops halfway until resumed."""

    def __init__(self, path, fields: dict[str, str]):
        self.boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items())
        head += (f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
                 f"Content-Type: video/mp4\r\n\r\n").encode()
        self.data = head + path.read_bytes() + f"\r\n--{self.boundary}--\r\n".encode()
        self.position = 0
        self.paused, self.resume = threading.Event(), threading.Event()

    def __len__(self) -> int:
        return len(self.data)

    def read(self, size: int = 65536) -> bytes:
        if self.position >= len(self.data) // 2 and not self.resume.is_set():
            self.paused.set()
            self.resume.wait(60)
        chunk = self.data[self.position:self.position + size]
        self.position += len(chunk)
        return chunk


def test_upload_during_redis_outage_is_kept_and_transcoded_after_recovery(make_stack, private_redis):
    stack = make_stack(REDIS_URL=private_redis.url)
    session = register_and_login(stack)
    clip = make_clip(6, 640, 360)
    body = PausingBody(clip, {"title": "redis outage", "description": "-", "category": "faults"})
    answer = {}
    uploader = threading.Thread(target=lambda: answer.update(response=session.post(
        "video/upload/", data=body, timeout=120,
        headers={"Content-Type": f"multipart/form-data; boundary={body.boundary}"})))
    uploader.start()
    try:
        assert body.paused.wait(30), "the upload never reached its middle"
        private_redis.stop()
    finally:
        body.resume.set()
        uploader.join(120)
    response = answer["response"]
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "uploaded", "Redis was down: nothing can have been enqueued"
    video_id = response.json()["id"]

    originals = list((stack.media_dir / "originals" / str(video_id)).iterdir())
    assert [path.stat().st_size for path in originals] == [clip.stat().st_size]
    assert session.get("video/").status_code == 200, "the API must keep answering while Redis is down"
    assert video(session, video_id)["status"] != "failed"

    private_redis.start()
    detail = wait_for_ladder(session, video_id, RECOVERY_TIMEOUT)
    assert detail["status"] == "ready"
    wait_until(lambda: session.get(f"video/{video_id}/360p/index.m3u8").status_code == 200, 10,
               what="the 360p playlist")
