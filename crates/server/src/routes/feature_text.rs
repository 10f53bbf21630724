//! The stored text and the RFC 8785 form of a Feature read in the plain
//! shape (`deconflict_formats::FeatureDoc`), written from its typed parts:
//! the same bytes as `Value::to_string` and `canonical_json` of the tree the
//! same body reads as (after the same normalisation), which the unit tests
//! compare on random Features.

use deconflict_formats::{Coordinates, FeatureDoc, Position};
use serde::Serialize;
use serde_json::{Number, Value};

/// A member of the written Feature.
enum Member<'a> {
    Geometry(&'a Coordinates),
    Value(&'a Value),
}

/// The Feature's members with their keys (`id` was taken out by the
/// normalisation; `geometry`, `properties` and `type` are there when it
/// read as an activity).
fn members(doc: &FeatureDoc) -> Option<Vec<(&str, Member<'_>)>> {
    let mut members = Vec::with_capacity(3 + doc.foreign.len());
    members.push(("geometry", Member::Geometry(doc.geometry.as_ref()?)));
    members.push(("properties", Member::Value(doc.properties.as_ref()?)));
    members.push(("type", Member::Value(doc.type_member.as_ref()?)));
    members.extend(doc.foreign.iter().map(|(k, v)| (k.as_str(), Member::Value(v))));
    if doc.id.is_some() {
        return None;
    }
    Some(members)
}

/// `Value::to_string` of the Feature's tree: members in the map's order
/// (keys' bytes), compact, numbers as parsed.
pub(crate) fn stored_text(doc: &FeatureDoc) -> Option<String> {
    let mut members = members(doc)?;
    members.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    for (at, (key, member)) in members.into_iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        match member {
            Member::Value(value) => serde_json::to_writer(&mut out, value).ok()?,
            Member::Geometry(coordinates) => {
                out.extend_from_slice(b"{\"coordinates\":");
                write_coordinates(&mut out, coordinates, &mut |out, n| {
                    n.serialize(&mut serde_json::Serializer::new(out)).is_ok()
                })?;
                out.extend_from_slice(b",\"type\":\"");
                out.extend_from_slice(coordinates.type_name().as_bytes());
                out.extend_from_slice(b"\"}");
            }
        }
    }
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// `canonical_json` of the Feature's tree: members by their keys' UTF-16
/// code units, numbers in ECMAScript's form; `None` where it refuses (an
/// integer beyond 2^53), for the tree reading to report.
pub(crate) fn canonical(doc: &FeatureDoc) -> Option<Vec<u8>> {
    let mut members = members(doc)?;
    members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    for (at, (key, member)) in members.into_iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&deconflict_audit::canonical_json(&Value::String(key.to_owned())).ok()?);
        out.push(b':');
        match member {
            Member::Value(value) => out.extend_from_slice(&deconflict_audit::canonical_json(value).ok()?),
            Member::Geometry(coordinates) => {
                out.extend_from_slice(b"{\"coordinates\":");
                write_coordinates(&mut out, coordinates, &mut |out, n| {
                    const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
                    let safe = match (n.as_u64(), n.as_i64()) {
                        (Some(u), _) => u <= MAX_SAFE_INTEGER,
                        (None, Some(i)) => i.unsigned_abs() <= MAX_SAFE_INTEGER,
                        (None, None) => true,
                    };
                    let mut buffer = ryu_js::Buffer::new();
                    out.extend_from_slice(buffer.format(n.as_f64().unwrap_or(f64::NAN)).as_bytes());
                    safe
                })?;
                out.extend_from_slice(b",\"type\":\"");
                out.extend_from_slice(coordinates.type_name().as_bytes());
                out.extend_from_slice(b"\"}");
            }
        }
    }
    out.push(b'}');
    Some(out)
}

/// Writes nested arrays of positions, each number through `number`
/// (which answers whether it could).
fn write_coordinates<F: FnMut(&mut Vec<u8>, &Number) -> bool>(
    out: &mut Vec<u8>,
    coordinates: &Coordinates,
    number: &mut F,
) -> Option<()> {
    match coordinates {
        Coordinates::Point(p) => write_position(out, p, number),
        Coordinates::LineString(route) => write_line(out, route, number),
        Coordinates::Polygon(rings) => {
            out.push(b'[');
            for (at, ring) in rings.iter().enumerate() {
                if at > 0 {
                    out.push(b',');
                }
                write_line(out, ring, number)?;
            }
            out.push(b']');
            Some(())
        }
    }
}

fn write_line<F: FnMut(&mut Vec<u8>, &Number) -> bool>(
    out: &mut Vec<u8>,
    line: &[Position],
    number: &mut F,
) -> Option<()> {
    out.push(b'[');
    for (at, p) in line.iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        write_position(out, p, number)?;
    }
    out.push(b']');
    Some(())
}

fn write_position<F: FnMut(&mut Vec<u8>, &Number) -> bool>(
    out: &mut Vec<u8>,
    p: &Position,
    number: &mut F,
) -> Option<()> {
    out.push(b'[');
    number(out, &p.lon).then_some(())?;
    out.push(b',');
    number(out, &p.lat).then_some(())?;
    if let Some(altitude) = &p.altitude {
        out.push(b',');
        number(out, altitude).then_some(())?;
    }
    out.push(b']');
    Some(())
}
