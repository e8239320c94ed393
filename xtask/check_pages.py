"""Opens every page of the built book in headless Chromium, 1280 px wide, and
fails on what a reader would trip over:

  * an element wider than the content column (`main`), or one whose content
    scrolls sideways inside it;
  * an image that did not load, or one shrunk so far to fit the column that
    its text is too small to read (more than MAX_SHRINK);
  * a diagram (a ```mermaid block) that did not render to an SVG, or whose
    smallest text is shown below MIN_TEXT_PX;
  * a local link to a page or an anchor that does not exist;
  * a console error, an uncaught exception, or a request the server answered 404.

    python check_pages.py BOOK_DIR --chromium /usr/bin/chromium [--report]

Chromium is driven over its DevTools protocol (websocket-client, pinned in
requirements-test.txt). The book is served by a local http.server, so pages
load as they do from `mdbook serve`. Exit status: 0 every page passed,
1 a page failed (each problem printed), 2 the check could not run.
"""

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import websocket

WIDTH = 1280
HEIGHT = 900
# Slack for sub-pixel rounding.
SLACK = 1.0
# The smallest text a reader is asked to read, in CSS pixels as shown: at 9 px
# the lowercase letters of a sans-serif face are about 5 px high, the least a
# screen draws legibly (the book's own text is 16 px, its tables 14.4 px).
MIN_TEXT_PX = 9.0
# An image is drawn at its natural width and shown at most as wide as the
# column: its text shrinks with it. The charts' smallest text is 11.3 px
# (plotters' 14 px captions and values), so shrinking by more than
# 11.3 / 9 = 1.25 takes it below MIN_TEXT_PX. The text inside an <img> cannot
# be measured from the page, so this factor stands for it.
MAX_SHRINK = 1.25
# How long mermaid may take to draw a page's diagrams.
DIAGRAM_SECONDS = 15

# Runs in each page once it has loaded: measures the content column and every
# element in it, checks images, and lists the links and ids.
MEASURE = r"""
(async () => {
  await document.fonts.ready;
  // mermaid draws after the load event, and marks each block it has done.
  const blocks = [...document.querySelectorAll('pre.mermaid')];
  const deadline = Date.now() + %DIAGRAM_SECONDS% * 1000;
  while (blocks.some((b) => !b.getAttribute('data-processed')) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const main = document.querySelector('main');
  if (!main) return {error: 'no <main> element'};
  const col = main.getBoundingClientRect();
  const describe = (el) => {
    let name = el.tagName.toLowerCase();
    if (el.id) name += '#' + el.id;
    const cls = (el.getAttribute('class') || '').trim();
    if (cls) name += '.' + cls.split(/\s+/).join('.');
    const heading = (() => {
      // The nearest heading above the element, to say where it is.
      let n = el;
      while (n && n !== main) {
        let p = n.previousElementSibling;
        while (p) {
          if (/^H[1-6]$/.test(p.tagName)) return p.textContent.trim();
          p = p.previousElementSibling;
        }
        n = n.parentElement;
      }
      return '';
    })();
    let text = (el.textContent || '').replace(/\s+/g, ' ').trim();
    if (el.tagName === 'IMG') text = el.getAttribute('src');
    return {name, heading, text: text.slice(0, 60)};
  };
  const wide = [];
  let widest = {width: 0};
  const note = (width, el) => {
    if (width > widest.width) widest = {width, ...describe(el)};
  };
  // Document order: an offender is reported once, its descendants not again.
  for (const el of main.querySelectorAll('*')) {
    if (el.parentElement && el.parentElement.closest('[data-check-wide]')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    note(r.width, el);
    const style = getComputedStyle(el);
    if (['auto', 'scroll', 'hidden'].includes(style.overflowX)
        && el.scrollWidth > el.clientWidth + %SLACK%) {
      // Content that scrolls sideways (a table in its wrapper, a long line
      // of code): name the widest thing inside.
      let inner = el;
      for (const c of el.querySelectorAll('*')) {
        if (c.getBoundingClientRect().width > inner.getBoundingClientRect().width) inner = c;
      }
      note(el.scrollWidth, inner);
      el.setAttribute('data-check-wide', '');
      wide.push({width: el.scrollWidth, shown: el.clientWidth, ...describe(inner),
                 name: inner === el ? describe(el).name
                                   : describe(inner).name + ' in ' + describe(el).name});
    } else if (r.right > col.right + %SLACK% || r.left < col.left - %SLACK%) {
      el.setAttribute('data-check-wide', '');
      wide.push({width: Math.round(r.width), ...describe(el)});
    }
  }
  const images = [];
  const shrunk = [];
  for (const img of document.querySelectorAll('img')) {
    if (!img.complete || img.naturalWidth === 0) {
      images.push(img.getAttribute('src'));
    } else if (main.contains(img) && img.getBoundingClientRect().width > 0) {
      // (mdBook 0.5 puts a second copy of each image in the page, hidden
      // until the reader clicks the first to zoom it: not measured.)
      const shown = img.getBoundingClientRect().width;
      shrunk.push({src: img.getAttribute('src'), natural: img.naturalWidth, shown,
                   factor: img.naturalWidth / Math.max(shown, 1), heading: describe(img).heading});
    }
  }
  // Each diagram: drawn (an SVG that is not mermaid's error picture), and the
  // size its smallest text is shown at, the SVG's scaling included.
  const diagrams = blocks.map((b) => {
    const svg = b.querySelector('svg');
    const where = describe(b).heading;
    if (!svg || svg.getAttribute('aria-roledescription') === 'error') {
      return {rendered: false, heading: where,
              text: (b.dataset.source || b.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 80)};
    }
    const box = svg.getBoundingClientRect();
    const vb = svg.viewBox && svg.viewBox.baseVal;
    const scale = vb && vb.width ? box.width / vb.width : 1;
    let smallest = Infinity, sample = '';
    for (const el of svg.querySelectorAll('text, tspan, foreignObject *')) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own) continue;
      const px = parseFloat(getComputedStyle(el).fontSize) * scale;
      if (px < smallest) { smallest = px; sample = el.textContent.trim().slice(0, 40); }
    }
    return {rendered: true, heading: where, natural: vb ? vb.width : box.width,
            shown: box.width, smallest, sample};
  });
  const links = [];
  for (const a of document.querySelectorAll('a[href]')) {
    links.push(a.href);
  }
  const ids = [...document.querySelectorAll('[id], a[name]')]
    .map((e) => e.id || e.getAttribute('name'));
  return {column: col.width, widest, wide, images, shrunk, diagrams, links, ids};
})()
""".replace("%SLACK%", str(SLACK)).replace("%DIAGRAM_SECONDS%", str(DIAGRAM_SECONDS))


class Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves the book; remembers every request it could not answer."""

    missing = []

    def log_message(self, *args):
        pass

    def send_error(self, code, message=None, explain=None):
        if code == 404:
            Quiet.missing.append(urllib.parse.unquote(self.path))
        super().send_error(code, message, explain)


def serve(root):
    handler = lambda *a, **k: Quiet(*a, directory=root, **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Browser:
    """One headless Chromium and one tab, over the DevTools protocol."""

    def __init__(self, chromium):
        self.profile = tempfile.mkdtemp(prefix="check-pages-")
        self.proc = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--window-size={WIDTH},{HEIGHT}",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if self.proc.poll() is not None or time.time() > deadline:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:]
                self.close()
                raise RuntimeError(f"Chromium did not start:\n{err}")
            time.sleep(0.05)
        port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True
        )
        self.next_id = 0
        self.events = []
        for method in ["Page.enable", "Runtime.enable", "Log.enable"]:
            self.call(method)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, event, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.ws.settimeout(max(0.01, deadline - time.time()))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            finally:
                self.ws.settimeout(30)
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == event:
                    return True
        return False

    def open(self, url):
        """Loads a page; returns its measurements and the errors it logged."""
        self.events = []
        self.call("Page.navigate", url=url)
        if not self.wait_for("Page.loadEventFired", 30):
            raise RuntimeError(f"{url} did not finish loading in 30 s")
        self.wait_for("never", 0.2)  # late script errors
        result = self.call(
            "Runtime.evaluate", expression=MEASURE, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"measuring {url}: {result['exceptionDetails']}")
        return result["result"]["value"], self.errors()

    def errors(self):
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                args = [str(a.get("value", a.get("description", ""))) for a in p.get("args", [])]
                out.append("console error: " + " ".join(args))
            elif e["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                text = d.get("exception", {}).get("description") or d.get("text", "")
                out.append("uncaught exception: " + text.splitlines()[0] if text else "exception")
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                out.append(f"console error: {entry.get('text', '')} {entry.get('url', '')}".strip())
        return out

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def pages(root):
    """Every HTML page of the book, but mdBook's 404 page and print page (the
    same chapters again)."""
    out = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            if f.endswith(".html") and rel not in ("404.html", "print.html", "toc.html"):
                out.append(rel)
    return sorted(out)


def check(root, chromium, report):
    server = serve(root)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    browser = Browser(chromium)
    problems = []
    seen = {}  # page path -> its ids
    links = []  # (from page, absolute url)
    started = time.time()
    try:
        for page in pages(root):
            Quiet.missing = []
            found, errors = browser.open(base + page)
            if "error" in found:
                problems.append(f"{page}: {found['error']}")
                continue
            seen[page] = set(found["ids"])
            links += [(page, link) for link in found["links"]]
            col = found["column"]
            if report:
                w = found["widest"]
                print(
                    f"{page}: column {col:.0f} px, widest {w.get('width', 0):.0f} px "
                    f"{w.get('name', '')} under \"{w.get('heading', '')}\": {w.get('text', '')}"
                )
            for el in found["wide"]:
                shown = f", {el['shown']} px of it shown" if "shown" in el else ""
                problems.append(
                    f"{page}: {el['name']} is {el['width']} px wide{shown}, the column "
                    f"{col:.0f} px (under \"{el['heading']}\": {el['text']})"
                )
            for src in found["images"]:
                problems.append(f"{page}: image {src} did not load")
            for img in found["shrunk"]:
                line = (f"image {img['src']} is {img['natural']} px wide, shown at "
                        f"{img['shown']:.0f} px: shrunk {img['factor']:.2f}x")
                if report:
                    print(f"{page}: {line}")
                if img["factor"] > MAX_SHRINK + 0.005:
                    problems.append(
                        f"{page}: {line}, more than {MAX_SHRINK}x (its text would be "
                        f"under {MIN_TEXT_PX:.0f} px): draw it at most "
                        f"{col * MAX_SHRINK:.0f} px wide (under \"{img['heading']}\")"
                    )
            for d in found["diagrams"]:
                if not d["rendered"]:
                    problems.append(
                        f"{page}: a mermaid diagram did not render (under \"{d['heading']}\"): "
                        f"{d['text']}"
                    )
                    continue
                line = (f"diagram under \"{d['heading']}\" is {d['natural']:.0f} px wide, "
                        f"shown at {d['shown']:.0f} px; its smallest text {d['smallest']:.1f} px "
                        f"(\"{d['sample']}\")")
                if report:
                    print(f"{page}: {line}")
                if d["smallest"] < MIN_TEXT_PX:
                    problems.append(
                        f"{page}: {line}, under {MIN_TEXT_PX:.0f} px: make it narrower "
                        f"(shorter labels, fewer participants, or a TB layout)"
                    )
            for e in errors:
                problems.append(f"{page}: {e}")
            for path in Quiet.missing:
                problems.append(f"{page}: asked the server for {path}, which does not exist")
        for page, link in links:
            url = urllib.parse.urlsplit(link)
            if not link.startswith(base):
                continue
            target = urllib.parse.unquote(url.path[len("/"):]) or "index.html"
            if target.endswith("/"):
                target += "index.html"
            if not os.path.exists(os.path.join(root, target)):
                problems.append(f"{page}: broken link to {target} (no such page)")
            elif url.fragment and target in seen:
                anchor = urllib.parse.unquote(url.fragment)
                if anchor not in seen[target]:
                    problems.append(f"{page}: broken link to {target}#{anchor} (no such anchor)")
    finally:
        browser.close()
        server.shutdown()
    print(f"checked {len(seen)} pages at {WIDTH} px in {time.time() - started:.1f} s")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("book", help="the built book (book/book)")
    parser.add_argument("--chromium", default="chromium")
    parser.add_argument("--report", action="store_true", help="print each page's widest element")
    args = parser.parse_args()
    try:
        problems = check(os.path.abspath(args.book), args.chromium, args.report)
    except (RuntimeError, OSError, websocket.WebSocketException) as e:
        print(f"the page check could not run: {e}", file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) on the book's pages")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
