// Every call the web map makes to the deconflict server lives in this file, with
// the shapes it expects back. The server is written to /work/shared/CONTRACT.md;
// where the contract leaves a shape open (messages, incidents, event payloads,
// who the caller is) the assumption is written down here, and the decoders
// accept the few plausible variants, so that adapting to the server's final
// shapes is a change to this one file.

import type { Feature, FeatureCollection, Geometry, Point } from "geojson";
import { formatDistance } from "./format";
import { SseDecoder, type SseMessage } from "./sse";

// ---------------------------------------------------------------- shapes

export type PartyKind = "military" | "humanitarian" | "civil" | "broker";
export type ActivityKind = "patrol" | "convoy" | "flight" | "site" | "area" | "exercise";
export type ZoneKind = "exclusion" | "protected" | "demarcation";
export type Sharing = "need_to_know" | "full";
export type Priority = "routine" | "priority" | "flash";

export interface ActivityProperties {
  kind: ActivityKind;
  name: string;
  start: string;
  end: string | null;
  radius_m?: number;
  corridor_m?: number;
  alt_min_m?: number;
  alt_max_m?: number;
  sharing?: Sharing;
  party?: string;
  version?: number;
}
export type ActivityFeature = Feature<Geometry, ActivityProperties>;

export interface ZoneProperties {
  kind: ZoneKind;
  name?: string;
  radius_m?: number;
  party?: string;
}
export type ZoneFeature = Feature<Geometry, ZoneProperties>;

export interface TrackProperties {
  uid: string;
  party?: string;
  time: string;
  course_deg?: number;
  speed_mps?: number;
  alt_m?: number;
  activity_id?: string;
}
export type TrackFeature = Feature<Point, TrackProperties>;

export type ConflictState = "open" | "acknowledged" | "resolved";

export interface Conflict {
  id: string;
  /** An id is null when the server withholds another party's need-to-know activity. */
  activities: [string | null, string | null];
  parties: [string, string];
  start: string;
  end: string | null;
  min_distance_m: number;
  required_m: number;
  location: Point;
  state: ConflictState | string;
  /** Parties that acknowledged it, when the server says (assumed optional). */
  acked_by?: string[];
  /** A zone conflict: the zone's id. Then `activities` is `[activity, null]`
   *  and `parties[1]` is the zone's owner. */
  zone?: string;
}

/** Assumed: `pending` until acknowledged; `overdue` once `ack_within_s` passed
 *  without an acknowledgement; `escalated` is set when the server escalated an
 *  overdue message (for example to the broker). */
export type MessageState = "pending" | "acked" | "overdue";

export interface Message {
  id: string;
  from: string;
  to: string;
  body: string;
  priority: Priority;
  sent_at: string;
  ack_within_s?: number;
  acked_at?: string | null;
  conflict_id?: string | null;
  state: MessageState;
  escalated: boolean;
}

export interface NewMessage {
  to: string;
  body: string;
  priority: Priority;
  ack_within_s?: number;
  conflict_id?: string;
}

interface RawVersion {
  id: string | number;
  version: number;
  at: string;
  feature: ActivityFeature | null;
}

/** One recorded version of an activity; `feature` null: cancelled then. */
export interface ActivityVersion {
  id: string;
  version: number;
  at: string;
  feature: ActivityFeature | null;
}

export interface History {
  activities: ActivityVersion[];
  /** Conflicts with `opened_at` and, once resolved, `resolved_at`. */
  conflicts: Conflict[];
}

export interface NewIncident {
  summary: string;
  description: string;
  time: string;
  location: Point;
  severity: "low" | "medium" | "high";
  conflict_id?: string;
}

export interface Receipt {
  log_index: number;
  leaf_hash: string;
  checkpoint: string;
}

export interface IncidentCreated {
  id: string;
  receipt?: Receipt;
}

/** An incident the party reported or is named in (`GET /v1/incidents`). */
export interface IncidentSummary {
  id: string;
  time: string;
  description: string;
  /** The reporter, by name once names are known. */
  reporter: string;
  location: Point | null;
}

/** `GET /v1/incidents/{id}/evidence`: the units' tracks as LineStrings
 *  (`properties.times`) and their positions as Points; `complete` false
 *  while the window is still open. `text` is the body exactly as served,
 *  for the download. */
export interface Evidence {
  incident: string;
  complete: boolean;
  window: { from: string; to: string } | null;
  collection: FeatureCollection;
  text: string;
}

export interface Me {
  name: string;
  kind?: PartyKind;
  id?: string;
}

export interface DemoParty {
  name: string;
  kind: PartyKind;
  token: string;
  /** The party's id, when the server lists it (`deconflict demo` does). */
  id?: string | number;
}

/** A live event from `GET /v1/events`, decoded. Unknown types are kept as
 *  `other` so a newer server never breaks an older page. */
export type LiveEvent =
  | { type: "conflict.opened" | "conflict.updated" | "conflict.resolved"; id?: string; conflict: Conflict }
  | { type: "message" | "message.acked" | "message.overdue"; id?: string; message: Message }
  | { type: "proximity" | "cpa" | "zone.entered" | "zone.crossed" | "deviation" | "incident"; id?: string; alert: AlertPayload }
  | { type: "lagged"; id?: string }
  | { type: "other"; name: string; id?: string; data: unknown };

/** Track alerts and incidents carry different fields; the page shows a
 *  summary line, a time and, when there is one, a place. */
export interface AlertPayload {
  time?: string;
  summary: string;
  location?: Point;
  raw: Record<string, unknown>;
}

// ---------------------------------------------------------------- errors

export interface FieldProblem {
  pointer: string;
  message: string;
}

/** An RFC 9457 problem, or a synthesised one for answers that were not. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail?: string;
  readonly fieldProblems: FieldProblem[];
  constructor(status: number, title: string, detail?: string, fieldProblems: FieldProblem[] = []) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.fieldProblems = fieldProblems;
  }

  /** One line for a person: the title, the detail and each named field. */
  describe(): string {
    const fields = this.fieldProblems.map((p) => `${p.pointer || "(body)"}: ${p.message}`);
    return [this.message, ...fields].join("; ");
  }
}

const MAX_ERROR_TEXT_CHARS = 200;

/** Turns a failed response into an ApiError. Reads problem+json when the
 *  server sent it, and otherwise keeps a bounded excerpt of whatever came. */
export async function problemFromResponse(response: Response): Promise<ApiError> {
  const contentType = response.headers.get("content-type") ?? "";
  const text = await response.text().catch(() => "");
  if (contentType.includes("json") && text) {
    try {
      const body = JSON.parse(text) as Record<string, unknown>;
      const title = typeof body.title === "string" ? body.title : response.statusText || `HTTP ${response.status}`;
      const detail = typeof body.detail === "string" ? body.detail : undefined;
      const errors = Array.isArray(body.errors) ? body.errors : [];
      const fieldProblems: FieldProblem[] = errors
        .filter((e): e is Record<string, unknown> => typeof e === "object" && e !== null)
        .map((e) => ({
          pointer: typeof e.pointer === "string" ? e.pointer : "",
          message: typeof e.message === "string" ? e.message : JSON.stringify(e),
        }));
      const status = typeof body.status === "number" ? body.status : response.status;
      return new ApiError(status, title, detail, fieldProblems);
    } catch {
      // Not JSON after all: fall through to the plain-text form.
    }
  }
  const excerpt = text.trim().slice(0, MAX_ERROR_TEXT_CHARS);
  return new ApiError(response.status, response.statusText || `HTTP ${response.status}`, excerpt || undefined);
}

// ---------------------------------------------------------------- client

/** Maps a party reference as the server sends it (a name, or an id) to the
 *  name the page shows and compares. Unknown references pass through. */
export type PartyName = (reference: unknown) => string;
export const samePartyName: PartyName = (reference) => asString(reference) ?? "";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export class Api {
  /** Party ids learned from `/v1/me` (and any list of parties), so that
   *  references by id read as names everywhere in the page. */
  private readonly partyNames = new Map<string, string>();
  readonly partyName: PartyName = (reference) => {
    const key = asString(reference) ?? "";
    return this.partyNames.get(key) ?? key;
  };

  /** The reverse: names typed by a person (the hotline's "to") go to the
   *  server as ids when the id is known. */
  private readonly partyIds = new Map<string, string | number>();

  /** Learns a party's name for its id (from the demo list, say). */
  learnParty(id: string | number, name: string): void {
    this.partyNames.set(String(id), name);
    this.partyIds.set(name, id);
  }

  constructor(
    readonly token: string,
    private readonly baseUrl = "",
    private readonly fetchImpl: FetchLike = (input, init) => fetch(input, init),
  ) {}

  private async request(method: string, path: string, body?: unknown, accept = "application/json"): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}`, Accept: accept };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await this.fetchImpl(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      // A network failure has no status; 0 keeps the type uniform for callers.
      throw new ApiError(0, "Cannot reach the server", String(error instanceof Error ? error.message : error));
    }
    if (!response.ok) throw await problemFromResponse(response);
    return response;
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.request(method, path, body);
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(response.status, "The server sent a malformed answer", text.slice(0, MAX_ERROR_TEXT_CHARS));
    }
  }

  /** Who this token belongs to. Assumed `GET /v1/me`; null when the server
   *  does not offer it (the page then falls back to the demo list). */
  async me(): Promise<Me | null> {
    try {
      const me = await this.json<Me>("GET", "/v1/me");
      if (me?.id !== undefined && me.name) this.learnParty(me.id, me.name);
      return me ?? null;
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null;
      throw error;
    }
  }

  async activities(window?: { from?: string; to?: string }): Promise<ActivityFeature[]> {
    const query = new URLSearchParams({ bbox: "-180,-90,180,90" });
    if (window?.from) query.set("from", window.from);
    if (window?.to) query.set("to", window.to);
    const collection = await this.json<FeatureCollection>("GET", `/v1/activities?${query}`);
    return (featuresOf(collection) as ActivityFeature[]).map((f) => this.withPartyName(f));
  }

  private withPartyName<T extends Feature>(feature: T): T {
    const properties = feature.properties as { party?: unknown } | null;
    if (properties?.party === undefined) return feature;
    return { ...feature, properties: { ...properties, party: this.partyName(properties.party) } };
  }

  /** The recorded history the timeline replays (`GET /v1/history`): every
   *  version of the activities we may see, and the conflicts with when they
   *  opened and resolved. */
  async history(): Promise<History> {
    const answer = await this.json<{ activities?: RawVersion[]; conflicts?: Conflict[] }>("GET", "/v1/history");
    return {
      activities: (answer?.activities ?? []).map((v) => ({
        id: String(v.id),
        version: Number(v.version),
        at: asTime(v.at) ?? "",
        feature: v.feature ? this.withPartyName(v.feature) : null,
      })),
      conflicts: (answer?.conflicts ?? []).map((c) => decodeConflict(c, this.partyName)),
    };
  }

  async openConflicts(): Promise<Conflict[]> {
    const answer = await this.json<{ conflicts: Conflict[] }>("GET", "/v1/conflicts?state=open");
    return (answer?.conflicts ?? []).map((c) => decodeConflict(c, this.partyName));
  }

  async acknowledgeConflict(id: string): Promise<Conflict | undefined> {
    const answer = await this.json<unknown>("POST", `/v1/conflicts/${encodeURIComponent(id)}/ack`);
    return conflictIn(answer, this.partyName);
  }

  async resolveConflict(id: string): Promise<Conflict | undefined> {
    const answer = await this.json<unknown>("POST", `/v1/conflicts/${encodeURIComponent(id)}/resolve`);
    return conflictIn(answer, this.partyName);
  }

  async zones(): Promise<ZoneFeature[]> {
    return featuresOf(await this.json<FeatureCollection>("GET", "/v1/zones")) as ZoneFeature[];
  }

  async tracks(): Promise<TrackFeature[]> {
    const collection = await this.json<FeatureCollection>("GET", "/v1/tracks?bbox=-180,-90,180,90");
    return (featuresOf(collection).filter((f) => f.geometry?.type === "Point") as TrackFeature[]).map((f) => ({
      ...this.withPartyName(f),
      properties: { ...f.properties, party: f.properties.party === undefined ? undefined : this.partyName(f.properties.party), time: asTime(f.properties.time) ?? "" },
    }));
  }

  async messages(): Promise<Message[]> {
    const answer = await this.json<{ messages: unknown[] } | unknown[]>("GET", "/v1/messages");
    const list = Array.isArray(answer) ? answer : (answer?.messages ?? []);
    return list.map((m) => decodeMessage(m, this.partyName)).filter((m): m is Message => m !== null);
  }

  async sendMessage(message: NewMessage): Promise<Message | null> {
    const to = this.partyIds.get(message.to) ?? message.to;
    return decodeMessage(await this.json<unknown>("POST", "/v1/messages", { ...message, to }), this.partyName);
  }

  async acknowledgeMessage(id: string): Promise<Message | null> {
    return decodeMessage(await this.json<unknown>("POST", `/v1/messages/${encodeURIComponent(id)}/ack`), this.partyName);
  }

  async reportIncident(incident: NewIncident): Promise<IncidentCreated> {
    // The service reads `lon`, `lat` and one `description`; the summary and
    // severity travel in it (the contract's fields are sent as well).
    const [lon, lat] = incident.location.coordinates;
    const description = `${incident.summary} (${incident.severity}): ${incident.description}`;
    return this.json<IncidentCreated>("POST", "/v1/incidents", { ...incident, lon, lat, description });
  }

  async incidents(): Promise<IncidentSummary[]> {
    const body = await this.json<{ incidents?: unknown[] } | unknown[]>("GET", "/v1/incidents");
    const list = Array.isArray(body) ? body : (body?.incidents ?? []);
    return list.map((raw) => {
      const r = (raw ?? {}) as Record<string, unknown>;
      const location = (r.location as Point | undefined) ?? (typeof r.lon === "number" && typeof r.lat === "number" ? { type: "Point" as const, coordinates: [r.lon, r.lat] } : null);
      const reporter = r.reporter ?? r.party;
      return {
        id: String(r.id),
        time: String(r.time ?? ""),
        description: String(r.description ?? r.summary ?? ""),
        reporter: reporter === undefined ? "" : this.partyName(String(reporter)),
        location,
      };
    });
  }

  async incidentEvidence(id: string): Promise<Evidence> {
    const response = await this.request("GET", `/v1/incidents/${encodeURIComponent(id)}/evidence`, undefined, "application/geo+json");
    const text = await response.text();
    const body = JSON.parse(text) as FeatureCollection & { complete?: boolean; window?: { from: string; to: string } };
    for (const f of body.features ?? []) {
      const p = f.properties as Record<string, unknown> | null;
      if (p && p.party !== undefined && p.party !== null) p.party = this.partyName(String(p.party));
    }
    return { incident: id, complete: body.complete === true, window: body.window ?? null, collection: body, text };
  }

  /** `GET /v1/export`: the file exactly as the server says this party may
   *  see it (need-to-know applied server-side), optionally limited to what
   *  is on at one instant (`time`, the timeline's) and to a box (`bbox`
   *  W,S,E,N, the map's view). */
  async exportFile(format: "geojson" | "kml", scope?: { time?: string; bbox?: [number, number, number, number] }): Promise<string> {
    const query = new URLSearchParams({ format });
    if (scope?.time) query.set("time", scope.time);
    if (scope?.bbox) query.set("bbox", scope.bbox.map((v) => +v.toFixed(6)).join(","));
    const accept = format === "kml" ? "application/vnd.google-earth.kml+xml" : "application/geo+json";
    const response = await this.request("GET", `/v1/export?${query.toString()}`, undefined, accept);
    return response.text();
  }

  async checkpoint(): Promise<string> {
    const response = await this.request("GET", "/v1/log/checkpoint", undefined, "text/plain");
    return response.text();
  }

  /** Reads `GET /v1/events` with fetch (EventSource cannot send the bearer
   *  token) until `signal` aborts or the stream ends. Resolves with the last
   *  event id seen, for `Last-Event-ID` on reconnection. */
  async streamEvents(onEvent: (event: LiveEvent) => void, signal: AbortSignal, lastEventId?: string, onOpen?: () => void): Promise<string | undefined> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}`, Accept: "text/event-stream" };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let response: Response;
    try {
      response = await this.fetchImpl(this.baseUrl + "/v1/events", { headers, signal });
    } catch (error) {
      if (signal.aborted) return lastEventId;
      throw new ApiError(0, "Cannot reach the event stream", String(error instanceof Error ? error.message : error));
    }
    if (!response.ok) throw await problemFromResponse(response);
    if (!response.body) throw new ApiError(response.status, "The event stream has no body");
    onOpen?.();
    const decoder = new SseDecoder();
    const reader = response.body.getReader();
    let last = lastEventId;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const message of decoder.push(value)) {
          if (message.id !== undefined) last = message.id;
          onEvent(decodeEvent(message, this.partyName));
        }
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    } finally {
      reader.releaseLock();
    }
    return last;
  }
}

/** The demo parties, or null when the server is not in demo mode (404). The
 *  list carries tokens, so the server only offers it from `deconflict demo`. */
export async function demoParties(baseUrl = "", fetchImpl: FetchLike = (i, o) => fetch(i, o)): Promise<DemoParty[] | null> {
  let response: Response;
  try {
    response = await fetchImpl(baseUrl + "/demo/parties", { headers: { Accept: "application/json" } });
  } catch {
    return null;
  }
  if (!response.ok) return null;
  try {
    const list = (await response.json()) as unknown;
    if (!Array.isArray(list)) return null;
    return list.filter(
      (p): p is DemoParty =>
        typeof p === "object" && p !== null && typeof p.name === "string" && typeof p.token === "string",
    );
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- decoders

function featuresOf(collection: FeatureCollection | undefined): Feature[] {
  return Array.isArray(collection?.features) ? collection.features : [];
}

function asString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return undefined;
}

/** A time as RFC 3339 text; the server's stores keep integer milliseconds
 *  since the epoch, so a number is accepted and converted. */
function asTime(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return new Date(value).toISOString();
  return undefined;
}

/** Ids may come as numbers (the engine's ids are numbers); the page keys
 *  everything by string, and shows parties by name. */
export function decodeConflict(raw: Conflict, name: PartyName = samePartyName): Conflict {
  const acked = Array.isArray(raw.acked_by) ? raw.acked_by.map(name) : undefined;
  return {
    ...raw,
    id: String(raw.id),
    activities: [activityIdOrNull(raw.activities[0]), activityIdOrNull(raw.activities[1])],
    parties: [name(raw.parties[0]), name(raw.parties[1])],
    start: asTime(raw.start) ?? "",
    end: asTime(raw.end) ?? null,
    state: raw.state ?? "open",
    ...(acked ? { acked_by: acked } : {}),
    ...(raw.zone !== undefined && raw.zone !== null ? { zone: String(raw.zone) } : {}),
  };
}

function conflictIn(answer: unknown, name: PartyName = samePartyName): Conflict | undefined {
  if (typeof answer !== "object" || answer === null) return undefined;
  const record = answer as Record<string, unknown>;
  const candidate = (record.conflict ?? record) as Record<string, unknown>;
  if (candidate.id === undefined || !Array.isArray(candidate.activities) || !Array.isArray(candidate.parties)) return undefined;
  return decodeConflict(candidate as unknown as Conflict, name);
}

export function decodeMessage(answer: unknown, name: PartyName = samePartyName): Message | null {
  if (typeof answer !== "object" || answer === null) return null;
  const record = answer as Record<string, unknown>;
  // The service's `message.acked` / `message.overdue` events name the
  // message by id (`{message: 5, from, to, acked_at}`): a change to merge.
  const reference = typeof record.message === "number" || typeof record.message === "string";
  const raw = (
    typeof record.message === "object" && record.message !== null ? record.message : reference ? { ...record, id: record.message } : record
  ) as Record<string, unknown>;
  const id = asString(raw.id);
  if (id === undefined) return null;
  const acked_at = asTime(raw.acked_at) ?? null;
  const declared = asString(raw.state);
  // States seen as `sent`/`delivered`/`pending` all await acknowledgement;
  // lateness may be a state or an `overdue_at` time.
  const overdue = declared === "overdue" || declared === "escalated" || raw.overdue === true || asTime(raw.overdue_at) !== undefined;
  const state: MessageState = acked_at || declared === "acked" || declared === "acknowledged" ? "acked" : overdue ? "overdue" : "pending";
  const link = (typeof raw.link === "object" && raw.link !== null ? raw.link : {}) as Record<string, unknown>;
  return {
    id,
    from: name(raw.from),
    to: name(raw.to),
    body: asString(raw.body) ?? "",
    priority: (["routine", "priority", "flash"].includes(String(raw.priority)) ? raw.priority : "routine") as Priority,
    sent_at: asTime(raw.sent_at) ?? asTime(raw.time) ?? asTime(raw.created_at) ?? new Date(0).toISOString(),
    ack_within_s: typeof raw.ack_within_s === "number" ? raw.ack_within_s : undefined,
    acked_at,
    conflict_id: asString(raw.conflict_id) ?? asString(link.conflict) ?? asString(link.conflict_id) ?? null,
    state,
    escalated: raw.escalated === true || declared === "escalated",
  };
}

const ALERT_TYPES = new Set(["proximity", "cpa", "zone.entered", "zone.crossed", "deviation", "incident"]);

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Turns one SSE message into a typed event. The payload may be the object
 *  itself or wrapped (`{conflict: …}`, `{message: …}`); both are accepted. */
export function decodeEvent(message: SseMessage, name: PartyName = samePartyName): LiveEvent {
  const data = parseJson(message.data);
  const record = (typeof data === "object" && data !== null ? data : {}) as Record<string, unknown>;
  // An event may name its type in the data rather than the `event:` field.
  const type = message.event !== "message" ? message.event : (asString(record.type) ?? "message");
  const id = message.id;
  if (type === "conflict.opened" || type === "conflict.updated" || type === "conflict.resolved") {
    const conflict = conflictIn(record, name);
    if (conflict) {
      if (type === "conflict.resolved") conflict.state = "resolved";
      return { type, id, conflict };
    }
  } else if (type === "message" || type === "message.acked" || type === "message.overdue") {
    const decoded = decodeMessage(record, name);
    if (decoded) {
      if (type === "message.acked" && decoded.state !== "acked") decoded.state = "acked";
      if (type === "message.overdue" && decoded.state === "pending") decoded.state = "overdue";
      return { type, id, message: decoded };
    }
  } else if ((type === "escalation" || type === "escalation.tak_alert") && typeof record.subject === "object" && record.subject !== null && "message" in record.subject) {
    // An escalation of an unacknowledged message: it is overdue and escalated.
    // `escalation` reaches the ladder's contact; `escalation.tak_alert`
    // reaches the party whose ladder alerted its own TAK clients.
    const decoded = decodeMessage({ message: (record.subject as Record<string, unknown>).message, state: "escalated" }, name);
    if (decoded) return { type: "message.overdue", id, message: decoded };
  } else if (type === "lagged") {
    return { type, id };
  } else if (ALERT_TYPES.has(type)) {
    return { type: type as "proximity", id, alert: decodeAlert(type, record) };
  }
  return { type: "other", name: type, id, data };
}

function isPoint(value: unknown): value is Point {
  const v = value as Point | undefined;
  return v?.type === "Point" && Array.isArray(v.coordinates) && v.coordinates.length >= 2;
}

/** A place given as a GeoJSON Point or a bare `[lon, lat]`. */
function asPoint(value: unknown): Point | undefined {
  if (isPoint(value)) return value;
  if (Array.isArray(value) && value.length >= 2 && typeof value[0] === "number" && typeof value[1] === "number") {
    return { type: "Point", coordinates: [value[0], value[1]] };
  }
  return undefined;
}

/** The units an alert is about: `tracks: [{uid}]`, `track: {uid}`, `uids`,
 *  or `uid` and `other_uid`. */
function unitsOf(r: Record<string, unknown>): string[] {
  const uid = (t: unknown) => (typeof t === "object" && t !== null ? asString((t as Record<string, unknown>).uid) : asString(t));
  if (Array.isArray(r.tracks)) return r.tracks.map(uid).filter((u): u is string => Boolean(u));
  if (Array.isArray(r.uids)) return r.uids.map(uid).filter((u): u is string => Boolean(u));
  return [uid(r.track), asString(r.uid), asString(r.other_uid)].filter((u): u is string => Boolean(u));
}

function decodeAlert(type: string, record: Record<string, unknown>): AlertPayload {
  // For a CPA, `time` is when the closest approach will be, not when the
  // alert was raised; the page then stamps it with its arrival.
  const time = asTime(record.at) ?? asTime(record.raised_at) ?? (type === "cpa" ? undefined : asTime(record.time));
  const positions = Array.isArray(record.positions) ? record.positions : [];
  const location = asPoint(record.location) ?? asPoint(record.point) ?? asPoint(record.position) ?? asPoint(record.crossing) ?? asPoint(positions[0]);
  const summary = asString(record.summary) ?? asString(record.message) ?? asString(record.detail) ?? summarise(type, record);
  return { time, location, summary, raw: record };
}

function summarise(type: string, r: Record<string, unknown>): string {
  const units = unitsOf(r);
  const pair = units.length > 0 ? units.join(" and ") : "two units";
  const one = units[0] ?? "A unit";
  const distance = typeof r.distance_m === "number" ? formatDistance(r.distance_m) : undefined;
  const limit = typeof r.limit_m === "number" ? ` (limit ${formatDistance(r.limit_m)})` : "";
  const zone = asString(r.zone_name) ?? asString(r.zone) ?? (r.fence !== undefined ? `zone ${asString(r.fence)}` : undefined);
  const cause = (typeof r.cause === "object" && r.cause !== null ? r.cause : {}) as Record<string, unknown>;
  switch (type) {
    case "proximity":
      return `Proximity: ${pair}${distance ? ` ${distance} apart` : " too close"}${limit}`;
    case "cpa": {
      const when = asTime(r.time) ?? asTime(r.cpa_time);
      return `Closest approach: ${pair}${distance ? ` will pass ${distance} apart` : ""}${when ? ` at ${when.slice(11, 16)}Z` : ""}${limit}`;
    }
    case "zone.entered":
      return `${one} entered ${zone ?? "a zone"}`;
    case "zone.crossed":
      return `${one} crossed ${zone ?? "a demarcation line"}`;
    case "deviation": {
      const off = typeof cause.distance_m === "number" ? cause.distance_m : typeof r.distance_m === "number" ? r.distance_m : undefined;
      return off !== undefined ? `${one} is ${formatDistance(off)} off its notified route` : `${one} left its notified route or window`;
    }
    case "incident":
      return `Incident: ${asString(r.summary) ?? asString(r.description) ?? "reported"}`;
    default:
      return type;
  }
}

/** A withheld (need-to-know) activity arrives as null; keep it null rather
 *  than turning it into the text "null". */
function activityIdOrNull(raw: unknown): string | null {
  return raw === null || raw === undefined ? null : String(raw);
}
