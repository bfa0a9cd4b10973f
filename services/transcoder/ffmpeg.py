"""The one place where ffmpeg and ffprobe command lines are built, and the runner for them.

Every rung is built from a row of `ladder.RENDITIONS`: alone by `rung_command`, or several at once (one
decode, a split filter graph, one HLS output per rung) by `split_command`, with the same per-rung options.
All rungs share the same keyframes: forced on the first frame at or after every 2 s of source time (no
scene-cut keyframes), so their 4-second segments start on the same frames and a player can switch between
rungs at any segment boundary; a chunk of the source starting on a multiple of 2 s gets the same keyframes
as an encode of the whole source, even when the source's frames are irregularly spaced.

Uploads are hostile: every command reading one allows the `file` protocol only and forces the demuxer
that `probe.probe_source` detected among `SOURCE_DEMUXERS` (containers that never open another file or a
URL named inside them), and no encoder invents frames to fill timestamp gaps (`-fps_mode passthrough`).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from . import progress
from .ladder import Rendition
from .process import ResourceLimits, die_with_parent

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
PLAYLIST = "index.m3u8"
SEGMENT_PATTERN = "segment_%03d.ts"
SEGMENT_SECONDS = 4
KEYFRAME_SECONDS = 2
X264_PRESET = "veryfast"
# The first rung is watched while it encodes: x264's superfast keeps it several times ahead of a viewer
# on 2 busy cores (docs/performance.md), at a few percent more bits for the same picture.
PROGRESSIVE_PRESET = "superfast"
THUMBNAIL_MAX_HEIGHT = 480
COMMON = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
# Demuxers an upload may be read with (ffmpeg's names, as the first name of ffprobe's `format_name`):
# audio/video containers only. Never hls, dash, concat, image2, subtitle or playlist demuxers: they
# open the files or URLs an upload names (another user's original, a URL inside our network).
SOURCE_DEMUXERS = ("mov", "matroska", "avi", "mpegts", "flv", "ogg", "mpeg")
SEGMENT_DEMUXER = "mpegts"  # our own HLS segments
# The growing first rung of a long source: its first chunk encoded progressively reads this much more
# audio than it keeps, so the encoder's last kept packets are those of a whole-source encode.
HEAD_AUDIO_MARGIN_SECONDS = 1
# Files whose packets are cut or moved by time later (first-rung chunks, the whole-source audio): the
# muxer writes the encoder's timestamps + MPEGTS_DELAY_SECONDS, never shifted to make them non-negative.
RAW_TIMESTAMPS = ["-avoid_negative_ts", "disabled"]
MPEGTS_DELAY_SECONDS = 1.4  # what ffmpeg's MPEG-TS muxer adds to every timestamp (its default muxdelay)
MPEGTS_HZ = 90000
ENDLESS_SECONDS = 10 ** 7


class FFmpegError(Exception):
    """ffmpeg exited with an error; `message` is its last line of stderr."""

    def __init__(self, returncode: int, message: str):
        super().__init__(f"ffmpeg exited with {returncode}: {message}")
        self.returncode = returncode
        self.message = message


def input_url(path: Path) -> str:
    """A local path as a `file:` URL: a name like `http:x` or `concat:a|b` stays a file name."""
    return f"file:{path}"


def input_options(demuxer: str) -> list[str]:
    """Before every `-i`: local files only, read with the one demuxer the probe accepted."""
    return ["-protocol_whitelist", "file", "-f", demuxer]


def probe_command(path: Path, demuxer: str | None = None) -> list[str]:
    """ffprobe's JSON of formats, streams and the packets each stream really holds (`-count_packets`:
    demuxing only, no decoding). Without `demuxer` it detects the format among `SOURCE_DEMUXERS` only:
    anything else fails before its demuxer opens (`Format not on whitelist`)."""
    reading = ["-protocol_whitelist", "file", "-f", demuxer] if demuxer else \
        ["-protocol_whitelist", "file", "-format_whitelist", ",".join(SOURCE_DEMUXERS)]
    return [FFPROBE, "-v", "error", *reading, "-count_packets", "-print_format", "json", "-show_format",
            "-show_streams", input_url(path)]


def gop_frames(fps: float) -> int:
    return max(1, round(fps * KEYFRAME_SECONDS))


def keyframe_expression() -> str:
    """A keyframe on the first frame whose time (seconds since the start of the input) reaches the next
    multiple of KEYFRAME_SECONDS."""
    return f"expr:gte(t,n_forced*{KEYFRAME_SECONDS})"


def video_options(rendition: Rendition, fps: float, preset: str = X264_PRESET) -> list[str]:
    """x264 settings of one rung (after its scale filter): the same in the per-rung and the split command
    (the progressive first rung only encodes faster: `preset`)."""
    return [
        "-c:v", "libx264", "-preset", preset, "-profile:v", rendition.profile, "-pix_fmt", "yuv420p",
        "-b:v", f"{rendition.video_kbps}k", "-maxrate", f"{rendition.maxrate_kbps}k",
        "-bufsize", f"{rendition.bufsize_kbps}k",
        # x264 itself never adds a keyframe before the forced ones (keyint: twice their spacing).
        "-force_key_frames", keyframe_expression(), "-g", str(2 * gop_frames(fps)), "-sc_threshold", "0",
        # Frames keep their timestamps: a gap of hours between two frames stays a gap, never hours of
        # duplicated frames to encode.
        "-fps_mode", "passthrough",
    ]


def audio_options(rendition: Rendition, has_audio: bool) -> list[str]:
    return ["-c:a", "aac", "-b:a", f"{rendition.audio_kbps}k", "-ac", "2"] if has_audio else []


def hls_options(directory: Path | None = None, progressive: bool = False) -> list[str]:
    """The HLS muxer writing index.m3u8 + segments into `directory` (default: the current directory).

    `progressive`: an EVENT playlist rewritten after every segment, each segment written under a
    temporary name and renamed when whole, so the playlist lists whole segments only (`publish.GrowingRung`
    publishes them as they come)."""
    def inside(name: str) -> str:
        return str(directory / name) if directory is not None else name

    playlist_type, flags = ("event", "independent_segments+temp_file") if progressive else \
        ("vod", "independent_segments")
    return [
        "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", playlist_type,
        "-hls_flags", flags, "-hls_segment_filename", inside(SEGMENT_PATTERN), inside(PLAYLIST),
    ]


def rung_command(source: Path, rendition: Rendition, fps: float, has_audio: bool, *, demuxer: str,
                 progressive: bool = False, head_seconds: float | None = None) -> list[str]:
    """ffmpeg arguments for one HLS rung, written to the current directory (index.m3u8 + segments);
    `progressive`: the first rung, watched while it encodes (faster preset, growing playlist).

    `head_seconds`: only the first chunk of a longer source (the rest of the rung comes as chunk jobs,
    `append_command`): frames before `head_seconds`, and the audio packets whose time is before it (the
    encoder reads a second more so those packets are the ones a whole-source encode makes)."""
    maps = ["-map", "0:v:0"] + (["-map", "0:a:0"] if has_audio else [])
    preset = PROGRESSIVE_PRESET if progressive else X264_PRESET
    reading, trim, cut = [], "", []
    if head_seconds is not None:
        reading = ["-t", f"{head_seconds + HEAD_AUDIO_MARGIN_SECONDS:g}"]
        trim = f"trim=end={head_seconds:g},"
        # 0 or 1 for any time (see append_command: a `drop` of 2 or more means "every n-th packet").
        cut = ["-bsf:a", f"noise=drop=gte(pts*tb\\,{head_seconds:g})"] if has_audio else []
    return [*COMMON, "-progress", "pipe:1", *reading, *input_options(demuxer), "-i", input_url(source), *maps,
            "-vf", f"{trim}scale=-2:{rendition.height}", *video_options(rendition, fps, preset),
            *audio_options(rendition, has_audio), *cut, *hls_options(progressive=progressive)]


def split_graph(renditions: list[Rendition], trim: str = "") -> str:
    """Decode once, split the picture, scale one copy per rung: `[0:v]split=2[v0][v1];[v0]scale=...[o0];...`;
    `trim` (a filter and a comma) goes before the split: applied once for every rung."""
    copies = "".join(f"[v{index}]" for index in range(len(renditions)))
    scales = [f"[v{index}]scale=-2:{rendition.height}[o{index}]" for index, rendition in enumerate(renditions)]
    return ";".join([f"[0:v]{trim}split={len(renditions)}{copies}", *scales])


def split_command(source: Path, outputs: list[tuple[Rendition, Path]], fps: float, has_audio: bool, *,
                  demuxer: str) -> list[str]:
    """One ffmpeg for several rungs: one HLS output per (rendition, directory), each with the same
    codec, bitrate, GOP and HLS settings as its `rung_command`; the source is decoded once."""
    command = [*COMMON, "-progress", "pipe:1", *input_options(demuxer), "-i", input_url(source),
               "-filter_complex", split_graph([rendition for rendition, _ in outputs])]
    for index, (rendition, directory) in enumerate(outputs):
        command += ["-map", f"[o{index}]", *(["-map", "0:a:0"] if has_audio else []),
                    *video_options(rendition, fps), *audio_options(rendition, has_audio), *hls_options(directory)]
    return command


def chunk_command(source: Path, outputs: list[tuple[Rendition, Path]], fps: float, start: float,
                  seconds: float | None, *, demuxer: str, growing: bool = False) -> list[str]:
    """The video of one chunk of the source, frames with times in [start, start + seconds) (to the end
    without `seconds`), decoded once and encoded for every (rendition, MPEG-TS file) of `outputs` as its
    rung encodes it (a split filter graph, as `split_command`). The seek keeps frames from `start` on and
    `trim` drops them from `start + seconds` on: each frame lands in exactly one chunk. Chunks start on
    multiples of KEYFRAME_SECONDS, so their keyframes fall on the frames of an encode of the whole source.

    `growing`: a chunk of the progressive first rung (one output, appended to its playlist by
    `append_command`): encoded as its first chunk is, timestamps as written (`RAW_TIMESTAMPS`)."""
    trim = f"trim=end={seconds:g}," if seconds is not None else ""
    preset = PROGRESSIVE_PRESET if growing else X264_PRESET
    command = [*COMMON, "-progress", "pipe:1", "-ss", f"{start:g}", *input_options(demuxer), "-i", input_url(source),
               "-filter_complex", split_graph([rendition for rendition, _ in outputs], trim)]
    for index, (rendition, output) in enumerate(outputs):
        command += ["-map", f"[o{index}]", *video_options(rendition, fps, preset), *(RAW_TIMESTAMPS if growing else []),
                    "-f", SEGMENT_DEMUXER, "-y", str(output)]
    return command


def audio_command(source: Path, rendition: Rendition, output: Path, *, demuxer: str,
                  seconds: float | None = None) -> list[str]:
    """The audio of the whole source, encoded once (one AAC encoder: no priming gaps at chunk joins);
    timestamps as written (`RAW_TIMESTAMPS`: the growing first rung cuts it by packet time).

    `seconds`: the source's first `seconds` only, read a second further (as the first chunk's own
    encoder does): AAC from the same start is deterministic, so its packets before `seconds` are those
    of the whole-source encode."""
    reading = ["-t", f"{seconds + HEAD_AUDIO_MARGIN_SECONDS:g}"] if seconds is not None else []
    return [*COMMON, *reading, *input_options(demuxer), "-i", input_url(source), "-map", "0:a:0", "-vn",
            *audio_options(rendition, True), *RAW_TIMESTAMPS, "-f", SEGMENT_DEMUXER, "-y", str(output)]


def join_command(chunk_list: Path, audio: Path | None, directory: Path) -> list[str]:
    """One rung from its chunks (the concat demuxer over our own list of our own files, names relative to
    it) and the whole-source audio, stream-copied (no re-encode) into an HLS rung in `directory`:
    timestamps continue across chunks, segments start on the same frames as every other rung's."""
    audio_input = [*input_options(SEGMENT_DEMUXER), "-i", input_url(audio)] if audio else []
    return [*COMMON, "-protocol_whitelist", "file", "-f", "concat", "-i", input_url(chunk_list), *audio_input,
            "-map", "0:v:0", *(["-map", "1:a:0"] if audio else []), "-c", "copy", *hls_options(directory)]


def ticks(seconds: float) -> int:
    return round(seconds * MPEGTS_HZ)


def append_command(chunk: Path, audio: Path | None, directory: Path, start: float, end: float | None,
                   shift: float, first_segment: int) -> list[str]:
    """One chunk of the growing first rung as HLS segments in `directory`, numbered from `first_segment`,
    continuing the timestamps of the segments before it (no re-encode, no discontinuity).

    The chunk's video (`chunk_command(growing=True)`: its times start at the chunk's start) moves to the
    source's time; from the whole-source audio (`audio_command`) only the packets whose time lies in
    [start, end) are kept (`end` None: to the end), so every packet lands in exactly one chunk, as the
    first chunk's encoder cut them (`rung_command(head_seconds=...)`). `shift` is how much later than the
    raw timestamps the first chunk's muxer wrote its packets (`publish.timestamp_shift`); the HLS muxer
    adds MPEGTS_DELAY_SECONDS again, which the input offsets take back."""
    video_offset = start + shift - MPEGTS_DELAY_SECONDS
    audio_offset = shift - MPEGTS_DELAY_SECONDS
    inputs = ["-copyts", "-itsoffset", f"{video_offset:.6f}", *input_options(SEGMENT_DEMUXER), "-i", input_url(chunk)]
    maps, cut = ["-map", "0:v:0"], []
    if audio is not None:
        inputs += ["-itsoffset", f"{audio_offset:.6f}", *input_options(SEGMENT_DEMUXER), "-i", input_url(audio)]
        maps += ["-map", "1:a:0"]
        # The filter sees the audio's times after its input offset (before the muxer's delay): the
        # encoder's time + shift. Its `drop` must be 0 or 1: ffmpeg 5.1's noise filter takes a value
        # of -2 or less as "drop every n-th packet" (so a floor() of the distance in chunks kept a third
        # of the packets two chunks away and more). Commas in a filter's option are escaped.
        low = ticks(start + shift)
        outside = f"not(between(pts\\,{low}\\,{ticks(end + shift) - 1}))" if end is not None else f"lt(pts\\,{low})"
        cut = ["-bsf:a", f"noise=drop={outside}"]
    return [*COMMON, *inputs, *maps, "-c", "copy", *cut, "-f", "hls", "-hls_time", str(SEGMENT_SECONDS),
            "-hls_playlist_type", "vod", "-hls_flags", "independent_segments", "-start_number", str(first_segment),
            "-hls_segment_filename", str(directory / SEGMENT_PATTERN), str(directory / PLAYLIST)]


def first_packet_command(path: Path, kind: str) -> list[str]:
    """ffprobe: the pts of the first `kind` ("a"/"v") packet of our own MPEG-TS file."""
    return [FFPROBE, "-v", "error", *input_options(SEGMENT_DEMUXER), "-select_streams", f"{kind}:0",
            "-read_intervals", "%+2", "-show_entries", "packet=pts", "-of", "csv=p=0", input_url(path)]


def thumbnail_command(source: Path, output: Path, at_seconds: float, *, demuxer: str) -> list[str]:
    """One JPEG frame at `at_seconds`, at most THUMBNAIL_MAX_HEIGHT high, aspect kept."""
    return [
        *COMMON, "-ss", f"{at_seconds:.3f}", *input_options(demuxer), "-i", input_url(source),
        "-map", "0:v:0", "-frames:v", "1",
        "-vf", f"scale=-2:'min(ih,{THUMBNAIL_MAX_HEIGHT})'", "-q:v", "3", "-f", "image2", "-y", str(output),
    ]


def run(args: list[str], limits: ResourceLimits, cwd: Path | None = None,
        on_seconds: Callable[[float], None] | None = None, niceness: int = 0) -> None:
    """Run ffmpeg within `limits`; call `on_seconds` with the encoded seconds from `-progress pipe:1`.

    ffmpeg dies with this process (a killed work horse leaves no orphan encoder behind); `niceness`
    lowers its CPU priority. Raises FFmpegError with ffmpeg's last error line when it fails.
    """
    def prepare_child() -> None:
        die_with_parent()
        limits.apply()
        if niceness:
            # With scheduler autogroups (one per session), nice only ranks processes of one session:
            # a session of its own whose group is niced too yields to the encoders of other workers.
            os.setsid()
            os.nice(niceness)
            with contextlib.suppress(OSError):
                Path("/proc/self/autogroup").write_text(str(niceness))

    with tempfile.TemporaryFile() as stderr, subprocess.Popen(
        args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
        preexec_fn=prepare_child,
    ) as process:
        try:
            for seconds in progress.encoded_seconds(process.stdout):
                if on_seconds:
                    on_seconds(seconds)
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
        if returncode != 0:
            stderr.seek(0)
            raise FFmpegError(returncode, failure_message(returncode, stderr.read().decode(errors="replace")))


def failure_message(returncode: int, stderr: str) -> str:
    """ffmpeg's last error line, or the limit that killed it (SIGXCPU: out of CPU seconds)."""
    if returncode == -signal.SIGXCPU:
        return "it used more CPU time than a video may take"
    return last_line(stderr)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"
