//! A GeoJSON body read straight into typed parts, for the service's write
//! path: the positions as numbers in place rather than a `serde_json::Value`
//! per coordinate and per position (the bulk of a notification), the rest
//! (properties, foreign members) as values.
//!
//! This reading takes only the plain shape of a body: an object whose
//! `geometry` is exactly `{type, coordinates}` of a Point, LineString or
//! Polygon with well-formed positions, no member twice. Anything else fails
//! here ([`Body::parse`] answers `None`), and the caller reads the body as a
//! tree ([`crate::activity_from_feature`]), which names every problem: the
//! two readings take the same bodies and give the same activities (property
//! tests in `tests/feature_doc.rs`), so errors are only ever the tree's.

use std::collections::BTreeMap;
use std::fmt;

use deconflict_engine::PartyId;
use deconflict_geodesy::LonLat;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::geojson::{
    assemble, line_footprint, point_footprint, polygon_footprint, read_properties, GeometryKind,
    ParsedActivity, Reader,
};

/// A position as written: longitude, latitude and the optional altitude
/// (ignored, as RFC 7946 allows), each number as parsed (an integer stays
/// one when written back).
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub lon: Number,
    pub lat: Number,
    pub altitude: Option<Number>,
}

impl Position {
    fn lon_lat(&self) -> Option<LonLat> {
        Some(LonLat::new(self.lon.as_f64()?, self.lat.as_f64()?))
    }

    fn numbers(&self) -> impl Iterator<Item = &Number> {
        [&self.lon, &self.lat].into_iter().chain(self.altitude.as_ref())
    }
}

/// A geometry's coordinates, by nesting.
#[derive(Debug, Clone, PartialEq)]
pub enum Coordinates {
    Point(Position),
    LineString(Vec<Position>),
    Polygon(Vec<Vec<Position>>),
}

impl Coordinates {
    /// Every number, in document order.
    pub fn numbers(&self) -> Box<dyn Iterator<Item = &Number> + '_> {
        match self {
            Coordinates::Point(p) => Box::new(p.numbers()),
            Coordinates::LineString(route) => Box::new(route.iter().flat_map(Position::numbers)),
            Coordinates::Polygon(rings) => Box::new(rings.iter().flatten().flat_map(Position::numbers)),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Coordinates::Point(_) => "Point",
            Coordinates::LineString(_) => "LineString",
            Coordinates::Polygon(_) => "Polygon",
        }
    }
}

/// One Feature of the plain shape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureDoc {
    /// The `type` member as written (a Feature's is `"Feature"`).
    pub type_member: Option<Value>,
    pub id: Option<Value>,
    pub properties: Option<Value>,
    pub geometry: Option<Coordinates>,
    /// Every other member, as a tree would hold it.
    pub foreign: BTreeMap<String, Value>,
}

/// A request body of the plain shape: one Feature, or a FeatureCollection
/// of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Feature(FeatureDoc),
    Collection(Vec<FeatureDoc>),
}

impl Body {
    /// The body read in the plain shape, or `None` (not JSON, or any other
    /// shape: the caller reads it as a tree).
    pub fn parse(bytes: &[u8]) -> Option<Body> {
        let top: Top = serde_json::from_slice(bytes).ok()?;
        let is_collection = top.doc.type_member.as_ref().and_then(Value::as_str) == Some("FeatureCollection");
        match (is_collection, top.features) {
            (true, Some(features)) => Some(Body::Collection(features)),
            // A Feature with a member named `features` keeps it as a tree
            // would: left to the tree reading.
            (false, None) => Some(Body::Feature(top.doc)),
            _ => None,
        }
    }
}

impl FeatureDoc {
    /// The activity of `party` this Feature describes, exactly as
    /// [`crate::activity_from_feature`] reads the same document at the top
    /// level, or `None` when that names any problem.
    pub fn activity(&self, party: PartyId) -> Option<ParsedActivity> {
        let mut r = Reader {
            prefix: "",
            errors: Vec::new(),
        };
        if self.type_member.as_ref().and_then(Value::as_str) != Some("Feature") {
            return None;
        }
        let id = match &self.id {
            None | Some(Value::Null) => None,
            Some(id @ (Value::String(_) | Value::Number(_))) => Some(id.clone()),
            Some(_) => return None,
        };
        let Some(Value::Object(properties)) = &self.properties else {
            return None;
        };
        let mut props = read_properties(&mut r, properties);
        if !r.errors.is_empty() {
            return None;
        }
        let (kind, footprint) = match self.geometry.as_ref()? {
            Coordinates::Point(center) => (
                GeometryKind::Point,
                point_footprint(&mut r, properties, &props, Some(center.lon_lat()?)),
            ),
            Coordinates::LineString(route) => {
                let route = route.iter().map(Position::lon_lat).collect::<Option<Vec<_>>>()?;
                (
                    GeometryKind::LineString,
                    line_footprint(&mut r, properties, &mut props, Some(route)),
                )
            }
            Coordinates::Polygon(rings) => {
                let rings = rings
                    .iter()
                    .map(|ring| ring.iter().map(Position::lon_lat).collect::<Option<Vec<_>>>())
                    .collect::<Option<Vec<_>>>()?;
                (
                    GeometryKind::Polygon,
                    polygon_footprint(&mut r, properties, Some(rings)),
                )
            }
        };
        assemble(r, props, kind, footprint, id, party).ok()
    }

    /// The properties object (a Feature of the plain shape that read as an
    /// activity has one).
    pub fn properties_mut(&mut self) -> Option<&mut Map<String, Value>> {
        match &mut self.properties {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        }
    }
}

/// The top level: a Feature's members, or a collection's `features`.
struct Top {
    doc: FeatureDoc,
    features: Option<Vec<FeatureDoc>>,
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Top, D::Error> {
        deserializer.deserialize_map(MembersVisitor { top: true })
    }
}

impl<'de> Deserialize<'de> for FeatureDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FeatureDoc, D::Error> {
        deserializer
            .deserialize_map(MembersVisitor { top: false })
            .map(|top| top.doc)
    }
}

struct MembersVisitor {
    /// Whether `features` is read as a collection's (at the top level) or
    /// as a foreign member.
    top: bool,
}

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GeoJSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut doc = FeatureDoc {
            type_member: None,
            id: None,
            properties: None,
            geometry: None,
            foreign: BTreeMap::new(),
        };
        let mut features = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            // A member twice is left to the tree reading (which keeps the
            // last).
            let slot_taken = match key.as_ref() {
                "type" => doc.type_member.replace(map.next_value()?).is_some(),
                "id" => doc.id.replace(map.next_value()?).is_some(),
                "properties" => doc.properties.replace(map.next_value()?).is_some(),
                "geometry" => doc.geometry.replace(map.next_value::<Geometry>()?.0).is_some(),
                "features" if self.top => features.replace(map.next_value()?).is_some(),
                _ => {
                    let value: Value = map.next_value()?;
                    doc.foreign.insert(key.into_owned(), value).is_some()
                }
            };
            if slot_taken {
                return Err(de::Error::custom("a member twice"));
            }
        }
        Ok(Top { doc, features })
    }
}

/// A geometry of exactly `{type, coordinates}`, the type naming the
/// coordinates' nesting.
struct Geometry(Coordinates);

impl<'de> Deserialize<'de> for Geometry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Geometry, D::Error> {
        struct GeometryVisitor;
        impl<'de> Visitor<'de> for GeometryVisitor {
            type Value = Geometry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a GeoJSON geometry")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Geometry, A::Error> {
                let mut kind: Option<std::borrow::Cow<'de, str>> = None;
                let mut coordinates: Option<Coordinates> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "type" if kind.is_none() => kind = Some(map.next_value()?),
                        "coordinates" if coordinates.is_none() => {
                            coordinates = Some(map.next_value_seed(CoordSeed)?.into_coordinates()?)
                        }
                        _ => return Err(de::Error::custom("not a plain geometry")),
                    }
                }
                match (kind, coordinates) {
                    (Some(kind), Some(coordinates)) if kind == coordinates.type_name() => {
                        Ok(Geometry(coordinates))
                    }
                    _ => Err(de::Error::custom("not a plain geometry")),
                }
            }
        }
        deserializer.deserialize_map(GeometryVisitor)
    }
}

/// A number or a nested array of numbers, by depth.
enum Coord {
    Number(Number),
    Position(Position),
    Line(Vec<Position>),
    Rings(Vec<Vec<Position>>),
}

impl Coord {
    fn into_coordinates<E: de::Error>(self) -> Result<Coordinates, E> {
        match self {
            Coord::Position(p) => Ok(Coordinates::Point(p)),
            Coord::Line(route) => Ok(Coordinates::LineString(route)),
            Coord::Rings(rings) => Ok(Coordinates::Polygon(rings)),
            Coord::Number(_) => Err(E::custom("coordinates are not a number")),
        }
    }
}

struct CoordSeed;

impl<'de> DeserializeSeed<'de> for CoordSeed {
    type Value = Coord;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Coord, D::Error> {
        deserializer.deserialize_any(CoordVisitor)
    }
}

struct CoordVisitor;

fn not_plain<E: de::Error>() -> E {
    E::custom("not plain coordinates")
}

impl<'de> Visitor<'de> for CoordVisitor {
    type Value = Coord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GeoJSON coordinates")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Coord, E> {
        Ok(Coord::Number(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Coord, E> {
        Ok(Coord::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Coord, E> {
        // As a tree holds it: a non-finite number is not a number there.
        Number::from_f64(v).map(Coord::Number).ok_or_else(not_plain)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Coord, A::Error> {
        let Some(first) = seq.next_element_seed(CoordSeed)? else {
            return Err(not_plain());
        };
        match first {
            Coord::Number(lon) => {
                let Some(Coord::Number(lat)) = seq.next_element_seed(CoordSeed)? else {
                    return Err(not_plain());
                };
                let altitude = match seq.next_element_seed(CoordSeed)? {
                    None => None,
                    Some(Coord::Number(altitude)) => Some(altitude),
                    Some(_) => return Err(not_plain()),
                };
                if altitude.is_some() && seq.next_element_seed(CoordSeed)?.is_some() {
                    return Err(not_plain());
                }
                Ok(Coord::Position(Position { lon, lat, altitude }))
            }
            Coord::Position(p) => {
                let mut line = Vec::with_capacity(seq.size_hint().unwrap_or(8).max(2));
                line.push(p);
                while let Some(next) = seq.next_element_seed(CoordSeed)? {
                    match next {
                        Coord::Position(p) => line.push(p),
                        _ => return Err(not_plain()),
                    }
                }
                Ok(Coord::Line(line))
            }
            Coord::Line(ring) => {
                let mut rings = vec![ring];
                while let Some(next) = seq.next_element_seed(CoordSeed)? {
                    match next {
                        Coord::Line(ring) => rings.push(ring),
                        _ => return Err(not_plain()),
                    }
                }
                Ok(Coord::Rings(rings))
            }
            Coord::Rings(_) => Err(not_plain()),
        }
    }
}
