"""Rung publishing through both storages (local disk, SeaweedFS), the master playlist and its text."""
import stat

import pytest
from videoflix_shared.storage import LocalStorage

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


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "media")
    store = request.getfixturevalue("seaweedfs").storage()
    store.delete_prefix("")
    return store


def test_staged_rung_is_hidden_until_published(storage, tmp_path):
    with publish.staging_dir(tmp_path, "480p") as staged:
        write_rung(staged, (4.0, 1000))
        assert staged.parent == tmp_path and staged.name.startswith("480p-")
        assert not publish.is_published(storage, 7, "480p")
        assert publish.published_rung_names(storage, 7) == []
        assert publish.publish_rung(storage, staged, 7, "480p")
    assert not staged.exists()
    assert publish.is_published(storage, 7, "480p")
    assert publish.published_rung_names(storage, 7) == ["480p"]
    assert [item.key for item in storage.list("hls/7/")] == ["hls/7/480p/index.m3u8", "hls/7/480p/segment_000.ts"]


def test_local_publication_is_one_rename(tmp_path):
    storage = LocalStorage(tmp_path / "media")
    with publish.staging_dir(tmp_path, "480p") as staged:
        write_rung(staged, (4.0, 1000))
        publish.publish_rung(storage, staged, 7, "480p")
    assert stat.S_IMODE((tmp_path / "media/hls/7/480p").stat().st_mode) == 0o755
    assert sorted(path.name for path in (tmp_path / "media/hls/7").iterdir()) == ["480p"]


def test_staging_is_removed_when_encoding_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with publish.staging_dir(tmp_path, "720p") as staged:
            write_rung(staged, (4.0, 10))
            raise RuntimeError("ffmpeg died")
    assert list(tmp_path.iterdir()) == []


def test_publishing_over_an_existing_rung_keeps_the_first(storage, tmp_path):
    with publish.staging_dir(tmp_path, "360p") as staged:
        write_rung(staged, (4.0, 111))
        publish.publish_rung(storage, staged, 7, "360p")
    with publish.staging_dir(tmp_path, "360p") as staged:
        write_rung(staged, (4.0, 222))
        assert publish.publish_rung(storage, staged, 7, "360p") is False
    assert storage.size("hls/7/360p/segment_000.ts") == 111


def test_master_lists_every_published_rung_measured_from_the_storage(storage, tmp_path, make_clip):
    """Rungs published by other workers (on other hosts) count: the master is rebuilt from the storage."""
    for rung, (width, height) in {"360p": (640, 360), "480p": (854, 480)}.items():
        with publish.staging_dir(tmp_path, rung) as staged:
            make_clip(staged / "segment_000.ts", width, height, 1, extra=["-f", "mpegts"])
            (staged / "index.m3u8").write_text("#EXTM3U\n#EXTINF:1.000000,\nsegment_000.ts\n#EXT-X-ENDLIST\n")
            publish.publish_rung(storage, staged, 8, rung)
    rungs = publish.update_master(storage, 8, tmp_path)
    assert [(rung.name, rung.width, rung.height) for rung in rungs] == [("360p", 640, 360), ("480p", 854, 480)]
    size = storage.size("hls/8/480p/segment_000.ts")
    assert rungs[1].bandwidth == rungs[1].average_bandwidth == size * 8
    master = storage.get("hls/8/master.m3u8").decode()
    assert master == publish.master_playlist(rungs) and "480p/index.m3u8" in master


def test_playlist_segments(tmp_path):
    write_rung(tmp_path, (4.0, 10), (4.0, 10), (1.52, 10))
    assert publish.playlist_segments((tmp_path / "index.m3u8").read_text()) == [
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
