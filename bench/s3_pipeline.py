"""The pipeline on S3 (MEDIA_STORAGE=s3) against local disk: first play, a whole ladder's CPU time, a
1 GiB upload.

Runs last of all: it measures first play and a ladder on the context's stack (local disk), then replaces
that stack by one with MEDIA_STORAGE=s3 on the same slot (scripts/stack.py runs its SeaweedFS, fresh
state), measures there, and ends on a fresh local stack again for the second local ladder:
- first play (the transcode benchmark's: the upload's 201 -> playable) of the 1-, 5- and 20-minute 1080p
  sources against the same on local disk; on S3 the original is downloaded for the probe before the
  first rung starts (on the transcoder that probes, once); target: under 10 s for every length, as local;
- the same clip's whole ladder, CPU time of the transcoder workers and everything under them (work
  horses, ffmpeg, boto3's downloads and uploads) against local mode; target: under 10% more. The S3
  server's own CPU time is reported beside it (on a real deployment it is another machine's). The local
  ladder runs before and after the S3 one (on a fresh local stack again at the end) and S3 is compared
  with their mean: a ladder this short is about 18 CPU-s, and the host's speed drifts by 10-30% over
  minutes;
- a 1 GiB upload through the gateway, streamed into the bucket part by part, with the public catalog's
  memory summed over all its processes (the gunicorn master and every worker; RSS, PSS beside it), idle
  and at peak; targets: under 150 MiB RSS at peak, and the upload itself adding under three parts (it
  holds one). What importing boto3 costs a process is measured on its own too.

`make bench BENCH=s3-upload` runs the upload alone (on a fresh S3 stack, or the one s3-pipeline left).
"""
from __future__ import annotations

import subprocess
import sys

from videoflix_shared.config import Settings
from videoflix_shared.storage import PART_BYTES, storage_from_settings

from .harness import Stack, make_clip, process_tree, register_and_login, tree_cpu_seconds
from .measure import print_checks, print_table, ratio, save
from .transcode import FIRST_PLAY_TARGET_S, first_plays, run_pipeline
from .upload import PEAK_RSS_TARGET, SIZE, PeakMemory, curl_upload

CLIP_SECONDS = 12
CPU_OVERHEAD_TARGET = 0.10
UPLOAD_GROWTH_BOUND = 3 * PART_BYTES
# Resident memory of a fresh interpreter after the code (VmRSS: ru_maxrss would count the forked parent).
RSS_AFTER = "print(next(int(line.split()[1]) * 1024 for line in open('/proc/self/status') if line.startswith('VmRSS')))"
BOTO3_IMPORT = "import boto3; boto3.client('s3', region_name='us-east-1'); " + RSS_AFTER
BARE_PYTHON = RSS_AFTER


def rss_after(code: str) -> int:
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def stack_on(context, storage: str) -> Stack:
    """The context's stack replaced by one with MEDIA_STORAGE=`storage` (same slot and overrides, fresh
    state); kept if it is one."""
    current = context.stack
    if current.env.get("MEDIA_STORAGE", "local") == storage:
        return current
    current.down()
    stack = Stack(current.slot, **{key: value for key, value in current.env.items() if key == "MAX_UPLOAD_BYTES"},
                  MEDIA_STORAGE=storage)
    stack.reset()
    stack.up()
    context.stack, context.session, context.videos = stack, register_and_login(stack), {}
    return stack


def upload_into_s3(context) -> dict:
    stack = context.stack
    source = stack.var_dir / "bench" / "upload-1GiB.bin"
    source.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "wb") as handle:
        handle.truncate(SIZE)
    try:
        catalog = PeakMemory(stack.pid("catalog"))
        processes = len(process_tree(stack.pid("catalog")))
        catalog.start()
        created, seconds = curl_upload(context, source)
        catalog.done.set()
        catalog.join()
    finally:
        source.unlink(missing_ok=True)
    storage = storage_from_settings(Settings.from_env(stack.env))
    stored = sum(item.size for item in storage.list(f"originals/{created['id']}/"))
    assert stored == SIZE, f"the bucket holds {stored} bytes of {SIZE}"
    assert not (stack.media_dir / "originals").exists() or not any((stack.media_dir / "originals").iterdir()), \
        "an original landed on the catalog's disk"
    assert context.session.delete(f"video/{created['id']}/").status_code == 204
    return {"seconds": seconds, "processes": processes, "idle": catalog.idle, "peak": catalog.peak}


def upload_report(upload: dict) -> dict:
    """Prints the upload's table; returns its checks."""
    peak, idle = upload["peak"], upload["idle"]
    growth = peak["tree_rss"] - idle["tree_rss"]
    print_table(f"Upload: 1 GiB into S3 (catalog: {upload['processes']} processes, RSS and PSS summed)",
                ["seconds", "MiB/s", "idle RSS MiB", "peak RSS MiB", "idle PSS MiB", "peak PSS MiB",
                 "largest process MiB"],
                [[upload["seconds"], SIZE / 2**20 / upload["seconds"], idle["tree_rss"] / 2**20,
                  peak["tree_rss"] / 2**20, idle["tree_pss"] / 2**20, peak["tree_pss"] / 2**20,
                  peak["largest_process_rss"] / 2**20]])
    return {
        "catalog peak RSS under 150 MiB during a 1 GiB upload into S3 (all its processes, RSS summed)": {
            "met": peak["tree_rss"] < PEAK_RSS_TARGET,
            "detail": f"{peak['tree_rss'] / 2**20:.0f} MiB (PSS {peak['tree_pss'] / 2**20:.0f}), "
                      f"idle {idle['tree_rss'] / 2**20:.0f} MiB"},
        f"the upload adds less than {UPLOAD_GROWTH_BOUND // 2**20} MiB (three {PART_BYTES // 2**20} MiB parts)": {
            "met": growth < UPLOAD_GROWTH_BOUND, "detail": f"+{growth / 2**20:.1f} MiB RSS"},
    }


def run_upload(context) -> dict:
    """`BENCH=s3-upload`: the 1 GiB upload alone."""
    stack_on(context, "s3")
    upload = upload_into_s3(context)
    checks = upload_report(upload)
    print_checks(checks)
    data = {"upload": upload, "checks": checks}
    save("s3_upload", data)
    return data


def first_play_report(local: list[dict], on_s3: list[dict]) -> dict:
    """Prints the first-play table; returns its checks."""
    print_table("First play: upload's 201 -> playable, local disk vs S3 (1080p with audio)",
                ["source", "local s", "S3 s", "S3 / local", "S3 ratio to duration"],
                [[f"{here['minutes']} min", here["first_playable_s"], there["first_playable_s"],
                  ratio(there["first_playable_s"], here["first_playable_s"]), there["ratio_to_duration"]]
                 for here, there in zip(local, on_s3)])
    return {f"first play on S3 under {FIRST_PLAY_TARGET_S} s, {r['minutes']} min": {
        "met": r["first_playable_s"] < FIRST_PLAY_TARGET_S, "detail": f"{r['first_playable_s']:.1f} s"}
        for r in on_s3}


def run(context) -> dict:
    source = make_clip(CLIP_SECONDS, 1920, 1080)
    local_before = run_pipeline(context, source, 1)
    local_first_plays = first_plays(context)  # after the ladder: no deleted video's job left in its CPU time
    stack = stack_on(context, "s3")
    seaweedfs_cpu_before = tree_cpu_seconds(stack.pid("seaweedfs"))
    on_s3 = run_pipeline(context, source, 1)
    seaweedfs_cpu = tree_cpu_seconds(stack.pid("seaweedfs")) - seaweedfs_cpu_before
    s3_first_plays = first_plays(context)
    upload = upload_into_s3(context)
    boto3_rss, bare_rss = rss_after(BOTO3_IMPORT), rss_after(BARE_PYTHON)
    stack_on(context, "local")
    local_after = run_pipeline(context, source, 1)

    local_cpu = (local_before["cpu_s"] + local_after["cpu_s"]) / 2
    overhead = on_s3["cpu_s"] / local_cpu - 1
    rows = [["ladder, local disk, before S3", local_before["ladder_s"], local_before["cpu_s"], None],
            ["ladder, S3 (transcoders)", on_s3["ladder_s"], on_s3["cpu_s"], overhead],
            ["ladder, local disk, after S3", local_after["ladder_s"], local_after["cpu_s"], None],
            ["  SeaweedFS meanwhile (not counted)", None, seaweedfs_cpu, None]]
    checks = first_play_report(local_first_plays, s3_first_plays)
    checks |= {
        f"ladder CPU time on S3 under {CPU_OVERHEAD_TARGET:.0%} more than local": {
            "met": overhead < CPU_OVERHEAD_TARGET,
            "detail": f"{on_s3['cpu_s']:.1f} s vs {local_cpu:.1f} s (mean of {local_before['cpu_s']:.1f} "
                      f"and {local_after['cpu_s']:.1f}): {overhead:+.1%}"},
    }
    print_table(f"Ladder of a {CLIP_SECONDS} s 1080p clip (1 worker), local disk vs S3",
                ["variant", "whole ladder s", "CPU s", "CPU overhead (to the local mean)"], rows)
    checks.update(upload_report(upload))
    print(f"  importing boto3 (and making a client): RSS {boto3_rss / 2**20:.0f} MiB, "
          f"a bare interpreter {bare_rss / 2**20:.0f} MiB (+{(boto3_rss - bare_rss) / 2**20:.0f} MiB per process)")
    print_checks(checks)
    data = {"first_play": {"local": local_first_plays, "s3": s3_first_plays},
            "clip_seconds": CLIP_SECONDS, "local": [local_before, local_after], "s3": on_s3,
            "seaweedfs_cpu_s": seaweedfs_cpu, "cpu_overhead": overhead,
            "cpu_ratio_s3_over_local": ratio(on_s3["cpu_s"], local_cpu), "upload": upload,
            "boto3_import_rss_bytes": boto3_rss, "bare_python_rss_bytes": bare_rss, "checks": checks}
    save("s3_pipeline", data)
    return data

