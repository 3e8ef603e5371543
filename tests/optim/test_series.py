"""Series on a plan's slots: covered, resampled, filled, or refused with the reason."""

from __future__ import annotations

import pytest

from cloud.optim.errors import SeriesError
from cloud.optim.series import fit_to_slots, parse_series, step_of

T0 = 1_767_225_600  # 2026-01-01T00:00Z
QUARTERS = range(T0, T0 + 8 * 900, 900)  # two hours of quarter hours


def hourly(n: int = 2, value: float = 4.0) -> dict[int, float]:
    return {T0 + h * 3600: value + h for h in range(n)}


def test_a_covering_series_is_taken_as_it_is():
    series = {t: 1.0 for t in QUARTERS}
    fitted = fit_to_slots(series, QUARTERS, source="t.csv", per_slot=True)
    assert fitted.values == series and fitted.notes == ()


def test_an_hourly_series_on_quarter_hours_is_refused_and_the_error_says_why():
    with pytest.raises(SeriesError) as err:
        fit_to_slots(hourly(), QUARTERS, source="p.csv", per_slot=False)
    text = str(err.value)
    assert text.startswith("p.csv: no value for 6 of the plan's 8 slots")
    assert "00:15 UTC" in text and "3600 s: --resample" in text and "--fill" in text


def test_resampling_repeats_a_rate_and_splits_a_quantity_per_slot():
    prices = fit_to_slots(hourly(), QUARTERS, source="p.csv", per_slot=False, resample=True)
    assert [prices.values[t] for t in QUARTERS] == [4.0] * 4 + [5.0] * 4
    (note,) = prices.notes
    assert "p.csv" in note and "3600 s" in note and "repeated" in note
    target = fit_to_slots(hourly(), QUARTERS, source="t.csv", per_slot=True, resample=True)
    assert [target.values[t] for t in QUARTERS] == [1.0] * 4 + [1.25] * 4
    assert "split evenly" in target.notes[0]
    assert sum(target.values.values()) == pytest.approx(sum(hourly().values()))


def test_resampling_sums_or_averages_a_finer_series_onto_hourly_slots():
    hours = range(T0, T0 + 2 * 3600, 3600)
    fine = {t: float(i) for i, t in enumerate(QUARTERS)}
    target = fit_to_slots(fine, hours, source="t.csv", per_slot=True, resample=True)
    assert target.values == {T0: 0 + 1 + 2 + 3, T0 + 3600: 4 + 5 + 6 + 7}
    prices = fit_to_slots(fine, hours, source="p.csv", per_slot=False, resample=True)
    assert prices.values == {T0: 1.5, T0 + 3600: 5.5}
    assert "averaged" in prices.notes[0]
    # without --resample a finer series is not on the plan's grid
    with pytest.raises(SeriesError, match=r"not on the offers' 3600 s slot grid.*--resample"):
        fit_to_slots(fine, hours, source="p.csv", per_slot=False)


def test_a_series_for_another_day_is_refused_unless_filled():
    other_day = {t + 86_400: 1.0 for t in QUARTERS}
    with pytest.raises(SeriesError, match="another day"):
        fit_to_slots(other_day, QUARTERS, source="t.csv", per_slot=True)
    filled = fit_to_slots(other_day, QUARTERS, source="t.csv", per_slot=True, fill=True)
    assert all(filled.values[t] == 0.0 for t in QUARTERS)
    (note,) = filled.notes
    assert "8 of the plan's 8 slots" in note and "--fill" in note


def test_a_step_that_does_not_fit_the_slots_cannot_be_resampled():
    odd = {T0 + i * 600: 1.0 for i in range(12)}  # every 10 minutes
    with pytest.raises(SeriesError, match="600 s cannot be resampled onto 900 s"):
        fit_to_slots(odd, QUARTERS, source="t.csv", per_slot=True, resample=True)
    assert step_of(odd) == 600 and step_of({T0: 1.0}) is None


def test_a_header_may_follow_comment_lines():
    text = "# a comment\n\n# another\ntime,value\n2026-01-01T00:00:00Z,1.5\n"
    assert parse_series(text, source="t.csv") == {T0: 1.5}
    with pytest.raises(SeriesError, match=r"t\.csv:6"):
        parse_series(text + "time,value\n", source="t.csv")
