// The incident form: what happened, when, where (picked on the map or typed),
// how serious, and which conflict it concerns. The server logs it, and the
// receipt's log index is shown so the report can be proved later.

import type { Conflict, Evidence, IncidentSummary, NewIncident } from "../api";
import { byId, h, replaceKeepingFocus } from "../dom";
import { formatTime } from "../format";
import { showStatus } from "./hotline";

export interface IncidentActions {
  onSubmit(incident: NewIncident): Promise<string>;
  onPickStart(): void;
}

export function setUpIncidentForm(actions: IncidentActions): void {
  const form = byId<HTMLFormElement>("incident-form");
  const status = byId("incident-status");
  const time = byId<HTMLInputElement>("incident-time");
  if (!time.value) time.value = new Date().toISOString().slice(0, 16) + "Z";
  byId("incident-pick").addEventListener("click", () => {
    showStatus(status, "Click the map where it happened, or pan it with the arrow keys and press Enter for its centre (Esc cancels).", false);
    actions.onPickStart();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const summary = String(data.get("summary") ?? "").trim();
    const lat = Number(data.get("lat"));
    const lon = Number(data.get("lon"));
    const when = String(data.get("time") ?? "").trim();
    if (!summary) return showStatus(status, "Give the incident a summary.", true, byId("incident-summary"));
    if (!Number.isFinite(Date.parse(when))) return showStatus(status, "Time: use the form 2022-10-08T09:30Z.", true, time);
    if (String(data.get("lat")).trim() === "" || !(lat >= -90 && lat <= 90)) return showStatus(status, "Latitude must be between -90 and 90.", true, byId("incident-lat"));
    if (String(data.get("lon")).trim() === "" || !(lon >= -180 && lon <= 180)) return showStatus(status, "Longitude must be between -180 and 180.", true, byId("incident-lon"));
    const incident: NewIncident = {
      summary,
      description: String(data.get("description") ?? "").trim(),
      time: new Date(Date.parse(when)).toISOString(),
      location: { type: "Point", coordinates: [lon, lat] },
      severity: String(data.get("severity") ?? "medium") as NewIncident["severity"],
    };
    const conflictId = String(data.get("conflict_id") ?? "");
    if (conflictId) incident.conflict_id = conflictId;
    const button = form.querySelector<HTMLButtonElement>("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const outcome = await actions.onSubmit(incident);
      showStatus(status, outcome, false);
      byId<HTMLInputElement>("incident-summary").value = "";
      byId<HTMLTextAreaElement>("incident-description").value = "";
    } catch (error) {
      showStatus(status, `Not reported: ${error instanceof Error ? error.message : String(error)}`, true);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

export function setIncidentLocation(lonLat: [number, number]): void {
  byId<HTMLInputElement>("incident-lat").value = lonLat[1].toFixed(5);
  byId<HTMLInputElement>("incident-lon").value = lonLat[0].toFixed(5);
  showStatus(byId("incident-status"), "Location set from the map.", false);
}

export function updateIncidentConflicts(conflicts: Conflict[]): void {
  const select = byId<HTMLSelectElement>("incident-conflict");
  const chosen = select.value;
  select.replaceChildren(h("option", { value: "" }, "None"), ...conflicts.map((c) => h("option", { value: c.id }, `#${c.id} ${c.parties[0]} × ${c.parties[1]}`)));
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
}

export interface EvidenceActions {
  onShow(incident: IncidentSummary): void;
  onDownload(incident: IncidentSummary): void;
}

/** The incidents this party reported or is named in, each with the track
 *  evidence the server keeps around it: shown on the map, or downloaded as
 *  the server's GeoJSON. */
export function renderIncidents(incidents: IncidentSummary[], actions: EvidenceActions): void {
  const list = byId("incident-list");
  if (incidents.length === 0) {
    replaceKeepingFocus(list, [h("li", { class: "empty" }, "No incidents concern this party yet.")]);
    return;
  }
  replaceKeepingFocus(
    list,
    [...incidents].reverse().map((incident) =>
      h(
        "li",
        { class: "row", "data-incident": incident.id },
        h("div", { class: "row-main" },
          h("strong", {}, `#${incident.id} `),
          h("span", {}, incident.description),
          h("div", { class: "muted small" }, `${incident.time ? formatTime(incident.time) : ""}${incident.reporter ? ` · reported by ${incident.reporter}` : ""}`),
        ),
        h("button", { type: "button", class: "btn btn-small", "data-key": `ev-show-${incident.id}`, "aria-label": `Show the evidence of incident ${incident.id} on the map`, onclick: () => actions.onShow(incident) }, "Evidence"),
        h("button", { type: "button", class: "btn btn-small", "data-key": `ev-get-${incident.id}`, "aria-label": `Download the evidence of incident ${incident.id} as GeoJSON`, onclick: () => actions.onDownload(incident) }, "GeoJSON"),
      ),
    ),
  );
}

/** What the map now shows of an incident's evidence. */
export function describeEvidence(evidence: Evidence): string {
  const features = evidence.collection.features ?? [];
  const units = new Set(features.filter((f) => f.properties?.kind === "position").map((f) => `${f.properties?.party}/${f.properties?.uid}`));
  const positions = features.filter((f) => f.properties?.kind === "position").length;
  const window = evidence.window ? ` from ${formatTime(evidence.window.from)} to ${formatTime(evidence.window.to)}` : "";
  const state = evidence.complete ? "complete" : "still capturing";
  return `Incident ${evidence.incident}: ${units.size} unit${units.size === 1 ? "" : "s"}, ${positions} position${positions === 1 ? "" : "s"}${window} (${state}).`;
}
