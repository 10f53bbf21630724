// The map: an offline basemap (Natural Earth 1:110m countries from the
// world-atlas package, bundled; no tile server) and the party's picture drawn
// over it with Leaflet's SVG renderer (no WebGL). Shapes are drawn at their
// true size in metres: corridors as buffer polygons (see geo.ts), disks as
// L.circle, which Leaflet sizes in metres at the circle's latitude.

import L from "leaflet";
import "leaflet/dist/leaflet.css";
import type { FeatureCollection, Geometry, Position } from "geojson";
import { feature, mesh } from "topojson-client";
import type { GeometryCollection, Topology } from "topojson-specification";
import countriesTopology from "world-atlas/countries-110m.json";
import type { ActivityFeature, Conflict, TrackFeature, ZoneFeature } from "./api";
import { formatAltitudes, formatDistance, formatTime, formatWindow } from "./format";
import { corridorRings, densify, type LonLat } from "./geo";

/** Below this zoom, site and zone names are hidden. */
const LABEL_MIN_ZOOM = 8;

/** Geodesic edges longer than this are cut so they bend as they should. */
const EDGE_STEP_M = 10_000;

/** Colours by party: ours first, then others in order of appearance. Chosen
 *  to stay distinct from the conflict red and the zone colours, and to keep
 *  a 3:1 contrast against the basemap. */
const OUR_COLOUR = "#1d5fbf";
const OTHER_COLOURS = ["#7b3fa8", "#0f7b6c", "#a3336a", "#3d5a80", "#7a5230"];
export const CONFLICT_COLOUR = "#c8102e";

export const ZONE_STYLE: Record<string, L.PathOptions> = {
  exclusion: { color: "#b3003c", weight: 2, dashArray: "8 5", fillColor: "#b3003c", fillOpacity: 0.07 },
  protected: { color: "#1b7f3b", weight: 2, fillColor: "#1b7f3b", fillOpacity: 0.12 },
  demarcation: { color: "#e06c00", weight: 3.5, dashArray: "14 6 3 6", fill: false },
};

export interface MapHandlers {
  onSelectConflict(id: string): void;
}

export class PartyColours {
  private readonly assigned = new Map<string, string>();
  constructor(private me: string | null) {}
  colourOf(party: string | undefined): string {
    if (party !== undefined && party === this.me) return OUR_COLOUR;
    const key = party ?? "(unknown)";
    let colour = this.assigned.get(key);
    if (!colour) {
      colour = OTHER_COLOURS[this.assigned.size % OTHER_COLOURS.length];
      this.assigned.set(key, colour);
    }
    return colour;
  }
  known(): [string, string][] {
    return [...this.assigned.entries()];
  }
}

function ll(p: Position): L.LatLngTuple {
  return [p[1], p[0]];
}

export interface PictureOnMap {
  me: string | null;
  activities: ActivityFeature[];
  zones: ZoneFeature[];
  conflicts: Conflict[];
  tracks: TrackFeature[];
  selectedConflictId: string | null;
}

export class MapView {
  readonly map: L.Map;
  private readonly zoneLayer = L.layerGroup();
  private readonly activityLayer = L.layerGroup();
  private readonly conflictLayer = L.layerGroup();
  private readonly trackLayer = L.layerGroup();
  private readonly evidenceLayer = L.layerGroup();
  private readonly activityBounds = new Map<string, L.LatLngBounds>();
  private colours = new PartyColours(null);
  private coloursFor: string | null | undefined = undefined;
  private hasOwn = false;
  private drawnKeys = { zones: "", shapes: "" };
  private readonly trackMarkers = new Map<string, { marker: L.Marker; look: string }>();
  private pickMarker: L.CircleMarker | null = null;
  private hasFitted = false;

  /** The legend sits in a strip under the map rather than over it, so it
   *  never hides what it explains. */
  constructor(container: HTMLElement, private readonly legend: HTMLElement, private readonly handlers: MapHandlers) {
    this.map = L.map(container, {
      center: [36.9, 41.3],
      zoom: 8,
      minZoom: 2,
      maxZoom: 15,
      zoomSnap: 0.5,
      worldCopyJump: true,
      preferCanvas: false,
      attributionControl: true,
      keyboard: true,
    });
    this.map.attributionControl.setPrefix("Leaflet · basemap: Natural Earth 1:110m (public domain), offline");
    for (const [name, z] of [["zones", 410], ["activities", 420], ["conflicts", 640], ["tracks", 650]] as const) {
      this.map.createPane(name).style.zIndex = String(z);
    }
    this.drawBasemap();
    this.zoneLayer.addTo(this.map);
    this.activityLayer.addTo(this.map);
    this.conflictLayer.addTo(this.map);
    this.trackLayer.addTo(this.map);
    this.evidenceLayer.addTo(this.map);
    L.control.scale({ imperial: false, position: "bottomright" }).addTo(this.map);
    this.addCursorReadout();
    // The map's box changes with the layout (tablet rotation, panels moving
    // under the map); Leaflet must be told, or it draws for the old size.
    new ResizeObserver(() => this.map.invalidateSize({ pan: false })).observe(container);
    // Names of sites and zones are written on the map only when zoomed in
    // far enough for them not to pile up.
    const zoomClass = () => container.classList.toggle("zoomed-out", this.map.getZoom() < LABEL_MIN_ZOOM);
    this.map.on("zoomend", zoomClass);
    zoomClass();
  }

  private label(group: L.LayerGroup, at: L.LatLngTuple, text: string, pane: string): void {
    group.addLayer(
      L.marker(at, {
        pane,
        interactive: false,
        keyboard: false,
        icon: L.divIcon({ className: "map-label-anchor", html: mapLabel(text), iconSize: [0, 0] }),
      }),
    );
  }

  private drawBasemap(): void {
    const topology = countriesTopology as unknown as Topology<{ countries: GeometryCollection<{ name: string }> }>;
    const land = feature(topology, topology.objects.countries);
    const borders = mesh(topology, topology.objects.countries, (a, b) => a !== b);
    const basemap = this.map.createPane("basemap");
    basemap.style.zIndex = "200";
    L.geoJSON(land, {
      pane: "basemap",
      interactive: false,
      style: { color: "#c9c2b4", weight: 0.6, fillColor: "#f3efe6", fillOpacity: 1 },
    }).addTo(this.map);
    L.geoJSON(borders, { pane: "basemap", interactive: false, style: { color: "#8f8676", weight: 1.2, dashArray: "4 3" } }).addTo(this.map);
    // A one-degree graticule: with no place names on the basemap, the grid is
    // what lets an officer read a position off the map.
    const lines: L.LatLngExpression[][] = [];
    for (let lon = -180; lon <= 180; lon += 1) lines.push([[-85, lon], [85, lon]]);
    for (let lat = -85; lat <= 85; lat += 1) lines.push([[lat, -180], [lat, 180]]);
    L.polyline(lines, { pane: "basemap", interactive: false, color: "#9fb3c8", weight: 0.5, opacity: 0.6 }).addTo(this.map);
    for (const country of land.features) {
      const centre = labelPoint(country.geometry);
      if (!centre || !country.properties?.name) continue;
      L.marker(centre, {
        pane: "basemap",
        interactive: false,
        keyboard: false,
        icon: L.divIcon({ className: "country-label", html: labelElement(country.properties.name), iconSize: undefined }),
      }).addTo(this.map);
    }
  }

  private addCursorReadout(): void {
    const Readout = L.Control.extend({
      onAdd: () => {
        const div = L.DomUtil.create("div", "cursor-readout");
        div.setAttribute("aria-hidden", "true");
        this.map.on("mousemove", (e: L.LeafletMouseEvent) => {
          const { lat, lng } = e.latlng.wrap();
          div.textContent = `${Math.abs(lat).toFixed(4)}°${lat >= 0 ? "N" : "S"} ${Math.abs(lng).toFixed(4)}°${lng >= 0 ? "E" : "W"}`;
        });
        return div;
      },
    });
    new Readout({ position: "bottomright" }).addTo(this.map);
  }

  private renderLegend(): void {
    const item = (swatchClass: string, label: string, colour?: string) => {
      const row = L.DomUtil.create("span", "legend-row");
      const swatch = L.DomUtil.create("span", `swatch ${swatchClass}`, row);
      if (colour) swatch.style.setProperty("--swatch", colour);
      L.DomUtil.create("span", "", row).textContent = label;
      return row;
    };
    const group = (title: string, ...items: HTMLElement[]) => {
      const el = L.DomUtil.create("span", "legend-group");
      el.setAttribute("role", "group");
      el.setAttribute("aria-label", title);
      el.append(...items);
      return el;
    };
    const parties = [...(this.hasOwn ? [item("sw-fill", "Ours", OUR_COLOUR)] : []), ...this.colours.known().map(([party, colour]) => item("sw-fill", party, colour))];
    this.legend.replaceChildren(
      group("Parties", ...parties),
      group(
        "Shapes",
        item("sw-corridor", "Corridor (true width)"),
        item("sw-flight", "Flight (altitude band)"),
        item("sw-site", "Site radius"),
      ),
      group("Zones", item("sw-exclusion", "Exclusion"), item("sw-protected", "Protected"), item("sw-demarcation", "Demarcation line")),
      group("Live", item("sw-conflict", "Conflict, closest point"), item("sw-track", "Unit, heading")),
    );
  }

  /** Redraws only what changed: tracks move every few seconds, and
   *  redrawing every corridor with them would close the tooltip the user is
   *  reading and waste work. Each group has a key made of what it shows. */
  render(picture: PictureOnMap): void {
    if (this.coloursFor !== picture.me) {
      this.colours = new PartyColours(picture.me);
      this.coloursFor = picture.me;
      this.drawnKeys = { zones: "", shapes: "" };
    }
    this.hasOwn = picture.me !== null && picture.activities.some((a) => a.properties.party === picture.me);
    const zonesKey = picture.zones.map((z) => `${z.id}:${z.properties?.kind}:${JSON.stringify(z.geometry).length}`).join("|");
    if (zonesKey !== this.drawnKeys.zones) {
      this.zoneLayer.clearLayers();
      for (const zone of picture.zones) this.drawZone(zone);
      this.drawnKeys.zones = zonesKey;
    }
    const shapesKey = [
      picture.selectedConflictId ?? "",
      ...picture.activities.map((a) => `${a.id}@${a.properties.version ?? ""}:${a.properties.start}:${a.properties.end}`),
      ...picture.conflicts.map((c) => `${c.id}:${c.state}:${(c.acked_by ?? []).join(",")}:${c.min_distance_m}:${c.location.coordinates.join(",")}`),
    ].join("|");
    if (shapesKey !== this.drawnKeys.shapes) {
      this.activityLayer.clearLayers();
      this.conflictLayer.clearLayers();
      this.activityBounds.clear();
      const conflicting = new Set(picture.conflicts.filter((c) => c.state !== "resolved").flatMap((c) => c.activities.filter((id): id is string => id !== null)));
      for (const activity of picture.activities) this.drawActivity(activity, conflicting.has(String(activity.id)));
      for (const conflict of picture.conflicts) this.drawConflict(conflict, conflict.id === picture.selectedConflictId);
      this.drawnKeys.shapes = shapesKey;
    }
    this.updateTracks(picture.tracks);
    this.renderLegend();
  }

  /** Moves existing unit markers, adds new ones and drops those gone. */
  private updateTracks(tracks: TrackFeature[]): void {
    const seen = new Set<string>();
    for (const track of tracks) {
      const p = track.properties;
      seen.add(p.uid);
      const at = ll(track.geometry.coordinates);
      const colour = this.colours.colourOf(p.party);
      const look = `${colour}:${p.course_deg === undefined ? "" : Math.round(p.course_deg)}`;
      const speed = p.speed_mps !== undefined ? `, ${(p.speed_mps * 3.6).toFixed(0)} km/h` : "";
      const course = p.course_deg !== undefined ? `, heading ${Math.round(p.course_deg)}°` : "";
      const tip = `${p.uid} (${p.party ?? "unknown party"}) at ${formatTime(p.time)}${course}${speed}`;
      const existing = this.trackMarkers.get(p.uid);
      if (existing) {
        existing.marker.setLatLng(at);
        existing.marker.setTooltipContent(tip);
        if (existing.look !== look) {
          existing.marker.setIcon(trackIcon(colour, p.course_deg, p.uid));
          existing.look = look;
        }
        continue;
      }
      const marker = L.marker(at, { pane: "tracks", keyboard: false, icon: trackIcon(colour, p.course_deg, p.uid) });
      marker.bindTooltip(tip, { className: "map-tip", direction: "top", offset: [0, -14] });
      this.trackLayer.addLayer(marker);
      this.trackMarkers.set(p.uid, { marker, look });
    }
    for (const [uid, { marker }] of this.trackMarkers) {
      if (seen.has(uid)) continue;
      this.trackLayer.removeLayer(marker);
      this.trackMarkers.delete(uid);
    }
  }

  /** Fits the view to the activities and conflicts once, on the first
   *  render that has any. Zones do not count: a large exclusion zone far from
   *  the action (al-Tanf is 400 km from Qamishli) would zoom the map out to a
   *  whole country. */
  fitOnce(): void {
    if (this.hasFitted) return;
    const bounds = L.latLngBounds([]);
    for (const b of this.activityBounds.values()) bounds.extend(b);
    this.conflictLayer.eachLayer((layer) => {
      if (layer instanceof L.Marker) bounds.extend(layer.getLatLng());
    });
    if (bounds.isValid()) {
      this.map.invalidateSize({ pan: false });
      this.map.fitBounds(bounds.pad(0.05), { maxZoom: 11 });
      this.hasFitted = true;
    }
  }

  focusPoint(lonLat: [number, number], zoom = 11): void {
    const target = Math.max(this.map.getZoom(), zoom);
    if (reducedMotion()) this.map.setView([lonLat[1], lonLat[0]], target, { animate: false });
    else this.map.flyTo([lonLat[1], lonLat[0]], target, { duration: 0.6 });
  }

  focusActivity(id: string): boolean {
    const bounds = this.activityBounds.get(id);
    if (!bounds) return false;
    if (reducedMotion()) this.map.fitBounds(bounds.pad(0.3), { maxZoom: 12, animate: false });
    else this.map.flyToBounds(bounds.pad(0.3), { maxZoom: 12, duration: 0.6 });
    return true;
  }

  /** Draws an incident's evidence (replacing any shown before): each unit's
   *  track as a line in its party's colour, each position as a dot whose
   *  tooltip gives time, altitude, speed and course; the incident's place as
   *  a ring. Fits the map to it. */
  showEvidence(collection: FeatureCollection | null, place: [number, number] | null): void {
    this.evidenceLayer.clearLayers();
    if (!collection) return;
    const bounds = L.latLngBounds([]);
    for (const f of collection.features ?? []) {
      const p = (f.properties ?? {}) as Record<string, unknown>;
      const colour = this.colours.colourOf(p.party === undefined ? undefined : String(p.party));
      if (f.geometry?.type === "LineString") {
        const line = L.polyline(f.geometry.coordinates.map(ll), { pane: "tracks", color: colour, weight: 3, opacity: 0.9, className: "evidence-line" });
        line.bindTooltip(`${String(p.uid)} (${String(p.party)})`, { sticky: true });
        line.addTo(this.evidenceLayer);
        bounds.extend(line.getBounds());
      } else if (f.geometry?.type === "Point") {
        const at = ll(f.geometry.coordinates);
        const dot = L.circleMarker(at, { pane: "tracks", radius: 3, color: colour, weight: 1, fillColor: colour, fillOpacity: 1, className: "evidence-point" });
        const readings = [
          typeof p.alt_m === "number" ? `${Math.round(p.alt_m)} m` : null,
          typeof p.speed_mps === "number" ? `${p.speed_mps.toFixed(1)} m/s` : null,
          typeof p.course_deg === "number" ? `${Math.round(p.course_deg)}°` : null,
        ].filter(Boolean);
        dot.bindTooltip(`${String(p.uid)} · ${formatTime(String(p.time))}${readings.length ? ` · ${readings.join(" · ")}` : ""}`);
        dot.addTo(this.evidenceLayer);
        bounds.extend(at);
      }
    }
    if (place) {
      const at: L.LatLngTuple = [place[1], place[0]];
      L.circleMarker(at, { pane: "tracks", radius: 10, color: CONFLICT_COLOUR, weight: 3, fill: false, className: "evidence-place", interactive: false }).addTo(this.evidenceLayer);
      bounds.extend(at);
    }
    if (bounds.isValid()) this.map.fitBounds(bounds.pad(0.2), { maxZoom: 13, animate: !reducedMotion() });
  }

  /** The map's view as W,S,E,N in degrees for `bbox` queries; null when it
   *  shows the whole world round (no box would narrow anything). */
  viewBox(): [number, number, number, number] | null {
    const b = this.map.getBounds();
    const south = Math.max(-90, b.getSouth());
    const north = Math.min(90, b.getNorth());
    if (b.getEast() - b.getWest() >= 360) return null;
    // With worldCopyJump the view can sit on a copy of the world: bring both
    // edges back to [-180, 180]; a box across the antimeridian has W > E.
    const wrap = (lon: number) => ((((lon + 180) % 360) + 360) % 360) - 180;
    const west = wrap(b.getWest());
    const east = b.getEast() - b.getWest() >= 360 ? 180 : wrap(b.getEast());
    return [west, south, east === -180 ? 180 : east, north];
  }

  /** Shows where an incident will be reported. */
  showPick(lonLat: [number, number] | null): void {
    this.pickMarker?.remove();
    this.pickMarker = null;
    if (!lonLat) return;
    this.pickMarker = L.circleMarker([lonLat[1], lonLat[0]], {
      pane: "tracks",
      radius: 9,
      color: "#111",
      weight: 2,
      fillColor: "#ffd400",
      fillOpacity: 1,
      interactive: false,
    }).addTo(this.map);
  }

  private shapeLayers(geometry: Geometry, props: { radius_m?: number; corridor_m?: number }, style: L.PathOptions, pane: string, centreline: L.PathOptions | null): L.Layer[] {
    const out: L.Layer[] = [];
    switch (geometry.type) {
      case "Point": {
        const at = ll(geometry.coordinates);
        if (props.radius_m && props.radius_m > 0) out.push(L.circle(at, { ...style, pane, radius: props.radius_m }));
        out.push(L.circleMarker(at, { pane, radius: 3.5, color: style.color, weight: 1.5, fillColor: "#fff", fillOpacity: 1 }));
        break;
      }
      case "LineString": {
        const route = geometry.coordinates as LonLat[];
        if (props.corridor_m && props.corridor_m > 0) {
          const rings = corridorRings(route, props.corridor_m).map((r) => r.map(ll));
          out.push(L.polygon(rings, { ...style, pane, stroke: false, fillRule: "nonzero" }));
        }
        out.push(L.polyline(densify(route, EDGE_STEP_M).map(ll), { pane, ...(centreline ?? style), fill: false }));
        break;
      }
      case "Polygon": {
        const rings = geometry.coordinates.map((ring) => densify(ring as LonLat[], EDGE_STEP_M).map(ll));
        out.push(L.polygon(rings, { ...style, pane }));
        break;
      }
      case "MultiPoint":
      case "MultiLineString":
      case "MultiPolygon": {
        const parts: Geometry[] =
          geometry.type === "MultiPoint"
            ? geometry.coordinates.map((c) => ({ type: "Point", coordinates: c }))
            : geometry.type === "MultiLineString"
              ? geometry.coordinates.map((c) => ({ type: "LineString", coordinates: c }))
              : geometry.coordinates.map((c) => ({ type: "Polygon", coordinates: c }));
        for (const part of parts) out.push(...this.shapeLayers(part, props, style, pane, centreline));
        break;
      }
      case "GeometryCollection":
        for (const part of geometry.geometries) out.push(...this.shapeLayers(part, props, style, pane, centreline));
        break;
    }
    return out;
  }

  private drawZone(zone: ZoneFeature): void {
    if (!zone.geometry) return;
    const kind = zone.properties?.kind ?? "exclusion";
    const style = ZONE_STYLE[kind] ?? ZONE_STYLE.exclusion;
    const layers = this.shapeLayers(zone.geometry, zone.properties ?? {}, style, "zones", kind === "demarcation" ? style : null);
    const label = `${zone.properties?.name ?? "Zone"} — ${kind}${zone.properties?.radius_m ? `, radius ${formatDistance(zone.properties.radius_m)}` : ""}`;
    for (const layer of layers) {
      (layer as L.Path).bindTooltip(label, { sticky: true, className: "map-tip" });
      this.zoneLayer.addLayer(layer);
    }
    const name = zone.properties?.name;
    if (name && zone.geometry.type === "Point") this.label(this.zoneLayer, ll(zone.geometry.coordinates), name, "zones");
    if (name && zone.geometry.type === "LineString") {
      const line = zone.geometry.coordinates;
      this.label(this.zoneLayer, ll(line[Math.floor((line.length - 1) / 2)]), name, "zones");
    }
  }

  private drawActivity(activity: ActivityFeature, inConflict: boolean): void {
    if (!activity.geometry) return;
    const p = activity.properties;
    const colour = this.colours.colourOf(p.party);
    const isFlight = p.kind === "flight";
    const style: L.PathOptions = {
      color: colour,
      weight: 1.5,
      fillColor: colour,
      fillOpacity: isFlight ? 0.14 : 0.28,
      dashArray: isFlight ? "6 4" : undefined,
    };
    const centreline: L.PathOptions = { color: colour, weight: 2, opacity: 0.95, dashArray: isFlight ? "2 5" : "7 5" };
    if (inConflict && activity.geometry.type === "LineString") {
      // A red halo under the route marks it as part of an open conflict
      // without hiding whose it is.
      this.activityLayer.addLayer(
        L.polyline(densify(activity.geometry.coordinates as LonLat[], EDGE_STEP_M).map(ll), {
          pane: "activities",
          color: CONFLICT_COLOUR,
          weight: 7,
          opacity: 0.35,
          interactive: false,
        }),
      );
    }
    const layers = this.shapeLayers(activity.geometry, p, inConflict && activity.geometry.type !== "LineString" ? { ...style, color: CONFLICT_COLOUR, weight: 2.5 } : style, "activities", centreline);
    const tip = activityTooltip(activity);
    const bounds = L.latLngBounds([]);
    for (const layer of layers) {
      (layer as L.Path).bindTooltip(tip, { sticky: true, className: "map-tip" });
      this.activityLayer.addLayer(layer);
      if ("getBounds" in layer) bounds.extend((layer as L.Polygon).getBounds());
      else if ("getLatLng" in layer) bounds.extend((layer as L.CircleMarker).getLatLng());
    }
    if (activity.id !== undefined && bounds.isValid()) this.activityBounds.set(String(activity.id), bounds);
    if (p.kind === "site" && activity.geometry.type === "Point") this.label(this.activityLayer, ll(activity.geometry.coordinates), p.name, "activities");
    // A flight's altitude band is what tells it apart from the ground
    // activity under it, so it is written on the map, at the route's middle.
    if (isFlight && activity.geometry.type === "LineString") {
      const route = activity.geometry.coordinates;
      this.label(this.activityLayer, ll(route[Math.floor((route.length - 1) / 2)]), `${p.name} · ${formatAltitudes(p.alt_min_m, p.alt_max_m)}`, "activities");
    }
  }

  private drawConflict(conflict: Conflict, selected: boolean): void {
    const at = ll(conflict.location.coordinates);
    const resolved = conflict.state === "resolved";
    if (selected) {
      // The separation that was required, drawn about the closest point, so
      // the size of the problem reads off the map.
      this.conflictLayer.addLayer(
        L.circle(at, { pane: "conflicts", radius: conflict.required_m, color: CONFLICT_COLOUR, weight: 1.5, dashArray: "4 4", fillOpacity: 0.04, interactive: false }),
      );
    }
    const marker = L.marker(at, {
      pane: "conflicts",
      keyboard: false, // reached from the conflicts panel, which has buttons
      icon: L.divIcon({
        className: `conflict-marker${resolved ? " resolved" : ""}${selected ? " selected" : ""}${conflict.state === "acknowledged" ? " acknowledged" : ""}`,
        iconSize: [26, 26],
        iconAnchor: [13, 13],
        html: conflictGlyph(),
      }),
      title: `Conflict ${conflict.id}`,
      alt: `Conflict ${conflict.id}`,
    });
    marker.bindTooltip(
      `Conflict ${conflict.parties[0]} × ${conflict.parties[1]}: ${formatDistance(conflict.min_distance_m)} apart, ${formatDistance(conflict.required_m)} required, ${formatWindow(conflict.start, conflict.end)}${resolved ? " (resolved)" : ""}`,
      { className: "map-tip", direction: "top", offset: [0, -12] },
    );
    marker.on("click", () => this.handlers.onSelectConflict(conflict.id));
    this.conflictLayer.addLayer(marker);
  }
}

/** Flights across the map are motion; some people need them off. */
function reducedMotion(): boolean {
  return window.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;
}

function activityTooltip(activity: ActivityFeature): string {
  const p = activity.properties;
  const size = p.corridor_m ? `, corridor ${formatDistance(p.corridor_m)} wide` : p.radius_m ? `, radius ${formatDistance(p.radius_m)}` : "";
  const alt = p.alt_min_m !== undefined || p.alt_max_m !== undefined ? `, ${formatAltitudes(p.alt_min_m, p.alt_max_m)}` : "";
  return `${p.name} — ${p.kind}${p.party ? ` of ${p.party}` : ""}; ${formatWindow(p.start, p.end)}${size}${alt}${p.sharing === "full" ? "; shared in full" : ""}`;
}

const SVG = "http://www.w3.org/2000/svg";

function svgElement<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Record<string, string>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) el.setAttribute(k, v);
  return el;
}

function conflictGlyph(): HTMLElement {
  const wrapper = document.createElement("div");
  wrapper.className = "conflict-glyph";
  const svg = svgElement("svg", { viewBox: "0 0 26 26", width: "26", height: "26", "aria-hidden": "true" });
  svg.append(
    svgElement("circle", { cx: "13", cy: "13", r: "9", class: "conflict-disc" }),
    svgElement("path", { d: "M13 7.5v7", class: "conflict-bang" }),
    svgElement("circle", { cx: "13", cy: "18", r: "1.4", class: "conflict-dot" }),
  );
  const pulse = document.createElement("span");
  pulse.className = "conflict-pulse";
  wrapper.append(pulse, svg);
  return wrapper;
}

function trackIcon(colour: string, course_deg: number | undefined, uid: string): L.DivIcon {
  return L.divIcon({ className: "track-marker", iconSize: [30, 30], iconAnchor: [15, 15], html: trackGlyph(colour, course_deg, uid) });
}

function trackGlyph(colour: string, course_deg: number | undefined, uid: string): HTMLElement {
  const wrapper = document.createElement("div");
  wrapper.className = "track-glyph";
  const svg = svgElement("svg", { viewBox: "0 0 30 30", width: "30", height: "30", "aria-hidden": "true" });
  const arrow = svgElement("path", {
    d: course_deg === undefined ? "M15 9a6 6 0 1 0 0.01 0z" : "M15 3 L22 24 L15 19.5 L8 24 Z",
    fill: colour,
    stroke: "#fff",
    "stroke-width": "1.6",
    "stroke-linejoin": "round",
  });
  svg.append(arrow);
  // Set through the CSSOM, which a strict style-src allows (a style
  // attribute in markup would be refused).
  if (course_deg !== undefined) svg.style.transform = `rotate(${course_deg}deg)`;
  const label = document.createElement("span");
  label.className = "track-label";
  label.textContent = uid;
  wrapper.append(svg, label);
  return wrapper;
}

function mapLabel(text: string): HTMLElement {
  const span = document.createElement("span");
  span.className = "map-label";
  span.textContent = text;
  return span;
}

function labelElement(name: string): HTMLElement {
  const span = document.createElement("span");
  span.textContent = name;
  return span;
}

/** A label point for a country: the mean vertex of its largest ring, good
 *  enough for placing a name on a 1:110m basemap. */
function labelPoint(geometry: Geometry | null): L.LatLngTuple | null {
  if (!geometry) return null;
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
  let best: Position[] | null = null;
  for (const polygon of polygons) if (polygon[0] && (!best || polygon[0].length > best.length)) best = polygon[0];
  if (!best || best.length < 8) return null;
  const lon = best.reduce((s, p) => s + p[0], 0) / best.length;
  const lat = best.reduce((s, p) => s + p[1], 0) / best.length;
  return [lat, lon];
}
