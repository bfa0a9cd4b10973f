"""Load generation (wrk), latency percentiles, and the table + JSON every benchmark reports."""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _duration_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(url: str, connections: int, seconds: int = 6, headers: dict[str, str] | None = None,
        threads: int = 2, timeout_s: int = 10) -> dict:
    """Run wrk once and return requests/s, MB/s, latency percentiles (ms) and error counts."""
    command = ["wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{seconds}s",
               "--timeout", f"{timeout_s}s", "--latency"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(command + [url], capture_output=True, text=True, check=True,
                            timeout=seconds + timeout_s + 30).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> dict:
    requests_per_s = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    amount, unit = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", output).groups()
    latency = {f"p{p}_ms": _duration_ms(value)
               for p, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE)}
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    total = re.search(r"(\d+) requests in", output)
    return {
        "requests_per_s": requests_per_s,
        "mb_per_s": float(amount) * _BYTES[unit] / 1024**2,
        **latency,
        "requests": int(total.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
    }


def wrk_rounds(variants: dict[str, tuple[str, str, dict]], connections: tuple[int, ...], seconds: int,
               rounds: int) -> tuple[dict, list[list], list[dict]]:
    """wrk against every variant (`key: (label, url, headers)`) at each connection count, in rounds that
    interleave the variants (a burst of load from elsewhere on the machine hits them alike); each variant
    keeps its best round. Returns (best results per connections and key, table rows with the failed
    requests of all rounds, every round)."""
    runs = [{c: {key: wrk(url, c, seconds, headers) for key, (_, url, headers) in variants.items()}
             for c in connections} for _ in range(rounds)]
    results = {c: {key: max((run[c][key] for run in runs), key=lambda m: m["requests_per_s"])
                   for key in variants} for c in connections}
    rows = []
    for c, measured in results.items():
        for key, (label, _, _) in variants.items():
            m = measured[key]
            errors = sum(run[c][key]["non_2xx"] + run[c][key]["socket_errors"] for run in runs)
            rows.append([f"({key}) {label}", c, m["requests_per_s"], m["mb_per_s"], m["p50_ms"], m["p99_ms"], errors])
    return results, rows, runs


WRK_COLUMNS = ["variant", "conns", "req/s", "MiB/s", "p50 ms", "p99 ms", "errors (all rounds)"]


def no_errors_check(rows: list[list]) -> dict:
    """The check that no request of any round failed (the last column of `wrk_rounds`' rows)."""
    return {"met": all(row[-1] == 0 for row in rows), "detail": f"{sum(row[-1] for row in rows)} failed requests"}


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if value is None:
        return "-"
    return str(value)


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    cells = [columns] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[index]) for row in cells) for index in range(len(columns))]
    print(f"\n## {title}")
    for number, row in enumerate(cells):
        print("  ".join(cell.rjust(width) if index else cell.ljust(width)
                        for index, (cell, width) in enumerate(zip(row, widths))))
        if number == 0:
            print("  ".join("-" * width for width in widths))


def print_checks(checks: dict[str, dict]) -> None:
    for name, check in checks.items():
        print(f"  target {name}: {'MET' if check['met'] else 'NOT MET'} ({check['detail']})")


def machine() -> dict:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "loadavg_1_5_15_min_when_saved": [round(x, 2) for x in load]}


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"  -> {path.relative_to(RESULTS.parents[1])}")
    return path
