// End-to-end: drives the real page in Debian's Chromium (playwright-core, no
// browser download) against a deconflict server, two parties side by side.
//
//   DECONFLICT_BIN=../target/debug/deconflict npm run test:e2e   # starts a real `deconflict demo` on 127.0.0.1:0
//   DECONFLICT_URL=http://127.0.0.1:8080 npm run test:e2e        # a running `deconflict demo`
//   npm run test:e2e                                             # starts tests/mock-server.mjs
//
// With DECONFLICT_BIN the demo plays at DECONFLICT_DEMO_SPEED (default 600×:
// its live units meet about 40 s after the start) and is stopped with
// SIGINT (its Ctrl-C, which removes its temporary store) at the end.
// Optional: DECONFLICT_TOKEN_A / DECONFLICT_TOKEN_B (two parties with an open
// conflict between them; by default found through /demo/parties),
// CHROMIUM_PATH (default /usr/bin/chromium), DECONFLICT_ALERT_TIMEOUT_MS.
// Screenshots go to web/test-results/.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import { startMockServer } from "./mock-server.mjs";

const HERE = fileURLToPath(new URL(".", import.meta.url));
// One folder per kind of server, so a run against the mock never overwrites
// the real demo's screenshots.
const OUT = resolve(HERE, "..", "test-results", process.env.DECONFLICT_URL ? "server" : process.env.DECONFLICT_BIN ? "demo" : "mock");
const STEP_MS = 20_000;
const ALERT_TIMEOUT_MS = Number(process.env.DECONFLICT_ALERT_TIMEOUT_MS ?? 60_000);

let mock;
let demo; // the `deconflict demo` child process, when DECONFLICT_BIN is set
let baseUrl;
let browser;
let a; // { name, token, page, problems }
let b;

async function findParties(url) {
  const tokens = [process.env.DECONFLICT_TOKEN_A, process.env.DECONFLICT_TOKEN_B];
  const demo = await fetch(`${url}/demo/parties`).then((r) => (r.ok ? r.json() : null), () => null);
  const nameOf = async (token) => {
    const me = await fetch(`${url}/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
    if (me.ok) return (await me.json()).name;
    return demo?.find((p) => p.token === token)?.name;
  };
  if (tokens[0] && tokens[1]) return Promise.all(tokens.map(async (token) => ({ token, name: await nameOf(token) })));
  assert.ok(demo, "no DECONFLICT_TOKEN_A/B given and the server lists no demo parties");
  // Two parties that share an open conflict, so one can acknowledge it and
  // message the other about it.
  for (const party of demo.filter((p) => p.kind !== "broker")) {
    const answer = await fetch(`${url}/v1/conflicts?state=open`, { headers: { Authorization: `Bearer ${party.token}` } }).then((r) => r.json());
    for (const conflict of answer.conflicts ?? []) {
      // Parties are named or numbered (the real server's ids, listed with the demo parties).
      const refs = conflict.parties.map(String);
      const other = demo.find((p) => p.name !== party.name && (refs.includes(p.name) || (p.id !== undefined && refs.includes(String(p.id)))));
      if (other) return [{ token: party.token, name: party.name, id: party.id }, { token: other.token, name: other.name, id: other.id }];
    }
  }
  assert.fail("no two demo parties share an open conflict");
}

/** Starts `deconflict demo` on a free port and waits for its JSON line
 *  (`--print-json`): `{url, parties: [{id, name, kind, token}]}`. */
async function startDemo(bin) {
  const speed = process.env.DECONFLICT_DEMO_SPEED ?? "600";
  const child = spawn(bin, ["demo", "--listen", "127.0.0.1:0", "--speed", speed, "--print-json"], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout });
  const started = await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error("the demo did not print its address within 60 s")), 60_000);
    child.once("exit", (code) => reject(new Error(`the demo exited with ${code} before it was up`)));
    lines.on("line", (line) => {
      if (process.env.DECONFLICT_DEMO_ECHO) console.log(`demo: ${line}`);
      if (!line.startsWith("{")) return;
      clearTimeout(timer);
      resolvePromise(JSON.parse(line));
    });
  });
  // The script's narration goes on; reading it keeps the pipe from filling.
  return { child, url: started.url.replace(/\/$/, ""), parties: started.parties };
}

async function stopDemo(running) {
  if (!running || running.child.exitCode !== null) return;
  const exited = new Promise((resolvePromise) => running.child.once("exit", resolvePromise));
  running.child.kill("SIGINT");
  const timer = setTimeout(() => running.child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

async function openPage(party, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  page.on("console", (msg) => {
    const text = msg.text();
    if (/Content.Security.Policy|Refused to/i.test(text)) problems.push(`CSP: ${text}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  await page.goto(baseUrl);
  await page.locator("#signin-token").waitFor({ timeout: STEP_MS });
  await page.fill("#signin-token", party.token);
  await page.press("#signin-token", "Enter");
  await page.locator("#app:not([hidden])").waitFor({ timeout: STEP_MS });
  await page.locator(".conn-live").waitFor({ timeout: STEP_MS });
  return { ...party, page, problems };
}

async function shot(party, name) {
  await party.page.screenshot({ path: resolve(OUT, name) });
}

before(async () => {
  await mkdir(OUT, { recursive: true });
  baseUrl = process.env.DECONFLICT_URL?.replace(/\/$/, "");
  if (!baseUrl && process.env.DECONFLICT_BIN) {
    demo = await startDemo(process.env.DECONFLICT_BIN);
    baseUrl = demo.url;
  }
  if (!baseUrl) {
    mock = await startMockServer();
    baseUrl = mock.url;
  }
  const [first, second] = await findParties(baseUrl);
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
  a = await openPage(first);
  b = await openPage(second);
});

after(async () => {
  await browser?.close();
  await mock?.close();
  await stopDemo(demo);
});

test("the map shows activities and conflicts", async () => {
  const { page } = a;
  await page.locator(".leaflet-activities-pane path").first().waitFor({ timeout: STEP_MS });
  await page.locator(".leaflet-conflicts-pane .conflict-marker").first().waitFor({ timeout: STEP_MS });
  assert.ok((await page.locator(".leaflet-activities-pane path").count()) > 0);
  assert.ok((await page.locator("#conflict-list li.conflict").count()) > 0);
  assert.equal(await page.locator("#who-name").textContent(), a.name);
  await page.waitForTimeout(700); // let fitBounds finish
  await shot(a, "01-map.png");
});

test("a conflict is acknowledged", async () => {
  const { page } = a;
  const card = page.locator("#conflict-list li.conflict", { hasText: b.name }).first();
  await card.waitFor({ timeout: STEP_MS });
  const id = await card.getAttribute("data-conflict");
  await card.getByRole("button", { name: "Show on map" }).click();
  await card.getByRole("button", { name: "Acknowledge" }).click();
  const again = page.locator(`#conflict-list li[data-conflict="${id}"]`);
  await again.getByRole("button", { name: "Acknowledge" }).waitFor({ state: "detached", timeout: STEP_MS });
  assert.equal(await again.getByRole("button", { name: "Mark resolved" }).count(), 1);
  await page.waitForTimeout(900); // the fly-to animation
  await shot(a, "02-conflict-acknowledged.png");
});

test("a hotline message is sent by one party and acknowledged on the other's page", async () => {
  const body = `Our patrol will hold at Rumaylan until 10:30Z (e2e ${Date.now()})`;
  await a.page.getByRole("tab", { name: /Hotline/ }).click();
  await a.page.fill("#hotline-to", b.name);
  await a.page.selectOption("#hotline-priority", "flash");
  await a.page.selectOption("#hotline-ack", "300");
  await a.page.fill("#hotline-body", body);
  await a.page.getByRole("button", { name: "Send" }).click();
  await a.page.locator("#message-list li.message", { hasText: body }).waitFor({ timeout: STEP_MS });

  // The recipient sees it arrive live: a toast, a badge, and the message.
  await b.page.locator(".toast", { hasText: a.name }).first().waitFor({ timeout: STEP_MS });
  await b.page.getByRole("tab", { name: /Hotline/ }).click();
  const incoming = b.page.locator("#message-list li.message", { hasText: body });
  await incoming.waitFor({ timeout: STEP_MS });
  await shot(b, "03-hotline-received.png");
  await incoming.getByRole("button", { name: "Acknowledge" }).click();
  await incoming.locator(".chip-acked").waitFor({ timeout: STEP_MS });

  // The sender sees the acknowledgement arrive over the event stream.
  await a.page.locator("#message-list li.message", { hasText: body }).locator(".chip-acked").waitFor({ timeout: STEP_MS });
  await shot(a, "04-hotline-acknowledged.png");
});

test("an unacknowledged flash message goes overdue and is shown escalated on both pages", async () => {
  // Sent through the API with a deadline shorter than the form offers, so
  // the test does not wait minutes; the pages must show what follows.
  const ackWithin = Number(process.env.DECONFLICT_OVERDUE_S ?? 2);
  const body = `Flash: confirm your patrol has halted (e2e ${Date.now()})`;
  // The real service escalates along the ladder the recipient set: here one
  // immediate step that alerts B's own TAK clients, which B's page hears as
  // `escalation.tak_alert` (the demo's ladders for armed parties start with
  // the same step; set here so that any B has it). Tokens given without
  // ids: no ladder to set.
  const ladderSet = !mock && b.id !== undefined;
  if (ladderSet) {
    const ladder = await fetch(`${baseUrl}/v1/parties/${b.id}/escalation`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${b.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ escalation: [{ delay_s: 0, kind: "tak" }] }),
    });
    assert.equal(ladder.status, 200, await ladder.text());
  }
  const sent = await fetch(`${baseUrl}/v1/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${a.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ to: b.id ?? b.name, body, priority: "flash", ack_within_s: ackWithin }),
  });
  assert.equal(sent.status, 201, await sent.text());
  await b.page.getByRole("tab", { name: /Hotline/ }).click();
  const atB = b.page.locator("#message-list li.message", { hasText: body });
  await atB.locator(".chip-overdue").waitFor({ timeout: STEP_MS + ackWithin * 1000 });
  await b.page.locator(".toast", { hasText: "Overdue" }).first().waitFor({ timeout: STEP_MS });
  const atA = a.page.locator("#message-list li.message", { hasText: body });
  await atA.locator(".chip-overdue").waitFor({ timeout: STEP_MS });
  // The mock escalates every overdue message and tells both sides; the real
  // service tells the ladder's contacts and, for a TAK step, the recipient,
  // never the sender.
  if (mock || ladderSet) await atB.locator(".chip-overdue", { hasText: "escalated" }).waitFor({ timeout: STEP_MS });
  if (mock) {
    await atA.locator(".chip-overdue", { hasText: "escalated" }).waitFor({ timeout: STEP_MS });
  } else if (ladderSet) {
    // The escalation names the message by id only; B's page tells it from
    // what it knows of the message.
    await b.page.locator(".toast", { hasText: `acknowledge the message from ${a.name} — escalated` }).first().waitFor({ timeout: STEP_MS });
    // The sender is not on B's ladder: its page shows the message overdue,
    // not escalated (nothing told it more).
    assert.equal((await atA.locator(".chip-overdue").textContent())?.trim(), "Overdue");
  }
  await shot(b, "04b-hotline-overdue.png");
  // Acknowledging late still works, and clears the overdue state.
  await atB.getByRole("button", { name: "Acknowledge" }).click();
  await atA.locator(".chip-acked").waitFor({ timeout: STEP_MS });
});

test("a live alert appears", async () => {
  const { page } = a;
  const trackAlert = page.locator('#alert-list li.alert:is([data-alert-kind="proximity"], [data-alert-kind="cpa"], [data-alert-kind="zone.entered"], [data-alert-kind="zone.crossed"], [data-alert-kind="deviation"])');
  await page.getByRole("tab", { name: /Alerts/ }).click();
  await trackAlert.first().waitFor({ timeout: ALERT_TIMEOUT_MS });
  await page.locator(".leaflet-tracks-pane .track-marker").first().waitFor({ timeout: STEP_MS });
  await shot(a, "05-alerts.png");
});

test("the timeline filters by time and export holds only what the party may see", async () => {
  const { page } = a;
  const count = () => page.locator(".leaflet-activities-pane path").count();
  const all = await count();
  await page.focus("#timeline-range");
  await page.keyboard.press("End"); // the end of the day: only open-ended sites remain
  assert.equal(await page.getAttribute("#timeline-all", "aria-pressed"), "false");
  assert.ok((await count()) < all, "moving the slider to the end of the day hides finished activities");
  await page.click("#timeline-all");
  assert.equal(await count(), all);
  // Play steps through the day; pause stops it.
  await page.click("#timeline-play");
  const first = await page.textContent("#timeline-value");
  await page.waitForTimeout(1_000);
  assert.notEqual(await page.textContent("#timeline-value"), first);
  await page.click("#timeline-play");
  assert.equal(await page.getAttribute("#timeline-play", "aria-pressed"), "false");
  await page.click("#timeline-all");
  assert.equal(await page.getAttribute("#timeline-all", "aria-pressed"), "true");
  assert.equal(await count(), all);

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-geojson")]);
  const exported = JSON.parse(await readFile(await download.path(), "utf8"));
  assert.equal(exported.type, "FeatureCollection");
  const activities = exported.features.filter((f) => f.properties.layer === "activity");
  assert.ok(activities.length > 0);
  for (const f of activities) {
    // The server names the owner by party id, the mock by name.
    const own = f.properties.party === a.name || (a.id !== undefined && String(f.properties.party) === String(a.id));
    if (f.properties.party !== undefined) assert.ok(own || f.properties.sharing === "full", `export holds ${f.properties.name} of ${f.properties.party}`);
  }
});

/** What the record says the party knew at `at_ms` (the oracle for the
 *  page's replay): of each activity the latest version recorded by then,
 *  within its window; the conflicts open then, within their window. */
async function recordedAt(token, at_ms) {
  const history = await fetch(`${baseUrl}/v1/history`, { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.json());
  const within = (start, end) => Date.parse(start) <= at_ms && (end == null || at_ms < Date.parse(end));
  const latest = new Map();
  for (const v of history.activities) if (Date.parse(v.at) <= at_ms) latest.set(v.id, v.feature);
  const plans = [...latest.values()].filter((f) => f && within(f.properties.start, f.properties.end));
  const conflicts = history.conflicts.filter(
    (c) => Date.parse(c.opened_at) <= at_ms && (c.resolved_at == null || at_ms < Date.parse(c.resolved_at)) && within(c.start, c.end),
  );
  return { plans: plans.length, conflicts: conflicts.length };
}

/** Moves the slider by keyboard and checks the page draws what the record
 *  held at each instant (real server only: the mock keeps no history). */
async function checkReplay(party) {
  const { page } = party;
  await page.focus("#timeline-range");
  // End then Home: a key that leaves the value where it is moves nothing.
  await page.keyboard.press("End");
  await page.keyboard.press("Home");
  const replaying = await page
    .locator('#timeline-value[data-replay="true"]')
    .waitFor({ state: "attached", timeout: 5_000 })
    .then(() => true, () => false);
  if (!replaying) {
    assert.ok(mock, "a real server must answer GET /v1/history");
    return;
  }
  for (const keys of [["Home"], ["End"], ["Home", ...Array(30).fill("ArrowRight")], ["End", ...Array(40).fill("ArrowLeft")]]) {
    for (const key of keys) await page.keyboard.press(key);
    const at_ms = Number(await page.inputValue("#timeline-range"));
    const expected = await recordedAt(party.token, at_ms);
    const shown = async () => ({
      plans: await page.locator("#activity-list li").count(),
      conflicts: await page.locator("#conflict-list li.conflict").count(),
    });
    // The page fetched the record when the slider left "All times"; the
    // record only grows, so poll briefly for the same answer.
    let seen = await shown();
    for (let i = 0; i < 20 && JSON.stringify(seen) !== JSON.stringify(expected); i++) {
      await page.waitForTimeout(100);
      seen = await shown();
    }
    assert.deepEqual(seen, expected, `at ${new Date(at_ms).toISOString()} (keys ${keys.join(",")})`);
  }
  assert.match(await page.textContent("#timeline-value"), /as recorded/);
}

test("the timeline replays the recorded day, by keyboard, at 1280×800", async () => {
  await a.page.getByRole("tab", { name: /Activities/ }).click();
  await checkReplay(a);
  await shot(a, "09-replay.png");
  await a.page.click("#timeline-all");
  assert.equal(await a.page.getAttribute("#timeline-all", "aria-pressed"), "true");
});

test("an incident is reported with a place picked on the map", async () => {
  const { page } = b;
  await page.getByRole("tab", { name: "Incident" }).click();
  await page.fill("#incident-summary", "Small-arms fire heard near the crossing");
  await page.fill("#incident-description", "Reported by the convoy lead; no casualties.");
  // First by keyboard (the map's centre), then by a click.
  await page.click("#incident-pick");
  await page.keyboard.press("Enter");
  assert.notEqual(await page.inputValue("#incident-lat"), "");
  await page.click("#incident-pick");
  const box = await page.locator("#map").boundingBox();
  const before = await page.inputValue("#incident-lon");
  await page.mouse.click(box.x + box.width * 0.3, box.y + box.height / 2);
  assert.notEqual(await page.inputValue("#incident-lon"), before);
  await page.getByRole("button", { name: "Report incident" }).click();
  await page.locator("#incident-status", { hasText: "Reported" }).waitFor({ timeout: STEP_MS });
  await shot(b, "06-incident.png");
});

/** The page and incident whose evidence to show: against the demo, its
 *  scripted incident (patrol and convoy at the junction, with both units
 *  listed), seen by whichever of the two parties it names; against the mock,
 *  the one reported above. */
async function incidentWithEvidence() {
  const wanted = mock ? /Small-arms fire/ : /al-Malikiyah/;
  const deadline = Date.now() + ALERT_TIMEOUT_MS;
  for (;;) {
    for (const party of [a, b]) {
      const listed = await fetch(`${baseUrl}/v1/incidents`, { headers: { Authorization: `Bearer ${party.token}` } }).then((r) => r.json());
      const found = (listed.incidents ?? []).find((i) => wanted.test(String(i.description ?? i.summary)));
      if (found) return { party, id: String(found.id) };
    }
    assert.ok(Date.now() < deadline, `no incident matching ${wanted} for ${a.name} or ${b.name}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

test("an incident's evidence is drawn on the map and downloads as the server's GeoJSON", async () => {
  const { party, id } = await incidentWithEvidence();
  const { page } = party;
  await page.getByRole("tab", { name: "Incident" }).click();
  const row = page.locator(`#incident-list li[data-incident="${id}"]`);
  await row.waitFor({ timeout: STEP_MS });
  await row.getByRole("button", { name: `Show the evidence of incident ${id} on the map` }).click();
  await page.locator("#evidence-status", { hasText: `Incident ${id}:` }).waitFor({ timeout: STEP_MS });
  const served = await fetch(`${baseUrl}/v1/incidents/${id}/evidence`, { headers: { Authorization: `Bearer ${party.token}` } }).then((r) => r.json());
  const lines = served.features.filter((f) => f.geometry.type === "LineString").length;
  assert.ok(lines > 0, `the evidence of incident ${id} holds tracks: ${JSON.stringify(served).slice(0, 300)}`);
  assert.equal(await page.locator(".leaflet-tracks-pane path.evidence-line").count(), lines);
  assert.ok((await page.locator(".leaflet-tracks-pane path.evidence-point").count()) > 0);
  await page.waitForTimeout(700); // the fit to the evidence
  await shot(party, "06b-incident-evidence.png");
  const [file] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: `Download the evidence of incident ${id} as GeoJSON` }).click()]);
  const saved = JSON.parse(await readFile(await file.path(), "utf8"));
  assert.equal(saved.type, "FeatureCollection");
  assert.equal(String(saved.incident), id);
  assert.ok(saved.features.length >= served.features.length, "the download is the server's evidence");
});

test("keyboard: the panel tabs move with the arrow keys", async () => {
  const { page } = a;
  await page.getByRole("tab", { name: /Conflicts/ }).focus();
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "tab-hotline");
  assert.equal(await page.getAttribute("#tab-hotline", "aria-selected"), "true");
  assert.equal(await page.isVisible("#panel-hotline"), true);
});

test("tablet width: nothing overflows sideways", async () => {
  const tablet = await openPage({ name: a.name, token: a.token }, { width: 768, height: 1024 });
  await tablet.page.locator(".leaflet-activities-pane path").first().waitFor({ timeout: STEP_MS });
  await tablet.page.waitForTimeout(700);
  const overflow = await tablet.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `page is ${overflow} px wider than the viewport`);
  await checkReplay(tablet);
  await tablet.page.click("#timeline-all");
  await tablet.page.screenshot({ path: resolve(OUT, "07-tablet.png"), fullPage: true });
  assert.deepEqual(tablet.problems, []);
  await tablet.page.context().close();
});

test("view as: in demo mode another party's picture is one click away", async (t) => {
  const demo = await fetch(`${baseUrl}/demo/parties`).then((r) => (r.ok ? r.json() : null), () => null);
  if (!demo) return t.skip("the server is not in demo mode");
  const viewer = await openPage({ name: a.name, token: a.token });
  const { page } = viewer;
  assert.equal(await page.isVisible("#view-as"), true);
  // Need to know: another party's need-to-know plans (the API lists only
  // its own to it) are nowhere on A's page, and appear once the page views
  // as that party.
  let other;
  let secret = [];
  for (const party of demo.filter((p) => p.name !== a.name && p.kind !== "broker")) {
    const own = await fetch(`${baseUrl}/v1/activities`, { headers: { Authorization: `Bearer ${party.token}` } }).then((r) => r.json());
    secret = own.features.filter((f) => (f.properties.sharing ?? "need_to_know") === "need_to_know" && f.properties.name).map((f) => f.properties.name);
    other = party;
    if (secret.length > 0) break;
  }
  assert.ok(secret.length > 0, "no other demo party has a need-to-know plan to hide");
  const listed = async () => (await page.locator("#activity-list").textContent()) ?? "";
  await page.locator("#activity-list li").first().waitFor({ state: "attached", timeout: STEP_MS });
  for (const name of secret) assert.ok(!(await listed()).includes(name), `${a.name} sees ${other.name}'s "${name}"`);
  await Promise.all([page.waitForEvent("load"), page.selectOption("#view-as", other.token)]);
  await page.locator(".conn-live").waitFor({ timeout: STEP_MS });
  assert.equal(await page.locator("#who-name").textContent(), other.name);
  await page.locator(".leaflet-activities-pane path").first().waitFor({ timeout: STEP_MS });
  await page.locator("#activity-list li").first().waitFor({ state: "attached", timeout: STEP_MS });
  for (const name of secret) assert.ok((await listed()).includes(name), `viewing as ${other.name}, "${name}" is missing`);
  await page.waitForTimeout(700);
  await page.screenshot({ path: resolve(OUT, "08-view-as.png") });
  assert.deepEqual(viewer.problems, []);
  await page.context().close();
});

test("the event stream reconnects after the server drops it, and events flow again", async (t) => {
  if (!mock) return t.skip("needs the mock server's hook to drop streams");
  const dropped = await fetch(`${baseUrl}/mock/drop-streams`, { method: "POST" }).then((r) => r.json());
  assert.ok(dropped.dropped >= 2);
  await a.page.locator(".conn-live").waitFor({ timeout: STEP_MS });
  await b.page.locator(".conn-live").waitFor({ timeout: STEP_MS });
  const body = `After the reconnection (e2e ${Date.now()})`;
  const sent = await fetch(`${baseUrl}/v1/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${b.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ to: a.id ?? a.name, body, priority: "routine" }),
  });
  assert.equal(sent.status, 201);
  await a.page.getByRole("tab", { name: /Hotline/ }).click();
  await a.page.locator("#message-list li.message", { hasText: body }).waitFor({ timeout: STEP_MS });
});

test("sign-in refuses a bad token and says so", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(baseUrl);
  await page.fill("#signin-token", "not-a-real-token");
  await page.press("#signin-token", "Enter");
  await page.locator("#signin-status", { hasText: "did not accept" }).waitFor({ timeout: STEP_MS });
  assert.equal(await page.isVisible("#app"), false);
  await context.close();
});

test("outside demo mode there is no party list and no view-as", async (t) => {
  if (!mock) return t.skip("needs the mock server, which can run without demo mode");
  const plain = await startMockServer({ demo: false });
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(plain.url);
    await page.locator("#signin-token").waitFor({ timeout: STEP_MS });
    assert.equal(await page.isVisible("#signin-demo"), false);
    await page.fill("#signin-token", a.token);
    await page.press("#signin-token", "Enter");
    await page.locator(".conn-live").waitFor({ timeout: STEP_MS });
    assert.equal(await page.isVisible("#view-as"), false);
    assert.equal(await page.locator("#who-name").textContent(), a.name);
  } finally {
    await context.close();
    await plain.close();
  }
});

test("no Content-Security-Policy violations and no page errors", () => {
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
});
