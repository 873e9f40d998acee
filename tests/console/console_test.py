#!/usr/bin/env python3
"""Browser test of Brook's web console (/ui), driven through Debian's Chromium.

Run by the broker's Rust test (which starts `brook serve` sampling the
console history every second and seeds the data listed below), or by hand:

    python3 tests/console/console_test.py --http 127.0.0.1:9293 \
        --grpc 127.0.0.1:9292 --brook target/debug/brook --screenshots /tmp/shots
    python3 tests/console/console_test.py ... --token T --read-only   # --auth required

Needs `pip install -r tests/console/requirements.txt` (Playwright for Python)
and a Chromium at /usr/bin/chromium (or $BROOK_CHROMIUM); it never downloads
a browser. Exit status 0 when every check passed; otherwise it says which
step failed, saves failure.png next to the other screenshots, and exits 1.

Expected data (seeded before the test):
  - topic `orders`, 3 partitions, 30 records keyed order-1..order-30, JSON
    values {"order_id", "amount": N, "status"}, header `source: seed`;
  - consumer group `billing` that committed 5 records of it (lag 25, no members);
  - topic `shipments` with queue group `shipping` (dlq `shipments.dlq`) and
    one record rejected with reason `address unknown`;
  - rule `big-orders` on `orders`, pattern {"amount":[{"numeric":[">",20]}]};
  - schema subject `orders-value` with 2 JSON Schema versions (2 adds `currency`).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback

from playwright.sync_api import expect, sync_playwright

CHROMIUM = os.environ.get("BROOK_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 15_000  # default for every expect()

_step = "start"


class Failure(Exception):
    pass


def step(name):
    global _step
    _step = name
    print(f"console test: {name}", flush=True)


def check(cond, what):
    if not cond:
        raise Failure(what)


class Console:
    """The page under test, its base URL and where screenshots go."""

    def __init__(self, page, http, shots):
        self.page = page
        self.base = f"http://{http}"
        self.shots = shots

    def open(self, route):
        self.page.goto(f"{self.base}/ui#{route}")

    def tid(self, testid):
        return self.page.get_by_test_id(testid)

    def shot(self, name):
        self.page.screenshot(path=os.path.join(self.shots, name), full_page=True)

    def api_get(self, path):
        resp = self.page.request.get(f"{self.base}/api/v1{path}")
        check(resp.ok, f"GET /api/v1{path}: HTTP {resp.status} {resp.text()[:300]}")
        return resp.json()

    def row(self, testid, link_name):
        """The table row (data-testid=testid) holding a link named exactly link_name."""
        return self.tid(testid).filter(has=self.page.get_by_role("link", name=link_name, exact=True))


def poll(page, what, fn, timeout_s):
    """Calls fn until its first result is true, for at most timeout_s seconds."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        ok, last = fn()
        if ok:
            return last
        if time.monotonic() > deadline:
            raise Failure(f"{what}: still not so after {timeout_s}s (last seen: {last})")
        page.wait_for_timeout(250)  # the polling interval (the deadline is above)


def as_int(text):
    try:
        return int((text or "").replace(",", "").strip())
    except ValueError:
        return None


# ----------------------------------------------------------------------
# Default scenario (authentication off)
# ----------------------------------------------------------------------


def overview(c):
    step("overview: version, health, rate chart")
    c.page.goto(f"{c.base}/ui")
    expect(c.tid("version")).to_have_text(re.compile(r"\S"))
    expect(c.tid("ready")).to_contain_text("ready")
    chart = c.tid("rate-chart")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
    c.shot("overview.png")
    # /ui/ is the same page
    c.page.goto(f"{c.base}/ui/")
    expect(c.tid("version")).to_have_text(re.compile(r"\S"))


def topics_and_create(c):
    step("topics: orders is listed")
    c.open("/topics")
    expect(c.row("topic-row", "orders")).to_have_count(1)
    c.shot("topics.png")

    step("topics: create console-made with 2 partitions")
    form = c.tid("create-topic-form")
    form.get_by_test_id("topic-name").fill("console-made")
    form.get_by_test_id("topic-partitions").fill("2")
    form.get_by_test_id("create-topic-submit").click()
    expect(c.page).to_have_url(re.compile(r"#/topics/console-made$"))
    expect(c.tid("partition-row")).to_have_count(2)
    c.shot("topic.png")

    step("topic: delete refuses a name that does not match")
    c.tid("delete-topic").click()
    c.tid("delete-confirm-input").fill("console-mad")
    c.tid("delete-confirm").click()
    expect(c.tid("delete-refused")).to_contain_text("does not match")
    topics = [t["name"] for t in c.api_get("/topics")["topics"]]
    check("console-made" in topics, f"console-made was deleted after a wrong confirmation: {topics}")

    step("topic: produce a test message on console-made")
    c.tid("produce-key").fill("k1")
    c.tid("produce-value").fill('{"hello":"world"}')
    c.tid("produce-submit").click()
    expect(c.tid("produce-result")).to_contain_text("offset")
    expect(c.tid("produce-partition")).to_have_text(re.compile(r"^[01]$"))
    c.shot("topic-produced.png")

    step("messages: the produced message, value pretty-printed")
    c.tid("produce-result-link").click()
    expect(c.page).to_have_url(re.compile(r"#/topics/console-made/messages\?"))
    msg = c.tid("message").filter(has=c.page.get_by_test_id("msg-key").filter(has_text=re.compile(r"^k1$")))
    expect(msg).to_have_count(1)
    value = msg.get_by_test_id("msg-value")
    expect(value).to_be_visible()
    text = value.text_content()
    check(text == '{\n  "hello": "world"\n}', f"the value is not pretty-printed JSON: {text!r}")
    expect(msg.get_by_test_id("msg-time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"))
    c.shot("messages.png")


def orders_messages(c):
    step("messages: search orders by key order-7")
    c.open("/topics/orders/messages")
    expect(c.tid("messages-form")).to_be_visible()
    c.tid("search-key").fill("order-7")
    c.tid("search-submit").click()
    matches = c.tid("search-match")
    expect(matches).to_have_count(1)
    expect(matches.get_by_test_id("msg-key")).to_have_text("order-7")
    expect(matches.get_by_test_id("msg-value")).to_contain_text('"amount": 7')
    expect(c.tid("search-summary")).to_contain_text("scanned")
    expect(c.tid("search-ranges")).to_contain_text("p")
    partition = matches.get_attribute("data-partition")
    check(partition is not None and partition.isdigit(), f"search match has no partition: {partition!r}")
    c.shot("search.png")

    step("messages: search orders by header name alone (any value)")
    c.tid("search-key").fill("")
    c.tid("search-header").fill("source")
    c.tid("search-header-value").fill("")
    c.tid("search-submit").click()
    expect(c.tid("search-match")).to_have_count(30)
    c.tid("search-header").fill("")
    c.tid("search-key").fill("order-7")
    c.tid("search-submit").click()
    expect(c.tid("search-match")).to_have_count(1)

    step(f"messages: open order-7 in its partition {partition}")
    matches.get_by_test_id("match-open").click()
    expect(c.page).to_have_url(re.compile(rf"#/topics/orders/messages\?partition={partition}&"))
    expect(c.tid("message").first.get_by_test_id("msg-key")).to_have_text("order-7")

    step(f"messages: browse partition {partition} from offset 0")
    c.tid("msg-partition").select_option(partition)
    c.tid("msg-from").select_option("offset")
    c.tid("msg-position").fill("0")
    c.tid("msg-load").click()
    expect(c.page).to_have_url(re.compile(rf"partition={partition}&offset=0"))
    first = c.tid("message").first
    expect(first.get_by_test_id("msg-offset")).to_have_text("0")
    header = first.get_by_test_id("msg-header").filter(has_text="source")
    expect(header).to_have_count(1)
    expect(header).to_contain_text("seed")
    expect(first.get_by_test_id("msg-value")).to_contain_text('"status": "placed"')
    c.shot("messages-orders.png")


def group_lag(c, brook, grpc):
    step("groups: billing is listed")
    c.open("/groups")
    expect(c.row("group-row", "billing")).to_have_count(1)
    c.shot("groups.png")

    step("group billing: total lag 25 and a lag chart")
    c.open("/groups/billing")
    total = c.tid("total-lag")
    expect(total).to_have_text("25")
    expect(c.tid("lag-row").first).to_be_visible()
    chart = c.tid("lag-chart")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_have_attribute("data-last-lag", "25")
    points_before = as_int(chart.get_attribute("data-points"))
    c.shot("group.png")

    step("CLI: billing consumes the 25 other records")
    cmd = [brook, "consume", "orders", "--url", grpc, "--group", "billing", "--max", "25", "--timeout", "10s"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    check(run.returncode == 0, f"{' '.join(cmd)} exited {run.returncode}: {run.stderr.strip()}")
    print(f"console test:   {run.stderr.strip()}", flush=True)

    step("group billing: total lag 0 on the page and in the chart")

    def caught_up():
        lag = total.text_content()
        last = chart.get_attribute("data-last-lag")
        return lag == "0" and last == "0", f"total-lag={lag!r} data-last-lag={last!r}"

    poll(c.page, "billing's total lag and its chart's last point reach 0", caught_up, 30)
    points_after = as_int(chart.get_attribute("data-points"))
    check(points_after is not None and points_before is not None and points_after > points_before,
          f"the lag chart got no new point ({points_before} → {points_after})")
    c.shot("group-after.png")

    step("group billing: reset offsets of orders to earliest, preview then apply")
    # the CLI member has left: a reset of a group with members is refused
    expect(c.tid("group-state")).to_contain_text("empty", timeout=60_000)
    c.tid("reset-topic").select_option("orders")
    c.tid("reset-to").select_option("earliest")
    expect(c.tid("reset-apply")).to_have_count(0)
    c.tid("reset-preview").click()
    expect(c.tid("reset-preview-table")).to_be_visible()
    changes = c.tid("reset-change")
    expect(changes).to_have_count(3)
    for i in range(3):
        expect(changes.nth(i).get_by_test_id("change-after")).to_have_text("0")
    expect(c.tid("reset-applied")).to_have_count(0)
    expect(c.tid("reset-apply")).to_be_visible()
    lag = c.api_get("/groups/billing")["lag_records"]
    check(lag == 0, f"the preview changed the group's offsets: lag_records is {lag}")
    expect(total).to_have_text("0")
    c.shot("reset-preview.png")

    c.tid("reset-apply").click()
    expect(c.tid("reset-applied")).to_be_visible()
    expect(total).to_have_text("30")
    c.shot("reset-applied.png")


def queue(c):
    step("queues: shipping is listed")
    c.open("/queues")
    expect(c.row("queue-row", "shipping")).to_have_count(1)
    c.shot("queues.png")

    step("queue shipping: DLQ depth 1 and the dead letter")
    c.open("/queues/shipping")
    expect(c.tid("dlq-depth")).to_have_text("1")
    chart = c.tid("dlq-chart")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_have_attribute("data-last-depth", "1")
    letters = c.tid("dead-letter")
    expect(letters).to_have_count(1)
    expect(letters.get_by_test_id("dlq-reason")).to_have_text("address unknown")
    expect(letters.get_by_test_id("dlq-origin")).to_contain_text("shipments")
    expect(letters.get_by_test_id("dlq-delivery-count")).to_have_text(re.compile(r"^\d+$"))
    c.shot("queue.png")

    step("queue shipping: redrive preview (dry run)")
    c.tid("redrive-preview").click()
    expect(c.tid("redrive-preview-result")).to_contain_text("redriven")
    expect(c.tid("redrive-apply")).to_be_visible()
    expect(c.tid("dlq-depth")).to_have_text("1")


def rules(c):
    step("rules: big-orders matched at least 10 records")
    c.open("/rules")
    row = c.tid("rule-row").filter(has=c.page.get_by_test_id("rule-name").filter(has_text=re.compile(r"^big-orders$")))
    expect(row).to_have_count(1)
    matched = row.get_by_test_id("rule-matched")

    def enough():
        n = as_int(matched.text_content())
        return n is not None and n >= 10, n

    poll(c.page, "big-orders' matched count reaches 10", enough, 30)
    c.shot("rules.png")

    step("rules: the pattern tester")
    pattern = c.tid("pattern-input")
    event = c.tid("pattern-event")
    result = c.tid("pattern-result")
    pattern.fill('{"amount":[{"numeric":[">",20]}]}')
    event.fill('{"amount": 25}')
    c.tid("pattern-test").click()
    expect(result).to_have_attribute("data-result", "match")
    expect(result).to_have_text("matches")
    event.fill('{"amount": 3}')
    c.tid("pattern-test").click()
    expect(result).to_have_attribute("data-result", "no-match")
    expect(result).to_have_text("no match")
    pattern.fill('{"amount": 5}')
    c.tid("pattern-test").click()
    expect(result).to_have_attribute("data-result", "error")
    expect(result).to_have_text(re.compile(r"\S"))
    c.shot("rules-pattern-error.png")


def schemas(c):
    step("schemas: orders-value is listed")
    c.open("/schemas")
    row = c.row("subject-row", "orders-value")
    expect(row).to_have_count(1)
    c.shot("schemas.png")

    step("schemas: orders-value, diff of versions 1 and 2")
    row.get_by_role("link", name="orders-value", exact=True).click()
    expect(c.page).to_have_url(re.compile(r"#/schemas/orders-value$"))
    expect(c.tid("schema-text")).to_contain_text("currency")  # the latest version
    c.tid("diff-from").select_option("1")
    c.tid("diff-to").select_option("2")
    c.tid("diff-submit").click()
    diff = c.tid("schema-diff")
    expect(diff.locator(".add").filter(has_text="currency")).not_to_have_count(0)
    expect(diff.locator(".del").filter(has_text="currency")).to_have_count(0)
    c.shot("schema-diff.png")


def default_scenario(c, args):
    overview(c)
    topics_and_create(c)
    orders_messages(c)
    group_lag(c, args.brook, args.grpc)
    queue(c)
    rules(c)
    schemas(c)


# ----------------------------------------------------------------------
# Auth scenario (--auth required, a read-only token)
# ----------------------------------------------------------------------


def auth_scenario(c, token):
    step("auth: only the login form")
    c.page.goto(f"{c.base}/ui#/topics")
    expect(c.tid("login-token")).to_be_visible()
    expect(c.tid("login-submit")).to_be_visible()
    expect(c.page.locator("#nav")).to_have_count(0)
    expect(c.tid("topic-row")).to_have_count(0)
    c.shot("login.png")

    step("auth: a wrong token is refused")
    c.tid("login-token").fill("not-" + token + "-at-all")
    c.tid("login-submit").click()
    expect(c.tid("error")).to_be_visible()
    expect(c.tid("error")).to_contain_text(re.compile(r"AUTH", re.I))
    expect(c.tid("login-token")).to_be_visible()
    expect(c.tid("read-only")).to_have_count(0)
    c.shot("login-error.png")

    step("auth: the right token logs in, read-only")
    c.tid("login-token").fill(token)
    c.tid("login-submit").click()
    expect(c.tid("read-only")).to_be_visible()
    expect(c.tid("principal")).to_have_text(re.compile(r"\S"))
    expect(c.tid("logout")).to_be_visible()

    step("auth: topics, without the create form")
    c.open("/topics")
    expect(c.row("topic-row", "orders")).to_have_count(1)
    expect(c.tid("create-topic-form")).to_have_count(0)
    c.shot("read-only.png")

    step("auth: topic orders, without the forms that change it")
    c.open("/topics/orders")
    expect(c.tid("partition-row").first).to_be_visible()
    for form in ("alter-form", "add-partitions-form", "produce-form", "delete-topic"):
        expect(c.tid(form)).to_have_count(0)
    c.shot("read-only-topic.png")

    step("auth: the token survives a reload (sessionStorage), then log out")
    c.page.reload()
    expect(c.tid("read-only")).to_be_visible()
    c.tid("logout").click()
    expect(c.tid("login-token")).to_be_visible()


# ----------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--http", required=True, help="the broker's HTTP address (HOST:PORT), where /ui is")
    ap.add_argument("--grpc", required=True, help="the broker's gRPC address (HOST:PORT), for the CLI")
    ap.add_argument("--brook", required=True, help="the brook binary")
    ap.add_argument("--screenshots", required=True, help="directory for the screenshots")
    ap.add_argument("--token", help="a token of a read-only principal (the broker runs with --auth required)")
    ap.add_argument("--read-only", action="store_true", help="the auth scenario (with --token)")
    args = ap.parse_args()
    if args.read_only and not args.token:
        ap.error("--read-only needs --token")
    os.makedirs(args.screenshots, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)

    js_errors = []
    # A Content-Security-Policy violation (inline style or script the page's
    # policy forbids) is reported on the console, not thrown: it fails too.
    csp_violations = []

    def on_console(m):
        if m.type in ("error", "warning"):
            print(f"console test:   [browser {m.type}] {m.text}", flush=True)
        if "Content Security Policy" in m.text:
            csp_violations.append(m.text)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.on("pageerror", lambda e: js_errors.append(str(e)))
        page.on("console", on_console)
        c = Console(page, args.http, args.screenshots)
        try:
            if args.token:
                auth_scenario(c, args.token)
            else:
                default_scenario(c, args)
            step("no JavaScript error")
            check(not js_errors, "uncaught JavaScript errors: " + json.dumps(js_errors))
            check(not csp_violations, "content security policy violations: " + json.dumps(csp_violations))
        except Exception as e:  # noqa: BLE001 — any failure: report, screenshot, exit 1
            print(f"console test: FAILED at step '{_step}': {e}", file=sys.stderr, flush=True)
            if not isinstance(e, Failure):
                traceback.print_exc()
            if js_errors:
                print("console test: JavaScript errors: " + json.dumps(js_errors), file=sys.stderr)
            try:
                path = os.path.join(args.screenshots, "failure.png")
                page.screenshot(path=path, full_page=True)
                print(f"console test: screenshot {path}", file=sys.stderr)
            except Exception as shot_err:  # noqa: BLE001
                print(f"console test: no failure screenshot: {shot_err}", file=sys.stderr)
            browser.close()
            return 1
        browser.close()
    print("console test: ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
