//! GeoJSON (RFC 7946) Features to engine activities.

use deconflict_engine::{
    Activity, ActivityKind, ActivitySpec, Engine, FootprintSpec, PartyId, TimeWindow, Timestamp,
};
use deconflict_geodesy::LonLat;
use serde_json::{Map, Value};

use crate::error::{from_validation, FormatError, FormatErrors};
use crate::time::parse_rfc3339;

/// How much of an activity other parties may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// Others see it only through the conflicts they have with it.
    #[default]
    NeedToKnow,
    Full,
}

impl Sharing {
    pub const fn as_str(self) -> &'static str {
        match self {
            Sharing::NeedToKnow => "need_to_know",
            Sharing::Full => "full",
        }
    }
}

/// The geometry type of a footprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeometryKind {
    Point,
    LineString,
    Polygon,
}

/// A Feature read as an activity: what the engine needs, plus what the
/// service keeps alongside (the Feature's id, name, sharing). The
/// properties themselves stay in the caller's Feature (the service stores
/// the Feature as submitted): copying the map here cost a clone per
/// feature that nothing read.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedActivity {
    /// The Feature's `id`, as given (string or number).
    pub id: Option<Value>,
    pub name: Option<String>,
    pub sharing: Sharing,
    pub geometry: GeometryKind,
    pub spec: ActivitySpec,
    /// Where the Feature is in the document (`""` or `/features/N`), so that
    /// the engine's verdict can be reported against it.
    pub pointer: String,
}

impl ParsedActivity {
    /// Validates with the engine, reporting its problems as pointers.
    pub fn validate(&self, engine: &Engine) -> Result<Activity, FormatErrors> {
        engine
            .validate(&self.spec)
            .map_err(|error| FormatErrors(from_validation(&error, self.geometry, &self.pointer)))
    }
}

/// Collects problems with their pointers while reading one Feature.
pub(crate) struct Reader<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) errors: Vec<FormatError>,
}

impl Reader<'_> {
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.errors
            .push(FormatError::new(format!("{}{path}", self.prefix), message));
    }

    fn number(&mut self, properties: &Map<String, Value>, key: &str) -> Option<f64> {
        match properties.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                self.fail(&format!("/properties/{key}"), "must be a number");
                None
            }
        }
    }

    fn time(&mut self, path: &str, value: &Value) -> Option<Timestamp> {
        match value {
            Value::String(text) => match parse_rfc3339(text) {
                Ok(t) => Some(t),
                Err(message) => {
                    self.fail(path, message.to_string());
                    None
                }
            },
            _ => {
                self.fail(path, "must be an RFC 3339 date-time string");
                None
            }
        }
    }

    fn position(&mut self, path: &str, value: &Value) -> Option<LonLat> {
        let position = Self::lon_lat(value);
        if position.is_none() {
            self.fail(path, "a position is [longitude, latitude] in degrees");
        }
        position
    }

    /// `[lon, lat]` or `[lon, lat, altitude]`, all numbers. A third number
    /// (altitude) is allowed by RFC 7946 and ignored: altitude bands are
    /// properties. Read in place: a route has thousands of positions.
    fn lon_lat(value: &Value) -> Option<LonLat> {
        match value.as_array()?.as_slice() {
            [lon, lat] => Some(LonLat::new(lon.as_f64()?, lat.as_f64()?)),
            [lon, lat, altitude] => {
                altitude.as_f64()?;
                Some(LonLat::new(lon.as_f64()?, lat.as_f64()?))
            }
            _ => None,
        }
    }

    fn positions(&mut self, path: &str, value: &Value) -> Option<Vec<LonLat>> {
        let Some(items) = value.as_array() else {
            self.fail(path, "must be an array of positions");
            return None;
        };
        let before = self.errors.len();
        // The pointer of each position is written only for a bad one.
        let positions: Vec<LonLat> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let position = Self::lon_lat(item);
                if position.is_none() {
                    self.fail(
                        &format!("{path}/{i}"),
                        "a position is [longitude, latitude] in degrees",
                    );
                }
                position
            })
            .collect();
        (self.errors.len() == before).then_some(positions)
    }
}

/// What a Feature's properties say of the activity (each problem named on
/// `r`), shared by the tree reading ([`activity_from_feature`]) and the
/// typed one (`crate::feature_doc`).
pub(crate) struct Properties {
    kind: Option<ActivityKind>,
    name: Option<String>,
    sharing: Sharing,
    start: Option<Timestamp>,
    end: Option<Option<Timestamp>>,
    alt_min_m: Option<f64>,
    alt_max_m: Option<f64>,
    separation_m: Option<f64>,
    vertical_separation_m: Option<f64>,
    radius_m: Option<f64>,
    corridor_m: Option<f64>,
    waypoint_times: Option<Vec<Timestamp>>,
}

pub(crate) fn read_properties(r: &mut Reader<'_>, properties: &Map<String, Value>) -> Properties {
    let kind = match properties.get("kind") {
        Some(Value::String(text)) => ActivityKind::parse(text).or_else(|| {
            r.fail(
                "/properties/kind",
                format!("unknown kind {text:?}: patrol, convoy, flight, site, area or exercise"),
            );
            None
        }),
        _ => {
            r.fail(
                "/properties/kind",
                "required: patrol, convoy, flight, site, area or exercise",
            );
            None
        }
    };
    let name = match properties.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.clone()),
        Some(_) => {
            r.fail("/properties/name", "must be a string");
            None
        }
    };
    let sharing = match properties.get("sharing") {
        None | Some(Value::Null) => Sharing::default(),
        Some(Value::String(s)) if s == "need_to_know" => Sharing::NeedToKnow,
        Some(Value::String(s)) if s == "full" => Sharing::Full,
        Some(_) => {
            r.fail("/properties/sharing", "must be \"need_to_know\" or \"full\"");
            Sharing::default()
        }
    };
    let start = match properties.get("start") {
        Some(value) => r.time("/properties/start", value),
        None => {
            r.fail("/properties/start", "required: an RFC 3339 date-time");
            None
        }
    };
    // `end` may be null or absent; whether that is allowed (sites only) is
    // the engine's rule.
    let end = match properties.get("end") {
        None | Some(Value::Null) => Some(None),
        Some(value) => r.time("/properties/end", value).map(Some),
    };
    let alt_min_m = r.number(properties, "alt_min_m");
    let alt_max_m = r.number(properties, "alt_max_m");
    let separation_m = r.number(properties, "separation_m");
    let vertical_separation_m = r.number(properties, "vertical_separation_m");
    let radius_m = r.number(properties, "radius_m");
    let corridor_m = r.number(properties, "corridor_m");
    let waypoint_times: Option<Vec<Timestamp>> = match properties.get("waypoint_times") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let before = r.errors.len();
            let times: Vec<Timestamp> = items
                .iter()
                .enumerate()
                // The pointer is written only for a bad time.
                .filter_map(
                    |(i, item)| match item.as_str().and_then(|text| parse_rfc3339(text).ok()) {
                        Some(time) => Some(time),
                        None => r.time(&format!("/properties/waypoint_times/{i}"), item),
                    },
                )
                .collect();
            (r.errors.len() == before).then_some(times)
        }
        Some(_) => {
            r.fail(
                "/properties/waypoint_times",
                "must be an array of RFC 3339 date-times, one per position",
            );
            None
        }
    };

    Properties {
        kind,
        name,
        sharing,
        start,
        end,
        alt_min_m,
        alt_max_m,
        separation_m,
        vertical_separation_m,
        radius_m,
        corridor_m,
        waypoint_times,
    }
}

/// Reads one Feature (`value`) as an activity of `party`. `prefix` is the
/// Feature's pointer in the document.
pub fn activity_from_feature(
    value: &Value,
    party: PartyId,
    prefix: &str,
) -> Result<ParsedActivity, FormatErrors> {
    let mut r = Reader {
        prefix,
        errors: Vec::new(),
    };
    let Some(feature) = value.as_object() else {
        r.fail("", "must be a GeoJSON Feature object");
        return Err(FormatErrors(r.errors));
    };
    if feature.get("type").and_then(Value::as_str) != Some("Feature") {
        r.fail("/type", "must be \"Feature\"");
    }
    let id = match feature.get("id") {
        None | Some(Value::Null) => None,
        Some(id @ (Value::String(_) | Value::Number(_))) => Some(id.clone()),
        Some(_) => {
            r.fail("/id", "must be a string or a number");
            None
        }
    };
    let empty = Map::new();
    let properties = match feature.get("properties") {
        Some(Value::Object(p)) => p,
        _ => {
            r.fail(
                "/properties",
                "must be an object with the activity's kind, start and end",
            );
            &empty
        }
    };

    let mut props = read_properties(&mut r, properties);
    let geometry = feature.get("geometry").and_then(Value::as_object);
    let geometry_type = geometry.and_then(|g| g.get("type")).and_then(Value::as_str);
    let coordinates = geometry
        .and_then(|g| g.get("coordinates"))
        .unwrap_or(&Value::Null);
    let (geometry_kind, footprint) = match geometry_type {
        Some("Point") => {
            let center = r.position("/geometry/coordinates", coordinates);
            (
                GeometryKind::Point,
                point_footprint(&mut r, properties, &props, center),
            )
        }
        Some("LineString") => {
            let route = r.positions("/geometry/coordinates", coordinates);
            (
                GeometryKind::LineString,
                line_footprint(&mut r, properties, &mut props, route),
            )
        }
        Some("Polygon") => {
            let rings = match coordinates.as_array() {
                Some(rings) => {
                    let before = r.errors.len();
                    let rings: Vec<Vec<LonLat>> = rings
                        .iter()
                        .enumerate()
                        .filter_map(|(i, ring)| r.positions(&format!("/geometry/coordinates/{i}"), ring))
                        .collect();
                    (r.errors.len() == before).then_some(rings)
                }
                None => {
                    r.fail("/geometry/coordinates", "must be an array of rings");
                    None
                }
            };
            (
                GeometryKind::Polygon,
                polygon_footprint(&mut r, properties, rings),
            )
        }
        Some(other) => {
            r.fail(
                "/geometry/type",
                format!("{other:?} is not supported: use Point, LineString or Polygon"),
            );
            (GeometryKind::Point, None)
        }
        None => {
            r.fail("/geometry", "required: a Point, LineString or Polygon");
            (GeometryKind::Point, None)
        }
    };
    assemble(r, props, geometry_kind, footprint, id, party)
}

/// A Point's footprint from its centre (read before) and the properties;
/// names a missing radius and the LineString's properties.
pub(crate) fn point_footprint(
    r: &mut Reader<'_>,
    properties: &Map<String, Value>,
    props: &Properties,
    center: Option<LonLat>,
) -> Option<FootprintSpec> {
    if props.radius_m.is_none() && matches!(properties.get("radius_m"), None | Some(Value::Null)) {
        r.fail(
            "/properties/radius_m",
            "required for a Point: the radius of the disk in metres",
        );
    }
    for key in ["corridor_m", "waypoint_times"] {
        if properties.get(key).is_some_and(|v| !v.is_null()) {
            r.fail(&format!("/properties/{key}"), "only for a LineString");
        }
    }
    center
        .zip(props.radius_m)
        .map(|(center, radius_m)| FootprintSpec::Point { center, radius_m })
}

/// A LineString's footprint from its route (read before) and the
/// properties (its schedule moves into it); names a missing corridor and
/// a radius.
pub(crate) fn line_footprint(
    r: &mut Reader<'_>,
    properties: &Map<String, Value>,
    props: &mut Properties,
    route: Option<Vec<LonLat>>,
) -> Option<FootprintSpec> {
    if props.corridor_m.is_none() && matches!(properties.get("corridor_m"), None | Some(Value::Null)) {
        r.fail(
            "/properties/corridor_m",
            "required for a LineString: the corridor's full width in metres",
        );
    }
    if properties.get("radius_m").is_some_and(|v| !v.is_null()) {
        r.fail("/properties/radius_m", "only for a Point");
    }
    let waypoint_times = props.waypoint_times.take();
    route
        .zip(props.corridor_m)
        .map(|(route, corridor_m)| FootprintSpec::LineString {
            route,
            corridor_m,
            waypoint_times,
        })
}

/// A Polygon's footprint from its rings (read before); names the other
/// geometries' properties.
pub(crate) fn polygon_footprint(
    r: &mut Reader<'_>,
    properties: &Map<String, Value>,
    rings: Option<Vec<Vec<LonLat>>>,
) -> Option<FootprintSpec> {
    for key in ["radius_m", "corridor_m", "waypoint_times"] {
        if properties.get(key).is_some_and(|v| !v.is_null()) {
            let only = if key == "radius_m" {
                "a Point"
            } else {
                "a LineString"
            };
            r.fail(&format!("/properties/{key}"), format!("only for {only}"));
        }
    }
    rings.map(|rings| FootprintSpec::Polygon { rings })
}

/// The activity once everything was read, or every problem named.
pub(crate) fn assemble(
    mut r: Reader<'_>,
    props: Properties,
    geometry_kind: GeometryKind,
    footprint: Option<FootprintSpec>,
    id: Option<Value>,
    party: PartyId,
) -> Result<ParsedActivity, FormatErrors> {
    match (props.kind, props.start, props.end, footprint) {
        (Some(kind), Some(start), Some(end), Some(footprint)) if r.errors.is_empty() => Ok(ParsedActivity {
            id,
            name: props.name,
            sharing: props.sharing,
            geometry: geometry_kind,
            spec: ActivitySpec {
                party,
                kind,
                window: TimeWindow::new(start, end),
                footprint,
                alt_min_m: props.alt_min_m,
                alt_max_m: props.alt_max_m,
                separation_m: props.separation_m,
                vertical_separation_m: props.vertical_separation_m,
            },
            pointer: r.prefix.to_owned(),
        }),
        _ => {
            if r.errors.is_empty() {
                // Unreachable by construction (each missing piece names its
                // field above), but a rejection must never be empty.
                r.fail("", "incomplete activity");
            }
            Err(FormatErrors(r.errors))
        }
    }
}

/// Reads a Feature or a FeatureCollection of activities, all of `party`.
/// Reports the problems of every Feature, not just the first.
pub fn activities_from_geojson(text: &str, party: PartyId) -> Result<Vec<ParsedActivity>, FormatErrors> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| FormatErrors(vec![FormatError::new("", format!("not valid JSON: {error}"))]))?;
    match value.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => {
            let Some(features) = value.get("features").and_then(Value::as_array) else {
                return Err(FormatErrors(vec![FormatError::new(
                    "/features",
                    "must be an array of Features",
                )]));
            };
            let mut parsed = Vec::with_capacity(features.len());
            let mut errors = Vec::new();
            for (i, feature) in features.iter().enumerate() {
                match activity_from_feature(feature, party, &format!("/features/{i}")) {
                    Ok(activity) => parsed.push(activity),
                    Err(FormatErrors(mut e)) => errors.append(&mut e),
                }
            }
            if errors.is_empty() {
                Ok(parsed)
            } else {
                Err(FormatErrors(errors))
            }
        }
        _ => activity_from_feature(&value, party, "").map(|activity| vec![activity]),
    }
}
