"""Which rungs a source gets, and in which order their jobs are enqueued."""
import pytest

from services.transcoder import ladder
from services.transcoder.ffmpeg import SEGMENT_SECONDS
from services.transcoder.ladder import BY_NAME, choose_rungs, rendition_for, small_source_rendition


def names(source_height: int) -> list[str]:
    return [rendition.name for rendition in choose_rungs(source_height)]


def test_1080p_source_gets_every_rung_480p_first():
    assert names(1080) == ["480p", "360p", "720p", "1080p"]


def test_720p_source_is_never_upscaled():
    assert names(720) == ["480p", "360p", "720p"]


def test_500p_source_stops_at_the_rung_below_it():
    assert names(500) == ["480p", "360p"]


def test_source_below_480p_starts_with_its_highest_rung():
    assert names(400) == ["360p"]


def test_240p_source_gets_one_rung_named_360p_at_its_own_height():
    [rung] = choose_rungs(240)
    assert (rung.name, rung.height) == ("360p", 240)
    assert rung.video_kbps < BY_NAME["360p"].video_kbps and rung.profile == BY_NAME["360p"].profile


def test_odd_small_height_is_made_even():
    assert small_source_rendition(241).height == 240


def test_taller_than_1080p_source_gets_the_four_rungs():
    assert names(2160) == ["480p", "360p", "720p", "1080p"]


def test_rendition_for_a_rung_job():
    assert rendition_for("720p", 1080) == BY_NAME["720p"]
    assert rendition_for("360p", 1080) == BY_NAME["360p"]
    assert rendition_for("360p", 240).height == 240
    for name, source_height in (("1080p", 720), ("480p", 240), ("240p", 240), ("../x", 1080)):
        with pytest.raises(ValueError):
            rendition_for(name, source_height)


@pytest.mark.parametrize("duration, expected", [
    (5.0, [(0, None)]),
    (60.0, [(0, None)]),
    (60.5, [(0, None)]),  # a sliver under a second joins the chunk before it
    (61.5, [(0, 60), (60, None)]),
    (130.0, [(0, 60), (60, 60), (120, None)]),
    (180.0, [(0, 60), (60, 60), (120, None)]),
])
def test_first_rung_chunks_start_on_segment_boundaries_and_the_last_runs_to_the_end(duration, expected):
    assert ladder.first_rung_chunks(duration) == expected


@pytest.mark.parametrize("duration, expected", [
    (180.0, [(0, 60), (60, 60), (120, None)]),  # a short source: the first rung's chunks
    (600.0, [(index * 60, 60 if index < 9 else None) for index in range(10)]),
    (620.0, [(index * 32, 32 if index < 19 else None) for index in range(20)]),  # longer: shorter chunks
])
def test_the_other_rungs_of_a_long_source_are_cut_shorter_on_the_same_segment_boundaries(duration, expected):
    assert ladder.chunks(duration) == expected
    for cut in (ladder.chunks, ladder.first_rung_chunks):
        assert all(start % SEGMENT_SECONDS == 0 for start, _ in cut(duration * 7))
        assert all(seconds % SEGMENT_SECONDS == 0 for _, seconds in cut(duration * 7) if seconds is not None)
