// A stand-in for `deconflict serve` in demo mode, implementing the shapes of
// /work/shared/CONTRACT.md (and the assumptions written in src/api.ts) with a
// canned north-east Syria scenario, so the page can be driven end to end
// before the real server exists. It listens on loopback only, on a port the
// OS picks unless told, and serves the built page (web/dist) under a strict
// Content-Security-Policy, as the real server will.
//
//   node tests/mock-server.mjs [--port N] [--no-demo]
//
// It is a test fixture: state is in memory, and the live simulation is a
// fixed loop of two patrols approaching each other near Tirbespi.

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = fileURLToPath(new URL(".", import.meta.url));
export const DIST_DIR = resolve(HERE, "..", "dist");

export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

export const PARTIES = [
  { id: "p-us", name: "US Forces", kind: "military", token: "demo-us-token" },
  { id: "p-ru", name: "Russian Forces", kind: "military", token: "demo-ru-token" },
  { id: "p-ocha", name: "UN OCHA", kind: "humanitarian", token: "demo-ocha-token" },
  { id: "p-broker", name: "Deconfliction Cell", kind: "broker", token: "demo-broker-token" },
];

const DAY = "2022-10-08";
const t = (hhmm) => `${DAY}T${hhmm}:00Z`;

// Coordinates are approximate and the scenario is illustrative.
const ROUTES = {
  usPatrol: [[41.93, 36.99], [41.7, 37.0], [41.52, 37.02], [41.41, 37.03]],
  ruPatrol: [[41.22, 37.05], [41.41, 37.035], [41.6, 37.1], [41.85, 37.14], [42.14, 37.17]],
  ruEscort: [[41.22, 37.06], [41.45, 37.075], [41.75, 37.13]],
  aidConvoy: [[40.75, 36.5], [40.92, 36.68], [41.08, 36.86], [41.23, 37.04]],
  usConvoy: [[41.93, 36.99], [42.1, 37.03], [42.25, 37.09], [42.36, 37.13]],
};

function activity(id, party, properties, geometry) {
  return { type: "Feature", id, geometry, properties: { party, version: 1, sharing: "need_to_know", ...properties } };
}

export function scenario() {
  const activities = [
    activity("a-us-1", "US Forces", { kind: "patrol", name: "US patrol Rumaylan–Tirbespi", start: t("08:00"), end: t("11:00"), corridor_m: 2000 }, { type: "LineString", coordinates: ROUTES.usPatrol }),
    activity("a-us-2", "US Forces", { kind: "convoy", name: "US logistics convoy to Semalka", start: t("14:00"), end: t("16:30"), corridor_m: 1500 }, { type: "LineString", coordinates: ROUTES.usConvoy }),
    activity("a-ru-1", "Russian Forces", { kind: "patrol", name: "Russian patrol Qamishli–al-Malikiyah", start: t("08:30"), end: t("12:00"), corridor_m: 1500 }, { type: "LineString", coordinates: ROUTES.ruPatrol }),
    activity("a-ru-2", "Russian Forces", { kind: "flight", name: "Russian helicopter escort", start: t("08:30"), end: t("10:00"), corridor_m: 3000, alt_min_m: 150, alt_max_m: 600 }, { type: "LineString", coordinates: ROUTES.ruEscort }),
    activity("a-un-1", "UN OCHA", { kind: "site", name: "Qamishli national hospital", start: t("00:00"), end: null, radius_m: 500, sharing: "full" }, { type: "Point", coordinates: [41.226, 37.052] }),
    activity("a-un-2", "UN OCHA", { kind: "site", name: "al-Hasakah warehouse", start: t("00:00"), end: null, radius_m: 300, sharing: "full" }, { type: "Point", coordinates: [40.748, 36.502] }),
    activity("a-un-3", "UN OCHA", { kind: "convoy", name: "Aid convoy al-Hasakah–Qamishli", start: t("09:00"), end: t("13:00"), corridor_m: 1000, sharing: "full" }, { type: "LineString", coordinates: ROUTES.aidConvoy }),
  ];
  const conflicts = [
    {
      id: "c-1", activities: ["a-us-1", "a-ru-1"], parties: ["US Forces", "Russian Forces"], start: t("08:30"), end: t("11:00"),
      min_distance_m: 0, required_m: 5000, location: { type: "Point", coordinates: [41.41, 37.033] }, state: "open", acked_by: [],
    },
    {
      id: "c-2", activities: ["a-ru-2", "a-un-3"], parties: ["Russian Forces", "UN OCHA"], start: t("09:00"), end: t("10:00"),
      min_distance_m: 640, required_m: 2000, location: { type: "Point", coordinates: [41.23, 37.045] }, state: "open", acked_by: [],
    },
  ];
  const zones = [
    { type: "Feature", id: "z-tanf", geometry: { type: "Point", coordinates: [38.66, 33.5] }, properties: { kind: "exclusion", name: "al-Tanf 55 km zone", radius_m: 55000 } },
    {
      type: "Feature", id: "z-m4", properties: { kind: "demarcation", name: "M4 highway" },
      geometry: { type: "LineString", coordinates: [[38.86, 36.39], [39.45, 36.5], [40.05, 36.58], [40.39, 36.65], [40.95, 36.72], [41.5, 36.8], [42.09, 36.8]] },
    },
    {
      type: "Feature", id: "z-hosp", properties: { kind: "protected", name: "Hospital protection area" },
      geometry: { type: "Polygon", coordinates: [[[41.212, 37.044], [41.24, 37.044], [41.24, 37.061], [41.212, 37.061], [41.212, 37.044]]] },
    },
  ];
  return { activities, conflicts, zones };
}

// ---------------------------------------------------------------- geometry for the simulation

const R = 6_371_008.8;
function haversine_m(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b[1] - a[1]) * rad;
  const dLon = (b[0] - a[0]) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[1] * rad) * Math.cos(b[1] * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.sqrt(h));
}
function along(route, fraction) {
  const lengths = route.slice(1).map((p, i) => haversine_m(route[i], p));
  let remaining = lengths.reduce((s, l) => s + l, 0) * Math.min(1, Math.max(0, fraction));
  for (let i = 0; i < lengths.length; i++) {
    if (remaining <= lengths[i] || i === lengths.length - 1) {
      const f = lengths[i] === 0 ? 0 : Math.min(1, remaining / lengths[i]);
      const [a, b] = [route[i], route[i + 1]];
      const course = (Math.atan2((b[0] - a[0]) * Math.cos((a[1] * Math.PI) / 180), b[1] - a[1]) * 180) / Math.PI;
      return { at: [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f], course_deg: (course + 360) % 360 };
    }
    remaining -= lengths[i];
  }
  return { at: route[route.length - 1], course_deg: 0 };
}

/** Both patrols drive towards Tirbespi and back, a 40 s cycle, meeting
 *  (within 3 km) about 6 s after the server starts and every cycle after. */
export const SIM_CYCLE_MS = 40_000;
const PROXIMITY_M = 3000;

// ---------------------------------------------------------------- server

export async function startMockServer({ port = 0, demo = true, distDir = DIST_DIR, log = () => {} } = {}) {
  const { activities, conflicts, zones } = scenario();
  const messages = [];
  const incidents = [];
  const subscribers = new Set(); // { party, res }
  let eventId = 0;
  let logSize = 41;
  const started = Date.now();

  const byToken = new Map(PARTIES.map((p) => [p.token, p]));
  const partyByName = new Map(PARTIES.map((p) => [p.name, p]));
  const isBroker = (party) => party.kind === "broker";

  function emit(type, data, parties) {
    eventId += 1;
    const frame = `id: ${eventId}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const s of subscribers) {
      if (isBroker(s.party) || parties.includes(s.party.name)) s.res.write(frame);
    }
  }

  function problem(res, status, title, detail, errors) {
    const body = { type: "about:blank", title, status, detail };
    if (errors) body.errors = errors;
    res.writeHead(status, { "Content-Type": "application/problem+json" });
    res.end(JSON.stringify(body));
  }
  function json(res, status, body) {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  }
  async function readJson(req, res) {
    const chunks = [];
    let size = 0;
    for await (const chunk of req) {
      size += chunk.length;
      if (size > 64 * 1024) {
        problem(res, 413, "Body too large", "at most 65536 bytes");
        return undefined;
      }
      chunks.push(chunk);
    }
    try {
      const text = Buffer.concat(chunks).toString("utf8");
      return text ? JSON.parse(text) : {};
    } catch (error) {
      problem(res, 400, "Malformed JSON", String(error.message));
      return undefined;
    }
  }

  const visibleActivities = (party) => activities.filter((a) => isBroker(party) || a.properties.party === party.name || a.properties.sharing === "full");
  const involved = (party, conflict) => isBroker(party) || conflict.parties.includes(party.name);

  // -------------------------------------------------------------- simulation
  const units = [
    { uid: "US-PATROL-1", party: "US Forces", route: ROUTES.usPatrol, speed_mps: 11 },
    { uid: "RU-PATROL-1", party: "Russian Forces", route: ROUTES.ruPatrol.slice(0, 2), speed_mps: 9 },
    { uid: "UN-CONVOY-1", party: "UN OCHA", route: ROUTES.aidConvoy, speed_mps: 8 },
  ];
  function positions(now_ms) {
    const phase = (((now_ms - started) % SIM_CYCLE_MS) + SIM_CYCLE_MS) % SIM_CYCLE_MS / SIM_CYCLE_MS;
    // A triangle wave: 0.7 of the way in at the start, the meeting point
    // (1.0) at 0.15 of the cycle (6 s), back to 0 at 0.65 of it.
    const shifted = (phase + 0.35) % 1;
    const progress = shifted < 0.5 ? shifted * 2 : 2 - shifted * 2;
    return units.map((u) => {
      const outbound = shifted < 0.5;
      const { at, course_deg } = along(u.route, u.uid.startsWith("UN") ? 0.3 + 0.4 * progress : 0.55 + 0.45 * progress);
      return {
        type: "Feature",
        id: u.uid,
        geometry: { type: "Point", coordinates: at },
        properties: { uid: u.uid, party: u.party, time: new Date(now_ms).toISOString(), course_deg: Math.round(outbound ? course_deg : (course_deg + 180) % 360), speed_mps: u.speed_mps },
      };
    });
  }
  let close = false;
  let cpaWarned = false;
  const simTimer = setInterval(() => {
    const [us, ru] = positions(Date.now());
    const d = haversine_m(us.geometry.coordinates, ru.geometry.coordinates);
    if (d < 8000 && !cpaWarned && !close) {
      cpaWarned = true;
      // Both units head for the ends of their routes, so that is where they pass closest.
      const cpa_m = Math.round(haversine_m(ROUTES.usPatrol.at(-1), ROUTES.ruPatrol[1]));
      emit("cpa", { uids: ["US-PATROL-1", "RU-PATROL-1"], distance_m: cpa_m, time: new Date().toISOString(), summary: `Closest approach ahead: US-PATROL-1 and RU-PATROL-1 will pass ${cpa_m} m apart`, location: { type: "Point", coordinates: ROUTES.usPatrol.at(-1) } }, ["US Forces", "Russian Forces"]);
    }
    if (d < PROXIMITY_M && !close) {
      close = true;
      emit("proximity", { uids: ["US-PATROL-1", "RU-PATROL-1"], distance_m: Math.round(d), time: new Date().toISOString(), location: us.geometry }, ["US Forces", "Russian Forces"]);
    } else if (d > PROXIMITY_M * 2) {
      if (close) cpaWarned = false;
      close = false;
    }
  }, 500);
  simTimer.unref();
  const keepAlive = setInterval(() => {
    for (const s of subscribers) s.res.write(": keep-alive\n\n");
  }, 15_000);
  keepAlive.unref();

  function visibleTracks(party) {
    const all = positions(Date.now());
    if (isBroker(party)) return all;
    const own = all.filter((f) => f.properties.party === party.name);
    // Another party's unit is shown only while it is near one of ours.
    const near = all.filter((f) => f.properties.party !== party.name && own.some((o) => haversine_m(o.geometry.coordinates, f.geometry.coordinates) < 10_000));
    return [...own, ...near];
  }

  // -------------------------------------------------------------- routes

  async function api(req, res, url, party) {
    const path = url.pathname;
    const method = req.method;
    let m;
    if (method === "GET" && path === "/v1/me") return json(res, 200, { id: party.id, name: party.name, kind: party.kind });
    if (method === "GET" && path === "/v1/activities") return json(res, 200, { type: "FeatureCollection", features: visibleActivities(party) });
    if (method === "GET" && path === "/v1/zones") return json(res, 200, { type: "FeatureCollection", features: zones });
    // Like the real route: what this party may see, each feature tagged with its layer.
    if (method === "GET" && path === "/v1/export" && url.searchParams.get("format") === "geojson") {
      const features = [
        ...visibleActivities(party).map((f) => ({ ...f, properties: { layer: "activity", ...f.properties } })),
        ...zones.map((f) => ({ ...f, properties: { layer: "zone", ...f.properties } })),
      ];
      return json(res, 200, { type: "FeatureCollection", features });
    }
    if (method === "GET" && path === "/v1/tracks") return json(res, 200, { type: "FeatureCollection", features: visibleTracks(party) });
    if (method === "GET" && path === "/v1/conflicts") {
      const state = url.searchParams.get("state");
      const list = conflicts.filter((c) => involved(party, c) && (state !== "open" || c.state !== "resolved"));
      return json(res, 200, { conflicts: list });
    }
    if (method === "POST" && (m = path.match(/^\/v1\/conflicts\/([^/]+)\/(ack|resolve)$/))) {
      const conflict = conflicts.find((c) => c.id === decodeURIComponent(m[1]));
      if (!conflict) return problem(res, 404, "No such conflict", `conflict ${m[1]} does not exist`);
      if (!conflict.parties.includes(party.name)) return problem(res, 403, "Not involved", "only the parties of a conflict may act on it");
      if (m[2] === "ack") {
        if (!conflict.acked_by.includes(party.name)) conflict.acked_by.push(party.name);
        if (conflict.parties.every((p) => conflict.acked_by.includes(p))) conflict.state = "acknowledged";
        emit("conflict.updated", conflict, conflict.parties);
      } else {
        conflict.state = "resolved";
        emit("conflict.resolved", conflict, conflict.parties);
      }
      logSize += 1;
      return json(res, 200, conflict);
    }
    if (method === "GET" && path === "/v1/messages") {
      return json(res, 200, { messages: messages.filter((msg) => isBroker(party) || msg.from === party.name || msg.to === party.name) });
    }
    if (method === "POST" && path === "/v1/messages") {
      const body = await readJson(req, res);
      if (body === undefined) return;
      const errors = [];
      if (typeof body.to !== "string" || !partyByName.has(body.to)) errors.push({ pointer: "/to", message: "must name a party" });
      else if (body.to === party.name) errors.push({ pointer: "/to", message: "cannot be yourself" });
      if (typeof body.body !== "string" || body.body.trim() === "") errors.push({ pointer: "/body", message: "must not be empty" });
      else if (body.body.length > 4000) errors.push({ pointer: "/body", message: "at most 4000 characters" });
      if (!["routine", "priority", "flash"].includes(body.priority)) errors.push({ pointer: "/priority", message: "must be routine, priority or flash" });
      if (body.ack_within_s !== undefined && !(Number.isInteger(body.ack_within_s) && body.ack_within_s > 0 && body.ack_within_s <= 86_400)) errors.push({ pointer: "/ack_within_s", message: "must be a whole number of seconds, 1 to 86400" });
      if (errors.length) return problem(res, 422, "Invalid message", `${errors.length} field(s) to fix`, errors);
      const message = {
        id: `m-${messages.length + 1}`, from: party.name, to: body.to, body: body.body, priority: body.priority,
        sent_at: new Date().toISOString(), ack_within_s: body.ack_within_s, acked_at: null, conflict_id: body.conflict_id ?? null, state: "pending", escalated: false,
      };
      messages.push(message);
      logSize += 1;
      emit("message", message, [message.from, message.to]);
      if (message.ack_within_s) {
        setTimeout(() => {
          if (message.state !== "pending") return;
          message.state = "overdue";
          // A flash message nobody acknowledged goes to the broker as well.
          message.escalated = message.priority === "flash";
          emit("message.overdue", message, [message.from, message.to]);
        }, message.ack_within_s * 1000).unref();
      }
      return json(res, 201, message);
    }
    if (method === "POST" && (m = path.match(/^\/v1\/messages\/([^/]+)\/ack$/))) {
      const message = messages.find((msg) => msg.id === decodeURIComponent(m[1]));
      if (!message) return problem(res, 404, "No such message", `message ${m[1]} does not exist`);
      if (message.to !== party.name) return problem(res, 403, "Not the recipient", "only the recipient acknowledges a message");
      if (message.state !== "acked") {
        message.state = "acked";
        message.acked_at = new Date().toISOString();
        logSize += 1;
        emit("message.acked", message, [message.from, message.to]);
      }
      return json(res, 200, message);
    }
    if (method === "POST" && path === "/v1/incidents") {
      const body = await readJson(req, res);
      if (body === undefined) return;
      const errors = [];
      if (typeof body.summary !== "string" || !body.summary.trim()) errors.push({ pointer: "/summary", message: "must not be empty" });
      if (typeof body.time !== "string" || Number.isNaN(Date.parse(body.time))) errors.push({ pointer: "/time", message: "must be an RFC 3339 time" });
      if (body.location?.type !== "Point") errors.push({ pointer: "/location", message: "must be a GeoJSON Point" });
      if (errors.length) return problem(res, 422, "Invalid incident", `${errors.length} field(s) to fix`, errors);
      const incident = { id: `i-${incidents.length + 1}`, party: party.name, ...body };
      incidents.push(incident);
      logSize += 1;
      emit("incident", { ...incident, summary: `Incident reported by ${party.name}: ${incident.summary}` }, PARTIES.map((p) => p.name));
      return json(res, 201, { id: incident.id, receipt: { log_index: logSize - 1, leaf_hash: Buffer.from(`leaf-${logSize}`).toString("base64"), checkpoint: checkpoint() } });
    }
    if (method === "GET" && path === "/v1/incidents") return json(res, 200, { incidents });
    // Like the real route: the reporter's unit over the window around the
    // incident, a line and its positions; 404 for an unknown incident.
    if (method === "GET" && (m = path.match(/^\/v1\/incidents\/([^/]+)\/evidence$/))) {
      const incident = incidents.find((i) => i.id === decodeURIComponent(m[1]));
      if (!incident) return problem(res, 404, "Not found", "no such incident");
      const t = Date.parse(incident.time);
      const [lon, lat] = incident.location.coordinates;
      const points = [-300, -120, 0, 120, 300].map((s, i) => ({ time: new Date(t + s * 1000).toISOString(), at: [lon - 0.02 + i * 0.01, lat + (i % 2) * 0.004] }));
      const unit = { party: incident.party, uid: `${incident.party}-unit-1` };
      const features = [
        { type: "Feature", geometry: { type: "LineString", coordinates: points.map((p) => p.at) }, properties: { kind: "track", ...unit, times: points.map((p) => p.time) } },
        ...points.map((p) => ({ type: "Feature", geometry: { type: "Point", coordinates: p.at }, properties: { kind: "position", ...unit, time: p.time, alt_m: 350, speed_mps: 11.2, course_deg: 80 } })),
      ];
      const window = { from: new Date(t - 600_000).toISOString(), to: new Date(t + 600_000).toISOString() };
      res.writeHead(200, { "Content-Type": "application/geo+json" });
      return res.end(JSON.stringify({ type: "FeatureCollection", incident: incident.id, window, complete: Date.now() > t + 600_000, truncated: false, features }));
    }
    if (method === "GET" && path === "/v1/log/checkpoint") {
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
      return res.end(checkpoint());
    }
    if (method === "GET" && path === "/v1/events") {
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store", Connection: "keep-alive" });
      res.write(": connected\n\n");
      const subscriber = { party, res };
      subscribers.add(subscriber);
      req.on("close", () => subscribers.delete(subscriber));
      return;
    }
    return problem(res, 404, "Not found", `${method} ${path} is not part of the API`);
  }

  function checkpoint() {
    return `deconflict.demo/log\n${logSize}\n${Buffer.from(`root-${logSize}`.padEnd(32, ".")).toString("base64")}\n\n— deconflict.demo/log bW9jay1zaWduYXR1cmUtb25seS1mb3ItdGVzdHM=\n`;
  }

  const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png", ".json": "application/json" };

  async function staticFile(req, res, url) {
    const relative = url.pathname === "/" ? "index.html" : normalize(decodeURIComponent(url.pathname)).replace(/^([/\\])+/, "");
    const file = join(distDir, relative);
    if (!file.startsWith(distDir)) return problem(res, 400, "Bad path", "outside the web root");
    try {
      const body = await readFile(file);
      res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff" });
      res.end(body);
    } catch {
      problem(res, 404, "Not found", url.pathname);
    }
  }

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://mock");
    log(`${req.method} ${url.pathname}`);
    try {
      if (url.pathname === "/demo/parties") {
        if (!demo) return problem(res, 404, "Not found", "not in demo mode");
        return json(res, 200, PARTIES.map(({ name, kind, token }) => ({ name, kind, token })));
      }
      if (url.pathname === "/healthz") return json(res, 200, { ok: true });
      // A test hook, mock only: end every event stream, as a server restart
      // or a proxy timeout would, to exercise the page's reconnection.
      if (url.pathname === "/mock/drop-streams" && req.method === "POST") {
        const dropped = subscribers.size;
        for (const sub of subscribers) sub.res.end();
        subscribers.clear();
        return json(res, 200, { dropped });
      }
      if (url.pathname.startsWith("/v1/")) {
        const header = req.headers.authorization ?? "";
        const party = header.startsWith("Bearer ") ? byToken.get(header.slice(7)) : undefined;
        if (!party) return problem(res, 401, "Unauthorised", "send Authorization: Bearer TOKEN with a party token");
        return await api(req, res, url, party);
      }
      return await staticFile(req, res, url);
    } catch (error) {
      if (!res.headersSent) problem(res, 500, "Mock server error", String(error));
    }
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  const address = server.address();
  const url = `http://127.0.0.1:${address.port}`;
  return {
    url,
    parties: PARTIES,
    close: () =>
      new Promise((ok) => {
        clearInterval(simTimer);
        clearInterval(keepAlive);
        for (const s of subscribers) s.res.end();
        server.close(() => ok());
        server.closeAllConnections?.();
      }),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const portIndex = args.indexOf("--port");
  const port = portIndex >= 0 ? Number(args[portIndex + 1]) : 0;
  const mock = await startMockServer({ port, demo: !args.includes("--no-demo") });
  console.log(`mock deconflict server at ${mock.url}`);
  for (const p of mock.parties) console.log(`  ${p.name.padEnd(20)} ${p.kind.padEnd(13)} ${p.token}`);
}
