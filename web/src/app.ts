// The signed-in page: loads the party's picture, keeps it current from the
// event stream (reconnecting with backoff), and wires the map and the panels
// to the reducer in state.ts. One App per page load: "view as" and sign-out
// change the token in session storage and reload the page, so no state of
// one party can leak into the page of another.

import type { LatLng } from "leaflet";
import type { ActivityFeature, Conflict, History, IncidentSummary, Me, NewIncident, NewMessage, ZoneFeature } from "./api";
import { Api, ApiError } from "./api";
import { byId } from "./dom";
import { download } from "./export";
import { formatTime } from "./format";
import { MapView } from "./map";
import { renderActivities } from "./panels/activities";
import { renderAlerts, showToast } from "./panels/alerts";
import { renderConflicts } from "./panels/conflicts";
import { renderMessages, setUpHotlineForm, showStatus, updateHotlineChoices } from "./panels/hotline";
import { describeEvidence, renderIncidents, setIncidentLocation, setUpIncidentForm, updateIncidentConflicts } from "./panels/incident";
import { setUpTabs, type Tabs } from "./tabs";
import { emptyPicture, reduce, sortedConflicts, sortedMessages, type Action, type Alert, type Picture } from "./state";
import { clampToRange, conflictsAt, nextPlayStep, plansAt, rangeOf, trackVisibleAt, visibleAt, HOUR_MS, MINUTE_MS, type TimeRange } from "./timeline";

/** How often latest positions are fetched (the contract streams alerts, not
 *  positions). */
export const TRACK_POLL_MS = 5_000;
/** Reconnection backoff for the event stream, doubling up to the maximum. */
export const STREAM_RETRY_MIN_MS = 1_000;
export const STREAM_RETRY_MAX_MS = 30_000;
/** Playing the timeline moves it 5 minutes of the day every 0.4 s: a day of
 *  planned activities plays in about two minutes. */
export const PLAY_STEP_MS = 5 * MINUTE_MS;
export const PLAY_TICK_MS = 400;

export interface Session {
  api: Api;
  me: Me | null;
  /** Others the hotline may write to, when known (the demo list). */
  knownParties: string[];
}

export class App {
  private picture: Picture;
  private activities: ActivityFeature[] = [];
  private zones: ZoneFeature[] = [];
  private selectedConflictId: string | null = null;
  private at_ms: number | null = null;
  /** The recorded history, once the timeline asked for it; null where the
   *  server has none (the slider then filters today's picture by time). */
  private history: History | null = null;
  private range: TimeRange | null = null;
  private readonly busy = new Set<string>();
  private readonly stop = new AbortController();
  private readonly map: MapView;
  private readonly tabs: Tabs;
  private unreadAlerts = 0;
  private picking = false;
  private cancelPickListener: ((e: KeyboardEvent) => void) | null = null;
  private playTimer: number | null = null;

  constructor(private readonly session: Session) {
    this.picture = emptyPicture(session.me?.name ?? null);
    this.map = new MapView(byId("map"), byId("legend"), { onSelectConflict: (id) => this.selectConflict(id, false) });
    this.tabs = setUpTabs(byId("side"), (tab) => {
      if (tab === "alerts") {
        this.unreadAlerts = 0;
        this.renderBadges();
      }
    });
    setUpHotlineForm({ onSend: (m) => this.sendMessage(m), onAcknowledge: (m) => void this.acknowledgeMessage(m.id) });
    setUpIncidentForm({ onSubmit: (i) => this.reportIncident(i), onPickStart: () => this.startPick() });
    this.wireTopbar();
    this.wireTimeline();
    this.map.map.on("click", (e) => {
      if (this.picking) this.pick(e.latlng);
    });
  }

  async start(): Promise<void> {
    // The stream opens first, so no event falls between the load and it.
    void this.streamForever();
    await this.reload();
    // Positions are not fetched for a tab nobody looks at.
    window.setInterval(() => document.hidden || void this.refreshTracks(), TRACK_POLL_MS);
    // Countdowns on messages awaiting acknowledgement tick every second; a
    // list with nothing counting down is left alone.
    window.setInterval(() => {
      if (Object.values(this.picture.messages).some((m) => m.state === "pending" && m.ack_within_s)) this.renderMessages();
    }, 1_000);
  }

  private dispatch(action: Action): void {
    // A new incident that names us: its evidence is there to look at.
    if (action.type === "event" && action.event.type === "incident") void this.loadIncidents();
    const before = this.picture.alerts;
    this.picture = reduce(this.picture, action);
    const fresh = this.picture.alerts.filter((a) => !before.includes(a));
    for (const alert of fresh.reverse()) this.announce(alert);
    if (this.picture.needsReload) {
      this.picture = reduce(this.picture, { type: "reloaded" });
      void this.reload();
    }
    this.render();
  }

  /** Loads everything; each part that fails is reported and the rest shown. */
  private async reload(): Promise<void> {
    const api = this.session.api;
    const [activities, zones, conflicts, messages, tracks] = await Promise.allSettled([api.activities(), api.zones(), api.openConflicts(), api.messages(), api.tracks()]);
    const problems: string[] = [];
    const take = <T>(result: PromiseSettledResult<T>, what: string): T | null => {
      if (result.status === "fulfilled") return result.value;
      problems.push(`${what}: ${result.reason instanceof ApiError ? result.reason.describe() : String(result.reason)}`);
      return null;
    };
    this.activities = take(activities, "activities") ?? this.activities;
    this.zones = take(zones, "zones") ?? this.zones;
    const c = take(conflicts, "conflicts");
    const m = take(messages, "messages");
    const t = take(tracks, "tracks");
    if (c) this.picture = reduce(this.picture, { type: "conflicts.loaded", conflicts: c });
    if (m) this.picture = reduce(this.picture, { type: "messages.loaded", messages: m });
    if (t) this.picture = reduce(this.picture, { type: "tracks.loaded", tracks: t });
    this.range = rangeOf([...this.activities.map((a) => a.properties), ...Object.values(this.picture.conflicts)]);
    this.updateTimelineRange();
    this.render();
    this.map.fitOnce();
    void this.loadIncidents();
    if (problems.length > 0) {
      this.dispatch({
        type: "alert.raised",
        alert: { kind: "load", severity: "warning", title: `Could not load part of the picture`, detail: problems.join("; "), time: new Date().toISOString() },
      });
      byId("conn").title = problems.join("\n");
    }
  }

  private async refreshTracks(): Promise<void> {
    try {
      this.dispatch({ type: "tracks.loaded", tracks: await this.session.api.tracks() });
    } catch {
      // A missed poll is retried at the next; the stream's state shows outages.
    }
  }

  private async streamForever(): Promise<void> {
    let retry_ms = STREAM_RETRY_MIN_MS;
    let lastEventId: string | undefined;
    let reconnecting = false;
    while (!this.stop.signal.aborted) {
      try {
        this.setConnection("connecting");
        lastEventId = await this.session.api.streamEvents(
          (event) => this.dispatch({ type: "event", event, received_at: new Date().toISOString() }),
          this.stop.signal,
          lastEventId,
          () => {
            // A stream that opened resets the backoff, even if it stays quiet.
            retry_ms = STREAM_RETRY_MIN_MS;
            this.setConnection("live");
            // Events may have been missed while disconnected: reload once the
            // new stream is open, so nothing falls in between.
            if (reconnecting) void this.reload();
            reconnecting = true;
          },
        );
      } catch (error) {
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          this.setConnection("denied");
          return;
        }
      }
      if (this.stop.signal.aborted) return;
      this.setConnection("retrying");
      await sleep(retry_ms, this.stop.signal);
      retry_ms = Math.min(STREAM_RETRY_MAX_MS, retry_ms * 2);
    }
  }

  private setConnection(state: "connecting" | "live" | "retrying" | "denied"): void {
    const el = byId("conn");
    el.className = `conn conn-${state}`;
    el.textContent = { connecting: "Connecting…", live: "Live", retrying: "Reconnecting…", denied: "Not authorised" }[state];
  }

  // ------------------------------------------------------------ rendering

  private visibleConflicts(): Conflict[] {
    if (this.at_ms !== null && this.history) {
      return visibleAt(conflictsAt(this.history.conflicts, this.at_ms), (c) => c, this.at_ms);
    }
    return visibleAt(sortedConflicts(this.picture), (c) => c, this.at_ms);
  }

  /** The plans at the chosen instant: replayed from the record when the
   *  server keeps one, else today's versions filtered by their windows. */
  private visibleActivities(): ActivityFeature[] {
    if (this.at_ms !== null && this.history) {
      return visibleAt(plansAt(this.history.activities, this.at_ms), (a) => a.properties, this.at_ms);
    }
    return visibleAt(this.activities, (a) => a.properties, this.at_ms);
  }

  /** Fetches the recorded history (again: it grows while the page is open). */
  private async loadHistory(): Promise<void> {
    try {
      this.history = await this.session.api.history();
    } catch {
      this.history = null;
    }
    this.updateTimelineLabel();
    this.render();
  }

  private render(): void {
    const activities = this.visibleActivities();
    const conflicts = this.visibleConflicts();
    const tracks = Object.values(this.picture.tracks).filter((t) => trackVisibleAt(t.properties.time, this.at_ms));
    this.map.render({ me: this.picture.me, activities, zones: this.zones, conflicts, tracks, selectedConflictId: this.selectedConflictId });
    const byIdMap = new Map(this.activities.map((a) => [String(a.id), a]));
    const zonesById = new Map(this.zones.map((z) => [String(z.id), z]));
    renderConflicts(byId("conflict-list"), conflicts, byIdMap, zonesById, this.picture.me, this.selectedConflictId, this.busy, {
      onLocate: (c) => this.selectConflict(c.id, true),
      onAcknowledge: (c) => void this.conflictAction(c, "ack"),
      onResolve: (c) => void this.conflictAction(c, "resolve"),
    });
    const conflicting = new Set(conflicts.filter((c) => c.state !== "resolved").flatMap((c) => c.activities.filter((id): id is string => id !== null)));
    renderActivities(byId("activity-list"), activities, this.picture.me, conflicting, (a) => {
      if (!this.map.focusActivity(String(a.id))) return;
      byId("map").focus({ preventScroll: true });
    });
    renderAlerts(byId("alert-list"), this.picture.alerts, {
      onShow: (a) => this.showAlert(a),
      onDismiss: (a) => this.dispatch({ type: "alert.dismissed", id: a.id }),
    });
    this.renderMessages();
    const open = Object.values(this.picture.conflicts).filter((c) => c.state !== "resolved");
    updateHotlineChoices(this.recipients(), open);
    updateIncidentConflicts(open);
    this.renderBadges();
  }

  private renderMessages(): void {
    renderMessages(byId("message-list"), sortedMessages(this.picture), this.picture.me, Date.now(), this.busy, {
      onSend: (m) => this.sendMessage(m),
      onAcknowledge: (m) => void this.acknowledgeMessage(m.id),
    });
  }

  private renderBadges(): void {
    const open = Object.values(this.picture.conflicts).filter((c) => c.state === "open").length;
    const waiting = Object.values(this.picture.messages).filter((m) => m.to === this.picture.me && m.state !== "acked").length;
    setBadge("badge-conflicts", open, "open conflicts");
    setBadge("badge-hotline", waiting, "messages awaiting your acknowledgement");
    setBadge("badge-alerts", this.unreadAlerts, "new alerts");
  }

  private recipients(): string[] {
    const names = new Set<string>(this.session.knownParties);
    for (const c of Object.values(this.picture.conflicts)) c.parties.forEach((p) => names.add(p));
    for (const m of Object.values(this.picture.messages)) [m.from, m.to].forEach((p) => names.add(p));
    for (const a of this.activities) if (a.properties.party) names.add(a.properties.party);
    if (this.picture.me) names.delete(this.picture.me);
    names.delete("");
    return [...names].sort();
  }

  private announce(alert: Alert): void {
    if (this.tabs.current() !== "alerts") this.unreadAlerts += 1;
    showToast(byId("toasts"), alert, () => this.tabs.select("alerts", true));
  }

  // ------------------------------------------------------------ actions

  private selectConflict(id: string, fly: boolean): void {
    this.selectedConflictId = id;
    const conflict = this.picture.conflicts[id];
    this.render();
    if (conflict && fly) this.map.focusPoint([conflict.location.coordinates[0], conflict.location.coordinates[1]]);
    if (!fly) {
      this.tabs.select("conflicts", false);
      document.querySelector(`[data-conflict="${CSS.escape(id)}"]`)?.scrollIntoView({ block: "nearest" });
    }
  }

  private showAlert(alert: Alert): void {
    if (alert.conflict_id && this.picture.conflicts[alert.conflict_id]) this.selectConflict(alert.conflict_id, true);
    else if (alert.location) this.map.focusPoint(alert.location);
  }

  private async conflictAction(conflict: Conflict, action: "ack" | "resolve"): Promise<void> {
    this.busy.add(conflict.id);
    this.render();
    try {
      const api = this.session.api;
      const updated = action === "ack" ? await api.acknowledgeConflict(conflict.id) : await api.resolveConflict(conflict.id);
      const me = this.picture.me;
      // The answer may or may not say who acknowledged; we know we did.
      const base: Conflict = updated ?? { ...conflict, state: action === "ack" ? conflict.state : "resolved" };
      const ackedBy = new Set([...(conflict.acked_by ?? []), ...(base.acked_by ?? [])]);
      if (action === "ack" && me) ackedBy.add(me);
      const next: Conflict = { ...base, acked_by: [...ackedBy] };
      if (action === "ack" && !me && !updated) next.state = "acknowledged";
      this.busy.delete(conflict.id);
      this.dispatch({ type: "conflict.changed", conflict: next });
    } catch (error) {
      this.busy.delete(conflict.id);
      this.failure(`Could not ${action === "ack" ? "acknowledge" : "resolve"} conflict #${conflict.id}`, error);
    }
  }

  private async sendMessage(message: NewMessage): Promise<void> {
    const sent = await this.session.api.sendMessage(message);
    if (sent) this.dispatch({ type: "message.changed", message: sent });
  }

  private async acknowledgeMessage(id: string): Promise<void> {
    this.busy.add(id);
    this.renderMessages();
    try {
      const acked = await this.session.api.acknowledgeMessage(id);
      this.busy.delete(id);
      const previous = this.picture.messages[id];
      const next = acked ?? (previous ? { ...previous, state: "acked" as const, acked_at: new Date().toISOString() } : null);
      if (next) this.dispatch({ type: "message.changed", message: next });
    } catch (error) {
      this.busy.delete(id);
      this.failure("Could not acknowledge the message", error);
    }
  }

  private async loadIncidents(): Promise<void> {
    try {
      const incidents = await this.session.api.incidents();
      renderIncidents(incidents, { onShow: (i) => void this.showEvidence(i), onDownload: (i) => void this.downloadEvidence(i) });
    } catch (error) {
      showStatus(byId("evidence-status"), `Could not list the incidents: ${error instanceof ApiError ? error.describe() : String(error)}`, true);
    }
  }

  /** Draws the incident's track evidence on the map. */
  private async showEvidence(incident: IncidentSummary): Promise<void> {
    const status = byId("evidence-status");
    try {
      const evidence = await this.session.api.incidentEvidence(incident.id);
      const place = incident.location ? (incident.location.coordinates as [number, number]) : null;
      this.map.showEvidence(evidence.collection, place);
      showStatus(status, describeEvidence(evidence), false);
    } catch (error) {
      showStatus(status, `No evidence: ${error instanceof ApiError ? error.describe() : String(error)}`, true);
    }
  }

  /** Saves the evidence exactly as the server answered it. */
  private async downloadEvidence(incident: IncidentSummary): Promise<void> {
    try {
      const evidence = await this.session.api.incidentEvidence(incident.id);
      download(`deconflict-incident-${incident.id.replace(/[^A-Za-z0-9_-]+/g, "-")}-evidence.geojson`, "application/geo+json", evidence.text);
    } catch (error) {
      showStatus(byId("evidence-status"), `No evidence: ${error instanceof ApiError ? error.describe() : String(error)}`, true);
    }
  }

  private async reportIncident(incident: NewIncident): Promise<string> {
    const created = await this.session.api.reportIncident(incident);
    void this.loadIncidents();
    this.map.showPick(null);
    return created.receipt ? `Reported; logged at index ${created.receipt.log_index}.` : `Reported (incident ${created.id}).`;
  }

  private startPick(): void {
    this.stopPicking();
    this.picking = true;
    const mapElement = byId("map");
    mapElement.classList.add("picking");
    mapElement.focus({ preventScroll: true });
    // Keyboard users pan the map with the arrow keys and press Enter to
    // take its centre; Escape cancels.
    const cancel = (e: KeyboardEvent) => {
      if (e.key === "Enter" && document.activeElement === mapElement) {
        e.preventDefault();
        this.pick(this.map.map.getCenter());
      } else if (e.key === "Escape") {
        this.stopPicking();
        this.tabs.select("incident", true);
      }
    };
    document.addEventListener("keydown", cancel);
    this.cancelPickListener = cancel;
  }

  private pick(at: LatLng): void {
    this.stopPicking();
    const point: [number, number] = [at.wrap().lng, at.lat];
    this.map.showPick(point);
    setIncidentLocation(point);
    this.tabs.select("incident", true);
  }

  private stopPicking(): void {
    this.picking = false;
    byId("map").classList.remove("picking");
    if (this.cancelPickListener) document.removeEventListener("keydown", this.cancelPickListener);
    this.cancelPickListener = null;
  }

  private failure(what: string, error: unknown): void {
    const detail = error instanceof ApiError ? error.describe() : String(error);
    this.dispatch({ type: "alert.raised", alert: { kind: "error", severity: "warning", title: what, detail, time: new Date().toISOString() } });
  }

  // ------------------------------------------------------------ top bar and timeline

  private wireTopbar(): void {
    const signal = this.stop.signal;
    byId("export-geojson").addEventListener("click", () => void this.exportAs("geojson"), { signal });
    byId("export-kml").addEventListener("click", () => void this.exportAs("kml"), { signal });
    byId("show-checkpoint").addEventListener(
      "click",
      async () => {
        const dialog = byId<HTMLDialogElement>("checkpoint-dialog");
        const text = byId("checkpoint-text");
        text.textContent = "Loading…";
        dialog.showModal();
        try {
          text.textContent = await this.session.api.checkpoint();
        } catch (error) {
          text.textContent = error instanceof ApiError ? error.describe() : String(error);
        }
      },
      { signal },
    );
    byId("checkpoint-save").addEventListener(
      "click",
      () => download(`deconflict-checkpoint-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}Z.txt`, "text/plain", byId("checkpoint-text").textContent ?? ""),
      { signal },
    );
  }

  /** Downloads the server's export, so the file holds exactly what the
   *  server lets this party see, not what the page happens to hold: what
   *  the map shows, its area and the timeline's time (all times when the
   *  timeline shows all). */
  private async exportAs(format: "geojson" | "kml"): Promise<void> {
    const stem = `deconflict-${(this.picture.me ?? "picture").replace(/[^A-Za-z0-9_-]+/g, "-")}-${new Date().toISOString().slice(0, 16).replace(":", "")}`;
    try {
      const time = this.at_ms === null ? undefined : new Date(this.at_ms).toISOString();
      const text = await this.session.api.exportFile(format, { time, bbox: this.map.viewBox() ?? undefined });
      if (format === "geojson") download(`${stem}.geojson`, "application/geo+json", text);
      else download(`${stem}.kml`, "application/vnd.google-earth.kml+xml", text);
    } catch (error) {
      window.alert(error instanceof ApiError ? error.describe() : String(error));
    }
  }

  private wireTimeline(): void {
    const signal = this.stop.signal;
    const range = byId<HTMLInputElement>("timeline-range");
    const all = byId<HTMLButtonElement>("timeline-all");
    const play = byId<HTMLButtonElement>("timeline-play");
    const show = (at_ms: number | null) => {
      // Leaving "All times": the record is fetched afresh for the replay.
      if (this.at_ms === null && at_ms !== null) void this.loadHistory();
      this.at_ms = at_ms;
      if (at_ms !== null) range.value = String(at_ms);
      this.updateTimelineLabel();
      this.render();
    };
    const stopPlaying = () => {
      if (this.playTimer !== null) clearInterval(this.playTimer);
      this.playTimer = null;
      play.textContent = "Play";
      play.setAttribute("aria-pressed", "false");
    };
    range.addEventListener(
      "input",
      () => {
        if (!this.range) return;
        stopPlaying();
        show(clampToRange(Number(range.value), this.range));
      },
      { signal },
    );
    all.addEventListener(
      "click",
      () => {
        stopPlaying();
        show(this.at_ms === null && this.range ? clampToRange(Number(range.value), this.range) : null);
      },
      { signal },
    );
    play.addEventListener(
      "click",
      () => {
        if (this.playTimer !== null || !this.range) return stopPlaying();
        play.textContent = "Pause";
        play.setAttribute("aria-pressed", "true");
        const tick = () => {
          const next = this.range ? nextPlayStep(this.at_ms, this.range, PLAY_STEP_MS) : null;
          if (next === null) return stopPlaying();
          show(next);
        };
        tick();
        this.playTimer = window.setInterval(tick, PLAY_TICK_MS);
      },
      { signal },
    );
  }

  private updateTimelineRange(): void {
    const range = byId<HTMLInputElement>("timeline-range");
    const ticks = byId("timeline-ticks");
    if (!this.range) {
      range.disabled = true;
      ticks.replaceChildren();
      return;
    }
    range.disabled = false;
    range.min = String(this.range.from_ms);
    range.max = String(this.range.to_ms);
    if (this.at_ms !== null) this.at_ms = clampToRange(this.at_ms, this.range);
    range.value = String(this.at_ms ?? this.range.from_ms);
    const span = this.range.to_ms - this.range.from_ms;
    const step = span <= 12 * HOUR_MS ? 2 * HOUR_MS : span <= 36 * HOUR_MS ? 6 * HOUR_MS : 24 * HOUR_MS;
    const labels: HTMLElement[] = [];
    for (let t = this.range.from_ms; t <= this.range.to_ms; t += step) {
      const tick = document.createElement("span");
      tick.textContent = formatTime(new Date(t).toISOString(), new Date(this.range.from_ms).toISOString());
      tick.style.left = `${((t - this.range.from_ms) / span) * 100}%`;
      labels.push(tick);
    }
    ticks.replaceChildren(...labels);
    this.updateTimelineLabel();
  }

  private updateTimelineLabel(): void {
    const all = byId<HTMLButtonElement>("timeline-all");
    const output = byId("timeline-value");
    const range = byId<HTMLInputElement>("timeline-range");
    all.setAttribute("aria-pressed", String(this.at_ms === null));
    if (this.at_ms === null) {
      output.textContent = "whole picture";
      range.setAttribute("aria-valuetext", "whole picture, no time filter");
    } else {
      const text = formatTime(new Date(this.at_ms).toISOString());
      output.textContent = this.history ? `${text} (as recorded)` : text;
      output.dataset.replay = String(this.history !== null);
      range.setAttribute("aria-valuetext", text);
    }
  }
}

function setBadge(id: string, count: number, what: string): void {
  const badge = byId(id);
  badge.textContent = count > 0 ? String(count) : "";
  badge.hidden = count === 0;
  badge.setAttribute("aria-label", `${count} ${what}`);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}
