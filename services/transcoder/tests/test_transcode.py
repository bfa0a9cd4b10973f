"""Real transcodes with ffmpeg: one rung end to end, the shared GOP, no audio, a failing input."""
import contextlib
import json
import subprocess

import pytest
from videoflix_shared.storage import LocalStorage

from services.transcoder import ffmpeg, publish
from services.transcoder.ladder import BY_NAME, small_source_rendition
from services.transcoder.probe import probe_output, probe_source
from services.transcoder.process import ResourceLimits

LIMITS = ResourceLimits(memory_bytes=4 * 1024**3, cpu_seconds=600)


def store(video) -> LocalStorage:
    """The local storage whose `hls/<id>/` is `video`."""
    return LocalStorage(video.parents[1])


def scratch(video):
    directory = video.parents[1] / "scratch"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def keyframe_times(path) -> list[float]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries",
         "frame=pts_time", "-print_format", "json", str(path)], capture_output=True, text=True, check=True)
    return [round(float(frame["pts_time"]), 2) for frame in json.loads(result.stdout)["frames"]]


def transcode(source, video, rendition, on_seconds=None):
    media = probe_source(source)
    command = ffmpeg.rung_command(source, rendition, media.fps, media.has_audio, demuxer=media.demuxer)
    with publish.staging_dir(scratch(video), rendition.name) as staged:
        ffmpeg.run(command, LIMITS, cwd=staged, on_seconds=on_seconds)
        assert publish.publish_rung(store(video), staged, int(video.name), rendition.name)


def test_360p_rung_of_a_2_second_clip(tmp_path, clip_360p):
    video = tmp_path / "hls" / "1"
    seen = []

    def on_seconds(seconds):
        seen.append(seconds)
        assert not (video / "360p").exists()  # nothing is visible while ffmpeg writes
        assert publish.published_rung_names(store(video), int(video.name)) == []

    transcode(clip_360p, video, BY_NAME["360p"], on_seconds)
    assert seen and seen[-1] == pytest.approx(2.0, abs=0.1)
    assert sorted(p.name for p in (video / "360p").iterdir()) == ["index.m3u8", "segment_000.ts"]
    playlist = (video / "360p" / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and "\nsegment_000.ts\n" in playlist
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
    segment = probe_output(video / "360p" / "segment_000.ts")
    assert (segment.width, segment.height, segment.video_codec, segment.video_profile, segment.audio_codec) == (
        640, 360, "h264", "Main", "aac")

    [rung] = publish.update_master(store(video), int(video.name), scratch(video))
    size = (video / "360p" / "segment_000.ts").stat().st_size
    assert (rung.name, rung.width, rung.height) == ("360p", 640, 360)
    assert rung.bandwidth == rung.average_bandwidth == pytest.approx(size * 8 / 2.0, rel=0.05)
    assert (video / "master.m3u8").read_text() == publish.master_playlist([rung])
    assert 'RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"\n360p/index.m3u8\n' in (
        video / "master.m3u8").read_text()


def test_keyframe_every_two_seconds_and_4_second_segments(tmp_path, make_clip):
    source = make_clip(tmp_path / "five.mp4", 320, 180, 5, rate=30)
    video = tmp_path / "hls" / "2"
    transcode(source, video, small_source_rendition(180))
    rung = video / "360p"
    assert publish.playlist_segments((rung / "index.m3u8").read_text()) == [(4.0, "segment_000.ts"), (1.0, "segment_001.ts")]
    keyframes = keyframe_times(rung / "segment_000.ts")  # MPEG-TS timestamps start at an offset
    assert [round(time - keyframes[0], 2) for time in keyframes] == [0.0, 2.0]
    assert probe_output(rung / "segment_000.ts").height == 180


def test_source_without_audio_gives_video_only_rung(tmp_path, clip_480p_silent):
    video = tmp_path / "hls" / "3"
    transcode(clip_480p_silent, video, BY_NAME["480p"])
    segment = probe_output(video / "480p" / "segment_000.ts")
    assert (segment.width, segment.height, segment.audio_codec) == (854, 480, None)
    [rung] = publish.update_master(store(video), int(video.name), scratch(video))
    assert rung.codecs == "avc1.4d401e"  # Main, level 3.0: x264 picks the level from size and rate


def test_unreadable_input_raises_with_ffmpeg_message_and_publishes_nothing(tmp_path, text_as_mp4):
    video = tmp_path / "hls" / "4"
    command = ffmpeg.rung_command(text_as_mp4, BY_NAME["360p"], 25, True, demuxer="mov")
    with pytest.raises(ffmpeg.FFmpegError, match="Invalid data found"):
        with publish.staging_dir(scratch(video), "360p") as staged:
            ffmpeg.run(command, LIMITS, cwd=staged)
    assert store(video).list("hls/") == [] and list(scratch(video).iterdir()) == []


def test_split_of_a_2_second_clip_into_two_rungs_publishes_both(tmp_path, make_clip):
    source = make_clip(tmp_path / "split.mp4", 854, 480, 2)
    media = probe_source(source)
    video = tmp_path / "hls" / "5"
    renditions = [BY_NAME["360p"], BY_NAME["480p"]]
    seen = []
    with contextlib.ExitStack() as stack:
        outputs = [(rendition, stack.enter_context(publish.staging_dir(scratch(video), rendition.name)))
                   for rendition in renditions]
        ffmpeg.run(ffmpeg.split_command(source, outputs, media.fps, media.has_audio, demuxer=media.demuxer), LIMITS,
                   on_seconds=seen.append)
        assert publish.published_rung_names(store(video), int(video.name)) == []  # nothing visible before the rename
        for rendition, staged in outputs:
            assert publish.publish_rung(store(video), staged, int(video.name), rendition.name)
    assert seen and seen[-1] == pytest.approx(2.0, abs=0.1)
    assert sorted(p.name for p in video.iterdir()) == ["360p", "480p"]  # the staging dirs are gone

    rungs = publish.update_master(store(video), int(video.name), scratch(video))
    assert [(rung.name, rung.width, rung.height, rung.codecs) for rung in rungs] == [
        ("360p", 640, 360, "avc1.4d401e,mp4a.40.2"), ("480p", 854, 480, "avc1.4d401e,mp4a.40.2")]
    for rung in rungs:
        playlist = (video / rung.name / "index.m3u8").read_text()
        assert "\nsegment_000.ts\n" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
    # the same GOP in both rungs: their segments start on the same frames
    assert keyframe_times(video / "360p" / "segment_000.ts") == keyframe_times(video / "480p" / "segment_000.ts")
    assert rungs[0].average_bandwidth < rungs[1].average_bandwidth


def test_niceness_lowers_the_priority_of_the_encoder():
    ffmpeg.run(["sh", "-c", 'test "$(ps -o ni= -p $$)" -eq 10'], LIMITS, niceness=10)
    with pytest.raises(ffmpeg.FFmpegError):
        ffmpeg.run(["sh", "-c", 'test "$(ps -o ni= -p $$)" -eq 10'], LIMITS)


def test_every_encoder_runs_within_its_memory_and_cpu_limits():
    limits = ResourceLimits(memory_bytes=512 * 1024**2, cpu_seconds=7)
    ffmpeg.run(["sh", "-c", 'test "$(ulimit -v)" -eq 524288 && test "$(ulimit -t)" -eq 7'], limits)


def test_an_encoder_out_of_cpu_time_is_killed_with_a_reason():
    with pytest.raises(ffmpeg.FFmpegError, match="it used more CPU time than a video may take"):
        ffmpeg.run(["sh", "-c", "while :; do :; done"], ResourceLimits(memory_bytes=512 * 1024**2, cpu_seconds=1))


def test_no_frames_are_invented_to_fill_a_gap_of_hours(tmp_path):
    """Two frames an hour apart stay two frames (a cfr output would encode 90000 duplicates)."""
    source = tmp_path / "gap.mkv"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=1",
                    "-frames:v", "2", "-vf", "setpts=N*3600/TB", "-fps_mode", "passthrough", "-c:v", "libx264",
                    "-preset", "ultrafast", str(source)], check=True)
    video = tmp_path / "hls" / "6"
    command = ffmpeg.rung_command(source, small_source_rendition(64), 25, False, demuxer="matroska")
    with publish.staging_dir(scratch(video), "360p") as staged:
        ffmpeg.run(command, LIMITS, cwd=staged)
        segments = sorted(staged.glob("segment_*.ts"))
        frames = [json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
             "stream=nb_read_frames", "-of", "json", str(segment)], capture_output=True, text=True, check=True,
        ).stdout)["streams"][0]["nb_read_frames"] for segment in segments]
    assert sum(map(int, frames)) == 2 and len(segments) <= 2
