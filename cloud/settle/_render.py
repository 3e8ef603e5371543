"""Bills as JSON (for scripts), CSV (for spreadsheets) and HTML (for people).

The HTML bill is one self-contained page (inline style, no scripts, no external assets) that
prints on A4: the party and period, the delivered flexibility per day, the lines, the total.
Amounts are exact: cents as ``12.34``, energy as kWh with three decimals (whole Wh).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from html import escape

import msgspec

from ._bill import AGGREGATOR, Bill, BillLine
from ._money import eur_text, kwh_text

CSV_COLUMNS = (
    "party",
    "period",
    "day",
    "kind",
    "text",
    "account",
    "quantity",
    "unit",
    "rate",
    "transactions",
    "corrections",
    "amount_eur",
)


def bill_json(bill: Bill) -> bytes:
    """The bill as JSON: amounts in integer cents (``*_cents``), energy in Wh."""
    return msgspec.json.format(msgspec.json.encode(bill), indent=2)


def bill_csv(bill: Bill) -> str:
    """One row per line and a last row with the total; amounts in EUR with two decimals."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for line in bill.lines:
        w.writerow(
            {
                "party": bill.party,
                "period": bill.period,
                "day": line.day,
                "kind": line.kind,
                "text": line.text,
                "account": line.account,
                "quantity": _quantity(line),
                "unit": _unit(line.unit),
                "rate": "" if line.rate is None else str(line.rate),
                "transactions": line.transactions,
                "corrections": line.corrections,
                "amount_eur": eur_text(line.amount_cents),
            }
        )
    w.writerow(
        {
            "party": bill.party,
            "period": bill.period,
            "kind": "total",
            "text": "total",
            "amount_eur": eur_text(bill.total_cents),
        }
    )
    return out.getvalue()


def _quantity(line: BillLine) -> str:
    if line.unit == "Wh":
        return kwh_text(line.quantity)
    if line.unit == "s":
        return str((Decimal(line.quantity) / 3600).quantize(Decimal("0.01")))
    return str(line.quantity) if line.quantity else ""


def _rate(line: BillLine) -> str:
    if line.kind in ("revenue_share",):
        return f"{line.rate} of the revenue"
    per = {"Wh": "kWh", "s": "month" if line.kind == "fee" else "h"}.get(line.unit, "")
    return f"{line.rate} EUR/{per}" if per else f"{line.rate}"


def _unit(unit: str) -> str:
    return {"Wh": "kWh", "s": "h"}.get(unit, unit)


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:52em;color:#1b1b1b;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.1em;margin-top:2em}
.meta{color:#555}table{border-collapse:collapse;width:100%;margin-top:.5em}
th,td{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tfoot td{font-weight:bold;border-top:2px solid #1b1b1b}
.neg{color:#a40000}.note{color:#555;font-size:.9em}
@media print{body{margin:0}}
"""


def _eur(cents: int) -> str:
    cls = ' class="n neg"' if cents < 0 else ' class="n"'
    return f"<td{cls}>{escape(eur_text(cents))}</td>"


def _when(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def bill_html(bill: Bill) -> str:
    """The bill as one HTML page for a person."""
    who = "the aggregator" if bill.party == AGGREGATOR else bill.party
    sign_note = (
        "Positive amounts are paid to the party, negative amounts are paid by it."
        if bill.party != AGGREGATOR
        else "Positive amounts are the aggregator's income, negative amounts its expenses."
    )
    rows_days = []
    sums = [0, 0, 0, 0, 0]
    for d in bill.days:
        rows_days.append(
            f"<tr><td>{escape(d.day)}</td><td class=n>{d.offers}</td>"
            f"<td class=n>{kwh_text(d.requested_wh)}</td><td class=n>{kwh_text(d.delivered_wh)}"
            f"</td><td class=n>{kwh_text(d.undelivered_wh)}</td>{_eur(d.amount_cents)}</tr>"
        )
        for i, v in enumerate(
            (d.offers, d.requested_wh, d.delivered_wh, d.undelivered_wh, d.amount_cents)
        ):
            sums[i] += v
    rows_lines = []
    for line in bill.lines:
        mark = " (with corrections)" if line.corrections else ""
        if line.rate is not None:
            mark = f", at {_rate(line)}{mark}"
        rows_lines.append(
            f"<tr><td>{escape(line.day)}</td><td>{escape(line.text)}{mark}</td>"
            f"<td class=n>{escape(_quantity(line))} {escape(_unit(line.unit))}</td>"
            f"<td class=n>{line.transactions}</td>{_eur(line.amount_cents)}</tr>"
        )
    held = ""
    if bill.held:
        held = (
            f"<p class=note>{len(bill.held)} offer(s) of this period are held for review and "
            f"not on this bill: {escape(', '.join(bill.held))}.</p>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Bill {escape(bill.period)} for {escape(who)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Bill for {escape(who)}</h1>
<p class=meta>Period {escape(bill.period)} ({_when(bill.start)} to {_when(bill.end)},
days counted in {escape(bill.tz)}); issued {_when(bill.issued_at)}; amounts in
{escape(bill.currency)}.</p>
<h2>Delivered flexibility per day</h2>
<table><thead><tr><th>day</th><th class=n>offers</th><th class=n>scheduled deviation kWh</th>
<th class=n>delivered kWh</th><th class=n>not delivered kWh</th><th class=n>amount</th></tr>
</thead><tbody>
{"".join(rows_days)}
</tbody><tfoot><tr><td>sum</td><td class=n>{sums[0]}</td><td class=n>{kwh_text(sums[1])}</td>
<td class=n>{kwh_text(sums[2])}</td><td class=n>{kwh_text(sums[3])}</td>{_eur(sums[4])}</tr>
</tfoot></table>
<h2>Lines</h2>
<table><thead><tr><th>day</th><th>what</th><th class=n>quantity</th>
<th class=n>items</th><th class=n>amount</th></tr></thead><tbody>
{"".join(rows_lines)}
</tbody><tfoot><tr><td colspan=4>total</td>{_eur(bill.total_cents)}</tr></tfoot></table>
<p class=note>{sign_note}</p>
{held}
</body></html>
"""
