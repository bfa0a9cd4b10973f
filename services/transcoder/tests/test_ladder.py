"""Which rungs a source gets, and in which order their jobs are enqueued."""
import pytest

from services.transcoder.ladder import choose_rungs, rendition_named, small_source_rendition


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


def test_240p_source_gets_one_rung_at_its_own_height():
    rungs = choose_rungs(240)
    assert [(r.name, r.height) for r in rungs] == [("240p", 240)]
    assert rungs[0].video_kbps < choose_rungs(360)[0].video_kbps


def test_odd_small_height_is_made_even():
    assert small_source_rendition(241).name == "240p"


def test_taller_than_1080p_source_gets_the_four_rungs():
    assert names(2160) == ["480p", "360p", "720p", "1080p"]


def test_rendition_named_knows_table_rows_and_small_source_rungs():
    assert rendition_named("720p").height == 720
    assert rendition_named("240p").height == 240
    for bad in ("360", "2000p", "480p/../x", "0p", "360p "):
        with pytest.raises(ValueError):
            rendition_named(bad)
