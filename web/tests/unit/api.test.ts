import { describe, expect, it } from "vitest";
import { Api, ApiError, decodeConflict, decodeEvent, decodeMessage, demoParties, problemFromResponse, type Conflict, type FetchLike, type LiveEvent } from "../../src/api";

function respond(status: number, body: string, contentType = "application/json"): FetchLike {
  return async () => new Response(body, { status, headers: { "Content-Type": contentType } });
}

describe("problem+json errors", () => {
  it("reads title, detail and every named field", async () => {
    const body = JSON.stringify({
      type: "about:blank",
      title: "Invalid message",
      status: 422,
      detail: "2 field(s) to fix",
      errors: [
        { pointer: "/to", message: "must name a party" },
        { pointer: "/body", message: "must not be empty" },
      ],
    });
    const api = new Api("t", "", respond(422, body, "application/problem+json"));
    const error = await api.sendMessage({ to: "x", body: "", priority: "routine" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    const problem = error as ApiError;
    expect(problem.status).toBe(422);
    expect(problem.title).toBe("Invalid message");
    expect(problem.fieldProblems).toEqual([
      { pointer: "/to", message: "must name a party" },
      { pointer: "/body", message: "must not be empty" },
    ]);
    expect(problem.describe()).toBe("Invalid message: 2 field(s) to fix; /to: must name a party; /body: must not be empty");
  });

  it("keeps a bounded excerpt of an answer that is not JSON", async () => {
    const problem = await problemFromResponse(new Response("<html>" + "x".repeat(5000), { status: 502, statusText: "Bad Gateway", headers: { "Content-Type": "text/html" } }));
    expect(problem.status).toBe(502);
    expect(problem.title).toBe("Bad Gateway");
    expect(problem.detail!.length).toBeLessThanOrEqual(200);
  });

  it("survives JSON that lies about its content type, and odd error entries", async () => {
    const garbled = await problemFromResponse(new Response("{not json", { status: 400, headers: { "Content-Type": "application/problem+json" } }));
    expect(garbled.status).toBe(400);
    expect(garbled.detail).toBe("{not json");
    const odd = await problemFromResponse(new Response(JSON.stringify({ title: "Bad", errors: [42, { message: "no pointer" }] }), { status: 400, headers: { "Content-Type": "application/problem+json" } }));
    expect(odd.fieldProblems).toEqual([{ pointer: "", message: "no pointer" }]);
  });

  it("turns a network failure into status 0", async () => {
    const api = new Api("t", "", async () => {
      throw new TypeError("Failed to fetch");
    });
    const error = (await api.zones().catch((e: unknown) => e)) as ApiError;
    expect(error.status).toBe(0);
    expect(error.describe()).toContain("Failed to fetch");
  });

  it("treats a missing /v1/me as unknown, but a refused token as an error", async () => {
    expect(await new Api("t", "", respond(404, "{}")).me()).toBeNull();
    await expect(new Api("t", "", respond(401, JSON.stringify({ title: "Unauthorised" }))).me()).rejects.toMatchObject({ status: 401 });
  });
});

describe("requests", () => {
  it("sends the bearer token and JSON body", async () => {
    const seen: { url: string; init?: RequestInit }[] = [];
    const api = new Api("secret", "http://server", async (url, init) => {
      seen.push({ url, init });
      return new Response(JSON.stringify({ id: 5, from: "A", to: "B", body: "hi", priority: "flash", sent_at: "2022-10-08T09:00:00Z" }), { status: 201 });
    });
    const sent = await api.sendMessage({ to: "B", body: "hi", priority: "flash", ack_within_s: 300 });
    expect(seen[0].url).toBe("http://server/v1/messages");
    expect((seen[0].init!.headers as Record<string, string>).Authorization).toBe("Bearer secret");
    expect(JSON.parse(String(seen[0].init!.body))).toEqual({ to: "B", body: "hi", priority: "flash", ack_within_s: 300 });
    expect(sent).toMatchObject({ id: "5", state: "pending", escalated: false });
  });

  it("sends a known party's id for a typed name, and names ids it has learned", async () => {
    const seen: RequestInit[] = [];
    const api = new Api("t", "", async (_url, init) => {
      seen.push(init!);
      return new Response(JSON.stringify({ id: 9, from: 1, to: 2, body: "hi", priority: "routine" }), { status: 201 });
    });
    api.learnParty(2, "Russian Forces");
    api.learnParty(1, "US Forces");
    const sent = await api.sendMessage({ to: "Russian Forces", body: "hi", priority: "routine" });
    expect(JSON.parse(String(seen[0].body)).to).toBe(2);
    expect(sent).toMatchObject({ from: "US Forces", to: "Russian Forces" });
    await api.sendMessage({ to: "Nobody known", body: "hi", priority: "routine" });
    expect(JSON.parse(String(seen[1].body)).to).toBe("Nobody known");
  });

  it("hides the demo list when the server answers 404", async () => {
    expect(await demoParties("", respond(404, "{}"))).toBeNull();
    expect(await demoParties("", respond(200, JSON.stringify([{ name: "A", kind: "military", token: "x" }, { bogus: 1 }])))).toEqual([{ name: "A", kind: "military", token: "x" }]);
  });

  it("streams events through fetch, across chunks", async () => {
    const chunks = ['id: 1\nevent: conflict.opened\ndata: {"id":"c-1","activities":["a","b"],"parties":["P","Q"],', '"start":"2022-10-08T08:00:00Z","end":null,"min_distance_m":0,"required_m":5000,"location":{"type":"Point","coordinates":[41,37]},"state":"open"}\n', "\nid: 2\nevent: lagged\ndata: {}\n\n"];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(new TextEncoder().encode(c));
        controller.close();
      },
    });
    let opened = false;
    const api = new Api("t", "", async () => new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } }));
    const events: LiveEvent[] = [];
    const last = await api.streamEvents((e) => events.push(e), new AbortController().signal, undefined, () => (opened = true));
    expect(opened).toBe(true);
    expect(last).toBe("2");
    expect(events.map((e) => e.type)).toEqual(["conflict.opened", "lagged"]);
  });
});

describe("decoders", () => {
  it("accepts wrapped and bare payloads, and numeric ids", () => {
    const bare = decodeEvent({ event: "message.acked", data: JSON.stringify({ id: 3, from: "A", to: "B", body: "x", priority: "routine", sent_at: "t" }) });
    expect(bare).toMatchObject({ type: "message.acked", message: { id: "3", state: "acked" } });
    const wrapped = decodeEvent({ event: "conflict.resolved", data: JSON.stringify({ conflict: { id: 9, activities: [1, 2], parties: ["P", "Q"], start: "s", end: null, min_distance_m: 1, required_m: 2, location: { type: "Point", coordinates: [0, 0] }, state: "open" } }) });
    expect(wrapped).toMatchObject({ type: "conflict.resolved", conflict: { id: "9", activities: ["1", "2"], state: "resolved" } });
  });

  it("takes the type from the data when the stream gives none", () => {
    expect(decodeEvent({ event: "message", data: JSON.stringify({ type: "proximity", uids: ["U1", "U2"], distance_m: 900 }) })).toMatchObject({
      type: "proximity",
      alert: { summary: "Proximity: U1 and U2 900 m apart" },
    });
  });

  it("keeps unknown or malformed events as other, never throws", () => {
    expect(decodeEvent({ event: "weather", data: "{}" })).toMatchObject({ type: "other", name: "weather" });
    expect(decodeEvent({ event: "conflict.opened", data: "not json" })).toMatchObject({ type: "other" });
    expect(decodeMessage(null)).toBeNull();
    expect(decodeMessage({ body: "no id" })).toBeNull();
  });

  it("reads a TAK escalation step of a message as that message escalated", () => {
    const data = JSON.stringify({ subject: { message: 12 }, party: 3, step: 0 });
    expect(decodeEvent({ event: "escalation.tak_alert", data })).toMatchObject({ type: "message.overdue", message: { id: "12", escalated: true } });
    expect(decodeEvent({ event: "escalation.tak_alert", data: JSON.stringify({ subject: { conflict: 4, party: 3 }, party: 3, step: 0 }) })).toMatchObject({ type: "other" });
  });

  it("maps message states, including escalation", () => {
    expect(decodeMessage({ id: "m", state: "escalated" })).toMatchObject({ state: "overdue", escalated: true });
    expect(decodeMessage({ id: "m", acked_at: "2022-10-08T09:00:00Z", state: "pending" })).toMatchObject({ state: "acked" });
    expect(decodeMessage({ id: "m", priority: "urgent" })).toMatchObject({ priority: "routine" });
  });
});

describe("adapting to the server's representation", () => {
  it("shows parties by name once /v1/me gave our id, and converts millisecond times", async () => {
    const answers: Record<string, unknown> = {
      "/v1/me": { id: 7, name: "US Forces", kind: "military" },
      "/v1/conflicts?state=open": {
        conflicts: [{ id: 1, activities: [10, 20], parties: [7, "Russian Forces"], start: 1665217800000, end: null, min_distance_m: 0, required_m: 5000, location: { type: "Point", coordinates: [41.41, 37.03] }, state: "open", acked_by: [7] }],
      },
      "/v1/messages": [{ id: 3, from: 9, to: 7, body: "hold", priority: "flash", sent_at: 1665217800000, state: "delivered", link: { conflict: 1 }, overdue_at: 1665218100000 }],
    };
    const api = new Api("t", "", async (url) => new Response(JSON.stringify(answers[url]), { status: 200 }));
    expect(await api.me()).toMatchObject({ name: "US Forces" });
    const [conflict] = await api.openConflicts();
    expect(conflict).toMatchObject({ id: "1", activities: ["10", "20"], parties: ["US Forces", "Russian Forces"], start: "2022-10-08T08:30:00.000Z", end: null, acked_by: ["US Forces"] });
    const [message] = await api.messages();
    expect(message).toMatchObject({ id: "3", from: "9", to: "US Forces", conflict_id: "1", state: "overdue", sent_at: "2022-10-08T08:30:00.000Z" });
  });
});

describe("track alerts", () => {
  const decode = (event: string, data: unknown) => decodeEvent({ event, data: JSON.stringify(data) });

  it("reads the engine's alert details: pairs of tracks, positions, limits", () => {
    const proximity = decode("proximity", { tracks: [{ party: 1, uid: "US-1" }, { party: 2, uid: "RU-1" }], distance_m: 2400, limit_m: 3000, positions: [[41.4, 37.03], [41.42, 37.03]] });
    expect(proximity).toMatchObject({ type: "proximity", alert: { summary: "Proximity: US-1 and RU-1 2.4 km apart (limit 3.0 km)", location: { type: "Point", coordinates: [41.4, 37.03] } } });
    const cpa = decode("cpa", { tracks: [{ uid: "A" }, { uid: "B" }], time: "2022-10-08T09:41:00Z", distance_m: 556 });
    expect(cpa).toMatchObject({ alert: { summary: "Closest approach: A and B will pass 556 m apart at 09:41Z" } });
    expect((cpa as { alert: { time?: string } }).alert.time).toBeUndefined();
  });

  it("names the zone or the route a unit left", () => {
    expect(decode("zone.crossed", { track: { uid: "RU-1" }, zone_name: "M4 highway", crossing: [40.4, 36.65] })).toMatchObject({
      alert: { summary: "RU-1 crossed M4 highway", location: { coordinates: [40.4, 36.65] } },
    });
    expect(decode("zone.entered", { track: { uid: "X" }, fence: 4 })).toMatchObject({ alert: { summary: "X entered zone 4" } });
    expect(decode("deviation", { track: { uid: "X" }, cause: { distance_m: 1500, allowed_m: 1000 } })).toMatchObject({ alert: { summary: "X is 1.5 km off its notified route" } });
    expect(decode("deviation", { track: { uid: "X" }, cause: "outside_window" })).toMatchObject({ alert: { summary: "X left its notified route or window" } });
  });
});

describe("decodeConflict with a withheld activity", () => {
  it("keeps a need-to-know activity's null id null, not the text \"null\"", () => {
    const raw = {
      id: 3,
      activities: [12, null],
      parties: ["USA", "UN OCHA"],
      start: "2022-10-08T06:00:00Z",
      end: null,
      min_distance_m: 400,
      required_m: 2000,
      location: { type: "Point", coordinates: [41.41, 37.03] },
      state: "open",
    } as unknown as Conflict;
    expect(decodeConflict(raw).activities).toEqual(["12", null]);
  });
});

describe("Api.exportFile", () => {
  it("downloads the server's GET /v1/export with the token, format, time and box, unchanged", async () => {
    const seen: { url: string; auth: string | null }[] = [];
    const fetchLike: FetchLike = async (url, init) => {
      seen.push({ url: String(url), auth: new Headers(init?.headers).get("Authorization") });
      return new Response("<kml>as the server wrote it</kml>", { status: 200, headers: { "Content-Type": "application/vnd.google-earth.kml+xml" } });
    };
    const api = new Api("tok", "", fetchLike);
    const text = await api.exportFile("kml", { time: "2022-10-08T06:00:00Z", bbox: [41.1234567, 36.5, 42, 37.25] });
    expect(text).toBe("<kml>as the server wrote it</kml>");
    expect(seen).toHaveLength(1);
    expect(seen[0].url).toContain("/v1/export?format=kml&time=2022-10-08T06%3A00%3A00Z&bbox=41.123457%2C36.5%2C42%2C37.25");
    expect(seen[0].auth).toBe("Bearer tok");
    await api.exportFile("geojson");
    expect(seen[1].url).toMatch(/\/v1\/export\?format=geojson$/);
  });
});

describe("Api.incidentEvidence", () => {
  it("reads the evidence, names the parties and keeps the body as served for the download", async () => {
    const body = JSON.stringify({
      type: "FeatureCollection", incident: 3, complete: false, window: { from: "2022-10-08T12:25:00Z", to: "2022-10-08T12:45:00Z" },
      features: [
        { type: "Feature", geometry: { type: "LineString", coordinates: [[42, 37], [42.1, 37.1]] }, properties: { kind: "track", party: 2, uid: "u", times: ["a", "b"] } },
        { type: "Feature", geometry: { type: "Point", coordinates: [42, 37] }, properties: { kind: "position", party: 2, uid: "u", time: "2022-10-08T12:30:00Z" } },
      ],
    });
    const seen: string[] = [];
    const fetchLike: FetchLike = async (url) => {
      seen.push(String(url));
      return new Response(body, { status: 200, headers: { "Content-Type": "application/geo+json" } });
    };
    const api = new Api("tok", "", fetchLike);
    api.learnParty(2, "ru");
    const evidence = await api.incidentEvidence("3");
    expect(seen[0]).toContain("/v1/incidents/3/evidence");
    expect(evidence.complete).toBe(false);
    expect(evidence.window?.to).toBe("2022-10-08T12:45:00Z");
    expect(evidence.collection.features.map((f) => f.properties?.party)).toEqual(["ru", "ru"]);
    expect(evidence.text).toBe(body);
  });
});
