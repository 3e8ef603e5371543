"""The operator's commands on a store: what they list, what they say when a listing is cut
short, and how they answer for something that is not there. Each runs on both databases."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cloud.cli import main as cli_main
from cloud.fman import open_store
from protocol.samples import NOW

from .test_store import location, new_schedule, offer_record

__all__ = ["location"]  # the fixture, shared with the store's tests


def atp(*args: str):
    return CliRunner().invoke(cli_main, list(args))


def _offers(location: str, n: int) -> None:
    with open_store(location) as s:
        s.put_offers([offer_record(f"o{i:02}") for i in range(n)])
        assert s.acquire_lease("planner", "w", ttl_s=60)
        s.add_schedules([new_schedule(f"o{i:02}") for i in range(n)], now=NOW, holder="w")


def test_a_listing_cut_at_its_limit_says_how_many_there_are(location):
    """``atp offers list`` stopped at 1,000 rows with no word that there were more."""
    _offers(location, 5)
    for args, what in ((["offers", "list"], "offers"), (["schedules", "show"], "schedules")):
        for fmt in ([], ["--json"]):
            out = atp(*args, "--store", location, "--limit", "3", *fmt)
            assert out.exit_code == 0, out.output
            assert out.stderr.strip() == f"showing 3 of 5 {what}; pass --limit 5 to list them all"
            if fmt:
                assert len(json.loads(out.stdout)) == 3
        whole = atp(*args, "--store", location, "--limit", "5")
        assert whole.exit_code == 0 and whole.stderr == ""


def test_schedules_of_an_offer_that_is_not_there_is_an_error(location):
    """``atp schedules show nope`` exited 0 with an empty table; ``offers show nope`` exits 1."""
    _offers(location, 1)
    for args in (["schedules", "show", "nope"], ["offers", "show", "nope"]):
        out = atp(*args, "--store", location)
        assert out.exit_code == 1
        (line,) = out.output.strip().splitlines()
        assert "no offer 'nope'" in line
    assert atp("schedules", "show", "o00", "--store", location).exit_code == 0


def test_atp_readings_lists_what_fman_kept(location):
    """Readings reached FMAN, but no command listed them (``atp portfolio`` showed ``-``)."""
    from cloud.fman.store import Reading

    with open_store(location) as s:
        s.put_readings(
            [
                Reading(
                    agent="a",
                    device=d,
                    start=NOW + i * 900,
                    duration_s=900,
                    energy_kwh=0.25,
                    offer_id="o00" if d == "plug" else "",
                    received_at=NOW,
                )
                for d in ("hp", "plug")
                for i in range(3)
            ]
        )
    out = atp("readings", "list", "--store", location, "--device", "plug", "--json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [(r["device"], r["start"], r["offer_id"]) for r in rows] == [
        ("plug", NOW + i * 900, "o00") for i in range(3)
    ]
    out = atp("readings", "list", "--store", location, "--from", str(NOW + 900), "--limit", "2")
    assert out.exit_code == 0, out.output
    assert "2 reading(s), 0.500 kWh" in out.stdout
    assert out.stderr.strip() == "showing 2 of 4 readings; pass --limit 4 to list them all"


def _planned(tmp_path, offers_file, *target_args: str) -> set[str]:
    out = atp("plan", "--offers", str(offers_file), *target_args, "--time-limit", "2", "--json")
    assert out.exit_code == 0, out.output
    return {s["offer_id"] for s in json.loads(out.stdout)["schedules"]}


def test_export_feeds_plan_and_validate_in_one_go(location, tmp_path):
    """Feeding ``atp plan`` from a store took one ``offers show --json`` per offer;
    ``offers list --json`` and the demo's ``target.json`` were refused by ``atp plan``."""
    from cloud.fman import series

    _offers(location, 4)
    target = {NOW + i * 900: 0.5 for i in range(-96, 192)}
    with open_store(location) as s:
        s.put_series("target", target)
    ids = {f"o{i:02}" for i in range(4)}
    offers_file, target_file = tmp_path / "offers.json", tmp_path / "target.csv"
    out = atp("export", "--store", location, "--out", str(offers_file))
    assert out.exit_code == 0, out.output
    assert out.stderr.strip() == f"wrote 4 offer(s) to {offers_file}"
    out = atp("export", "--store", location, "--what", "series", "--out", str(target_file))
    assert out.exit_code == 0, out.output
    assert _planned(tmp_path, offers_file, "--target", str(target_file)) == ids
    # the file is not replaced unless asked
    again = atp("export", "--store", location, "--out", str(offers_file))
    assert again.exit_code == 1 and "--force" in again.output
    # what `offers list --json` prints, and the JSON series form the demo writes
    listing, demo_target = tmp_path / "listing.json", tmp_path / "target.json"
    out = atp("offers", "list", "--store", location, "--json")
    listing.write_text(out.stdout)
    demo_target.write_bytes(series.to_json(target))
    assert _planned(tmp_path, listing, "--target", str(demo_target)) == ids
    # offers with their schedules in force: validate checks each schedule against its offer
    both = tmp_path / "both.json"
    assert atp("export", "--store", location, "--what", "all", "--out", str(both)).exit_code == 0
    out = atp("offer", "validate", str(both), "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert sorted(report["offers"]) == sorted(ids) and len(report["schedules"]) == 4
    assert all(s["checked_against_offer"] for s in report["schedules"])
    out = atp("export", "--store", location, "--what", "schedules", "--agent", "nobody")
    assert out.exit_code == 0 and json.loads(out.stdout) == []


def _portfolio_store(location: str, target: dict[int, float] | None = None) -> None:
    """o1 scheduled half an hour later than its default, o2 at its default (0.4 kWh in each
    of its two slots from NOW + 900)."""
    with open_store(location) as s:
        s.put_offers([offer_record("o1"), offer_record("o2")])
        s.add_schedules([new_schedule("o1", start=NOW + 1800)], now=NOW)
        if target:
            s.put_series("target", target)


def test_portfolio_without_a_target_says_it_balances_to_zero(location):
    """It reported a baseline imbalance of 0.0 and named no objective."""
    from cloud.fman import open_reader, report

    _portfolio_store(location)
    with open_reader(location) as r:
        p = report.portfolio(r)
    assert p.objective == report.BALANCE_TO_ZERO
    assert (round(p.imbalance_baseline_kwh, 6), round(p.imbalance_scheduled_kwh, 6)) == (1.6, 1.5)
    out = atp("portfolio", "--store", location)
    assert out.exit_code == 0, out.output
    assert "objective: balance to zero (no target series in the store)" in out.stdout
    assert "imbalance against zero" in out.stdout and "baseline 1.6 kWh" in out.stdout


def test_portfolio_in_a_window_counts_only_the_window(location):
    """With --from/--to, the offers and the energy shifted were those of the whole store."""
    from cloud.fman import open_reader, report

    _portfolio_store(location)
    with open_reader(location) as r:
        p = report.portfolio(r, start=NOW + 2700, end=NOW + 3600)
    assert [s.start for s in p.slots] == [NOW + 2700]
    assert p.offers == 1  # o2 has no energy in the window
    assert round(p.shifted_kwh, 6) == 0.2  # o1's 0.4 kWh moved into it, counted half
    assert (p.imbalance_baseline_kwh, round(p.imbalance_scheduled_kwh, 6)) == (0.0, 0.4)


def test_portfolio_hourly_sums_the_quarter_hour_target(location):
    """``--resolution 3600`` set 15-minute target rows against hourly sums."""
    from cloud.fman import open_reader, report

    _portfolio_store(location, {NOW + i * 900: 0.25 for i in range(8)})
    with open_reader(location) as r:
        p = report.portfolio(r, resolution_s=3600)
    assert [(s.start, s.target_kwh, round(s.baseline_kwh, 6)) for s in p.slots] == [
        (NOW, 1.0, 1.6),
        (NOW + 3600, 1.0, 0.0),
    ]
    assert p.objective == report.BALANCE_TO_TARGET
    assert round(p.imbalance_baseline_kwh, 6) == 1.6  # |1.6 - 1| + |0 - 1|


def test_the_plot_of_a_window_shows_its_last_slot(location, tmp_path):
    """The steps ended at the last slot's start, so the last slot of a window was missing."""
    from cloud.fman import open_reader, report
    from cloud.fman.plot import slot_edges

    _portfolio_store(location)
    with open_reader(location) as r:
        p = report.portfolio(r, start=NOW + 900, end=NOW + 3600)
    edges = slot_edges(p, 900)
    assert len(edges) == len(p.slots) + 1 == 4
    assert edges[-1].timestamp() == NOW + 3600
    png = tmp_path / "p.png"
    out = atp("portfolio", "--store", location, "--from", str(NOW + 900), "--to", str(NOW + 3600),
              "--plot", str(png))  # fmt: skip
    assert out.exit_code == 0, out.output
    assert png.read_bytes()[:4] == b"\x89PNG"
