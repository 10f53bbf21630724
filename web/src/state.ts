// The page's live picture of conflicts, hotline messages, alerts and tracks,
// changed only by `reduce(state, action)`: loads from the API, events from the
// stream and the answers to the user's own actions all go through it, so
// out-of-order arrivals are handled in one place and tested without a DOM.

import type { AlertPayload, Conflict, LiveEvent, Message, MessageState, TrackFeature } from "./api";
import { formatDistance } from "./format";

export type Severity = "info" | "warning" | "critical";

export interface Alert {
  id: string;
  kind: string;
  severity: Severity;
  title: string;
  detail?: string;
  time: string;
  location?: [number, number];
  conflict_id?: string;
  message_id?: string;
}

/** Alerts kept in memory; older ones drop off the end. */
export const MAX_ALERTS = 200;

export interface Picture {
  /** The signed-in party's name, when known: it decides which messages are
   *  incoming and which conflict side is "ours". */
  me: string | null;
  conflicts: Record<string, Conflict>;
  messages: Record<string, Message>;
  tracks: Record<string, TrackFeature>;
  alerts: Alert[];
  /** Set when the stream said events were dropped: everything is reloaded. */
  needsReload: boolean;
  alertSequence: number;
}

export function emptyPicture(me: string | null = null): Picture {
  return { me, conflicts: {}, messages: {}, tracks: {}, alerts: [], needsReload: false, alertSequence: 0 };
}

export type Action =
  | { type: "conflicts.loaded"; conflicts: Conflict[] }
  | { type: "conflict.changed"; conflict: Conflict }
  | { type: "messages.loaded"; messages: Message[] }
  | { type: "message.changed"; message: Message }
  | { type: "tracks.loaded"; tracks: TrackFeature[] }
  | { type: "event"; event: LiveEvent; received_at: string }
  | { type: "alert.raised"; alert: Omit<Alert, "id"> }
  | { type: "alert.dismissed"; id: string }
  | { type: "alerts.cleared" }
  | { type: "reloaded" };

export function reduce(state: Picture, action: Action): Picture {
  switch (action.type) {
    case "conflicts.loaded": {
      // The load answers `state=open`; resolved ones the page already knew
      // stay so the panel can show them as resolved until the next reload.
      const conflicts: Record<string, Conflict> = {};
      for (const c of Object.values(state.conflicts)) if (c.state === "resolved") conflicts[c.id] = c;
      for (const c of action.conflicts) conflicts[c.id] = c;
      return { ...state, conflicts };
    }
    case "conflict.changed":
      return { ...state, conflicts: { ...state.conflicts, [action.conflict.id]: mergeConflict(state.conflicts[action.conflict.id], action.conflict) } };
    case "messages.loaded": {
      const messages: Record<string, Message> = {};
      for (const m of action.messages) messages[m.id] = mergeMessage(state.messages[m.id], m);
      return { ...state, messages };
    }
    case "message.changed":
      // A change to a message this page never loaded (one sent elsewhere):
      // reload, rather than show a message with no text.
      if (action.message.body === "" && !state.messages[action.message.id]) return { ...state, needsReload: true };
      return { ...state, messages: { ...state.messages, [action.message.id]: mergeMessage(state.messages[action.message.id], action.message) } };
    case "tracks.loaded": {
      const tracks: Record<string, TrackFeature> = {};
      for (const t of action.tracks) tracks[t.properties.uid] = t;
      return { ...state, tracks };
    }
    case "event":
      return applyEvent(state, action.event, action.received_at);
    case "alert.raised":
      return pushAlert(state, action.alert);
    case "alert.dismissed":
      return { ...state, alerts: state.alerts.filter((a) => a.id !== action.id) };
    case "alerts.cleared":
      return { ...state, alerts: [] };
    case "reloaded":
      return { ...state, needsReload: false };
  }
}

const STATE_RANK: Record<MessageState, number> = { pending: 0, overdue: 1, acked: 2 };

/** A message only moves forward (pending → overdue → acked), and escalation
 *  sticks: an older copy arriving late never undoes a newer one. */
export function mergeMessage(previous: Message | undefined, next: Message): Message {
  if (!previous) return next;
  const forward = STATE_RANK[next.state] >= STATE_RANK[previous.state];
  // A change that names the message by id carries no body: it changes the
  // state, never what was said.
  const change = next.body === "" ? { state: next.state, acked_at: next.acked_at, escalated: next.escalated } : next;
  return {
    ...previous,
    ...change,
    state: forward ? next.state : previous.state,
    acked_at: next.acked_at ?? previous.acked_at,
    escalated: previous.escalated || next.escalated,
  };
}

/** The alert for a late message, from our side of it. */
function overdueTitle(m: Message, incoming: boolean): string {
  const escalated = m.escalated ? " — escalated" : "";
  if (m.from === "" && m.to === "") return `Message ${m.id} overdue${escalated}`;
  return incoming ? `Overdue: acknowledge the message from ${m.from}${escalated}` : `No acknowledgement from ${m.to}${escalated}`;
}

/** A resolved conflict stays resolved unless the server reopens it with an
 *  `open` state in a later update (a new overlap gets a new event anyway). */
function mergeConflict(previous: Conflict | undefined, next: Conflict): Conflict {
  if (!previous) return next;
  // An update that names the conflict by id only keeps the sides we know.
  return { ...previous, ...next, parties: hasParties(next) ? next.parties : previous.parties, activities: Array.isArray(next.activities) && next.activities.length === 2 ? next.activities : previous.activities };
}

function pushAlert(state: Picture, alert: Omit<Alert, "id">): Picture {
  const sequence = state.alertSequence + 1;
  const alerts = [{ ...alert, id: `alert-${sequence}` }, ...state.alerts].slice(0, MAX_ALERTS);
  return { ...state, alerts, alertSequence: sequence };
}

function hasParties(conflict: Conflict): boolean {
  return Array.isArray(conflict.parties) && conflict.parties.length === 2 && conflict.parties.every((p) => typeof p === "string" && p !== "" && p !== "undefined");
}

/** Whom a conflict is with, from the viewer's side: the other party, or for
 *  a zone conflict the zone (with its owner); never an empty name. */
function otherParty(state: Picture, conflict: Conflict): string {
  if (!hasParties(conflict)) return "another party";
  const [p, q] = conflict.parties;
  if (conflict.zone !== undefined) return `zone ${conflict.zone} of ${q}`;
  if (state.me === p) return q;
  if (state.me === q) return p;
  return `${p} / ${q}`;
}

function pointOf(payload: AlertPayload): [number, number] | undefined {
  const c = payload.location?.coordinates;
  return c ? [c[0], c[1]] : undefined;
}

const ALERT_SEVERITY: Record<string, Severity> = {
  proximity: "warning",
  cpa: "warning",
  "zone.entered": "critical",
  "zone.crossed": "critical",
  deviation: "warning",
  incident: "critical",
};

function applyEvent(state: Picture, event: LiveEvent, received_at: string): Picture {
  switch (event.type) {
    case "conflict.opened": {
      const next = reduce(state, { type: "conflict.changed", conflict: event.conflict });
      const c = event.conflict;
      // The same event again (a reconnect replays it): one toast per conflict.
      if (state.conflicts[c.id] !== undefined) return next;
      return pushAlert(next, {
        kind: event.type,
        severity: "critical",
        title: `New conflict #${c.id} with ${otherParty(state, c)}`,
        detail: `${formatDistance(c.min_distance_m)} apart, ${formatDistance(c.required_m)} required`,
        time: received_at,
        location: [c.location.coordinates[0], c.location.coordinates[1]],
        conflict_id: c.id,
      });
    }
    case "conflict.updated":
      return reduce(state, { type: "conflict.changed", conflict: event.conflict });
    case "conflict.resolved": {
      const known = state.conflicts[event.conflict.id];
      const next = reduce(state, { type: "conflict.changed", conflict: { ...event.conflict, state: "resolved" } });
      // Already resolved: this is a repeat, not news.
      if (known?.state === "resolved") return next;
      // A resolve event may name the conflict by id only: take its parties
      // from the conflict we know, so the toast says with whom.
      const resolved = { ...known, ...event.conflict, parties: hasParties(event.conflict) ? event.conflict.parties : known?.parties ?? event.conflict.parties };
      return pushAlert(next, {
        kind: event.type,
        severity: "info",
        title: `Conflict #${resolved.id} with ${otherParty(state, resolved)} resolved`,
        time: received_at,
        conflict_id: event.conflict.id,
      });
    }
    case "message":
    case "message.acked":
    case "message.overdue": {
      const next = reduce(state, { type: "message.changed", message: event.message });
      // A change that names the message by id only (an escalation step)
      // carries no sides: what we know of the message says who it was from.
      const m = next.messages[event.message.id] ?? event.message;
      const incoming = state.me !== null ? m.to === state.me : m.from !== state.me;
      if (event.type === "message" && incoming) {
        return pushAlert(next, {
          kind: "message",
          severity: m.priority === "flash" ? "critical" : m.priority === "priority" ? "warning" : "info",
          title: `${m.priority === "routine" ? "Message" : m.priority.toUpperCase()} from ${m.from}`,
          detail: m.body,
          time: received_at,
          message_id: m.id,
        });
      }
      if (event.type === "message.acked" && !incoming) {
        return pushAlert(next, { kind: event.type, severity: "info", title: `${m.to} acknowledged your message`, detail: m.body, time: received_at, message_id: m.id });
      }
      if (event.type === "message.overdue") {
        return pushAlert(next, {
          kind: event.type,
          severity: "critical",
          title: overdueTitle(m, incoming),
          detail: m.body,
          time: received_at,
          message_id: m.id,
        });
      }
      return next;
    }
    case "proximity":
    case "cpa":
    case "zone.entered":
    case "zone.crossed":
    case "deviation":
    case "incident":
      return pushAlert(state, {
        kind: event.type,
        severity: ALERT_SEVERITY[event.type] ?? "warning",
        title: event.alert.summary,
        time: event.alert.time ?? received_at,
        location: pointOf(event.alert),
      });
    case "lagged":
      return { ...state, needsReload: true };
    case "other":
      return state;
  }
}

/** Open conflicts first (those not yet acknowledged by us at the top), then
 *  the rest; within a group the soonest first. */
export function sortedConflicts(state: Picture): Conflict[] {
  const rank = (c: Conflict) => (c.state === "resolved" ? 2 : c.state === "open" ? 0 : 1);
  return Object.values(state.conflicts).sort((a, b) => rank(a) - rank(b) || a.start.localeCompare(b.start) || a.id.localeCompare(b.id));
}

/** Messages needing the signed-in party's acknowledgement first, newest first within. */
export function sortedMessages(state: Picture): Message[] {
  const needsMe = (m: Message) => m.to === state.me && m.state !== "acked";
  return Object.values(state.messages).sort(
    (a, b) => Number(needsMe(b)) - Number(needsMe(a)) || b.sent_at.localeCompare(a.sent_at) || a.id.localeCompare(b.id),
  );
}
