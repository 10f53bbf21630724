//! Errors that name the field: a JSON pointer and what is wrong there.

use std::fmt;

use deconflict_engine::{Axis, Field, ValidationError};

use crate::geojson::GeometryKind;

/// One rejected value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// RFC 6901 pointer into the submitted document.
    pub pointer: String,
    pub message: String,
}

impl FormatError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "(document)"
        } else {
            &self.pointer
        };
        write!(f, "{pointer}: {}", self.message)
    }
}

/// Everything wrong with a document; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct FormatErrors(pub Vec<FormatError>);

/// The pointer of an engine field within a Feature whose geometry is `kind`,
/// below `prefix` (empty for a lone Feature, `/features/3` in a collection).
pub(crate) fn pointer_of(field: &Field, kind: GeometryKind, prefix: &str) -> String {
    let property = |name: &str| format!("{prefix}/properties/{name}");
    match field {
        Field::Kind => property("kind"),
        Field::Start => property("start"),
        Field::End => property("end"),
        Field::RadiusM => property("radius_m"),
        Field::CorridorM => property("corridor_m"),
        Field::AltMinM => property("alt_min_m"),
        Field::AltMaxM => property("alt_max_m"),
        Field::SeparationM => property("separation_m"),
        Field::VerticalSeparationM => property("vertical_separation_m"),
        Field::WaypointTimes { index: None } => property("waypoint_times"),
        Field::WaypointTimes { index: Some(i) } => format!("{}/{i}", property("waypoint_times")),
        Field::Geometry => format!("{prefix}/geometry"),
        Field::Position { ring, vertex, axis } => {
            let mut pointer = format!("{prefix}/geometry/coordinates");
            // A Point's coordinates are the position itself; a LineString's
            // are positions; a Polygon's are rings of positions.
            if kind == GeometryKind::Polygon {
                if let Some(ring) = ring {
                    pointer.push_str(&format!("/{ring}"));
                }
            }
            if kind != GeometryKind::Point {
                if let Some(vertex) = vertex {
                    pointer.push_str(&format!("/{vertex}"));
                }
            }
            match axis {
                Some(Axis::Longitude) => pointer.push_str("/0"),
                Some(Axis::Latitude) => pointer.push_str("/1"),
                None => {}
            }
            pointer
        }
    }
}

/// The engine's verdict, as pointers.
pub(crate) fn from_validation(error: &ValidationError, kind: GeometryKind, prefix: &str) -> Vec<FormatError> {
    error
        .errors
        .iter()
        .map(|e| FormatError {
            pointer: pointer_of(&e.field, kind, prefix),
            message: e.problem.to_string(),
        })
        .collect()
}
