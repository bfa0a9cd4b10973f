"""ffprobe of real generated files: what a source contains, and human reasons for unusable ones."""
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.transcoder.probe import SourceLimits, UnusableMedia, probe_output, probe_source


def test_clip_with_audio(clip_360p):
    media = probe_source(clip_360p)
    assert (media.width, media.height, media.fps, media.has_audio) == (640, 360, 25.0, True)
    assert (media.demuxer, media.frames) == ("mov", 50)
    assert media.duration == pytest.approx(2.0, abs=0.1)


def test_clip_without_audio(clip_480p_silent):
    media = probe_source(clip_480p_silent)
    assert (media.width, media.height, media.has_audio) == (854, 480, False)
    assert media.duration == pytest.approx(3.0, abs=0.1)


def test_rotated_phone_clip_reports_the_displayed_size(tmp_path, clip_360p):
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(clip_360p), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(rotated)], check=True)
    media = probe_source(rotated)
    assert (media.width, media.height) == (360, 640)


def test_text_file_renamed_mp4_is_not_a_video(text_as_mp4):
    with pytest.raises(UnusableMedia, match=r"^The file is not a video that can be read \(.+\)\.$") as error:
        probe_source(text_as_mp4)
    assert str(text_as_mp4) not in str(error.value)


def test_audio_only_file_has_no_video_stream(tmp_path):
    audio = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac",
                    str(audio)], check=True)
    with pytest.raises(UnusableMedia, match="no video stream"):
        probe_source(audio)


def test_still_image_is_not_accepted(tmp_path):
    image = tmp_path / "picture.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240",
                    "-frames:v", "1", "-f", "image2", "-c:v", "png", str(image)], check=True)
    with pytest.raises(UnusableMedia, match="^This kind of file is not accepted"):
        probe_source(image)


def test_truncated_upload_is_not_a_video(tmp_path, clip_360p):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip_360p.read_bytes()[:2000])
    with pytest.raises(UnusableMedia):
        probe_source(truncated)


def test_probe_output_reads_codecs_of_a_segment(tmp_path, make_clip):
    main_profile = ["-preset", "veryfast", "-profile:v", "main", "-f", "mpegts"]
    segment = make_clip(tmp_path / "segment.ts", 320, 180, 1, extra=main_profile)
    media = probe_output(segment)
    assert (media.width, media.height, media.video_codec, media.video_profile) == (320, 180, "h264", "Main")
    assert media.audio_codec == "aac" and media.video_level > 0


@pytest.mark.parametrize("container, demuxer", [("mkv", "matroska"), ("webm", "matroska"), ("avi", "avi"),
                                                ("ts", "mpegts"), ("flv", "flv"), ("mpg", "mpeg")])
def test_plain_containers_are_read_with_their_demuxer(tmp_path, make_clip, container, demuxer):
    codec = {"webm": ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"],
             "flv": ["-c:v", "flv1"], "mpg": ["-c:v", "mpeg2video"]}.get(container, [])
    clip = make_clip(tmp_path / f"clip.{container}", 320, 240, 1, audio=False, extra=codec)
    media = probe_source(clip)
    assert (media.demuxer, media.width, media.height) == (demuxer, 320, 240)


LIMITS = SourceLimits(max_seconds=3600, max_pixels=1920 * 1080, max_fps=60, max_frames=3600 * 30)


def frames_far_apart(path, frames: int, gap_seconds: int):
    """A few real frames whose timestamps are `gap_seconds` apart: a tiny file declaring a long duration."""
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=1",
                    "-frames:v", str(frames), "-vf", f"setpts=N*{gap_seconds}/TB", "-fps_mode", "passthrough",
                    "-c:v", "libx264", "-preset", "ultrafast", str(path)], check=True)
    return path


def test_tiny_file_declaring_hours_is_refused_for_the_frames_it_really_holds(tmp_path):
    bomb = frames_far_apart(tmp_path / "bomb.mp4", 3, 5 * 3600)
    assert bomb.stat().st_size < 10_000
    with pytest.raises(UnusableMedia, match=r"^The file declares a duration of 10:00:0\d but holds only 3 video frames"):
        probe_source(bomb, LIMITS)


def test_declared_duration_within_the_cap_must_still_be_held(tmp_path):
    sparse = frames_far_apart(tmp_path / "sparse.mp4", 3, 600)
    with pytest.raises(UnusableMedia, match=r"declares a duration of 0:20:0\d but holds only 3 video frames"):
        probe_source(sparse, LIMITS)


def test_too_long_is_refused(clip_360p):
    with pytest.raises(UnusableMedia, match=r"^The video is too long \(0:00:02; at most 0:00:01\)\.$"):
        probe_source(clip_360p, SourceLimits(1, 10**9, 240, 10**9))


def test_too_many_pixels_is_refused(clip_360p):
    with pytest.raises(UnusableMedia, match=r"^The picture is too large \(640x360; at most 230399 pixels\)\.$"):
        probe_source(clip_360p, SourceLimits(3600, 640 * 360 - 1, 240, 10**9))


def test_too_high_a_frame_rate_is_refused(clip_360p):
    with pytest.raises(UnusableMedia, match=r"^The frame rate is too high \(at most 24 frames per second\)\.$"):
        probe_source(clip_360p, SourceLimits(3600, 10**9, 24, 10**9))


def test_too_many_frames_is_refused(clip_360p):
    with pytest.raises(UnusableMedia, match=r"^The video has too many frames \(50; at most 49\)\.$"):
        probe_source(clip_360p, SourceLimits(3600, 10**9, 240, 49))


def test_huge_picture_in_a_container_is_refused_before_decoding(tmp_path):
    """A 16000x16000 one-bit picture: 30 KB on disk, hundreds of MB for any decoder."""
    picture = tmp_path / "picture.mkv"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=16000x16000:r=1:d=1",
                    "-frames:v", "1", "-c:v", "png", "-pix_fmt", "monob", str(picture)], check=True)
    with pytest.raises(UnusableMedia, match=r"^The picture is too large \(16000x16000; "):
        probe_source(picture, LIMITS)


def hls_playlist(target: str) -> str:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n"


def hostile_uploads(victim: Path, url: str) -> dict[str, str]:
    """Text uploads that make a permissive ffmpeg read another file or a URL."""
    return {
        "hls playlist naming a file": hls_playlist(str(victim)),
        "hls playlist naming a file: URL": hls_playlist(f"file:{victim}"),
        "hls playlist naming an http: URL": hls_playlist(url),
        "concat list": f"ffconcat version 1.0\nfile '{victim}'\n",
        "concat list of an http: URL": f"ffconcat version 1.0\nfile '{url}'\n",
        "subtitles": "1\n00:00:00,000 --> 00:00:02,000\nHello\n\n2\n00:00:02,000 --> 00:00:04,000\nWorld\n",
        "WebVTT": "WEBVTT\n\n00:00.000 --> 00:02.000\nHello\n",
    }


@pytest.mark.parametrize("kind", list(hostile_uploads(Path("/v"), "http://x")))
def test_uploads_that_open_other_files_or_urls_are_not_accepted(tmp_path, clip_360p, kind):
    requests_seen = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self):
            requests_seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        upload = tmp_path / "upload.mp4"
        upload.write_text(hostile_uploads(clip_360p, f"http://127.0.0.1:{server.server_port}/clip.mp4")[kind])
        with pytest.raises(UnusableMedia) as error:
            probe_source(upload, LIMITS)
    finally:
        server.shutdown()
        server.server_close()
    assert str(error.value).startswith(("This kind of file is not accepted", "The file is not a video"))
    assert requests_seen == []


def test_image_sequence_pattern_is_not_accepted(tmp_path, clip_360p):
    for index in range(1, 4):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(clip_360p), "-frames:v", "1",
                        str(tmp_path / f"frame{index:03d}.png")], check=True)
    pattern = tmp_path / "frame%03d.png"
    pattern.write_bytes((tmp_path / "frame001.png").read_bytes())
    with pytest.raises(UnusableMedia, match="^This kind of file is not accepted"):
        probe_source(pattern, LIMITS)
