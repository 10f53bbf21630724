//! `GET /v1/export?format=geojson|kml[&bbox=&from=&to=|&time=]`: exactly
//! what the caller may see, as one file to open in a GIS or Google Earth.
//! `time` is an instant (the web map's timeline): what is on at that
//! instant, the window `[time, time + 1 ms)`; it cannot be combined with
//! `from` or `to`.
//!
//! What it holds is what the other routes show the caller, read in one
//! store transaction: its activities and the `full` ones of others (all for
//! a broker; `ledger::list_activities` decides), the zones (shared in
//! full), and the live (open or acknowledged) conflicts that involve it,
//! rendered by `model::render_conflict` so that the other side of a
//! need-to-know conflict stays `null`: only its closest point is exported.
//!
//! GeoJSON: one FeatureCollection; every Feature's `properties.layer` is
//! `activity`, `zone` or `conflict` (a Point at the closest approach with
//! the contract's Conflict fields). KML 2.2: one Folder per layer, one
//! Placemark per Feature, every property in `ExtendedData`. KML has no
//! geometry with a width in metres, so
//! - a disk (Point with `radius_m`) is written as the polygon
//!   circumscribed about it (the 64-gon the track fences use), with the
//!   centre and radius in `ExtendedData`;
//! - a corridor (LineString with `corridor_m`) is written as its
//!   centreline, a LineString, with its full width `corridor_m` in
//!   `ExtendedData` (its buffered outline is a union of stadiums that the
//!   web map draws; a viewer of the file reads the width from the data).
//!
//! The export holds at most `--max-list` activities and as many
//! conflicts; beyond, it is refused (422) and names the query parameters
//! that narrow it, rather than cut silently.

use std::collections::HashMap;
use std::io::Cursor;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use deconflict_engine::{PartyId, Timestamp};
use deconflict_geodesy::{GeoBounds, LonLat};
use deconflict_store::StoreError;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use serde_json::{json, Map, Value};

use crate::auth::Party;
use crate::ledger::{self, ActivityFilter};
use crate::live::fences::disk_polygon;
use crate::model::{render_conflict, ConflictState, Viewer};
use crate::problem::ApiError;
use crate::routes::activities::{parse_bbox, parse_query, query_problem, query_time};
use crate::routes::blocking;
use crate::routes::zones::zone_feature;
use crate::state::AppState;
use crate::zones::zone_from_feature;

/// The file formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    GeoJson,
    Kml,
}

impl ExportFormat {
    pub fn parse(text: &str) -> Option<ExportFormat> {
        match text {
            "geojson" => Some(ExportFormat::GeoJson),
            "kml" => Some(ExportFormat::Kml),
            _ => None,
        }
    }
}

/// The place and time an export is narrowed to.
#[derive(Debug, Clone, Default)]
struct Scope {
    bbox: Option<GeoBounds>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

impl Scope {
    /// Whether the half-open window `[start, end)` meets `[from, to)`.
    fn meets_window(&self, start_ms: i64, end_ms: Option<i64>) -> bool {
        self.from_ms
            .is_none_or(|from| end_ms.is_none_or(|end| end > from))
            && self.to_ms.is_none_or(|to| start_ms < to)
    }

    fn meets_box(&self, bounds: &GeoBounds) -> bool {
        self.bbox.as_ref().is_none_or(|b| b.intersects(bounds))
    }
}

/// Exactly what the caller may see, as GeoJSON or KML.
#[utoipa::path(get, path = "/v1/export", tag = "export",
    params(("format" = Option<String>, Query, description = "geojson (default) or kml"),
        ("bbox" = Option<String>, Query, description = "W,S,E,N: only what meets this box"),
        ("from" = Option<String>, Query, description = "RFC 3339: only what is still on at or after this instant"),
        ("to" = Option<String>, Query, description = "RFC 3339: only what starts before this instant"),
        ("time" = Option<String>, Query, description = "RFC 3339: only what is on at this instant (not with from or to)")),
    responses((status = 200, description = "a GeoJSON FeatureCollection (`properties.layer`: activity, zone, conflict) or a KML 2.2 document; disks as their circumscribed 64-gon, corridors as centrelines with `corridor_m` in ExtendedData"),
        (status = 401), (status = 422, description = "a bad query parameter, or more than --max-list activities or conflicts match")),
    security(("bearer" = [])))]
pub async fn export(
    party: Party,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parse_query(query)?;
    let format = match query.get("format") {
        None => ExportFormat::GeoJson,
        Some(text) => {
            ExportFormat::parse(text).ok_or_else(|| query_problem("format", "must be geojson or kml"))?
        }
    };
    let time = |name: &str| query_time(&query, name);
    let (from_ms, to_ms) = match time("time")? {
        Some(_) if query.contains_key("from") || query.contains_key("to") => {
            return Err(query_problem(
                "time",
                "an instant: give either time, or from and to, not both",
            ))
        }
        // On at the instant: starts at or before it, ends after it.
        Some(at) => (Some(at), Some(at.saturating_add(1))),
        None => (time("from")?, time("to")?),
    };
    let scope = Scope {
        bbox: query.get("bbox").map(|b| parse_bbox(b)).transpose()?,
        from_ms,
        to_ms,
    };
    let max_list = state.config.limits.max_list;
    let viewer = party.viewer();
    let shared = state.clone();
    let features = blocking(move || {
        shared
            .store
            .read(|conn| visible_features(conn, &viewer, &scope, max_list, &shared.validator))
    })
    .await??;
    let names = party_names(&state, &features);
    let features: Vec<Value> = features
        .into_iter()
        .map(|f| with_party_names(f, &names))
        .collect();
    let (body, content_type, extension) = match format {
        ExportFormat::GeoJson => (
            serde_json::to_vec_pretty(&json!({"type": "FeatureCollection", "features": features}))
                .map_err(|e| ApiError::unavailable(&e))?,
            "application/geo+json",
            "geojson",
        ),
        ExportFormat::Kml => (
            write_kml(&features, &party.0.name).map_err(|e| ApiError::unavailable(&e))?,
            "application/vnd.google-earth.kml+xml",
            "kml",
        ),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("attachment; filename=\"deconflict-export.{extension}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

fn too_many(what: &str, max_list: usize) -> ApiError {
    query_problem(
        "bbox",
        format!("more than {max_list} {what} match (--max-list): narrow the export with bbox, from and to"),
    )
}

/// Activities, zones and conflicts the viewer may see within `scope`, as
/// GeoJSON Features with `properties.layer`. Read in one transaction so the
/// three agree.
fn visible_features(
    conn: &mut deconflict_store::Db<'_>,
    viewer: &Viewer,
    scope: &Scope,
    max_list: usize,
    validator: &deconflict_engine::Engine,
) -> Result<Result<Vec<Value>, ApiError>, StoreError> {
    let filter = ActivityFilter {
        bbox: scope.bbox,
        from_ms: scope.from_ms,
        to_ms: scope.to_ms,
        after: 0,
        // One more than allowed tells "too many" from "exactly the limit".
        limit: max_list.saturating_add(1),
    };
    let activities = ledger::list_activities(conn, viewer, &filter)?;
    if activities.len() > max_list {
        return Ok(Err(too_many("activities", max_list)));
    }
    let mut features: Vec<Value> = activities
        .iter()
        .map(|a| with_layer(a.to_feature(), "activity"))
        .collect();

    for (id, owner, kind, feature) in ledger::list_zones(conn)? {
        // A stored zone was validated when it was declared; one that no
        // longer validates (a changed limit) is still exported, unfiltered.
        let keep = match zone_from_feature(&feature, owner, validator) {
            Ok(zone) => {
                let bounds = deconflict_geodesy::bounds(&zone.footprint.base_shape())
                    .expanded_m(zone.footprint.buffer_m());
                scope.meets_window(
                    zone.window.start.unix_ms(),
                    zone.window.end.map(Timestamp::unix_ms),
                ) && scope.meets_box(&bounds)
            }
            Err(_) => true,
        };
        if keep {
            features.push(with_layer(zone_feature(id, owner, &kind, feature), "zone"));
        }
    }

    let mut conflicts = 0usize;
    for (record, full) in ledger::conflicts_for(conn, viewer, None)? {
        if record.state == ConflictState::Resolved {
            continue;
        }
        let finding = &record.finding;
        let at = finding.location;
        let point = GeoBounds {
            south_deg: at.lat_deg,
            north_deg: at.lat_deg,
            west_deg: at.lon_deg,
            east_deg: at.lon_deg,
        };
        if !(scope.meets_window(
            finding.window.start.unix_ms(),
            finding.window.end.map(Timestamp::unix_ms),
        ) && scope.meets_box(&point))
        {
            continue;
        }
        let Some(rendered) = render_conflict(&record, full, viewer) else {
            continue;
        };
        conflicts += 1;
        if conflicts > max_list {
            return Ok(Err(too_many("conflicts", max_list)));
        }
        features.push(conflict_feature(rendered, at));
    }
    Ok(Ok(features))
}

fn with_layer(mut feature: Value, layer: &str) -> Value {
    if let Some(Value::Object(properties)) = feature.get_mut("properties") {
        properties.insert("layer".into(), json!(layer));
    }
    feature
}

/// A conflict as a Point Feature at its closest approach; the contract's
/// Conflict fields are its properties.
fn conflict_feature(mut rendered: Value, at: LonLat) -> Value {
    let id = rendered.get("id").cloned().unwrap_or(Value::Null);
    if let Some(object) = rendered.as_object_mut() {
        object.remove("location");
        object.insert("layer".into(), json!("conflict"));
    }
    json!({
        "type": "Feature",
        "id": id,
        "geometry": {"type": "Point", "coordinates": [at.lon_deg, at.lat_deg]},
        "properties": rendered,
    })
}

/// The names of the parties the features mention (by id), from the
/// directory: a file is read by people.
fn party_names(state: &AppState, features: &[Value]) -> HashMap<u64, String> {
    let mut names = HashMap::new();
    for feature in features {
        let properties = &feature["properties"];
        let mut ids: Vec<u64> = properties["party"].as_u64().into_iter().collect();
        if let Some(parties) = properties["parties"].as_array() {
            ids.extend(parties.iter().filter_map(Value::as_u64));
        }
        for id in ids {
            if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
                if let Some(info) = state.directory.party(PartyId(id)) {
                    slot.insert(info.name);
                }
            }
        }
    }
    names
}

fn with_party_names(mut feature: Value, names: &HashMap<u64, String>) -> Value {
    let Some(Value::Object(properties)) = feature.get_mut("properties") else {
        return feature;
    };
    if let Some(name) = properties
        .get("party")
        .and_then(Value::as_u64)
        .and_then(|id| names.get(&id))
    {
        properties.insert("party_name".into(), json!(name));
    }
    // Conflicts: the names of the sides the viewer may know (null stays null).
    if properties.get("layer") == Some(&json!("conflict")) {
        if let Some(parties) = properties.get("parties").and_then(Value::as_array) {
            let named: Vec<Value> = parties
                .iter()
                .map(|p| {
                    p.as_u64()
                        .and_then(|id| names.get(&id))
                        .map_or(Value::Null, |n| json!(n))
                })
                .collect();
            properties.insert("party_names".into(), Value::Array(named));
        }
    }
    feature
}

// ---------------------------------------------------------------- KML 2.2

/// Errors writing KML (into memory: only a malformed geometry can fail).
#[derive(Debug, thiserror::Error)]
pub enum KmlError {
    #[error("writing KML: {0}")]
    Write(#[from] std::io::Error),
    #[error("feature {0}: {1}")]
    Geometry(String, &'static str),
}

const LAYERS: [(&str, &str); 3] = [
    ("activity", "Activities"),
    ("zone", "Zones"),
    ("conflict", "Conflicts"),
];

/// A KML 2.2 document of `features` (as `visible_features` makes them):
/// one Folder per layer, styles per layer.
pub fn write_kml(features: &[Value], party_name: &str) -> Result<Vec<u8>, KmlError> {
    let mut writer = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 1);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    writer.write_event(Event::Start(
        BytesStart::new("kml").with_attributes([("xmlns", "http://www.opengis.net/kml/2.2")]),
    ))?;
    writer.write_event(Event::Start(BytesStart::new("Document")))?;
    text_element(
        &mut writer,
        "name",
        &format!("deconflict: what {party_name} may see"),
    )?;
    // Style colours are aabbggrr.
    for (id, line, fill) in [
        ("activity", "ffd07a1f", "401f7ad0"),
        ("zone", "ff2a2ae0", "302a2ae0"),
        ("conflict", "ff0000ff", "800000ff"),
    ] {
        writer.write_event(Event::Start(
            BytesStart::new("Style").with_attributes([("id", id)]),
        ))?;
        writer.write_event(Event::Start(BytesStart::new("LineStyle")))?;
        text_element(&mut writer, "color", line)?;
        text_element(&mut writer, "width", "2")?;
        writer.write_event(Event::End(BytesEnd::new("LineStyle")))?;
        writer.write_event(Event::Start(BytesStart::new("PolyStyle")))?;
        text_element(&mut writer, "color", fill)?;
        writer.write_event(Event::End(BytesEnd::new("PolyStyle")))?;
        writer.write_event(Event::End(BytesEnd::new("Style")))?;
    }
    for (layer, title) in LAYERS {
        writer.write_event(Event::Start(BytesStart::new("Folder")))?;
        text_element(&mut writer, "name", title)?;
        for feature in features.iter().filter(|f| f["properties"]["layer"] == layer) {
            placemark(&mut writer, feature, layer)?;
        }
        writer.write_event(Event::End(BytesEnd::new("Folder")))?;
    }
    writer.write_event(Event::End(BytesEnd::new("Document")))?;
    writer.write_event(Event::End(BytesEnd::new("kml")))?;
    let mut bytes = writer.into_inner().into_inner();
    bytes.push(b'\n');
    Ok(bytes)
}

type KmlWriter = Writer<Cursor<Vec<u8>>>;

fn text_element(writer: &mut KmlWriter, name: &str, text: &str) -> Result<(), KmlError> {
    writer.write_event(Event::Start(BytesStart::new(name)))?;
    writer.write_event(Event::Text(BytesText::new(text)))?;
    writer.write_event(Event::End(BytesEnd::new(name)))?;
    Ok(())
}

/// A property value as KML text: strings as they are, the rest as JSON.
fn data_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn placemark(writer: &mut KmlWriter, feature: &Value, layer: &str) -> Result<(), KmlError> {
    let empty = Map::new();
    let properties = feature["properties"].as_object().unwrap_or(&empty);
    let id = data_text(&feature["id"]);
    writer.write_event(Event::Start(
        BytesStart::new("Placemark").with_attributes([("id", format!("{layer}-{id}").as_str())]),
    ))?;
    let name = match layer {
        "conflict" => format!("Conflict {id}"),
        _ => properties
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("{layer} {id}"), str::to_owned),
    };
    text_element(writer, "name", &name)?;
    let start = properties.get("start").and_then(Value::as_str);
    let end = properties.get("end").and_then(Value::as_str);
    if start.is_some() || end.is_some() {
        writer.write_event(Event::Start(BytesStart::new("TimeSpan")))?;
        if let Some(start) = start {
            text_element(writer, "begin", start)?;
        }
        if let Some(end) = end {
            text_element(writer, "end", end)?;
        }
        writer.write_event(Event::End(BytesEnd::new("TimeSpan")))?;
    }
    text_element(writer, "styleUrl", &format!("#{layer}"))?;
    writer.write_event(Event::Start(BytesStart::new("ExtendedData")))?;
    for (key, value) in properties {
        writer.write_event(Event::Start(
            BytesStart::new("Data").with_attributes([("name", key.as_str())]),
        ))?;
        text_element(writer, "value", &data_text(value))?;
        writer.write_event(Event::End(BytesEnd::new("Data")))?;
    }
    writer.write_event(Event::End(BytesEnd::new("ExtendedData")))?;
    geometry(writer, feature, &id)?;
    writer.write_event(Event::End(BytesEnd::new("Placemark")))?;
    Ok(())
}

fn position(value: &Value) -> Option<(f64, f64)> {
    Some((value.get(0)?.as_f64()?, value.get(1)?.as_f64()?))
}

fn coordinates_text(points: impl IntoIterator<Item = (f64, f64)>) -> String {
    points
        .into_iter()
        .map(|(lon, lat)| format!("{lon},{lat}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn positions(value: &Value, id: &str) -> Result<Vec<(f64, f64)>, KmlError> {
    value
        .as_array()
        .ok_or_else(|| KmlError::Geometry(id.to_owned(), "coordinates are not an array"))?
        .iter()
        .map(|p| position(p).ok_or_else(|| KmlError::Geometry(id.to_owned(), "a position is not [lon, lat]")))
        .collect()
}

fn linear_ring(writer: &mut KmlWriter, boundary: &str, ring: Vec<(f64, f64)>) -> Result<(), KmlError> {
    writer.write_event(Event::Start(BytesStart::new(boundary)))?;
    writer.write_event(Event::Start(BytesStart::new("LinearRing")))?;
    text_element(writer, "coordinates", &coordinates_text(ring))?;
    writer.write_event(Event::End(BytesEnd::new("LinearRing")))?;
    writer.write_event(Event::End(BytesEnd::new(boundary)))?;
    Ok(())
}

fn polygon(writer: &mut KmlWriter, rings: Vec<Vec<(f64, f64)>>) -> Result<(), KmlError> {
    writer.write_event(Event::Start(BytesStart::new("Polygon")))?;
    text_element(writer, "tessellate", "1")?;
    for (i, ring) in rings.into_iter().enumerate() {
        linear_ring(
            writer,
            if i == 0 {
                "outerBoundaryIs"
            } else {
                "innerBoundaryIs"
            },
            ring,
        )?;
    }
    writer.write_event(Event::End(BytesEnd::new("Polygon")))?;
    Ok(())
}

/// Point, LineString (a corridor's centreline) or Polygon (a polygon, or a
/// disk's circumscribed 64-gon).
fn geometry(writer: &mut KmlWriter, feature: &Value, id: &str) -> Result<(), KmlError> {
    let geometry = &feature["geometry"];
    let coordinates = &geometry["coordinates"];
    let radius_m = feature["properties"]["radius_m"].as_f64().filter(|r| *r > 0.0);
    match (geometry["type"].as_str(), radius_m) {
        (Some("Point"), Some(radius_m)) => {
            let (lon, lat) = position(coordinates)
                .ok_or_else(|| KmlError::Geometry(id.to_owned(), "a Point is not [lon, lat]"))?;
            let ring = disk_polygon(LonLat::new(lon, lat), radius_m)
                .into_iter()
                .map(|p| (p.lon_deg, p.lat_deg))
                .collect();
            polygon(writer, vec![ring])
        }
        (Some("Point"), None) => {
            let (lon, lat) = position(coordinates)
                .ok_or_else(|| KmlError::Geometry(id.to_owned(), "a Point is not [lon, lat]"))?;
            writer.write_event(Event::Start(BytesStart::new("Point")))?;
            text_element(writer, "coordinates", &coordinates_text([(lon, lat)]))?;
            writer.write_event(Event::End(BytesEnd::new("Point")))?;
            Ok(())
        }
        (Some("LineString"), _) => {
            let line = positions(coordinates, id)?;
            writer.write_event(Event::Start(BytesStart::new("LineString")))?;
            text_element(writer, "tessellate", "1")?;
            text_element(writer, "coordinates", &coordinates_text(line))?;
            writer.write_event(Event::End(BytesEnd::new("LineString")))?;
            Ok(())
        }
        (Some("Polygon"), _) => {
            let rings = coordinates
                .as_array()
                .ok_or_else(|| KmlError::Geometry(id.to_owned(), "Polygon coordinates are not an array"))?
                .iter()
                .map(|ring| positions(ring, id))
                .collect::<Result<Vec<_>, _>>()?;
            polygon(writer, rings)
        }
        _ => Err(KmlError::Geometry(
            id.to_owned(),
            "not a Point, LineString or Polygon",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(layer: &str, geometry: Value, extra: Value) -> Value {
        let mut properties = json!({"layer": layer, "name": "n <&> \"q\"", "start": "2022-10-08T06:00:00Z"});
        if let (Some(p), Some(e)) = (properties.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({"type": "Feature", "id": 7, "geometry": geometry, "properties": properties})
    }

    #[test]
    fn kml_writes_each_geometry_as_the_module_says() {
        let features = vec![
            feature(
                "activity",
                json!({"type": "LineString", "coordinates": [[41.0, 37.0], [41.5, 37.1]]}),
                json!({"corridor_m": 500}),
            ),
            feature(
                "zone",
                json!({"type": "Point", "coordinates": [38.66, 33.5]}),
                json!({"radius_m": 55000}),
            ),
            feature(
                "activity",
                json!({"type": "Polygon", "coordinates": [[[41.0, 37.0], [41.1, 37.0], [41.1, 37.1], [41.0, 37.0]]]}),
                json!({}),
            ),
            feature(
                "conflict",
                json!({"type": "Point", "coordinates": [41.41, 37.03]}),
                json!({"min_distance_m": 0.0}),
            ),
        ];
        let kml = String::from_utf8(write_kml(&features, "US & co").unwrap()).unwrap();
        assert!(kml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert!(kml.contains("<kml xmlns=\"http://www.opengis.net/kml/2.2\">"));
        assert!(kml.contains("US &amp; co"), "text is escaped");
        assert!(kml.contains("n &lt;&amp;&gt;"), "names are escaped");
        assert_eq!(kml.matches("<Placemark ").count(), 4);
        assert_eq!(kml.matches("<LineString>").count(), 1);
        assert_eq!(kml.matches("<Polygon>").count(), 2, "the disk and the polygon");
        assert_eq!(kml.matches("<Point>").count(), 1, "the conflict");
        assert!(kml.contains("<Data name=\"corridor_m\">"));
        // The disk's 64-gon is closed: 65 positions.
        let disk = kml.split("<Placemark id=\"zone-7\">").nth(1).unwrap();
        let ring = disk
            .split("<coordinates>")
            .nth(1)
            .unwrap()
            .split("</coordinates>")
            .next()
            .unwrap();
        assert_eq!(ring.split(' ').count(), 65);
        // It parses back as XML.
        let mut reader = quick_xml::Reader::from_str(&kml);
        let mut depth = 0i32;
        loop {
            match reader.read_event().unwrap() {
                quick_xml::events::Event::Start(_) => depth += 1,
                quick_xml::events::Event::End(_) => depth -= 1,
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0);
    }

    #[test]
    fn kml_names_a_feature_whose_geometry_it_cannot_write() {
        let bad = feature(
            "activity",
            json!({"type": "MultiPoint", "coordinates": []}),
            json!({}),
        );
        let error = write_kml(&[bad], "p").unwrap_err();
        assert!(error.to_string().contains("feature 7"), "{error}");
    }

    #[test]
    fn scope_windows_are_half_open() {
        let scope = Scope {
            bbox: None,
            from_ms: Some(100),
            to_ms: Some(200),
        };
        assert!(!scope.meets_window(0, Some(100)), "ends as the scope starts");
        assert!(scope.meets_window(0, Some(101)));
        assert!(!scope.meets_window(200, None), "starts as the scope ends");
        assert!(scope.meets_window(199, None));
    }
}
