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


def test_growing_rung_publishes_whole_segments_then_its_playlist(storage, tmp_path):
    staged = tmp_path / "staged"
    growing = publish.GrowingRung(storage, staged, 7, "480p")
    assert growing.sync() == 0 and not storage.exists("hls/7/480p/index.m3u8")  # ffmpeg wrote nothing yet
    write_event(staged, 2)
    assert growing.sync() == 2
    assert [item.key for item in storage.list("hls/7/")] == [
        "hls/7/480p/index.m3u8", "hls/7/480p/segment_000.ts", "hls/7/480p/segment_001.ts"]
    assert storage.get("hls/7/480p/segment_001.ts") == bytes([1]) * 188
    playlist = storage.get("hls/7/480p/index.m3u8").decode()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and "#EXT-X-ENDLIST" not in playlist
    assert publish.is_growing(storage, 7, "480p") and not publish.is_published(storage, 7, "480p")
    write_event(staged, 3, finished=True)
    assert growing.finish() == 3
    playlist = storage.get("hls/7/480p/index.m3u8").decode()
    assert playlist == publish.media_playlist([(4.0, f"segment_{i:03d}.ts") for i in range(3)], finished=True)
    assert publish.is_published(storage, 7, "480p") and not publish.is_growing(storage, 7, "480p")


def test_local_growing_rung_is_readable_by_the_gateway(tmp_path):
    storage, staged = LocalStorage(tmp_path / "media"), tmp_path / "staged"
    write_event(staged, 1)
    publish.GrowingRung(storage, staged, 7, "480p").sync()
    rung = tmp_path / "media/hls/7/480p"
    assert stat.S_IMODE((rung / "segment_000.ts").stat().st_mode) == 0o644
    assert stat.S_IMODE((rung / "index.m3u8").stat().st_mode) == 0o644


def test_a_retry_never_takes_segments_away_from_players(storage, tmp_path):
    first = publish.GrowingRung(storage, tmp_path / "attempt-1", 7, "480p")
    write_event(tmp_path / "attempt-1", 3)
    first.sync()
    retry = publish.GrowingRung(storage, tmp_path / "attempt-2", 7, "480p")
    write_event(tmp_path / "attempt-2", 1)
    assert retry.sync() == 3
    assert len(publish.playlist_segments(storage.get("hls/7/480p/index.m3u8").decode())) == 3
    write_event(tmp_path / "attempt-2", 4)
    assert retry.sync() == 4


def test_finishing_needs_ffmpegs_finished_playlist(storage, tmp_path):
    staged = tmp_path / "staged"
    write_event(staged, 2)
    with pytest.raises(ValueError, match="not finished"):
        publish.GrowingRung(storage, staged, 7, "480p").finish()


def test_master_lists_a_growing_rung_with_its_estimated_bandwidth(storage, tmp_path, make_clip):
    staged = tmp_path / "staged"
    staged.mkdir()
    make_clip(staged / "segment_000.ts", 854, 480, 1, extra=["-f", "mpegts"])
    (staged / "index.m3u8").write_text("#EXTM3U\n#EXTINF:1.000000,\nsegment_000.ts\n")
    growing = publish.GrowingRung(storage, staged, 9, "480p")
    growing.sync()
    [rung] = publish.update_master(storage, 9, tmp_path)
    assert (rung.name, rung.width, rung.height, rung.complete) == ("480p", 854, 480, False)
    assert (rung.bandwidth, rung.average_bandwidth) == (round((1498 + 128) * 1100), round((1400 + 128) * 1100))
    assert "480p/index.m3u8" in storage.get("hls/9/master.m3u8").decode()
    (staged / "index.m3u8").write_text("#EXTM3U\n#EXTINF:1.000000,\nsegment_000.ts\n#EXT-X-ENDLIST\n")
    growing.finish()
    [rung] = publish.update_master(storage, 9, tmp_path)
    assert rung.complete and rung.bandwidth == storage.size("hls/9/480p/segment_000.ts") * 8


def test_chunks_travel_through_the_storage_and_go_after_the_last_join(storage, tmp_path):
    publish.mark_chunks_pending(storage, 5, ["720p", "1080p"])
    for rung in ("720p", "1080p"):
        for index in range(2):
            storage.put_bytes(publish.chunk_key(5, rung, index), f"{rung}-{index}".encode())
    storage.put_bytes(publish.audio_key(5, 128), b"audio")
    assert publish.chunk_key(5, "720p", 1) == "hls/5/.chunks/720p/chunk_0001.ts"
    with pytest.raises(FileNotFoundError, match="chunk_0002"):
        publish.fetch_chunks(storage, 5, "720p", 3, tmp_path / "missing")
    listing = publish.fetch_chunks(storage, 5, "720p", 2, tmp_path / "chunks")
    assert listing.read_text() == "file 'chunk_0000.ts'\nfile 'chunk_0001.ts'\n"
    assert (tmp_path / "chunks/chunk_0001.ts").read_bytes() == b"720p-1"
    publish.remove_chunks(storage, 5, "720p")
    assert storage.exists(publish.audio_key(5, 128))  # 1080p still waits for it
    assert publish.published_rung_names(storage, 5) == []  # chunks are never a rung
    publish.remove_chunks(storage, 5, "1080p")
    assert storage.list("hls/5/") == []


def test_audio_stays_for_a_rung_whose_chunks_have_not_started(storage):
    publish.mark_chunks_pending(storage, 6, ["720p", "1080p"])
    storage.put_bytes(publish.chunk_key(6, "720p", 0), b"x")
    storage.put_bytes(publish.audio_key(6, 128), b"audio")
    publish.remove_chunks(storage, 6, "720p")
    assert storage.exists(publish.audio_key(6, 128))


def write_chunk(directory, numbers, last_seconds=4.0):
    """What `ffmpeg.append_command` leaves in staging: a VOD playlist of one chunk's segments."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for number in numbers:
        (directory / f"segment_{number:03d}.ts").write_bytes(bytes([number]) * 188)
        lines += [f"#EXTINF:{4.0 if number != numbers[-1] else last_seconds:.6f},", f"segment_{number:03d}.ts"]
    (directory / "index.m3u8").write_text("\n".join(lines + ["#EXT-X-ENDLIST", ""]))


def test_chunks_are_appended_to_the_growing_playlist_in_order_and_the_last_finishes_it(storage, tmp_path):
    """The first chunk grew segment by segment; chunk 1 (segments 2-3) is appended after it, still EVENT;
    an appender that crashed after putting chunk 2's playlist and is retried lists its segments once;
    the last chunk ends the playlist."""
    first = tmp_path / "first"
    write_event(first, 2, finished=True)
    publish.GrowingRung(storage, first, 7, "480p").sync()
    assert not publish.is_published(storage, 7, "480p")
    write_chunk(tmp_path / "chunk-1", [2, 3])
    assert publish.append_chunk(storage, tmp_path / "chunk-1", 7, "480p", 2, finished=False) == 4
    playlist = storage.get("hls/7/480p/index.m3u8").decode()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and "#EXT-X-ENDLIST" not in playlist
    assert storage.get("hls/7/480p/segment_003.ts") == bytes([3]) * 188
    write_chunk(tmp_path / "chunk-2", [4, 5], last_seconds=1.5)
    assert publish.append_chunk(storage, tmp_path / "chunk-2", 7, "480p", 4, finished=True) == 6
    assert publish.append_chunk(storage, tmp_path / "chunk-2", 7, "480p", 4, finished=True) == 6
    segments = publish.playlist_segments(storage.get("hls/7/480p/index.m3u8").decode())
    assert segments == [(4.0, f"segment_{n:03d}.ts") for n in range(5)] + [(1.5, "segment_005.ts")]
    assert publish.is_published(storage, 7, "480p")


def test_growing_state_lives_with_the_chunks(storage):
    assert publish.growing_state(storage, 7, "480p") == publish.GrowingState(0, None)
    publish.save_growing_state(storage, 7, "480p", publish.GrowingState(chunks=2, shift_ticks=7200))
    assert publish.growing_state(storage, 7, "480p") == publish.GrowingState(2, 7200)
    publish.remove_chunks(storage, 7, "480p")  # once the rung is finished
    assert publish.growing_state(storage, 7, "480p") == publish.GrowingState(0, None)
