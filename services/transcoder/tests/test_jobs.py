"""The rq jobs against real Redis and real ffmpeg, reporting to a stand-in catalog over real HTTP.

The stand-in only records what the transcoder sends (the catalog's own tests cover the catalog).
Redis: TRANSCODER_TEST_REDIS_URL, default db 14 of the local server, flushed by these tests.
"""
import json
import subprocess
import threading
from datetime import datetime, timezone
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rq import Queue, SimpleWorker
from rq.command import send_stop_job_command
from rq.job import JobStatus

from services.transcoder import jobs, ladder, originals, publish
from services.transcoder.ladder import BY_NAME
from services.transcoder.originals import OriginalsCache
from services.transcoder.probe import SourceMedia, probe_source
from services.transcoder.tests.conftest import wait_for
from videoflix_shared.storage import S3Storage

TOKEN = "unit-test-service-token"


class StandInCatalog(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), CatalogHandler)
        self.calls: list[tuple[str, str, dict | None]] = []
        self.gone: set[int] = set()
        self.vanish_after: dict[int, int] = {}  # video id -> requests answered before it is deleted

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_port}"

    def posted(self, video_id, action):
        return [body for method, path, body in self.calls
                if method == "POST" and path == f"/internal/videos/{video_id}/{action}"]


class CatalogHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"detail": "bad service token"})
        self.server.calls.append((method, self.path, body))
        video_id = int(self.path.split("/")[3])
        if video_id in self.server.vanish_after:
            if self.server.vanish_after[video_id] <= 0:
                self.server.gone.add(video_id)
            self.server.vanish_after[video_id] -= 1
        if video_id in self.server.gone:
            return self._send(404, {"detail": "Not found."})
        self._send(200, {"id": video_id})

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")


@pytest.fixture
def catalog():
    server = StandInCatalog()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch, catalog, redis, redis_url):
    token_file = tmp_path / "service_token"
    token_file.write_text(TOKEN + "\n")
    media_dir = tmp_path / "media"
    for key, value in {"CATALOG_URL": catalog.url, "MEDIA_DIR": str(media_dir), "REDIS_URL": redis_url,
                       "SERVICE_TOKEN_FILE": str(token_file), "TRANSCODER_SCRATCH_DIR": str(tmp_path / "scratch"),
                       "MEDIA_STORAGE": "local"}.items():
        monkeypatch.setenv(key, value)
    return media_dir


def upload(media_dir, video_id, source):
    original = media_dir / "originals" / str(video_id) / source.name
    original.parent.mkdir(parents=True)
    original.write_bytes(source.read_bytes())
    return original


def key(original: Path) -> str:
    """The storage key of an original `upload` stored (what the catalog sends)."""
    return "/".join(original.parts[-3:])


@pytest.fixture
def no_backoff(monkeypatch):
    """Retries at once, so a burst worker runs every attempt (the backoff has its own test)."""
    monkeypatch.setattr(jobs, "RETRY_INTERVALS", [0])


def run_queue(redis):
    SimpleWorker([Queue(jobs.QUEUE, connection=redis)], connection=redis).work(burst=True)


def test_unusable_upload_is_reported_failed_and_kept(env, catalog, redis, text_as_mp4):
    original = upload(env, 3, text_as_mp4)
    jobs.prepare_video(3, source_path=f"originals/3/{original.name}")
    [failed] = catalog.posted(3, "failed")
    assert failed["reason"].startswith("The file is not a video that can be read (")
    assert catalog.posted(3, "probe") == []
    assert Queue(jobs.QUEUE, connection=redis).count == 0
    assert original.read_bytes() == text_as_mp4.read_bytes()


def test_missing_original_is_reported_failed(env, catalog):
    jobs.prepare_video(4, source_path="originals/4/nothing.mp4")
    assert catalog.posted(4, "failed") == [{"reason": "The uploaded file is missing."}]


def test_prepare_of_a_long_source_enqueues_first_rung_thumbnail_chunks_audio_and_joins(env, catalog, redis,
                                                                                      make_clip, media, monkeypatch):
    """Longer than one first-rung chunk (8 s here): the first rung grows from its first chunk, its second
    chunk appended; the rest of the ladder as one job per (shorter, 4 s) chunk for every rung of the rest,
    the audio once, a join per rung."""
    monkeypatch.setattr(ladder, "FIRST_RUNG_CHUNK_SECONDS", 8)
    monkeypatch.setattr(ladder, "CHUNK_SECONDS", 4)
    monkeypatch.setattr(ladder, "SHORT_CHUNKS_FROM_SECONDS", 0)
    source = make_clip(media / "clip-720p-audio-10s.mp4", 1280, 720, 10)
    original = upload(env, 5, source)
    jobs.prepare_video(5, source_path=str(original))  # an absolute path (older jobs): the one original is found

    [probe] = catalog.posted(5, "probe")
    assert probe == {"duration": pytest.approx(10.0, abs=0.1), "width": 1280, "height": 720,
                     "has_audio": True, "rungs": ["480p", "360p", "720p"]}
    queue = Queue(jobs.QUEUE, connection=redis)
    chunk_jobs = [f"video-5-chunk-{index}" for index in range(3)]
    # The first rung: its first chunk progressive, its audio and its other chunks right after (ahead of
    # the other rungs); the 128k audio serves 720p too.
    expected = ["video-5-480p", "video-5-thumbnail", "video-5-audio-128k", "video-5-480p-chunk-1",
                "video-5-audio-96k", *chunk_jobs]
    assert queue.job_ids == expected
    first = queue.fetch_job("video-5-480p")
    assert (first.args, first.kwargs["progressive"], first.kwargs["head_seconds"], first.retries_left) == (
        (5, "480p"), True, 8, jobs.RETRIES)
    assert first.timeout == 120 + 4 * 8
    assert queue.fetch_job("video-5-480p-chunk-1").kwargs["growing"] is True
    assert queue.fetch_job("video-5-480p-chunk-1").args == (5, ["480p"], 1, 8, None)
    assert queue.fetch_job("video-5-audio-128k").args == (5, 128, ["480p", "720p"])
    last_chunk = queue.fetch_job("video-5-chunk-2")
    assert (last_chunk.args, last_chunk.timeout) == ((5, ["360p", "720p"], 2, 8, None), 120 + (3 + 6) * 2)
    join = queue.fetch_job("video-5-720p-join")
    assert join.get_status() == JobStatus.DEFERRED
    assert sorted(join._dependency_ids) == sorted([f"video-5-chunk-{i}" for i in range(3)] + ["video-5-audio-128k"])

    jobs.prepare_video(5, source_path=key(original))  # a repeated prepare adds no duplicate jobs
    assert queue.job_ids == expected

    run_queue(redis)
    renditions = [r for r in catalog.posted(5, "renditions") if not r["growing"]]
    assert renditions[0]["rung"] == "480p"  # the first rung complete first: its chunks go before the others
    assert sorted((r["rung"], r["width"], r["height"]) for r in renditions) == [
        ("360p", 640, 360), ("480p", 854, 480), ("720p", 1280, 720)]
    assert all(r["bandwidth"] > 100_000 for r in renditions)
    assert catalog.posted(5, "thumbnail") == [{"path": "hls/5/thumbnail.jpg"}]
    for rung in ("480p", "360p", "720p"):  # chunk by chunk, never backwards
        percents = [body["percent"] for body in catalog.posted(5, "progress") if body["rung"] == rung]
        assert percents == sorted(percents) and percents[-1] == 100, percents

    video = env / "hls" / "5"  # the chunks are gone once every rung is joined
    assert sorted(p.name for p in video.iterdir()) == ["360p", "480p", "720p", "master.m3u8", "thumbnail.jpg"]
    master = (video / "master.m3u8").read_text()
    assert master.index("360p/index.m3u8") < master.index("480p/index.m3u8") < master.index("720p/index.m3u8")
    assert "RESOLUTION=1280x720," in master and 'mp4a.40.2"' in master
    # Every rung cut at the same instants, the chunked ones as the whole-source first rung.
    durations = {rung: [d for d, _ in publish.playlist_segments((video / rung / "index.m3u8").read_text())]
                 for rung in ("360p", "480p", "720p")}
    assert durations["360p"] == durations["480p"] == durations["720p"], durations
    assert list((env.parent / "scratch").iterdir()) == []
    # The first rung: its first chunk and the one appended after it, one continuous timeline: a frame
    # every 40 ms, an audio packet every 1024 samples across the chunk boundary at 8 s.
    video_times, audio_times = packet_times(video / "480p" / "index.m3u8")
    assert steps(video_times) == {0.04} and len(video_times) == 250
    assert steps(audio_times) == {0.0232} and audio_times[-1] - audio_times[0] == pytest.approx(10, abs=0.05)


def four_second_chunks(monkeypatch) -> None:
    """Chunks of 4 s (a segment) for the first rung and the others: short test clips cut into several."""
    monkeypatch.setattr(ladder, "FIRST_RUNG_CHUNK_SECONDS", 4)
    monkeypatch.setattr(ladder, "CHUNK_SECONDS", 4)
    monkeypatch.setattr(ladder, "SHORT_CHUNKS_FROM_SECONDS", 0)


def packet_times(playlist: Path) -> tuple[list[float], list[float]]:
    """Presentation times of the video and of the audio packets of an HLS playlist, each sorted."""
    result = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=codec_type,pts_time",
                             "-of", "csv=p=0", str(playlist)], capture_output=True, text=True, check=True)
    rows = [line.split(",") for line in result.stdout.split() if line]
    return (sorted(float(time) for kind, time, *_ in rows if kind == "video"),
            sorted(float(time) for kind, time, *_ in rows if kind == "audio"))


def steps(times: list[float]) -> set[float]:
    return {round(later - earlier, 4) for earlier, later in zip(times, times[1:])}


def test_first_rung_chunks_done_before_the_chunks_ahead_of_them_wait_and_go_in_order(env, catalog, make_clip, media,
                                                                                    monkeypatch):
    """Any order on any worker: the last chunk, then the audio, then chunk 1 are stored before the first
    chunk is encoded; nothing is appended until the first chunk is in, then all of them, in order, by the
    job that completed the sequence, and the playlist ends."""
    four_second_chunks(monkeypatch)
    original = upload(env, 19, make_clip(media / "clip-19.mp4", 854, 480, 10))
    source = probe_source(original)
    arguments = dict(source_path=key(original), source_height=480, duration=source.duration, fps=source.fps,
                     has_audio=True, demuxer=source.demuxer)
    publish.mark_chunks_pending(jobs.storage_from_settings(jobs.Settings.from_env()), 19, ["480p"])
    jobs.transcode_chunk(19, ["480p"], 2, 8, None, **arguments, growing=True)
    jobs.encode_audio(19, 128, ["480p"], source_path=key(original), source_height=480, demuxer=source.demuxer,
                      growing="480p", duration=source.duration)
    jobs.transcode_chunk(19, ["480p"], 1, 4, 4, **arguments, growing=True)
    playlist = env / "hls" / "19" / "480p" / "index.m3u8"
    assert not playlist.exists() and catalog.posted(19, "progress") == []
    jobs.transcode_rung(19, "480p", **arguments, progressive=True, head_seconds=4)
    text = playlist.read_text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    assert [uri for _, uri in publish.playlist_segments(text)] == [f"segment_{n:03d}.ts" for n in range(3)]
    video_times, audio_times = packet_times(playlist)
    assert steps(video_times) == {0.04} and steps(audio_times) == {0.0232}
    assert [r["growing"] for r in catalog.posted(19, "renditions")] == [True, False]
    percents = [body["percent"] for body in catalog.posted(19, "progress")]
    assert percents == sorted(percents) and percents[-1] == 100
    assert not (env / "hls" / "19" / ".chunks").exists()


def audio_packets(path: Path) -> list[str]:
    """The MD5 of the data of every audio packet of an MPEG-TS file or an HLS playlist, in file order."""
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_data_hash", "MD5",
                             "-show_entries", "packet=data_hash", "-of", "csv=p=0", str(path)],
                            capture_output=True, text=True, check=True)
    return [line.split(",")[-1] for line in result.stdout.split() if line]


def test_a_long_first_rung_appends_its_first_chunks_with_the_first_minutes_audio(env, catalog, redis, make_clip,
                                                                                  media, monkeypatch):
    """A source longer than FIRST_AUDIO_CHUNKS first-rung chunks (2 of 4 s here): an audio job for its
    first 8 s is queued right after the first chunk, ahead of those chunks and of the whole audio. Chunk
    1 is appended with it before the whole audio exists; chunk 2 (past 8 s) waits for the whole audio.
    The rung's audio is, packet for packet, the whole-source encode's."""
    four_second_chunks(monkeypatch)
    monkeypatch.setattr(jobs, "FIRST_AUDIO_CHUNKS", 2)
    original = upload(env, 24, make_clip(media / "clip-24.mp4", 854, 480, 14))
    source = probe_source(original)
    jobs.prepare_video(24, source_path=key(original))
    queue = Queue(jobs.QUEUE, connection=redis)
    assert queue.job_ids[:7] == ["video-24-480p", "video-24-thumbnail", "video-24-audio-128k-first-8s",
                                 "video-24-480p-chunk-1", "video-24-audio-128k", "video-24-480p-chunk-2",
                                 "video-24-480p-chunk-3"]
    queue.empty()

    arguments = dict(source_path=key(original), source_height=480, duration=source.duration, fps=source.fps,
                     has_audio=True, demuxer=source.demuxer)
    audio = dict(source_path=key(original), source_height=480, demuxer=source.demuxer, growing="480p",
                 duration=source.duration)
    playlist = env / "hls" / "24" / "480p" / "index.m3u8"
    jobs.transcode_rung(24, "480p", **arguments, progressive=True, head_seconds=4)
    jobs.encode_audio(24, 128, ["480p"], **audio, seconds=8)
    jobs.transcode_chunk(24, ["480p"], 1, 4, 4, **arguments, growing=True)
    whole_audio = env / publish.audio_key(24, 128)
    assert not whole_audio.exists() and (env / publish.audio_key(24, 128, 8)).exists()
    assert len(publish.playlist_segments(playlist.read_text())) == 2  # 0-4 s and 4-8 s
    jobs.transcode_chunk(24, ["480p"], 2, 8, 4, **arguments, growing=True)
    assert len(publish.playlist_segments(playlist.read_text())) == 2  # 8-12 s needs the whole audio
    jobs.encode_audio(24, 128, ["480p"], **audio)
    assert len(publish.playlist_segments(playlist.read_text())) == 3
    whole = audio_packets(whole_audio)
    jobs.transcode_chunk(24, ["480p"], 3, 12, None, **arguments, growing=True)
    assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")

    video_times, audio_times = packet_times(playlist)
    assert steps(video_times) == {0.04} and len(video_times) == 350 and steps(audio_times) == {0.0232}
    rung = audio_packets(playlist)
    assert len(rung) == len(whole) > 14 * 43 and rung == whole
    assert not (env / "hls" / "24" / ".chunks" / "480p").exists()  # the audio stays for 360p's join


def test_a_silent_first_rung_is_appended_chunk_by_chunk_too(env, catalog, make_clip, media, monkeypatch):
    """No audio: the shift comes from the first frame; the frames continue across the boundary at 4 s."""
    four_second_chunks(monkeypatch)
    original = upload(env, 22, make_clip(media / "clip-22.mp4", 854, 480, 8, audio=False))
    source = probe_source(original)
    arguments = dict(source_path=key(original), source_height=480, duration=source.duration, fps=source.fps,
                     has_audio=False, demuxer=source.demuxer)
    jobs.transcode_rung(22, "480p", **arguments, progressive=True, head_seconds=4)
    jobs.transcode_chunk(22, ["480p"], 1, 4, None, **arguments, growing=True)
    playlist = env / "hls" / "22" / "480p" / "index.m3u8"
    assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")
    video_times, audio_times = packet_times(playlist)
    assert steps(video_times) == {0.04} and len(video_times) == 200 and audio_times == []


def test_a_chunk_job_encodes_only_the_rungs_whose_chunk_is_missing_with_one_ffmpeg(env, catalog, make_clip, media,
                                                                                 monkeypatch):
    """Chunk 0 of 360p is stored (an earlier attempt), 720p's is not: a retry of the chunk job encodes
    720p only and leaves 360p's file alone; a rung already joined is skipped. Every rung's progress is its
    share of chunks stored."""
    four_second_chunks(monkeypatch)
    original = upload(env, 18, make_clip(media / "clip-18.mp4", 1280, 720, 6))
    source = probe_source(original)
    arguments = dict(source_path=key(original), source_height=720, duration=source.duration, fps=source.fps,
                     has_audio=True, demuxer=source.demuxer)
    commands = []
    run = jobs.ffmpeg.run
    monkeypatch.setattr(jobs.ffmpeg, "run", lambda command, *args, **kwargs: (commands.append(command),
                                                                              run(command, *args, **kwargs)))
    jobs.transcode_chunk(18, ["360p"], 0, 0, 4, **arguments)
    done = env / publish.chunk_key(18, "360p", 0)
    before = done.stat()
    jobs.transcode_chunk(18, ["360p", "720p"], 0, 0, 4, **arguments)  # a retry: 360p's chunk is stored
    assert (done.stat().st_ino, done.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [command[command.index("-filter_complex") + 1] for command in commands] == [
        "[0:v]trim=end=4,split=1[v0];[v0]scale=-2:360[o0]", "[0:v]trim=end=4,split=1[v0];[v0]scale=-2:720[o0]"]
    jobs.transcode_chunk(18, ["360p", "720p"], 0, 0, 4, **arguments)  # both stored: nothing encoded
    assert len(commands) == 2
    jobs.transcode_chunk(18, ["360p", "720p"], 1, 4, None, **arguments)  # one decode for both rungs
    assert commands[-1][commands[-1].index("-filter_complex") + 1] == \
        "[0:v]split=2[v0][v1];[v0]scale=-2:360[o0];[v1]scale=-2:720[o1]"
    assert [ffmpeg_output.name for ffmpeg_output in map(Path, commands[-1]) if ffmpeg_output.suffix == ".ts"] == \
        ["chunk_0001.ts", "chunk_0001.ts"]
    for rung in ("360p", "720p"):
        frames = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries", "stream=nb_read_packets",
                                 "-of", "csv=p=0", str(env / publish.chunk_key(18, rung, 1))],
                                capture_output=True, text=True, check=True).stdout.split()
        assert set(frames) == {"50"}, (rung, frames)  # 4 s to 6 s at 25 fps: each frame in one chunk only
        percents = [body["percent"] for body in catalog.posted(18, "progress") if body["rung"] == rung]
        first = int(400 / source.duration)
        assert percents == ([first, first, first, 100] if rung == "360p" else [first, first, 100]), (rung, percents)
    (env / "hls" / "18" / "720p").mkdir()  # 720p joined meanwhile (a repeated prepare's chunk job)
    (env / "hls" / "18" / "720p" / "index.m3u8").write_text("#EXTM3U\n#EXT-X-ENDLIST\n")
    for rung in ("360p", "720p"):
        (env / publish.chunk_key(18, rung, 1)).unlink()
    jobs.transcode_chunk(18, ["360p", "720p"], 1, 4, None, **arguments)
    assert commands[-1][commands[-1].index("-filter_complex") + 1] == "[0:v]split=1[v0];[v0]scale=-2:360[o0]"
    assert [body["rung"] for body in catalog.posted(18, "progress")][-1] == "360p"
    assert not (env / publish.chunk_key(18, "720p", 1)).exists()
    assert list((env.parent / "scratch").iterdir()) == []


def test_audio_is_never_niced_and_chunks_of_the_other_rungs_are(env, catalog, make_clip, media, monkeypatch):
    """Every join and the first rung's appends wait for the audio: it runs at full priority; the other
    rungs' chunks yield to first rungs (REST_NICENESS)."""
    four_second_chunks(monkeypatch)
    original = upload(env, 23, make_clip(media / "clip-23.mp4", 1280, 720, 6))
    source = probe_source(original)
    niceness = []
    run = jobs.ffmpeg.run
    monkeypatch.setattr(jobs.ffmpeg, "run", lambda command, *args, **kwargs: (
        niceness.append(kwargs.get("niceness", 0)), run(command, *args, **kwargs)))
    jobs.encode_audio(23, 96, ["360p"], source_path=key(original), source_height=720, demuxer=source.demuxer)
    jobs.transcode_chunk(23, ["360p", "720p"], 1, 4, None, source_path=key(original), source_height=720,
                         duration=source.duration, fps=source.fps, has_audio=True, demuxer=source.demuxer)
    assert niceness == [0, jobs.REST_NICENESS]


def test_rerun_of_a_published_rung_is_a_no_op_that_reports_again(env, catalog, clip_360p):
    original = upload(env, 6, clip_360p)
    media = probe_source(original)
    arguments = dict(source_path=key(original), source_height=360, duration=media.duration, fps=media.fps,
                     has_audio=True, demuxer=media.demuxer)
    jobs.transcode_rung(6, "360p", **arguments)
    segment = env / "hls" / "6" / "360p" / "segment_000.ts"
    before = segment.stat()

    jobs.transcode_rung(6, "360p", **arguments)
    after = segment.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert len(catalog.posted(6, "renditions")) == 2
    assert catalog.posted(6, "renditions")[0] == catalog.posted(6, "renditions")[1]


def test_video_deleted_meanwhile_stops_quietly_and_leaves_nothing(env, catalog, redis, clip_360p):
    original = upload(env, 8, clip_360p)
    catalog.gone.add(8)
    jobs.transcode_rung(8, "360p", source_path=key(original), source_height=360, duration=2.0, fps=25.0,
                        has_audio=True, demuxer="mov")
    jobs.make_thumbnail(8, source_path=key(original), duration=2.0, demuxer="mov")
    jobs.prepare_video(8, source_path=key(original))
    assert [call[0] for call in catalog.calls] == ["GET", "GET", "GET"]
    assert not (env / "hls" / "8").exists()
    assert Queue(jobs.QUEUE, connection=redis).count == 0


def test_video_deleted_under_a_running_transcode_stops_quietly(env, catalog, clip_360p):
    original = upload(env, 11, clip_360p)
    catalog.vanish_after[11] = 1  # the job's first question is answered; then the video and its files go
    original.unlink()
    jobs.transcode_rung(11, "360p", source_path=key(original), source_height=360, duration=2.0, fps=25.0,
                        has_audio=True, demuxer="mov")
    assert [call[:2] for call in catalog.calls] == [("GET", "/internal/videos/11")] * 2
    assert not (env / "hls" / "11").exists()


def test_rung_failing_every_retry_is_reported_failed_for_that_rung(env, catalog, redis, text_as_mp4, no_backoff):
    original = upload(env, 9, text_as_mp4)
    media = SourceMedia(duration=2.0, width=640, height=360, fps=25.0, has_audio=True, demuxer="mov", frames=50)
    queue = Queue(jobs.QUEUE, connection=redis)
    jobs.enqueue_ladder(queue, 9, key(original), media, [BY_NAME["360p"]])
    run_queue(redis)
    attempts = [call for call in catalog.calls if call[:2] == ("GET", "/internal/videos/9")]
    # the rung and the thumbnail, each tried four times; each attempt asks at its start and after failing
    assert len(attempts) == 2 * (jobs.RETRIES + 1) * 2
    [failed] = catalog.posted(9, "failed")
    assert failed["rung"] == "360p"
    assert failed["reason"].startswith("Transcoding to 360p failed: ") and "Invalid data" in failed["reason"]
    assert not (env / "hls" / "9").exists() and list((env.parent / "scratch").iterdir()) == []


def test_240p_source_gets_one_rung_at_its_own_height(env, catalog, redis, make_clip, media):
    original = upload(env, 10, make_clip(media / "clip-240p.mp4", 426, 240, 2))
    jobs.prepare_video(10, source_path=key(original))
    assert catalog.posted(10, "probe")[0]["rungs"] == ["360p"]
    run_queue(redis)
    assert [(r["rung"], r["width"], r["height"]) for r in catalog.posted(10, "renditions")] == [("360p", 426, 240)]
    assert "RESOLUTION=426x240," in (env / "hls" / "10" / "master.m3u8").read_text()


def test_a_source_of_one_chunk_gets_first_rung_thumbnail_then_one_split_job(env, catalog, redis, make_clip, media):
    original = upload(env, 12, make_clip(media / "clip-720p-audio.mp4", 1280, 720, 2))
    jobs.prepare_video(12, source_path=key(original))
    jobs.prepare_video(12, source_path=key(original))  # a repeated prepare adds no duplicate jobs
    queue = Queue(jobs.QUEUE, connection=redis)
    assert queue.job_ids == ["video-12-480p", "video-12-thumbnail", "video-12-rest"]
    rest = queue.fetch_job("video-12-rest")
    assert (rest.args, rest.retries_left) == ((12, ["360p", "720p"]), jobs.RETRIES)
    assert rest.timeout == int(120 + (3 + 6) * probe_source(original).duration)

    run_queue(redis)
    renditions = [r for r in catalog.posted(12, "renditions") if not r["growing"]]
    assert [(r["rung"], r["width"], r["height"]) for r in renditions] == [
        ("480p", 854, 480), ("360p", 640, 360), ("720p", 1280, 720)]
    assert {body["rung"] for body in catalog.posted(12, "progress")} == {"480p", "360p", "720p"}
    video = env / "hls" / "12"
    assert sorted(p.name for p in video.iterdir()) == [
        "360p", "480p", "720p", "master.m3u8", "thumbnail.jpg"]
    master = (video / "master.m3u8").read_text()
    assert master.index("360p/") < master.index("480p/") < master.index("720p/")


def test_split_retry_after_partial_publication_encodes_only_the_missing_rung(env, catalog, make_clip, media):
    original = upload(env, 13, make_clip(media / "clip-480p-audio-13.mp4", 854, 480, 2))
    source = probe_source(original)
    arguments = dict(source_path=key(original), source_height=480, duration=source.duration, fps=source.fps,
                     has_audio=True, demuxer=source.demuxer)
    jobs.transcode_rung(13, "360p", **arguments)  # an earlier attempt published 360p, then died
    segment = env / "hls" / "13" / "360p" / "segment_000.ts"
    before = segment.stat()
    stale = env.parent / "scratch" / "job-999999999-dead"  # and its dead work horse left a scratch directory
    (stale / "480p-half").mkdir(parents=True)

    jobs.transcode_split(13, ["360p", "480p"], **arguments)
    after = segment.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [r["rung"] for r in catalog.posted(13, "renditions")] == ["360p", "360p", "480p"]
    assert {body["rung"] for body in catalog.posted(13, "progress")} == {"360p", "480p"}
    assert sorted(p.name for p in (env / "hls" / "13").iterdir()) == ["360p", "480p", "master.m3u8"]
    assert not stale.exists() and list((env.parent / "scratch").iterdir()) == []
    assert "480p/index.m3u8" in (env / "hls" / "13" / "master.m3u8").read_text()


def test_split_failing_every_retry_is_reported_failed_for_each_of_its_rungs(env, catalog, redis, text_as_mp4,
                                                                          no_backoff):
    original = upload(env, 14, text_as_mp4)
    media = SourceMedia(duration=2.0, width=1280, height=720, fps=25.0, has_audio=True, demuxer="mov", frames=50)
    queue = Queue(jobs.QUEUE, connection=redis)
    jobs.enqueue_ladder(queue, 14, key(original), media, [BY_NAME["480p"], BY_NAME["360p"], BY_NAME["720p"]])
    run_queue(redis)
    failed = catalog.posted(14, "failed")
    assert [body["rung"] for body in failed] == ["480p", "360p", "720p"]
    assert failed[1]["reason"] == failed[2]["reason"]
    assert failed[1]["reason"].startswith("Transcoding to 360p, 720p failed: ")
    assert "Invalid data" in failed[1]["reason"]
    assert not (env / "hls" / "14").exists() and list((env.parent / "scratch").iterdir()) == []


def test_job_timeouts_never_exceed_the_absolute_limit(env, redis, clip_360p, monkeypatch):
    monkeypatch.setenv("TRANSCODE_JOB_TIMEOUT_SECONDS", "900")
    declared_ten_hours = SourceMedia(duration=36000.0, width=1920, height=1080, fps=25.0, has_audio=True,
                                     demuxer="mov", frames=900000)
    queue = Queue(jobs.QUEUE, connection=redis)
    enqueued = jobs.enqueue_ladder(queue, 15, "originals/15/clip.mp4", declared_ten_hours,
                                   [BY_NAME["480p"], BY_NAME["360p"], BY_NAME["720p"], BY_NAME["1080p"]])
    timeouts = {job.id: job.timeout for job in enqueued}
    # The first rung's job encodes its first chunk only; its other chunks also append (a stream copy each).
    assert (timeouts["video-15-480p"], timeouts["video-15-thumbnail"]) == (120 + 4 * 60, 180)
    assert timeouts["video-15-480p-chunk-1"] == 900 and timeouts["video-15-audio-128k"] == 900
    # A chunk of the other rungs (32 s for 360p, 720p and 1080p at once) stays under the limit.
    assert timeouts["video-15-chunk-0"] == 120 + (3 + 6 + 10) * 32 and timeouts["video-15-audio-96k"] == 900
    # The audio of the first five minutes for the first rung's first chunks: timed for five minutes.
    assert timeouts["video-15-audio-128k-first-300s"] == 120 + 0.5 * 300
    assert timeouts["video-15-1080p-join"] == 900 and len(enqueued) == 2 + (2 + 599) + 2 + 1125 + 3
    assert all(job.kwargs["demuxer"] == "mov" for job in enqueued if "join" not in job.id)


def test_a_catalog_restart_does_not_burn_the_retries(env, catalog, redis, clip_360p, monkeypatch):
    original = upload(env, 16, clip_360p)
    queue = Queue(jobs.QUEUE, connection=redis)
    media = probe_source(original)
    monkeypatch.setenv("CATALOG_URL", "http://127.0.0.1:1")  # the catalog is restarting
    [job, _] = jobs.enqueue_ladder(queue, 16, key(original), media, [BY_NAME["360p"]])
    queue.fetch_job(jobs.thumbnail_job_id(16)).delete()
    run_queue(redis)
    job.refresh()
    assert job.get_status() == JobStatus.SCHEDULED and job.retries_left == jobs.RETRIES - 1
    retry_at = queue.scheduled_job_registry.get_scheduled_time(job)
    assert (retry_at - datetime.now(timezone.utc)).total_seconds() > jobs.RETRY_INTERVALS[0] - 5
    assert queue.count == 0 and catalog.calls == []


def test_stopping_a_running_job_kills_its_ffmpeg_and_removes_what_it_wrote(env, catalog, redis, make_clip, media,
                                                                           start_worker):
    """What the catalog does when a video is deleted: rq's stop-job command to the job's worker."""
    original = upload(env, 17, make_clip(media / "clip-17.mp4", 854, 480, 30, audio=False))
    queue = Queue(jobs.QUEUE, connection=redis)
    source = probe_source(original)
    [job, thumbnail] = jobs.enqueue_ladder(queue, 17, key(original), source, [BY_NAME["480p"]])
    thumbnail.delete()
    start_worker()
    encoder = wait_for(lambda: ffmpeg_reading(original))
    wait_for(lambda: list((env.parent / "scratch").glob("job-*/480p-*/segment_000.ts")))
    catalog.gone.add(17)
    send_stop_job_command(redis, job.id)
    wait_for(lambda: not Path(f"/proc/{encoder}").exists() or zombie(encoder), timeout=10)
    wait_for(lambda: not list((env.parent / "scratch").glob("job-*")), timeout=10)
    assert not (env / "hls" / "17").exists()
    assert job.get_status(refresh=True) == JobStatus.STOPPED
    assert catalog.posted(17, "failed") == []


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def ffmpeg_reading(source: Path) -> int | None:
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"ffmpeg") and f"file:{source}".encode() in argv:
            return int(entry.name)
    return None


def test_a_whole_ladder_through_s3_needs_no_media_dir(env, catalog, redis, seaweedfs, make_clip, media, monkeypatch):
    """A transcoder host with S3 credentials and nothing else: the original comes from the bucket, every
    rung, the master and the thumbnail go back into it, the chunks of the chunked rungs travel through it
    (then go); MEDIA_DIR is never made."""
    four_second_chunks(monkeypatch)
    storage = seaweedfs.storage()
    storage.delete_prefix("")
    for name, value in {"MEDIA_STORAGE": "s3", "S3_ENDPOINT_URL": seaweedfs.url, "S3_BUCKET": seaweedfs.bucket,
                        "S3_ACCESS_KEY_ID": seaweedfs.service[0], "S3_SECRET_ACCESS_KEY": seaweedfs.service[1],
                        "MEDIA_DIR": str(env / "absent")}.items():
        monkeypatch.setenv(name, value)
    storage.put_file("originals/20/clip.mp4", make_clip(media / "clip-20.mp4", 854, 480, 6))
    downloads = []
    download = S3Storage.download
    monkeypatch.setattr(S3Storage, "download", lambda self, key, path: (downloads.append(key), download(self, key, path)))
    jobs.prepare_video(20, source_path="originals/20/clip.mp4")
    assert "video-20-360p-join" in Queue(jobs.QUEUE, connection=redis).deferred_job_registry.get_job_ids()
    run_queue(redis)
    assert [r["rung"] for r in catalog.posted(20, "renditions") if not r["growing"]] == ["480p", "360p"]
    assert catalog.posted(20, "thumbnail") == [{"path": "hls/20/thumbnail.jpg"}]
    keys = [item.key for item in storage.list("hls/20/")]
    assert {"hls/20/master.m3u8", "hls/20/thumbnail.jpg", "hls/20/360p/index.m3u8", "hls/20/480p/index.m3u8",
            "hls/20/480p/segment_000.ts"} <= set(keys)
    master = storage.get("hls/20/master.m3u8").decode()
    assert master.index("360p/index.m3u8") < master.index("480p/index.m3u8")
    assert not [key for key in keys if "/.chunks/" in key]
    assert storage.exists("originals/20/clip.mp4")  # the original stays
    assert not (env / "absent").exists()
    # Prepare, first rung, thumbnail, 2 chunks and the audio read the original: one download (this host's
    # cache), dropped with every job's scratch directory once the ladder is complete.
    assert [key for key in downloads if key.startswith("originals/")] == ["originals/20/clip.mp4"]
    assert [path.name for path in (env.parent / "scratch").iterdir()] == [originals.CACHE_DIR]
    assert OriginalsCache(None, env.parent / "scratch", 0).cached() == []


def test_prepare_on_s3_has_another_host_prefetch_the_original_meanwhile(env, catalog, redis, seaweedfs, make_clip,
                                                                      media, monkeypatch, tmp_path):
    """While one host probes, an idle one downloads the original into its cache (a job at the front of the
    queue): the first rung then starts at once wherever it runs. With local media there is nothing to fetch."""
    storage = seaweedfs.storage()
    storage.put_file("originals/22/clip.mp4", make_clip(media / "clip-22.mp4", 640, 360, 2))
    for name, value in {"MEDIA_STORAGE": "s3", "S3_ENDPOINT_URL": seaweedfs.url, "S3_BUCKET": seaweedfs.bucket,
                        "S3_ACCESS_KEY_ID": seaweedfs.service[0], "S3_SECRET_ACCESS_KEY": seaweedfs.service[1]}.items():
        monkeypatch.setenv(name, value)
    jobs.prepare_video(22, source_path="originals/22/clip.mp4")
    queue = Queue(jobs.QUEUE, connection=redis)
    assert queue.get_job_ids()[0] == "video-22-prefetch"
    monkeypatch.setenv("TRANSCODER_SCRATCH_DIR", str(tmp_path / "other-host"))
    queue.fetch_job("video-22-prefetch").perform()
    cache = OriginalsCache(None, tmp_path / "other-host", 0)
    assert [key for key, path in cache.cached()] == ["originals/22/clip.mp4"]
    assert cache.entry("originals/22/clip.mp4").read_bytes() == (media / "clip-22.mp4").read_bytes()
    storage.delete_prefix("originals/22/")


def test_prepare_with_local_media_prefetches_nothing(env, catalog, redis, clip_360p):
    jobs.prepare_video(23, source_path=key(upload(env, 23, clip_360p)))
    assert "video-23-prefetch" not in Queue(jobs.QUEUE, connection=redis).get_job_ids()
    assert catalog.posted(23, "probe")


def test_s3_down_during_a_job_is_retried_not_lost(env, catalog, redis, seaweedfs, monkeypatch, no_backoff):
    """Wrong S3 credentials (or the server down): the job raises, rq retries it, the catalog is told only
    once no retry is left; nothing is reported as published."""
    for name, value in {"MEDIA_STORAGE": "s3", "S3_ENDPOINT_URL": seaweedfs.url, "S3_BUCKET": seaweedfs.bucket,
                        "S3_ACCESS_KEY_ID": seaweedfs.service[0], "S3_SECRET_ACCESS_KEY": "wrong"}.items():
        monkeypatch.setenv(name, value)
    queue = Queue(jobs.QUEUE, connection=redis)
    job = queue.enqueue(jobs.transcode_rung, 21, "360p", source_path="originals/21/clip.mp4", source_height=360,
                        duration=2.0, fps=25.0, has_audio=True, demuxer="mov", retry=jobs.retry(),
                        on_failure=jobs.Callback(jobs.report_final_failure))
    run_queue(redis)
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert catalog.posted(21, "renditions") == []
    [failed] = catalog.posted(21, "failed")
    assert failed["rung"] == "360p" and "StorageUnavailable" in failed["reason"]
