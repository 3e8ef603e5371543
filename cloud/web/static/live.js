// Live update: every few seconds the page asks the server for itself again and puts the new
// content of #live in place (the header, forms being typed in and the scroll position stay).
// The period is the page's data-refresh (seconds); 0 turns it off. No library, no network
// beyond the page's own address.
"use strict";
(function () {
  const body = document.body;
  const period = Number(body.dataset.refresh || "0");
  if (!(period > 0)) return;
  let busy = false;
  async function tick() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const r = await fetch(window.location.href, {
        credentials: "same-origin",
        headers: { "X-Live": "1" },
        redirect: "error",
      });
      if (!r.ok) {
        body.dataset.live = "stale";
        return;
      }
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      const fresh = doc.getElementById("live");
      const here = document.getElementById("live");
      if (fresh && here) {
        here.replaceChildren(...fresh.childNodes);
        if (window.atpSortable) window.atpSortable();
        body.dataset.live = "ok";
        body.dataset.updates = String(Number(body.dataset.updates || "0") + 1);
      }
    } catch (e) {
      body.dataset.live = "stale";
    } finally {
      busy = false;
    }
  }
  window.setInterval(tick, period * 1000);
})();
