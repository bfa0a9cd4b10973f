"""The ffmpeg/ffprobe argument builder, tested as data."""
from pathlib import Path

import pytest

from services.transcoder.ffmpeg import (SOURCE_DEMUXERS, append_command, audio_command, chunk_command, gop_frames,
                                        join_command, probe_command, rung_command, split_command, thumbnail_command)
from services.transcoder.ladder import BY_NAME, small_source_rendition

SOURCE = Path("/media/originals/7/clip.mp4")
# Every read of an upload: local files only, the probed demuxer forced, the path as a file: URL.
HEAD = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-progress", "pipe:1",
        "-protocol_whitelist", "file", "-f", "mov", "-i", "file:/media/originals/7/clip.mp4"]
HLS = ["-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod", "-hls_flags", "independent_segments",
       "-hls_segment_filename", "segment_%03d.ts", "index.m3u8"]


def video(height, profile, rate, maxrate, bufsize, gop):
    return ["-vf", f"scale=-2:{height}", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", profile,
            "-pix_fmt", "yuv420p", "-b:v", rate, "-maxrate", maxrate, "-bufsize", bufsize,
            "-force_key_frames", "expr:gte(t,n_forced*2)", "-g", str(2 * int(gop)), "-sc_threshold", "0",
            "-fps_mode", "passthrough"]


@pytest.mark.parametrize("rung, expected_video, audio_rate", [
    ("360p", video(360, "main", "800k", "856k", "1200k", "50"), "96k"),
    ("480p", video(480, "main", "1400k", "1498k", "2100k", "50"), "128k"),
    ("720p", video(720, "high", "2800k", "2996k", "4200k", "50"), "128k"),
    ("1080p", video(1080, "high", "5000k", "5350k", "7500k", "50"), "192k"),
])
def test_rung_with_audio(rung, expected_video, audio_rate):
    assert rung_command(SOURCE, BY_NAME[rung], fps=25, has_audio=True, demuxer="mov") == [
        *HEAD, "-map", "0:v:0", "-map", "0:a:0", *expected_video,
        "-c:a", "aac", "-b:a", audio_rate, "-ac", "2", *HLS,
    ]


def test_rung_without_audio_maps_no_audio_stream():
    assert rung_command(SOURCE, BY_NAME["480p"], fps=30, has_audio=False, demuxer="mov") == [
        *HEAD, "-map", "0:v:0", *video(480, "main", "1400k", "1498k", "2100k", "60"), *HLS,
    ]


def test_small_source_rung_keeps_its_height():
    command = rung_command(SOURCE, small_source_rendition(240), fps=24, has_audio=True, demuxer="mov")
    assert command == [
        *HEAD, "-map", "0:v:0", "-map", "0:a:0", *video(240, "main", "356k", "380k", "533k", "48"),
        "-c:a", "aac", "-b:a", "64k", "-ac", "2", *HLS,
    ]


def test_progressive_first_rung_encodes_faster_into_a_growing_playlist():
    """The first rung: superfast, an EVENT playlist, segments renamed into place when whole; everything
    else as in its plain rung command (same GOP: its segments start on the other rungs' frames)."""
    expected = video(480, "main", "1400k", "1498k", "2100k", "50")
    expected[expected.index("veryfast")] = "superfast"
    assert rung_command(SOURCE, BY_NAME["480p"], fps=25, has_audio=True, demuxer="mov", progressive=True) == [
        *HEAD, "-map", "0:v:0", "-map", "0:a:0", *expected, "-c:a", "aac", "-b:a", "128k", "-ac", "2",
        "-f", "hls", "-hls_time", "4", "-hls_playlist_type", "event", "-hls_flags",
        "independent_segments+temp_file", "-hls_segment_filename", "segment_%03d.ts", "index.m3u8",
    ]


def test_first_chunk_of_a_long_first_rung_keeps_the_frames_and_audio_packets_before_its_end():
    """Of a source longer than one chunk the progressive first rung encodes the first chunk: frames before
    60 s, the audio read a second further (its last packets as a whole-source encode makes them) and its
    packets from 60 s on dropped: each lands in the chunk its time falls in."""
    command = rung_command(SOURCE, BY_NAME["480p"], fps=25, has_audio=True, demuxer="mov", progressive=True,
                           head_seconds=60)
    assert command[command.index("-t") + 1] == "61" and command.index("-t") < command.index("-i")
    assert command[command.index("-vf") + 1] == "trim=end=60,scale=-2:480"
    assert command[command.index("-bsf:a") + 1] == "noise=drop=gte(pts*tb\\,60)"
    assert command[command.index("-hls_playlist_type") + 1] == "event"
    silent = rung_command(SOURCE, BY_NAME["480p"], fps=25, has_audio=False, demuxer="mov", progressive=True,
                          head_seconds=60)
    assert "-bsf:a" not in silent and "0:a:0" not in silent


def test_chunk_of_the_growing_first_rung_is_encoded_like_its_first_chunk_with_raw_timestamps():
    command = chunk_command(SOURCE, [(BY_NAME["480p"], Path("c.ts"))], 25, 60, 60, demuxer="mov", growing=True)
    assert command[command.index("-filter_complex") + 1] == "[0:v]trim=end=60,split=1[v0];[v0]scale=-2:480[o0]"
    assert command[command.index("-preset") + 1] == "superfast"
    assert command[-6:] == ["-avoid_negative_ts", "disabled", "-f", "mpegts", "-y", "c.ts"]


@pytest.mark.parametrize("audio, end, outside", [
    (Path("/s/audio.ts"), 180, f"not(between(pts\\,{round(120.08 * 90000)}\\,{round(180.08 * 90000) - 1}))"),
    (None, None, None), (Path("/s/audio.ts"), None, f"lt(pts\\,{round(120.08 * 90000)})")])
def test_append_moves_a_chunk_to_the_source_time_and_keeps_the_audio_packets_of_its_time(audio, end, outside):
    """Chunk 2 (120 s to `end`) after a first chunk whose muxer shifted its timestamps by 0.08 s: the
    video moves by start + shift, the audio by shift (each minus the muxer's 1.4 s added again), and of
    the whole-source audio only packets in [120 s, end) stay (90 kHz ticks, as the filter sees them)."""
    command = append_command(Path("/s/chunk_0002.ts"), audio, Path("/s/out"), 120, end, 0.08, 30)
    video_input = ["-copyts", "-itsoffset", "118.680000", "-protocol_whitelist", "file", "-f", "mpegts",
                   "-i", "file:/s/chunk_0002.ts"]
    audio_input = ["-itsoffset", "-1.320000", "-protocol_whitelist", "file", "-f", "mpegts", "-i",
                   "file:/s/audio.ts", "-map", "0:v:0", "-map", "1:a:0", "-c", "copy",
                   "-bsf:a", f"noise=drop={outside}"]
    assert command == [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", *video_input,
        *(audio_input if audio else ["-map", "0:v:0", "-c", "copy"]),
        "-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod", "-hls_flags", "independent_segments",
        "-start_number", "30", "-hls_segment_filename", "/s/out/segment_%03d.ts", "/s/out/index.m3u8",
    ]


def hls_into(directory):
    return ["-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod", "-hls_flags", "independent_segments",
            "-hls_segment_filename", f"{directory}/segment_%03d.ts", f"{directory}/index.m3u8"]


def test_split_of_two_rungs_with_audio():
    outputs = [(BY_NAME["360p"], Path("/media/hls/7/.tmp-360p-a")), (BY_NAME["720p"], Path("/media/hls/7/.tmp-720p-b"))]
    assert split_command(SOURCE, outputs, fps=25, has_audio=True, demuxer="mov") == [
        *HEAD, "-filter_complex", "[0:v]split=2[v0][v1];[v0]scale=-2:360[o0];[v1]scale=-2:720[o1]",
        "-map", "[o0]", "-map", "0:a:0", *video(360, "main", "800k", "856k", "1200k", "50")[2:],
        "-c:a", "aac", "-b:a", "96k", "-ac", "2", *hls_into("/media/hls/7/.tmp-360p-a"),
        "-map", "[o1]", "-map", "0:a:0", *video(720, "high", "2800k", "2996k", "4200k", "50")[2:],
        "-c:a", "aac", "-b:a", "128k", "-ac", "2", *hls_into("/media/hls/7/.tmp-720p-b"),
    ]


def test_split_of_three_rungs_without_audio_maps_no_audio_stream():
    outputs = [(BY_NAME[name], Path(f"/v/.tmp-{name}")) for name in ("360p", "720p", "1080p")]
    assert split_command(SOURCE, outputs, fps=30, has_audio=False, demuxer="mov") == [
        *HEAD, "-filter_complex",
        "[0:v]split=3[v0][v1][v2];[v0]scale=-2:360[o0];[v1]scale=-2:720[o1];[v2]scale=-2:1080[o2]",
        "-map", "[o0]", *video(360, "main", "800k", "856k", "1200k", "60")[2:], *hls_into("/v/.tmp-360p"),
        "-map", "[o1]", *video(720, "high", "2800k", "2996k", "4200k", "60")[2:], *hls_into("/v/.tmp-720p"),
        "-map", "[o2]", *video(1080, "high", "5000k", "5350k", "7500k", "60")[2:], *hls_into("/v/.tmp-1080p"),
    ]


@pytest.mark.parametrize("rungs", [["360p", "720p"], ["720p", "1080p", "360p"]])
@pytest.mark.parametrize("has_audio", [True, False])
def test_split_outputs_use_the_rung_commands_encoding_options(rungs, has_audio):
    """Each output of the split carries exactly its rung command's codec, bitrate, GOP and HLS options."""
    outputs = [(BY_NAME[name], Path(name)) for name in rungs]
    command = split_command(SOURCE, outputs, fps=25, has_audio=has_audio, demuxer="mov")
    blocks = " ".join(command).split(" -map [o")[1:]
    for index, (rendition, _) in enumerate(outputs):
        single = rung_command(SOURCE, rendition, fps=25, has_audio=has_audio, demuxer="mov")
        options = single[single.index("-c:v"):single.index("-hls_segment_filename")]
        block = blocks[index].split(" ", 1)[1]
        assert block.startswith(("-map 0:a:0 " if has_audio else "") + " ".join(options))
        assert block.endswith(f"{rendition.name}/segment_%03d.ts {rendition.name}/index.m3u8")


@pytest.mark.parametrize("fps, frames", [(25, 50), (29.97, 60), (60, 120), (23.976, 48), (0.2, 1)])
def test_keyframe_every_two_seconds(fps, frames):
    assert gop_frames(fps) == frames


def test_thumbnail_command():
    assert thumbnail_command(SOURCE, Path("/media/hls/7/.tmp-thumbnail-x.jpg"), 0.9, demuxer="matroska") == [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-ss", "0.900",
        "-protocol_whitelist", "file", "-f", "matroska", "-i", "file:/media/originals/7/clip.mp4",
        "-map", "0:v:0", "-frames:v", "1",
        "-vf", "scale=-2:'min(ih,480)'", "-q:v", "3", "-f", "image2", "-y", "/media/hls/7/.tmp-thumbnail-x.jpg",
    ]


def test_source_probe_detects_only_among_plain_containers():
    assert probe_command(SOURCE) == [
        "ffprobe", "-v", "error", "-protocol_whitelist", "file",
        "-format_whitelist", "mov,matroska,avi,mpegts,flv,ogg,mpeg", "-count_packets",
        "-print_format", "json", "-show_format", "-show_streams", "file:/media/originals/7/clip.mp4"]


def test_probe_with_a_known_demuxer_forces_it():
    assert probe_command(Path("/media/hls/7/480p/segment_000.ts"), "mpegts") == [
        "ffprobe", "-v", "error", "-protocol_whitelist", "file", "-f", "mpegts", "-count_packets",
        "-print_format", "json", "-show_format", "-show_streams", "file:/media/hls/7/480p/segment_000.ts"]


def test_no_demuxer_that_opens_other_files_or_urls_is_accepted():
    openers = {"hls", "dash", "concat", "image2", "image2pipe", "srt", "ass", "webvtt", "tty", "data", "lavfi",
               "mpjpeg", "sdp", "rtsp", "rtp", "ffmetadata", "subviewer", "jacosub"}
    assert not openers & set(SOURCE_DEMUXERS)


def test_chunk_command_decodes_one_stretch_of_video_once_for_every_rung_like_its_rung_command():
    """Chunk 1 (60 s to 120 s) of 360p, 720p and 1080p: one seek, one decode, one trim before the split,
    then each output with exactly its rung's video options into its own MPEG-TS file."""
    outputs = [(BY_NAME[name], Path(f"/s/{name}/chunk_0001.ts")) for name in ("360p", "720p", "1080p")]
    command = chunk_command(SOURCE, outputs, 25, 60, 60, demuxer="mov")
    assert command == [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-progress", "pipe:1",
        "-ss", "60", "-protocol_whitelist", "file", "-f", "mov", "-i", "file:/media/originals/7/clip.mp4",
        "-filter_complex",
        "[0:v]trim=end=60,split=3[v0][v1][v2];[v0]scale=-2:360[o0];[v1]scale=-2:720[o1];[v2]scale=-2:1080[o2]",
        "-map", "[o0]", *video(360, "main", "800k", "856k", "1200k", "50")[2:],
        "-f", "mpegts", "-y", "/s/360p/chunk_0001.ts",
        "-map", "[o1]", *video(720, "high", "2800k", "2996k", "4200k", "50")[2:],
        "-f", "mpegts", "-y", "/s/720p/chunk_0001.ts",
        "-map", "[o2]", *video(1080, "high", "5000k", "5350k", "7500k", "50")[2:],
        "-f", "mpegts", "-y", "/s/1080p/chunk_0001.ts",
    ]
    for index, (rendition, _) in enumerate(outputs):  # the same encoder options as the rung's own command
        single = rung_command(SOURCE, rendition, fps=25, has_audio=False, demuxer="mov")
        block = command[command.index(f"[o{index}]", command.index("-map")) + 1:]
        options = single[single.index("-c:v"):single.index("-f", single.index("-c:v"))]
        assert len(options) > 20 and block[:len(options)] == options
    last = chunk_command(SOURCE, outputs[:1], 25, 120, None, demuxer="mov")
    assert last[last.index("-filter_complex") + 1] == "[0:v]split=1[v0];[v0]scale=-2:360[o0]"
    assert last[last.index("-ss") + 1] == "120" and "-avoid_negative_ts" not in last


def test_the_first_minutes_audio_reads_a_second_further_than_it_serves():
    command = audio_command(SOURCE, BY_NAME["480p"], Path("/m/audio_128k_first_300s.ts"), demuxer="mov", seconds=300)
    assert command[command.index("-t") + 1] == "301" and command.index("-t") < command.index("-i")
    assert command[command.index("-b:a") + 1] == "128k"


def test_audio_is_encoded_once_for_the_whole_source():
    assert audio_command(SOURCE, BY_NAME["1080p"], Path("/m/audio_192k.ts"), demuxer="mov") == [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
        "-protocol_whitelist", "file", "-f", "mov", "-i", "file:/media/originals/7/clip.mp4",
        "-map", "0:a:0", "-vn", "-c:a", "aac", "-b:a", "192k", "-ac", "2", "-avoid_negative_ts", "disabled",
        "-f", "mpegts", "-y", "/m/audio_192k.ts",
    ]


@pytest.mark.parametrize("audio", [Path("/m/.chunks/audio_128k.ts"), None])
def test_join_copies_chunks_and_audio_into_one_hls_rung(audio):
    command = join_command(Path("/m/.chunks/720p/chunks.txt"), audio, Path("/m/.tmp-720p-x"))
    audio_input = ["-protocol_whitelist", "file", "-f", "mpegts", "-i", f"file:{audio}"] if audio else []
    assert command == [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
        "-protocol_whitelist", "file", "-f", "concat", "-i", "file:/m/.chunks/720p/chunks.txt", *audio_input,
        "-map", "0:v:0", *(["-map", "1:a:0"] if audio else []), "-c", "copy", *hls_into("/m/.tmp-720p-x"),
    ]
