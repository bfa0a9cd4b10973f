"""1. Transcode: a generated 30 s 1080p clip with audio, three ways.

- one ffmpeg process with a split filter graph writing all four rungs (built from the transcoder's own
  per-rung arguments: services/transcoder/ffmpeg.py `rung_command`, so codecs and bitrates are equal);
- the production pipeline (upload through the gateway, rq jobs per rung) with 1 transcoder worker;
- the same with 2 workers.
For each: time until the first rung is playable, time until the whole ladder is done, CPU time of all
processes involved, and the realtime factor (clip seconds per wall-clock second for the whole ladder).
Targets (issue 5): first play within 25% of the clip's duration; 2 workers no slower than the split.
"""
from __future__ import annotations

import resource
import shutil
import subprocess
import time
from pathlib import Path

from services.transcoder import ffmpeg, ladder, probe

from .harness import make_clip, tree_cpu_seconds, upload, video
from .measure import print_checks, print_table, ratio, save

CLIP_SECONDS = 30
FIRST_PLAY_SHARE = 0.25
LADDER_TIMEOUT = 600


def without_option(args: list[str], name: str) -> list[str]:
    """`args` minus every `name value` pair."""
    result, skip = [], False
    for index, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == name and index + 1 < len(args):
            skip = True
        else:
            result.append(arg)
    return result


def split_command(source: Path, media: probe.SourceMedia, rungs: list[ladder.Rendition]) -> list[str]:
    """One ffmpeg: decode once, split, scale per rung, and each rung's own output options from rung_command."""
    graph = f"[0:v]split={len(rungs)}" + "".join(f"[s{i}]" for i in range(len(rungs))) + ";" + ";".join(
        f"[s{i}]scale=-2:{rendition.height}[v{i}]" for i, rendition in enumerate(rungs))
    command = [*ffmpeg.COMMON, "-i", str(source), "-filter_complex", graph]
    for index, rendition in enumerate(rungs):
        rung_args = ffmpeg.rung_command(source, rendition, media.fps, media.has_audio)
        outputs = rung_args[rung_args.index("-i") + 2:]
        outputs = without_option(without_option(outputs, "-vf"), "-map")
        outputs = [f"{rendition.name}/{arg}" if arg in (ffmpeg.SEGMENT_PATTERN, ffmpeg.PLAYLIST) else arg
                   for arg in outputs]
        command += ["-map", f"[v{index}]"] + (["-map", "0:a:0"] if media.has_audio else []) + outputs
    return command


def run_split(source: Path, work_dir: Path) -> dict:
    media = probe.probe_source(source)
    rungs = [rendition for rendition in ladder.RENDITIONS if rendition.height <= media.height]
    shutil.rmtree(work_dir, ignore_errors=True)
    for rendition in rungs:
        (work_dir / rendition.name).mkdir(parents=True)
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(split_command(source, media, rungs), cwd=work_dir, stdin=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - usage_before.ru_utime - usage_before.ru_stime
    for rendition in rungs:
        assert (work_dir / rendition.name / ffmpeg.PLAYLIST).read_text().rstrip().endswith("#EXT-X-ENDLIST")
    shutil.rmtree(work_dir)
    # One output set is only complete when the process ends: first play = whole ladder.
    return {"first_playable_s": wall, "first_rung": "all", "ladder_s": wall,
            "cpu_s": cpu, "rungs": [r.name for r in rungs]}


def run_pipeline(context, source: Path, workers: int) -> dict:
    stack, session = context.stack, context.session
    names = stack.transcoder_names()
    assert len(names) >= workers, f"the stack runs {len(names)} transcoders, {workers} wanted"
    for name in names[workers:]:
        stack.stop(name)
    for name in names[:workers]:
        stack.start(name)
    pids = [stack.pid(name) for name in names[:workers]]
    cpu_before = sum(tree_cpu_seconds(pid) for pid in pids)
    video_id = upload(session, source, f"transcode bench, {workers} worker(s)")["id"]
    accepted = time.perf_counter()
    first_playable = first_rung = None
    while True:
        detail = video(session, video_id)
        now = time.perf_counter() - accepted
        assert detail["status"] != "failed" and not detail.get("renditions_failed"), detail
        if first_playable is None and detail["status"] == "ready":
            first_playable, first_rung = now, detail["renditions"][0]["rung"]
        if detail["status"] == "ready" and not detail["renditions_pending"]:
            ladder_done = now
            break
        assert now < LADDER_TIMEOUT, f"ladder not done after {LADDER_TIMEOUT} s"
        time.sleep(0.1)
    time.sleep(1.5)  # the last work horse exits and is reaped: its CPU time moves to its worker
    cpu = sum(tree_cpu_seconds(pid) for pid in pids) - cpu_before
    for name in names[workers:]:
        stack.start(name)
    return {"video_id": video_id, "first_playable_s": first_playable, "first_rung": first_rung,
            "ladder_s": ladder_done, "cpu_s": cpu, "rungs": [r["rung"] for r in detail["renditions"]]}


def run(context) -> dict:
    source = make_clip(CLIP_SECONDS, 1920, 1080)
    results = {
        "split": run_split(source, context.stack.var_dir / "bench" / "split"),
        "pipeline_1_worker": run_pipeline(context, source, 1),
        "pipeline_2_workers": run_pipeline(context, source, 2),
    }
    context.remember_video(results["pipeline_2_workers"]["video_id"], results["pipeline_2_workers"]["rungs"])
    labels = {"split": "one ffmpeg, split filter graph", "pipeline_1_worker": "pipeline, 1 worker",
              "pipeline_2_workers": "pipeline, 2 workers"}
    rows = [[labels[key], r["first_playable_s"], r["first_rung"], r["ladder_s"], r["cpu_s"],
             CLIP_SECONDS / r["ladder_s"]] for key, r in results.items()]
    two, split = results["pipeline_2_workers"], results["split"]
    ratios = {
        "ladder 2 workers / split": ratio(two["ladder_s"], split["ladder_s"]),
        "ladder 1 worker / split": ratio(results["pipeline_1_worker"]["ladder_s"], split["ladder_s"]),
        "first play 2 workers / clip duration": ratio(two["first_playable_s"], CLIP_SECONDS),
        "cpu 2 workers / split": ratio(two["cpu_s"], split["cpu_s"]),
    }
    checks = {
        f"first play within {FIRST_PLAY_SHARE:.0%} of the clip (2 workers)": {
            "met": two["first_playable_s"] <= FIRST_PLAY_SHARE * CLIP_SECONDS,
            "detail": f"{two['first_playable_s']:.1f} s vs {FIRST_PLAY_SHARE * CLIP_SECONDS:.1f} s allowed"},
        "whole ladder with 2 workers no slower than the split": {
            "met": two["ladder_s"] <= split["ladder_s"],
            "detail": f"{two['ladder_s']:.1f} s vs {split['ladder_s']:.1f} s"},
    }
    print_table(f"Transcode: {CLIP_SECONDS} s 1080p clip with audio -> {', '.join(split['rungs'])}",
                ["variant", "first play s", "first rung", "whole ladder s", "CPU s", "realtime x"], rows)
    print_table("Ratios", ["", "value"], [[name, value] for name, value in ratios.items()])
    print_checks(checks)
    data = {"clip_seconds": CLIP_SECONDS, "clip_bytes": source.stat().st_size, "results": results,
            "ratios": ratios, "checks": checks}
    save("transcode", data)
    return data
