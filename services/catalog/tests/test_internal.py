"""The transcoder's internal API: /internal/videos/<id>/..., service token, status transitions."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from .conftest import CSRF

PROBE = {"duration": 6.0, "width": 1920, "height": 1080, "has_audio": True, "rungs": ["480p", "360p", "720p", "1080p"]}


def rendition(rung: str) -> dict:
    height = int(rung[:-1])
    return {"rung": rung, "width": height * 16 // 9 // 2 * 2, "height": height, "bandwidth": height * 2500}


@pytest.fixture
def report(client, service_headers):
    def post(video_id: int, what: str, body: dict):
        return client.post(f"/internal/videos/{video_id}/{what}", json=body, headers=service_headers)

    return post


@pytest.fixture
def queued_video(make_video):
    return make_video(owner_id=1, status="queued")


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc", "Bearer", ""])
def test_reports_need_the_service_token(client, queued_video, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path in (("get", ""), ("post", "/probe"), ("post", "/failed")):
        response = getattr(client, method)(f"/internal/videos/{queued_video}{path}", json=PROBE, headers=headers)
        assert response.status_code == 401
        assert response.json == {"detail": "Invalid service credentials."}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(authorization=st.text(st.characters(min_codepoint=0, max_codepoint=0xFF, blacklist_characters="\r\n"),
                             max_size=80))
def test_any_authorization_header_but_the_token_is_a_401(client, queued_video, authorization):
    """Any bytes (non-ASCII arrive as latin-1): a 401, never a 500."""
    response = client.get(f"/internal/videos/{queued_video}", headers={"Authorization": authorization})
    assert response.status_code == 401 and response.json == {"detail": "Invalid service credentials."}


def test_get_returns_what_a_retried_job_needs(client, service_headers, queued_video, settings):
    body = client.get(f"/internal/videos/{queued_video}", headers=service_headers).json
    assert body["status"] == "queued"
    assert body["original_path"] == f"originals/{queued_video}/clip.mp4"
    assert body["source_path"] == f"originals/{queued_video}/clip.mp4"  # a storage key
    assert body["rungs"] == [] and body["renditions"] == []


def test_probe_moves_to_processing_and_plans_the_ladder(report, queued_video):
    response = report(queued_video, "probe", PROBE)
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "processing"
    assert (body["duration"], body["width"], body["height"], body["has_audio"]) == (6.0, 1920, 1080, True)
    assert body["rungs"] == ["360p", "480p", "720p", "1080p"]
    assert {r["state"] for r in body["renditions"]} == {"pending"}


def test_progress_is_the_mean_of_the_ladder_and_never_goes_back(report, queued_video):
    report(queued_video, "probe", {**PROBE, "rungs": ["480p", "360p"]})
    assert report(queued_video, "progress", {"rung": "480p", "percent": 50}).json["progress"] == 25
    assert report(queued_video, "progress", {"rung": "480p", "percent": 20}).json["progress"] == 25
    assert report(queued_video, "progress", {"rung": "360p", "percent": 30.7}).json["progress"] == 40
    done = report(queued_video, "renditions", rendition("480p")).json
    assert done["progress"] == 65
    assert report(queued_video, "renditions", rendition("360p")).json["progress"] == 100


def test_first_rendition_makes_the_video_ready_and_listed(client, login, report, queued_video):
    report(queued_video, "probe", PROBE)
    assert login(client, 1).get("/api/video/").json == []
    body = report(queued_video, "renditions", rendition("480p")).json
    assert body["status"] == "ready"
    assert [item["id"] for item in client.get("/api/video/").json] == [queued_video]
    detail = login(client, 2).get(f"/api/video/{queued_video}/").json
    assert [r["rung"] for r in detail["renditions"]] == ["480p"]
    assert detail["renditions"][0] == rendition("480p")
    assert detail["renditions_pending"] == ["360p", "720p", "1080p"]
    report(queued_video, "renditions", rendition("1080p"))
    detail = client.get(f"/api/video/{queued_video}/").json
    assert [r["rung"] for r in detail["renditions"]] == ["480p", "1080p"]
    assert detail["renditions_pending"] == ["360p", "720p"]


def test_failure_before_any_rendition_fails_the_video(client, login, report, queued_video):
    report(queued_video, "probe", PROBE)
    body = report(queued_video, "failed", {"reason": "No video stream in the file."}).json
    assert body["status"] == "failed"
    assert body["failure_reason"] == "No video stream in the file."
    assert {r["state"] for r in body["renditions"]} == {"failed"}
    detail = login(client, 1).get(f"/api/video/{queued_video}/").json
    assert detail["status"] == "failed" and detail["failure_reason"] == "No video stream in the file."
    assert detail["renditions_pending"] == []


def test_failure_of_one_rung_after_a_rendition_keeps_the_video_ready(report, queued_video):
    report(queued_video, "probe", PROBE)
    report(queued_video, "renditions", rendition("480p"))
    body = report(queued_video, "failed", {"rung": "1080p", "reason": "ffmpeg exited with 1"}).json
    assert body["status"] == "ready" and body["failure_reason"] is None
    states = {r["rung"]: (r["state"], r["failure_reason"]) for r in body["renditions"]}
    assert states == {"360p": ("pending", None), "480p": ("ready", None), "720p": ("pending", None),
                      "1080p": ("failed", "ffmpeg exited with 1")}
    body = report(queued_video, "failed", {"reason": "gave up"}).json
    assert body["status"] == "ready"
    assert [r["state"] for r in body["renditions"]] == ["failed", "ready", "failed", "failed"]
    assert body["progress"] == 100


def test_a_late_rendition_recovers_a_video_failed_by_one_rung(report, queued_video):
    report(queued_video, "probe", PROBE)
    assert report(queued_video, "failed", {"rung": "480p", "reason": "killed"}).json["status"] == "failed"
    body = report(queued_video, "renditions", rendition("720p")).json
    assert body["status"] == "ready" and body["failure_reason"] is None


def test_probe_does_not_demote_a_ready_video(report, queued_video):
    report(queued_video, "probe", PROBE)
    report(queued_video, "renditions", rendition("480p"))
    body = report(queued_video, "probe", PROBE).json
    assert body["status"] == "ready"
    assert [r["state"] for r in body["renditions"]] == ["pending", "ready", "pending", "pending"]


def test_thumbnail_path_must_be_the_videos_own(client, login, report, queued_video):
    for path in (f"hls/{queued_video + 1}/thumbnail.jpg", f"hls/{queued_video}/../../etc/x.jpg",
                 "/etc/passwd", f"hls/{queued_video}/thumb.png"):
        response = report(queued_video, "thumbnail", {"path": path})
        assert response.status_code == 400, path
        assert list(response.json) == ["path"]
    body = report(queued_video, "thumbnail", {"path": f"hls/{queued_video}/thumbnail.jpg"}).json
    assert body["thumbnail_path"] == f"hls/{queued_video}/thumbnail.jpg"


@pytest.mark.parametrize("what, body, field", [
    ("probe", {**PROBE, "rungs": ["4k"]}, "rungs"),
    ("probe", {**PROBE, "width": 0}, "width"),
    ("progress", {"rung": "480p", "percent": 101}, "percent"),
    ("progress", {"rung": "../x", "percent": 1}, "rung"),
    ("renditions", {"rung": "480p", "width": 854, "height": 480}, "bandwidth"),
    ("failed", {"rung": "480p"}, "reason"),
])
def test_malformed_reports_are_400_field_errors(report, queued_video, what, body, field):
    response = report(queued_video, what, body)
    assert response.status_code == 400
    assert field in response.json


def test_unknown_fields_are_tolerated(report, queued_video):
    assert report(queued_video, "progress", {"rung": "480p", "percent": 5, "speed": "1.5x"}).status_code == 200


def test_reports_for_a_deleted_video_are_404(client, login, report, queued_video, service_headers):
    login(client, 1).delete(f"/api/video/{queued_video}/", headers={"X-CSRFToken": CSRF})
    for what, body in (("probe", PROBE), ("progress", {"rung": "480p", "percent": 5}),
                       ("renditions", rendition("480p")), ("failed", {"reason": "x"}),
                       ("thumbnail", {"path": f"hls/{queued_video}/thumbnail.jpg"})):
        response = report(queued_video, what, body)
        assert response.status_code == 404, what
        assert response.json == {"detail": "Video not found."}
    assert client.get(f"/internal/videos/{queued_video}", headers=service_headers).status_code == 404
