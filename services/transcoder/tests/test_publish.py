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
