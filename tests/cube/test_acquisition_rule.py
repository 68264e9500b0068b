"""--acquisition_rule=authors reproduces the authors' calendar-day windows."""

import dataclasses

import pandas as pd

from tf_landslide.cube import channels, events
from tf_landslide.cube.open import open_cube


def _times(ds, indices):
    return [str(ds["timestep"].values[i])[:16] for i in indices]


def test_authors_rule_drops_the_last_pre_event_day_pass_and_starts_after_at_midnight(tiny_cube):
    ds = open_cube(tiny_cube)
    hokkaido = events.PRESETS["hokkaido"]
    # Their 'before' window ends with the whole event day, which holds the 20:40 pass after the
    # trigger; range(-1-k, -1) then drops exactly that pass.
    authors = channels.select_acquisitions(ds, hokkaido, 2, "descending", rule="authors")
    assert _times(ds, authors.before) == ["2018-08-12T20:40", "2018-08-24T20:40"]
    # Their 'after' window starts at 00:00 of the given day: 2018-09-07 in their Hokkaido run.
    theirs = dataclasses.replace(hokkaido, end=pd.Timestamp("2018-09-07"))
    assert _times(ds, channels.select_acquisitions(ds, theirs, 1, "descending", rule="authors").after) == [
        "2018-09-17T20:40"
    ]
    paper = channels.select_acquisitions(ds, theirs, 1, "descending", rule="paper")
    assert _times(ds, paper.after) == ["2018-09-17T20:40"]
    # With the trigger time as the end, the paper's rule keeps the evening pass of the event day.
    assert _times(ds, channels.select_acquisitions(ds, hokkaido, 1, "descending").after) == ["2018-09-05T20:40"]


def test_authors_rule_keeps_all_when_exactly_k_are_available(tiny_cube):
    ds = open_cube(tiny_cube)
    early = events.Event("early", pd.Timestamp("2018-08-13T00:00"), pd.Timestamp("2018-08-13T00:00"))
    chosen = channels.select_acquisitions(ds, early, 2, "descending", rule="authors")
    assert _times(ds, chosen.before) == ["2018-07-31T20:40", "2018-08-12T20:40"]
