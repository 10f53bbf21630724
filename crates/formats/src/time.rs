//! RFC 3339 instants, as the contract writes them.

use deconflict_engine::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses an RFC 3339 date-time (any offset) to UTC milliseconds.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("{text:?} is not an RFC 3339 date-time such as 2022-10-08T06:00:00Z"))?;
    let unix_ms = parsed.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(unix_ms)
        .map(Timestamp)
        .map_err(|_| format!("{text:?} is out of range"))
}

/// Formats UTC milliseconds as RFC 3339 with a `Z` offset, with milliseconds
/// only when they are not zero.
pub fn format_rfc3339(at: Timestamp) -> String {
    let nanos = i128::from(at.unix_ms()) * 1_000_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
    {
        Some(text) => text,
        // Beyond year 9999 RFC 3339 has no spelling; say so rather than panic.
        None => format!("(unix ms {})", at.unix_ms()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_offsets() {
        let t = parse_rfc3339("2022-10-08T06:00:00Z").unwrap();
        assert_eq!(t, Timestamp(1_665_208_800_000));
        assert_eq!(parse_rfc3339("2022-10-08T09:00:00+03:00").unwrap(), t);
        assert_eq!(format_rfc3339(t), "2022-10-08T06:00:00Z");
        assert_eq!(
            format_rfc3339(Timestamp(1_665_208_800_250)),
            "2022-10-08T06:00:00.25Z"
        );
        assert!(parse_rfc3339("8 Oct 2022").is_err());
        assert!(parse_rfc3339("2022-10-08").is_err());
    }
}
