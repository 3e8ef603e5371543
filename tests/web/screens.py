"""``make screens``: a screenshot of every page of every site, under ``.atp/screens/``.

    python -m tests.web.screens [--out DIR] [--site NAME ...]

Each site of :data:`tests.web.sites.SITES` is started on data made by a short real run, each
of its pages is opened in headless Chromium (logged in where the site needs it) and written
as ``SITE-PAGE.png``. A page with console errors or failed requests is reported and makes
the command fail, its screenshot written all the same.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.web.browser import BrowserMissing, Watch, launch
from tests.web.sites import ROOT, SITES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / ".atp" / "screens")
    ap.add_argument("--site", action="append", choices=sorted(SITES), help="default: all")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    try:
        with launch() as browser, tempfile.TemporaryDirectory() as tmp:
            for name in args.site or sorted(SITES):
                site = SITES[name]
                t0 = time.monotonic()
                print(f"{name}: starting (a short real run makes its data)", file=sys.stderr)
                with site.start(Path(tmp) / name) as running:
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    page = context.new_page()
                    watch = Watch()
                    watch.attach(page)
                    if running.login is not None:
                        running.login(page)
                    for spec in site.pages:
                        watch.clear()
                        page.goto(running.url(spec.path))
                        page.wait_for_selector(spec.ready)
                        out = args.out / f"{name}-{spec.name}.png"
                        page.screenshot(path=str(out), full_page=True)
                        state = "ok" if not watch.problems else "PROBLEMS"
                        print(f"  {out}  {state}")
                        for p in watch.problems:
                            print(f"    {p}")
                        failures += bool(watch.problems)
                    context.close()
                print(f"{name}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    except BrowserMissing as exc:
        print(f"screens: {exc}", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
