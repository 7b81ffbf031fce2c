"""The pages' event socket reconnects with backoff: 0.5 s doubling to 30 s, and back to 0.5 s only after a
connection that lasted (a server that keeps closing the socket is not hammered). Real Chromium, the real
calmline.js; the socket and the clock are stubbed in the page so the test does not wait minutes."""

from __future__ import annotations


from tests.test_pages import browser, new_page  # noqa: F401 (browser is a fixture)

RECONNECTS = """async () => {
  const delays = [];
  let attempts = 0;
  const later = window.setTimeout.bind(window);
  window.setTimeout = (fn, ms) => {
    if (ms === 10000) { fn(); return 1; }  // the 'connection lasted' timer: as if 10 s went by
    delays.push(ms);
    if (delays.length < 16) queueMicrotask(fn);
    return 1;
  };
  window.clearTimeout = () => {};
  window.WebSocket = class {
    constructor() {
      const n = ++attempts;
      queueMicrotask(() => { if (n === 13) this.onopen(); this.onclose(); });  // the 13th connects, the rest fail
    }
  };
  Calmline.connect("/v1/supervise", "token", () => {}, () => {});
  await new Promise((r) => later(r, 300));
  return delays;
}"""


async def test_reconnect_backoff(browser, server):  # noqa: F811
    page = await new_page(browser, f"{server.http}/supervisor")
    delays = await page.evaluate(RECONNECTS)
    assert len(delays) == 16
    expected = [500, 1000, 2000, 4000, 8000, 16000]
    for got, base in zip(delays[:6], expected):
        assert base <= got <= base * 1.25
    assert delays[6:12] == [30000] * 6  # at most 30 s
    assert 500 <= delays[12] <= 625  # after a connection that lasted: from 0.5 s again
    assert 1000 <= delays[13] <= 1250
    assert page.errors == []
    await page.context.close()
