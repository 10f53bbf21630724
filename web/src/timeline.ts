// The timeline: which activities, conflicts and positions are shown at a
// chosen instant. Windows are half-open `[start, end)` as in the contract; an
// activity with no end (a site) lasts for ever. Pure functions of their
// arguments, so the slider's behaviour is tested without a browser.

export interface Windowed {
  start: string;
  end: string | null;
}

export const MINUTE_MS = 60_000;
export const HOUR_MS = 60 * MINUTE_MS;

/** How far a position report may be from the chosen instant and still be
 *  drawn: positions are reported every few seconds to minutes. */
export const TRACK_TOLERANCE_MS = 15 * MINUTE_MS;

export function parseTime_ms(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

/** Is `at_ms` inside `[start, end)`? A window whose start does not parse is
 *  shown rather than hidden: hiding data on a parsing quirk would be worse. */
export function activeAt(window: Windowed, at_ms: number): boolean {
  const start = parseTime_ms(window.start);
  const end = parseTime_ms(window.end);
  if (start !== null && at_ms < start) return false;
  if (end !== null && at_ms >= end) return false;
  return true;
}

/** The items to draw: all of them when no instant is chosen. */
export function visibleAt<T>(items: readonly T[], windowOf: (item: T) => Windowed, at_ms: number | null): T[] {
  if (at_ms === null) return [...items];
  return items.filter((item) => activeAt(windowOf(item), at_ms));
}

export function trackVisibleAt(time: string, at_ms: number | null): boolean {
  if (at_ms === null) return true;
  const t = parseTime_ms(time);
  return t === null || Math.abs(t - at_ms) <= TRACK_TOLERANCE_MS;
}

export interface TimeRange {
  from_ms: number;
  to_ms: number;
}

/** The slider's span: from the earliest start to the latest end, widened to
 *  whole hours, at least one hour long. Open ends do not stretch it. */
export function rangeOf(windows: readonly Windowed[]): TimeRange | null {
  let from = Infinity;
  let to = -Infinity;
  for (const w of windows) {
    const start = parseTime_ms(w.start);
    const end = parseTime_ms(w.end);
    if (start !== null) {
      from = Math.min(from, start);
      to = Math.max(to, start);
    }
    if (end !== null) to = Math.max(to, end);
  }
  if (!Number.isFinite(from)) return null;
  const from_ms = Math.floor(from / HOUR_MS) * HOUR_MS;
  const to_ms = Math.max(from_ms + HOUR_MS, Math.ceil(to / HOUR_MS) * HOUR_MS);
  return { from_ms, to_ms };
}

/** An instant kept inside the range, snapped to the slider's step. */
export function clampToRange(at_ms: number, range: TimeRange, step_ms = 5 * MINUTE_MS): number {
  const clamped = Math.min(range.to_ms, Math.max(range.from_ms, at_ms));
  return range.from_ms + Math.round((clamped - range.from_ms) / step_ms) * step_ms;
}

/** Playing the timeline: each tick moves the instant on by `step_ms`;
 *  starting from the end (or from no instant) begins at the range's start;
 *  null once past the end, which stops playing. */
export function nextPlayStep(at_ms: number | null, range: TimeRange, step_ms: number): number | null {
  if (at_ms === null || at_ms >= range.to_ms) return range.from_ms;
  const next = at_ms + step_ms;
  return next > range.to_ms ? null : next;
}

/** One recorded version of an activity (see `GET /v1/history`). */
export interface Recorded<F> {
  id: string;
  at: string;
  feature: F | null;
}

/** The plans as they were recorded at `at_ms`: of each activity the latest
 *  version recorded at or before that instant; none when that version is
 *  its cancellation or nothing was recorded yet. `versions` in any order. */
export function plansAt<F>(versions: readonly Recorded<F>[], at_ms: number): F[] {
  const latest = new Map<string, { at: number; feature: F | null }>();
  for (const v of versions) {
    const at = parseTime_ms(v.at);
    if (at === null || at > at_ms) continue;
    const known = latest.get(v.id);
    if (!known || at >= known.at) latest.set(v.id, { at, feature: v.feature });
  }
  return [...latest.values()].flatMap((v) => (v.feature === null ? [] : [v.feature]));
}

export interface StateChanges {
  state: string;
  opened_at?: string;
  resolved_at?: string;
}

/** Was the conflict known and not yet resolved at `at_ms`? Opened at or
 *  before it, resolved (if ever) after it. */
export function openAt(conflict: StateChanges, at_ms: number): boolean {
  const opened = parseTime_ms(conflict.opened_at);
  const resolved = parseTime_ms(conflict.resolved_at);
  if (opened !== null && at_ms < opened) return false;
  if (resolved !== null && at_ms >= resolved) return false;
  return true;
}

/** The conflicts as they stood at `at_ms`: those open then, shown open
 *  (a later resolution had not happened yet). */
export function conflictsAt<C extends StateChanges>(conflicts: readonly C[], at_ms: number): C[] {
  return conflicts
    .filter((c) => openAt(c, at_ms))
    .map((c) => (c.state === "resolved" ? { ...c, state: "open" } : c));
}
