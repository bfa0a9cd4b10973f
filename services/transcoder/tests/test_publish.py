"""Atomic rung publishing, the master playlist text, atomic file replacement and the per-video lock."""
import fcntl
import os
import stat

import pytest

from services.transcoder import publish
from services.transcoder.probe import OutputMedia
from services.transcoder.publish import PublishedRung


def write_rung(directory, *segments):
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for index, (seconds, size) in enumerate(segments):
        (directory / f"segment_{index:03d}.ts").write_bytes(b"\0" * size)
        lines += [f"#EXTINF:{seconds:.6f},", f"segment_{index:03d}.ts"]
    (directory / "index.m3u8").write_text("\n".join(lines + ["#EXT-X-ENDLIST", ""]))


def test_staged_rung_is_hidden_until_published(tmp_path):
    video = tmp_path / "hls" / "7"
    with publish.staging_dir(video, "480p") as staged:
        write_rung(staged, (4.0, 1000))
        assert staged.parent == video and staged.name.startswith(".tmp-480p-")
        assert not publish.is_published(video, "480p")
        assert publish.published_rungs(video) == []
        assert publish.publish_rung(staged, video, "480p")
    assert publish.is_published(video, "480p")
    assert sorted(path.name for path in video.iterdir()) == ["480p"]
    assert stat.S_IMODE((video / "480p").stat().st_mode) == 0o755


def test_staging_is_removed_when_encoding_fails(tmp_path):
    video = tmp_path / "7"
    with pytest.raises(RuntimeError):
        with publish.staging_dir(video, "720p") as staged:
            write_rung(staged, (4.0, 10))
            raise RuntimeError("ffmpeg died")
    assert list(video.iterdir()) == []


def test_leftovers_of_a_killed_attempt_are_removed_only_for_the_same_rung(tmp_path):
    video = tmp_path / "7"
    (video / ".tmp-720p-dead1").mkdir(parents=True)
    (video / ".tmp-1080p-busy").mkdir()
    with publish.staging_dir(video, "720p") as staged:
        assert sorted(path.name for path in video.iterdir()) == [".tmp-1080p-busy", staged.name]


def test_publishing_over_an_existing_rung_keeps_the_first(tmp_path):
    video = tmp_path / "7"
    write_rung(video / "360p", (4.0, 111))
    with publish.staging_dir(video, "360p") as staged:
        write_rung(staged, (4.0, 222))
        assert publish.publish_rung(staged, video, "360p") is False
    assert (video / "360p" / "segment_000.ts").stat().st_size == 111
    assert sorted(path.name for path in video.iterdir()) == ["360p"]


def test_playlist_segments(tmp_path):
    write_rung(tmp_path, (4.0, 10), (4.0, 10), (1.52, 10))
    assert publish.playlist_segments(tmp_path / "index.m3u8") == [
        (4.0, "segment_000.ts"), (4.0, "segment_001.ts"), (1.52, "segment_002.ts")]


def test_master_playlist_text():
    rungs = [
        PublishedRung("360p", 640, 360, 912000, 801000, "avc1.4d401e,mp4a.40.2"),
        PublishedRung("1080p", 1920, 1080, 5600000, 5100000, "avc1.640028,mp4a.40.2"),
    ]
    assert publish.master_playlist(rungs) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:3\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=912000,AVERAGE-BANDWIDTH=801000,RESOLUTION=640x360,'
        'CODECS="avc1.4d401e,mp4a.40.2"\n'
        "360p/index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=5600000,AVERAGE-BANDWIDTH=5100000,RESOLUTION=1920x1080,'
        'CODECS="avc1.640028,mp4a.40.2"\n'
        "1080p/index.m3u8\n"
    )


def test_master_playlist_without_rungs_is_still_valid():
    assert publish.master_playlist([]) == "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n"


@pytest.mark.parametrize("profile, level, audio, expected", [
    ("Main", 30, "aac", "avc1.4d401e,mp4a.40.2"),
    ("Main", 31, None, "avc1.4d401f"),
    ("High", 40, "aac", "avc1.640028,mp4a.40.2"),
    ("High", 32, None, "avc1.640020"),
])
def test_codecs(profile, level, audio, expected):
    assert publish.codecs(OutputMedia(640, 360, "h264", profile, level, audio)) == expected


def test_codecs_rejects_what_we_never_produce():
    with pytest.raises(ValueError):
        publish.codecs(OutputMedia(640, 360, "hevc", "Main", 93, "aac"))


def test_write_atomically_replaces_the_file_readers_hold(tmp_path):
    target = tmp_path / "master.m3u8"
    target.write_text("old\n")
    with open(target) as reader:
        publish.write_atomically(target, b"new\n")
        assert reader.read() == "old\n"  # an open reader keeps the complete old file
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["master.m3u8"]


def test_video_lock_excludes_other_holders(tmp_path):
    with publish.video_lock(tmp_path):
        with open(tmp_path / publish.LOCK, "a") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(tmp_path / publish.LOCK, "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


GROWING_HEAD = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:4", "#EXT-X-MEDIA-SEQUENCE:0"]


def test_media_playlist_grows_as_event_and_ends_as_vod():
    segments = [(4.0, "segment_000.ts"), (3.2, "segment_001.ts")]
    assert publish.media_playlist(segments, finished=False).splitlines() == [
        *GROWING_HEAD, "#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-START:TIME-OFFSET=0",
        "#EXTINF:4.000000,", "segment_000.ts", "#EXTINF:3.200000,", "segment_001.ts"]
    assert publish.media_playlist(segments, finished=True).splitlines() == [
        *GROWING_HEAD, "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXTINF:4.000000,", "segment_000.ts", "#EXTINF:3.200000,", "segment_001.ts", "#EXT-X-ENDLIST"]
    # A longer segment (a source with a timestamp gap) raises the target duration, as HLS requires.
    assert "#EXT-X-TARGETDURATION:7" in publish.media_playlist([(6.5, "segment_000.ts")], finished=False)


def write_event(directory, count, finished=False):
    """What ffmpeg's HLS muxer leaves in staging after `count` whole segments (and a partial one)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:EVENT"]
    for index in range(count):
        (directory / f"segment_{index:03d}.ts").write_bytes(bytes([index]) * 188)
        lines += ["#EXTINF:4.000000,", f"segment_{index:03d}.ts"]
    if not finished:
        (directory / f"segment_{count:03d}.ts.tmp").write_bytes(b"partial")
    (directory / "index.m3u8").write_text("\n".join(lines + (["#EXT-X-ENDLIST"] if finished else []) + [""]))


def test_growing_rung_publishes_whole_segments_then_its_playlist(tmp_path):
    video, staged = tmp_path / "hls" / "7", tmp_path / "staged"
    growing = publish.GrowingRung(staged, video, "480p")
    assert growing.sync() == 0 and not (video / "480p" / "index.m3u8").exists()  # ffmpeg wrote nothing yet
    write_event(staged, 2)
    assert growing.sync() == 2
    rung = video / "480p"
    assert sorted(path.name for path in rung.iterdir()) == ["index.m3u8", "segment_000.ts", "segment_001.ts"]
    assert (rung / "segment_001.ts").read_bytes() == bytes([1]) * 188
    playlist = (rung / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and "#EXT-X-ENDLIST" not in playlist
    assert publish.is_growing(video, "480p") and not publish.is_published(video, "480p")
    write_event(staged, 3, finished=True)
    assert growing.finish() == 3
    playlist = (rung / "index.m3u8").read_text()
    assert playlist == publish.media_playlist([(4.0, f"segment_{i:03d}.ts") for i in range(3)], finished=True)
    assert publish.is_published(video, "480p") and not publish.is_growing(video, "480p")
    assert stat.S_IMODE(rung.stat().st_mode) == 0o755
    assert stat.S_IMODE((rung / "segment_002.ts").stat().st_mode) == 0o644


def test_a_retry_never_takes_segments_away_from_players(tmp_path):
    video = tmp_path / "hls" / "7"
    first = publish.GrowingRung(tmp_path / "attempt-1", video, "480p")
    write_event(tmp_path / "attempt-1", 3)
    first.sync()
    retry = publish.GrowingRung(tmp_path / "attempt-2", video, "480p")
    write_event(tmp_path / "attempt-2", 1)
    assert retry.sync() == 3
    assert len(publish.playlist_segments(video / "480p" / "index.m3u8")) == 3
    write_event(tmp_path / "attempt-2", 4)
    assert retry.sync() == 4


def test_finishing_needs_ffmpegs_finished_playlist(tmp_path):
    staged = tmp_path / "staged"
    write_event(staged, 2)
    with pytest.raises(ValueError, match="not finished"):
        publish.GrowingRung(staged, tmp_path / "hls" / "7", "480p").finish()
