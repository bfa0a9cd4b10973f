"""ffprobe of real generated files: what a source contains, and human reasons for unusable ones."""
import subprocess

import pytest

from services.transcoder.probe import UnusableMedia, probe_output, probe_source


def test_clip_with_audio(clip_360p):
    media = probe_source(clip_360p)
    assert (media.width, media.height, media.fps, media.has_audio) == (640, 360, 25.0, True)
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


def test_still_image_has_no_duration(tmp_path):
    image = tmp_path / "picture.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240",
                    "-frames:v", "1", "-f", "image2", "-c:v", "png", str(image)], check=True)
    with pytest.raises(UnusableMedia, match="no duration"):
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
