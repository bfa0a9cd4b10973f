"""A source longer than one chunk (60 s): the rest of its ladder is encoded as one job per chunk (the chunk
decoded once, every rung of the rest from it) by both workers of the test stack and joined per rung without
re-encoding; the progressive first rung grows from its first chunk, the others appended to its playlist in
order as they come in. ffprobe checks what players get
through the gateway: timestamps continuous across the chunk boundaries of every rung, the first one's
included (video and audio: no gap, no overlap), and the keyframes of every rung on the same instants.
A source of 5.5 minutes checks the same of a first rung grown from six chunks, its first ones appended
with the audio of its first 5 minutes (a job of its own, ahead of the whole-source audio).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import STACK_ENV, STORAGE, generate_clip
from test_pipeline import complete, fetch, segment_list, upload, wait_for, PLAYLIST_TYPE

SOURCE_SECONDS = 130  # 60 + 60 + 10: three chunks, the last one shorter
RUNGS = ("360p", "480p", "720p")
FRAME = 1 / 25


def looped_source(directory: Path, seconds: int, width: int, height: int) -> Path:
    """H.264 at a constant 25 fps with AAC: 10 s of picture generated and stream-copied to `seconds`
    (nothing encoded for minutes; a clip without audio loops without a gap), then a tone encoded beside it."""
    clip = generate_clip(directory / "ten.mp4", width, height, 10, audio=False)
    source = directory / "long.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(seconds // 10 - 1), "-i", str(clip),
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-map", "0:v", "-map", "1:a",
                    "-c:v", "copy", "-c:a", "aac", "-shortest", str(source)], check=True)
    return source


@pytest.fixture(scope="module")
def long_source(tmp_path_factory) -> Path:
    return looped_source(tmp_path_factory.mktemp("chunked"), SOURCE_SECONDS, 1280, 720)


def download_rung(client, video_id: int, rung: str, directory: Path) -> Path:
    """The rung's playlist and segments, as a player fetches them, into `directory/<rung>/`."""
    folder = directory / rung
    folder.mkdir()
    playlist = fetch(client, f"video/{video_id}/{rung}/index.m3u8", PLAYLIST_TYPE).decode()
    for _, uri in segment_list(playlist):
        (folder / uri).write_bytes(fetch(client, f"video/{video_id}/{rung}/{uri}", "video/MP2T"))
    (folder / "index.m3u8").write_text(playlist)
    return folder / "index.m3u8"


def packets(playlist: Path) -> dict[str, list[tuple[float, bool]]]:
    """(pts seconds, keyframe) of every packet, per codec type, in presentation order."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "packet=codec_type,pts_time,flags:stream=index,codec_type",
         "-print_format", "json", str(playlist)], capture_output=True, text=True, check=True)
    info = json.loads(result.stdout)
    kinds = {stream["index"]: stream["codec_type"] for stream in info["streams"]}
    found: dict[str, list[tuple[float, bool]]] = {"video": [], "audio": []}
    for packet in info["packets"]:
        kind = packet.get("codec_type") or kinds.get(packet.get("stream_index"))
        found[kind].append((float(packet["pts_time"]), "K" in packet["flags"]))
    return {kind: sorted(values) for kind, values in found.items()}


def audio_hashes(playlist: Path) -> list[str]:
    """MD5 of every audio packet's bytes, in order."""
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_data_hash", "MD5",
                             "-show_entries", "packet=data_hash", "-of", "csv=p=0", str(playlist)],
                            capture_output=True, text=True, check=True)
    return [line.strip(",") for line in result.stdout.split() if line.strip(",")]


def steps(times: list[float]) -> set[float]:
    return {round(later - earlier, 4) for earlier, later in zip(times, times[1:])}


def test_chunked_ladder_is_continuous_and_its_rungs_switch_on_the_same_frames(logged_in_client, long_source,
                                                                               tmp_path):
    client = logged_in_client
    video = upload(client, long_source, title="Chunked ladder")
    # Chunks travel through the media storage (no shared disk), under a prefix the gateway never routes.
    chunks = f"hls/{video['id']}/.chunks/"
    def chunk_keys(_=None) -> list[str]:
        return [item.key for item in STORAGE.list(chunks) if item.key.endswith(".ts")]

    wait_for(client, video["id"], chunk_keys, timeout=600)
    for key in chunk_keys()[:2]:
        assert client.get(f"video/{key.removeprefix('hls/')}").status_code == 404, key
    detail = wait_for(client, video["id"], complete, timeout=600)
    assert STORAGE.list(chunks) == []  # dropped once every rung is joined
    assert [rendition["rung"] for rendition in detail["renditions"]] == list(RUNGS)
    assert detail["progress"] == 100

    # The rest of the ladder really was cut into chunks, joined per rung, by the stack's workers; the
    # first rung's chunks after its first were appended to its playlist.
    logs = "".join(path.read_text(errors="replace") for path in (Path(STACK_ENV["VAR_DIR"]) / "log").glob("transcoder-*.log"))
    assert f"video-{video['id']}-chunk-2" in logs and f"video-{video['id']}-720p-chunk-2" not in logs
    for rung in ("360p", "720p"):
        assert f"video-{video['id']}-{rung}-join" in logs
    assert f"video-{video['id']}-480p-chunk-2" in logs and f"video-{video['id']}-480p-chunk-0" not in logs
    assert logs.count("chunk appended") >= 2

    frames, keyframes, durations, audio_packets = {}, {}, {}, {}
    for rung in RUNGS:
        playlist = download_rung(client, video["id"], rung, tmp_path)
        audio_packets[rung] = audio_hashes(playlist)
        durations[rung] = [duration for duration, _ in segment_list(playlist.read_text())]
        found = packets(playlist)
        start = found["video"][0][0]
        frames[rung] = [round(pts - start, 3) for pts, _ in found["video"]]
        keyframes[rung] = {round(pts - start, 3) for pts, key in found["video"] if key}
        assert abs(len(frames[rung]) - SOURCE_SECONDS * 25) <= 1, rung
        # One frame after the other, across the joins too: no gap, no repeated frame.
        assert steps(frames[rung]) == {FRAME}, (rung, steps(frames[rung]))
        audio_times = [pts for pts, _ in found["audio"]]
        # One AAC encoder for the whole source: 1024 samples at 44.1 kHz after each other, no gap at a join
        # (in the first rung: its first chunk's own packets up to 60 s, then the whole-source audio's).
        assert steps(audio_times) == {0.0232}, (rung, steps(audio_times))

        assert audio_times[-1] - audio_times[0] == pytest.approx(SOURCE_SECONDS, abs=0.1)
    # Every frame at the same time in every rung: none lost or repeated at the chunk boundaries at 60 s
    # and 120 s, in the joined rungs and in the first rung appended chunk by chunk.
    assert frames["360p"] == frames["480p"] == frames["720p"]
    # The same segments: cut on the same frames in every rung.
    assert durations["360p"] == durations["480p"] == durations["720p"]
    assert sum(durations["720p"]) == pytest.approx(SOURCE_SECONDS, abs=0.2)
    # The first rung's audio (its first chunk's own encoder, then the whole-source audio's packets appended
    # chunk by chunk) is, packet for packet, the one whole-source encode the joined 720p carries (both 128k).
    assert audio_packets["480p"] == audio_packets["720p"] and len(audio_packets["480p"]) > SOURCE_SECONDS * 43
    # The same keyframes, every 2 s, in every rung.
    assert keyframes["360p"] == keyframes["480p"] == keyframes["720p"]
    assert sorted(keyframes["480p"]) == [2.0 * index for index in range(len(keyframes["480p"]))]


# Longer than the 5 minutes whose audio the first rung gets first (jobs.FIRST_AUDIO_CHUNKS): 6 chunks.
FIRST_RUNG_ONLY_SECONDS = 330


def test_a_long_first_rung_stays_continuous_from_its_first_minutes_audio_to_the_whole(logged_in_client, tmp_path,
                                                                                     tmp_path_factory):
    """A 360p source (its one rung is the growing first rung) of 5.5 minutes: chunks 1-4 are appended
    with the audio of the first 5 minutes, chunk 5 with the whole-source audio; chunks far from the
    start keep only their own audio packets. What a player gets has every frame once and an audio packet
    every 1024 samples from 0:00 to the end."""
    client = logged_in_client
    source = looped_source(tmp_path_factory.mktemp("first-rung"), FIRST_RUNG_ONLY_SECONDS, 640, 360)
    video = upload(client, source, title="Long first rung")
    detail = wait_for(client, video["id"], complete, timeout=600)
    assert [rendition["rung"] for rendition in detail["renditions"]] == ["360p"]
    logs = "".join(path.read_text(errors="replace") for path in (Path(STACK_ENV["VAR_DIR"]) / "log").glob("transcoder-*.log"))
    assert f"video-{video['id']}-audio-96k-first-300s" in logs and f"video-{video['id']}-360p-chunk-5" in logs

    found = packets(download_rung(client, video["id"], "360p", tmp_path))
    frames = [pts for pts, _ in found["video"]]
    assert steps(frames) == {FRAME} and abs(len(frames) - FIRST_RUNG_ONLY_SECONDS * 25) <= 1
    audio_times = [pts for pts, _ in found["audio"]]
    assert steps(audio_times) == {0.0232}, steps(audio_times)
    assert audio_times[-1] - audio_times[0] == pytest.approx(FIRST_RUNG_ONLY_SECONDS, abs=0.1)
    assert client.delete(f"video/{video['id']}/").status_code == 204

