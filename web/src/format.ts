// How numbers and times read on screen: one place, so every panel agrees.

import type { ActivityFeature, Conflict, ZoneFeature } from "./api";

export function formatDistance(metres: number): string {
  if (!Number.isFinite(metres)) return "—";
  if (metres < 1000) return `${Math.round(metres)} m`;
  return `${(metres / 1000).toFixed(metres < 10_000 ? 1 : 0)} km`;
}

/** Times are shown in UTC with a Z, as operations staff of several nations
 *  read them; the date is added only when it differs from `reference`. */
export function formatTime(iso: string | null | undefined, reference?: string): string {
  if (!iso) return "open";
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  const d = new Date(ms);
  const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}Z`;
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  if (reference) {
    const r = new Date(Date.parse(reference));
    if (!Number.isNaN(r.getTime()) && r.toISOString().slice(0, 10) === day) return hm;
  }
  return `${day} ${hm}`;
}

export function formatWindow(start: string, end: string | null): string {
  return `${formatTime(start)} – ${end ? formatTime(end, start) : "open"}`;
}

export function formatAltitudes(min?: number, max?: number): string {
  if (min === undefined && max === undefined) return "all altitudes";
  return `${min ?? "surface"}–${max ?? "∞"} m`;
}

/** "in 4:05" / "7:12 late" for a countdown in seconds. */
export function formatCountdown(seconds: number): string {
  const s = Math.abs(Math.round(seconds));
  const text = `${Math.floor(s / 60)}:${pad(s % 60)}`;
  return seconds >= 0 ? `due in ${text}` : `${text} late`;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** How an activity is named on screen. Another party's need-to-know activity
 *  reaches us with no name and a null id (the server withholds both), so it
 *  is described by its owner rather than shown as "null". */
export function describeActivity(id: string | null | undefined, party: string, name?: string): string {
  if (name) return name;
  if (id === null || id === undefined || id === "" || id === "null") return `a need-to-know activity of ${party}`;
  return `${possessive(party)} activity ${id}`;
}

export function possessive(name: string): string {
  return /s$/i.test(name) ? `${name}'` : `${name}'s`;
}

/** A zone as it reads in a sentence: its name and kind when we know the
 *  zone, else its kind-less id. */
export function describeZone(id: string, zone: ZoneFeature | undefined): string {
  if (!zone) return `zone ${id}`;
  const kind = zone.properties.kind === "demarcation" ? "demarcation line" : `${zone.properties.kind} zone`;
  return zone.properties.name ? `${kind} ${zone.properties.name}` : `${kind} ${id}`;
}

/** The two sides of a conflict as they read on screen. A zone conflict's
 *  second side is the zone (its `activities[1]` is null and must not read
 *  as a withheld activity). */
export function describeConflictSides(
  c: Conflict,
  activitiesById: ReadonlyMap<string, ActivityFeature>,
  zonesById: ReadonlyMap<string, ZoneFeature>,
): [string, string] {
  const side = (i: 0 | 1) => {
    const id = c.activities[i];
    return describeActivity(id, c.parties[i], id === null ? undefined : activitiesById.get(id)?.properties.name);
  };
  return [side(0), c.zone !== undefined ? describeZone(c.zone, zonesById.get(c.zone)) : side(1)];
}
