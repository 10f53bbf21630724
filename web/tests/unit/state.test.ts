import { describe, expect, it } from "vitest";
import type { Conflict, Message } from "../../src/api";
import { emptyPicture, MAX_ALERTS, mergeMessage, reduce, sortedConflicts, sortedMessages, type Picture } from "../../src/state";

const conflict = (id: string, state = "open", start = "2022-10-08T08:00:00Z"): Conflict => ({
  id,
  activities: ["a", "b"],
  parties: ["US Forces", "Russian Forces"],
  start,
  end: "2022-10-08T11:00:00Z",
  min_distance_m: 0,
  required_m: 5000,
  location: { type: "Point", coordinates: [41.41, 37.03] },
  state,
});

const message = (id: string, over: Partial<Message> = {}): Message => ({
  id,
  from: "Russian Forces",
  to: "US Forces",
  body: "Delaying by one hour",
  priority: "flash",
  sent_at: "2022-10-08T08:10:00Z",
  ack_within_s: 300,
  state: "pending",
  escalated: false,
  ...over,
});

const now = "2022-10-08T08:15:00Z";

function withEvents(state: Picture, ...events: Parameters<typeof reduce>[1][]): Picture {
  return events.reduce(reduce, state);
}

describe("conflicts", () => {
  it("opens with a critical alert naming the other party", () => {
    const s = reduce(emptyPicture("US Forces"), { type: "event", received_at: now, event: { type: "conflict.opened", conflict: conflict("c-1") } });
    expect(Object.keys(s.conflicts)).toEqual(["c-1"]);
    expect(s.alerts[0]).toMatchObject({ severity: "critical", title: "New conflict #c-1 with Russian Forces", conflict_id: "c-1", location: [41.41, 37.03] });
  });

  it("toasts once per event, naming the conflict and with whom, even when the resolve names it by id only", () => {
    const opened = { type: "event" as const, received_at: now, event: { type: "conflict.opened" as const, conflict: conflict("c-1") } };
    const bare = { ...conflict("c-1", "resolved"), parties: [] as unknown as [string, string] };
    const resolved = { type: "event" as const, received_at: now, event: { type: "conflict.resolved" as const, conflict: bare } };
    const s = withEvents(emptyPicture("US Forces"), opened, opened, resolved, resolved);
    expect(s.alerts.map((a) => a.title)).toEqual(["Conflict #c-1 with Russian Forces resolved", "New conflict #c-1 with Russian Forces"]);
  });

  it("says a zone conflict is with the zone", () => {
    const s = reduce(emptyPicture("US Forces"), { type: "event", received_at: now, event: { type: "conflict.opened", conflict: { ...conflict("c-3"), activities: ["7", null], zone: "4" } } });
    expect(s.alerts[0].title).toBe("New conflict #c-3 with zone 4 of Russian Forces");
  });

  it("resolves, keeps the resolved one through a reload of open conflicts, and sorts it last", () => {
    let s = withEvents(
      emptyPicture("US Forces"),
      { type: "conflicts.loaded", conflicts: [conflict("c-1"), conflict("c-2", "open", "2022-10-08T07:00:00Z")] },
      { type: "event", received_at: now, event: { type: "conflict.resolved", conflict: conflict("c-2") } },
    );
    expect(s.conflicts["c-2"].state).toBe("resolved");
    s = reduce(s, { type: "conflicts.loaded", conflicts: [conflict("c-1")] });
    expect(sortedConflicts(s).map((c) => [c.id, c.state])).toEqual([
      ["c-1", "open"],
      ["c-2", "resolved"],
    ]);
  });
});

describe("messages", () => {
  it("alerts on an incoming flash message, not on our own outgoing one", () => {
    const incoming = reduce(emptyPicture("US Forces"), { type: "event", received_at: now, event: { type: "message", message: message("m-1") } });
    expect(incoming.alerts[0]).toMatchObject({ severity: "critical", title: "FLASH from Russian Forces" });
    const outgoing = reduce(emptyPicture("Russian Forces"), { type: "event", received_at: now, event: { type: "message", message: message("m-1") } });
    expect(outgoing.alerts).toEqual([]);
    expect(outgoing.messages["m-1"]).toBeDefined();
  });

  it("never moves a message backwards when events arrive out of order", () => {
    const s = withEvents(
      emptyPicture("Russian Forces"),
      { type: "event", received_at: now, event: { type: "message.acked", message: message("m-1", { state: "acked", acked_at: now }) } },
      { type: "event", received_at: now, event: { type: "message", message: message("m-1") } },
      { type: "event", received_at: now, event: { type: "message.overdue", message: message("m-1", { state: "overdue", escalated: true }) } },
    );
    expect(s.messages["m-1"]).toMatchObject({ state: "acked", acked_at: now, escalated: true });
    expect(s.alerts.map((a) => a.title)).toEqual(["No acknowledgement from US Forces — escalated", "US Forces acknowledged your message"]);
  });

  it("an escalation that names the message by id is told from what we know of it", () => {
    // `escalation.tak_alert` reaches the recipient with the message id only.
    const idOnly = { ...message("m-2", { state: "overdue", escalated: true }), from: "", to: "", body: "" };
    const s = withEvents(
      emptyPicture("US Forces"),
      { type: "event", received_at: now, event: { type: "message", message: message("m-2") } },
      { type: "event", received_at: now, event: { type: "message.overdue", message: idOnly } },
    );
    expect(s.messages["m-2"]).toMatchObject({ from: "Russian Forces", body: "Delaying by one hour", state: "overdue", escalated: true });
    expect(s.alerts[0].title).toBe("Overdue: acknowledge the message from Russian Forces — escalated");
    const unknown = reduce(emptyPicture("US Forces"), { type: "event", received_at: now, event: { type: "message.overdue", message: { ...idOnly, id: "m-9" } } });
    expect(unknown.alerts[0].title).toBe("Message m-9 overdue — escalated");
  });

  it("mergeMessage keeps escalation and the acknowledgement time", () => {
    const merged = mergeMessage(message("m", { escalated: true, state: "overdue" }), message("m", { state: "pending" }));
    expect(merged).toMatchObject({ state: "overdue", escalated: true });
  });

  it("lists what awaits our acknowledgement first", () => {
    const s = reduce(emptyPicture("US Forces"), {
      type: "messages.loaded",
      messages: [
        message("older-needs-me", { sent_at: "2022-10-08T08:00:00Z" }),
        message("mine", { from: "US Forces", to: "Russian Forces", sent_at: "2022-10-08T09:00:00Z" }),
        message("done", { state: "acked", sent_at: "2022-10-08T09:30:00Z" }),
      ],
    });
    expect(sortedMessages(s).map((m) => m.id)).toEqual(["older-needs-me", "done", "mine"]);
  });
});

describe("alerts", () => {
  it("keeps at most MAX_ALERTS, newest first, and can dismiss one", () => {
    let s = emptyPicture("US Forces");
    for (let i = 0; i < MAX_ALERTS + 5; i++) {
      s = reduce(s, { type: "event", received_at: now, event: { type: "proximity", alert: { summary: `p${i}`, raw: {} } } });
    }
    expect(s.alerts).toHaveLength(MAX_ALERTS);
    expect(s.alerts[0].title).toBe(`p${MAX_ALERTS + 4}`);
    const id = s.alerts[1].id;
    s = reduce(s, { type: "alert.dismissed", id });
    expect(s.alerts.some((a) => a.id === id)).toBe(false);
    expect(s.alerts).toHaveLength(MAX_ALERTS - 1);
  });

  it("asks for a reload when the stream lagged, and ignores unknown events", () => {
    const s = reduce(emptyPicture(null), { type: "event", received_at: now, event: { type: "lagged" } });
    expect(s.needsReload).toBe(true);
    expect(reduce(s, { type: "reloaded" }).needsReload).toBe(false);
    const same = emptyPicture(null);
    expect(reduce(same, { type: "event", received_at: now, event: { type: "other", name: "x", data: null } })).toBe(same);
  });

  it("replaces tracks wholesale on each poll, keyed by uid", () => {
    const track = (uid: string) => ({ type: "Feature" as const, geometry: { type: "Point" as const, coordinates: [41, 37] }, properties: { uid, time: now } });
    let s = reduce(emptyPicture(null), { type: "tracks.loaded", tracks: [track("A"), track("B")] });
    s = reduce(s, { type: "tracks.loaded", tracks: [track("B")] });
    expect(Object.keys(s.tracks)).toEqual(["B"]);
  });
});

describe("a change to a message the page never loaded", () => {
  it("asks for a reload instead of showing a message without text", () => {
    const change = { id: "99", from: "US Forces", to: "Russian Forces", body: "", priority: "routine" as const, sent_at: new Date(0).toISOString(), acked_at: null, conflict_id: null, state: "overdue" as const, escalated: false };
    const next = reduce(emptyPicture("US Forces"), { type: "message.changed", message: change });
    expect(next.needsReload).toBe(true);
    expect(next.messages["99"]).toBeUndefined();
  });
});
