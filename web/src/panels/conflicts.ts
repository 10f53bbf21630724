// The conflicts panel: every conflict that involves the party, what it is
// (who, how close, how close it must be, when) and the two actions an
// involved party takes on it.

import type { ActivityFeature, Conflict, ZoneFeature } from "../api";
import { h, replaceKeepingFocus } from "../dom";
import { describeConflictSides, formatDistance, formatWindow } from "../format";

export interface ConflictActions {
  onLocate(conflict: Conflict): void;
  onAcknowledge(conflict: Conflict): void;
  onResolve(conflict: Conflict): void;
}

const STATE_LABEL: Record<string, string> = { open: "Open", acknowledged: "Acknowledged", resolved: "Resolved" };

export function renderConflicts(
  container: HTMLElement,
  conflicts: Conflict[],
  activitiesById: Map<string, ActivityFeature>,
  zonesById: Map<string, ZoneFeature>,
  me: string | null,
  selectedId: string | null,
  busy: ReadonlySet<string>,
  actions: ConflictActions,
): void {
  if (conflicts.length === 0) {
    replaceKeepingFocus(container, [h("p", { class: "empty" }, "No conflicts involve you at the times shown.")]);
    return;
  }
  const items = conflicts.map((c) => {
    const sides = describeConflictSides(c, activitiesById, zonesById);
    const margin = c.required_m - c.min_distance_m;
    const state = String(c.state);
    const ackedByMe = me !== null && (c.acked_by ?? []).includes(me);
    const isBusy = busy.has(c.id);
    const involved = me === null || c.parties.includes(me);
    return h(
      "li",
      { class: `card conflict state-${state}${c.id === selectedId ? " selected" : ""}`, "data-conflict": c.id },
      h(
        "div",
        { class: "card-head" },
        h("span", { class: `chip chip-${state}` }, STATE_LABEL[state] ?? state),
        h("strong", { class: "card-title" }, c.zone !== undefined ? `${c.parties[0]} × ${sides[1]}` : `${c.parties[0]} × ${c.parties[1]}`),
        h("span", { class: "muted mono" }, `#${c.id}`),
      ),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Separation"),
        h("dd", {}, h("strong", { class: "bad" }, formatDistance(c.min_distance_m)), ` of ${formatDistance(c.required_m)} required (short by ${formatDistance(Math.max(0, margin))})`),
        h("dt", {}, "When"),
        h("dd", {}, formatWindow(c.start, c.end)),
        h("dt", {}, c.zone !== undefined ? "Activity / zone" : "Activities"),
        h("dd", {}, `${sides[0]} / ${sides[1]}`),
        (c.acked_by ?? []).length > 0 ? h("dt", {}, "Acknowledged") : null,
        (c.acked_by ?? []).length > 0 ? h("dd", {}, (c.acked_by ?? []).map((p) => (p === me ? `${p} (you)` : p)).join(", ")) : null,
        h("dt", {}, "Closest point"),
        h("dd", { class: "mono" }, `${c.location.coordinates[1].toFixed(4)}°N ${c.location.coordinates[0].toFixed(4)}°E`),
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "btn", "data-key": `locate-${c.id}`, onclick: () => actions.onLocate(c) }, "Show on map"),
        state !== "resolved" && involved && !ackedByMe && state !== "acknowledged"
          ? h("button", { type: "button", class: "btn btn-primary", "data-key": `ack-${c.id}`, disabled: isBusy, onclick: () => actions.onAcknowledge(c) }, "Acknowledge")
          : null,
        state !== "resolved" && involved
          ? h("button", { type: "button", class: "btn", "data-key": `resolve-${c.id}`, disabled: isBusy, onclick: () => actions.onResolve(c) }, "Mark resolved")
          : null,
      ),
    );
  });
  replaceKeepingFocus(container, [h("ul", { class: "cards", "aria-label": "Conflicts" }, ...items)]);
}
