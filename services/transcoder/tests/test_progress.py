"""Parsing ffmpeg's `-progress pipe:1` output and throttling the reports."""
from services.transcoder.progress import Throttle, encoded_seconds, percent_done

BLOCK = """frame={frame}
fps=0.00
stream_0_0_q=-0.0
bitrate=N/A
total_size=N/A
out_time_us={us}
out_time_ms={us}
out_time=00:00:00.000000
dup_frames=0
drop_frames=0
speed=68.7x
progress={state}
"""


def progress_output(*times_us, early_na=True) -> list[str]:
    text = BLOCK.format(frame=0, us="N/A", state="continue") if early_na else ""
    for index, us in enumerate(times_us):
        text += BLOCK.format(frame=index, us=us, state="end" if index == len(times_us) - 1 else "continue")
    return text.splitlines(keepends=True)


def test_one_value_per_block_in_seconds_and_na_skipped():
    assert list(encoded_seconds(progress_output(92880, 2020136, 6000000))) == [0.09288, 2.020136, 6.0]


def test_only_out_time_ms_is_enough():
    lines = ["out_time_ms=1500000\n", "progress=continue\n", "out_time_ms=-5\n", "progress=end\n"]
    assert list(encoded_seconds(lines)) == [1.5, 0.0]


def test_partial_block_without_progress_line_yields_nothing():
    assert list(encoded_seconds(["out_time_us=1000000\n", "frame=3\n"])) == []


def test_percent_done_is_clamped():
    assert [percent_done(s, 6.0) for s in (0, 0.06, 3, 5.99, 6, 6.2)] == [0, 1, 50, 99, 100, 100]
    assert percent_done(3, 0) == 0


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_throttle_lets_through_changes_at_most_every_interval():
    clock = FakeClock()
    throttle = Throttle(interval=2.0, clock=clock)
    passed = []
    for step, percent in enumerate([1, 5, 10, 10, 10, 40, 41, 90, 100]):
        clock.now = 100.0 + step * 0.9
        if throttle.allows(percent):
            passed.append(percent)
    # at 100.0, 100.9, 101.8, 102.7, 103.6, 104.5, 105.4, 106.3, 107.2: passes at 100.0, 102.7, 105.4
    assert passed == [1, 10, 41]


def test_throttle_drops_unchanged_percent_even_after_the_interval():
    clock = FakeClock()
    throttle = Throttle(interval=2.0, clock=clock)
    assert throttle.allows(7)
    clock.now += 10
    assert not throttle.allows(7)
    assert throttle.allows(8)
