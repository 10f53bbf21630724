//! CoT events out to TAK clients: positions and alerts.
//!
//! Every attribute value and text is escaped (`&`, `<`, `>`, `"`, `'`), so
//! no callsign or alert text can break out of its element or end the event
//! early (the framer's `</event>` cannot appear in escaped text). Tabs and
//! line breaks become character references, which XML does not normalise
//! away; characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE,
//! U+FFFF) become U+FFFD, so the output is always well-formed. Numbers
//! are written in Rust's shortest round-trip form, so parsing what was
//! written gives back the same `f64`; times are RFC 3339 UTC with
//! milliseconds.

use std::fmt::Write as _;

use deconflict_engine::Timestamp;

use super::event::CotEvent;
use super::UNKNOWN_ERROR_M;
use crate::time::format_rfc3339;

/// Writes `event` as one CoT document, without an XML declaration (TAK
/// clients accept either; pytak and ATAK read events up to `</event>`).
pub fn write_cot_event(event: &CotEvent) -> String {
    let mut xml = String::with_capacity(512);
    open_event(
        &mut xml,
        &event.uid,
        &event.event_type,
        event.how.as_deref(),
        [event.time, event.start, event.stale],
    );
    write_point(
        &mut xml,
        event.lat_deg,
        event.lon_deg,
        event.hae_m,
        event.ce_m,
        event.le_m,
    );
    xml.push_str("<detail>");
    if let Some(callsign) = &event.callsign {
        let _ = write!(xml, r#"<contact callsign="{}"/>"#, escape(callsign.as_str()));
    }
    if let Some(group) = &event.group {
        let _ = write!(
            xml,
            r#"<__group name="{}" role="Team Member"/>"#,
            escape(group.as_str())
        );
    }
    if event.speed_mps.is_some() || event.course_deg.is_some() {
        xml.push_str("<track");
        if let Some(speed) = event.speed_mps {
            let _ = write!(xml, r#" speed="{speed}""#);
        }
        if let Some(course) = event.course_deg {
            let _ = write!(xml, r#" course="{course}""#);
        }
        xml.push_str("/>");
    }
    if let Some(remarks) = &event.remarks {
        let _ = write!(xml, "<remarks>{}</remarks>", escape(remarks.as_str()));
    }
    xml.push_str("</detail></event>");
    xml
}

/// The answer to a client's `t-x-c-t` ping: a `t-x-c-t-r` pong, valid for
/// `stale_after_ms`.
pub fn write_pong(now: Timestamp, stale_after_ms: i64) -> String {
    let mut xml = String::with_capacity(256);
    open_event(
        &mut xml,
        "takPong",
        "t-x-c-t-r",
        Some("h-g-i-g-o"),
        [now, now, Timestamp(now.0.saturating_add(stale_after_ms))],
    );
    write_point(&mut xml, 0.0, 0.0, None, None, None);
    xml.push_str("<detail/></event>");
    xml
}

/// Which TAK alert an alert is sent as.
///
/// TAK clients (ATAK's emergency tool, TAK Server, FreeTAKServer) know the
/// `b-a-…` "alarm" types; deconflict uses three of them:
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CotAlertKind {
    /// `b-a-g`, "Geo-fence Breached": a unit entered an exclusion or
    /// protected zone, or crossed a demarcation line.
    GeofenceBreach,
    /// `b-a-o-c`, a custom alarm: two units too close, a predicted closest
    /// approach, a unit off its notified route or time window.
    Custom,
    /// `b-a-o-can`, "Cancel Alert": the episode of the alert with the same
    /// `uid` is over; clients clear it.
    Cancel,
}

impl CotAlertKind {
    pub fn event_type(self) -> &'static str {
        match self {
            CotAlertKind::GeofenceBreach => "b-a-g",
            CotAlertKind::Custom => "b-a-o-c",
            CotAlertKind::Cancel => "b-a-o-can",
        }
    }

    /// The `emergency/@type` text ATAK shows for this alarm.
    fn emergency_name(self) -> &'static str {
        match self {
            CotAlertKind::GeofenceBreach => "Geo-fence Breached",
            CotAlertKind::Custom => "Custom",
            CotAlertKind::Cancel => "Cancel",
        }
    }
}

/// An alert for a party's TAK clients, written in the TAK convention:
///
/// ```xml
/// <event version="2.0" uid="{uid}" type="b-a-g" how="m-c"
///        time="{time}" start="{time}" stale="{stale}">
///   <point lat="{lat}" lon="{lon}" hae="{hae or 9999999}" ce="9999999" le="9999999"/>
///   <detail>
///     <contact callsign="{title}"/>
///     <emergency type="Geo-fence Breached">{title}</emergency>
///     <link uid="{subject_uid}" relation="p-p" type="a-u-G"/>   (when about one entity)
///     <remarks>{text}</remarks>
///   </detail>
/// </event>
/// ```
///
/// The `uid` names the alert episode (the driver picks it, e.g.
/// `deconflict-alert-42`): clients replace an event by uid, so an update
/// of the same episode replaces the marker, and a [`CotAlertKind::Cancel`]
/// with that uid clears it. `how` is `m-c`, machine-calculated: the point
/// is where deconflict computed the problem (the closest approach, the zone
/// entry), not a sensor fix. `stale` bounds how long a client shows it if
/// the cancel never arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct CotAlert {
    pub uid: String,
    pub kind: CotAlertKind,
    /// Short, shown as the marker's callsign: "PROXIMITY BRAVO-2".
    pub title: String,
    /// The full message, shown as the marker's remarks.
    pub text: String,
    pub lat_deg: f64,
    pub lon_deg: f64,
    pub hae_m: Option<f64>,
    pub time: Timestamp,
    pub stale: Timestamp,
    /// The uid of the unit the alert is about, if one.
    pub subject_uid: Option<String>,
}

impl CotAlert {
    pub fn to_xml(&self) -> String {
        let mut xml = String::with_capacity(768);
        open_event(
            &mut xml,
            &self.uid,
            self.kind.event_type(),
            Some("m-c"),
            [self.time, self.time, self.stale],
        );
        write_point(&mut xml, self.lat_deg, self.lon_deg, self.hae_m, None, None);
        let title = escape(self.title.as_str());
        let _ = write!(xml, r#"<detail><contact callsign="{title}"/>"#);
        match self.kind {
            CotAlertKind::Cancel => {
                let _ = write!(xml, r#"<emergency cancel="true">{title}</emergency>"#);
            }
            kind => {
                let _ = write!(
                    xml,
                    r#"<emergency type="{}">{title}</emergency>"#,
                    kind.emergency_name()
                );
            }
        }
        if let Some(subject) = &self.subject_uid {
            let _ = write!(
                xml,
                r#"<link uid="{}" relation="p-p" type="a-u-G"/>"#,
                escape(subject.as_str())
            );
        }
        let _ = write!(
            xml,
            "<remarks>{}</remarks></detail></event>",
            escape(self.text.as_str())
        );
        xml
    }
}

/// A GeoChat message (CoT type `b-t-f`) from deconflict to a party's TAK
/// clients, as ATAK, WinTAK and iTAK write and show chat:
///
/// ```xml
/// <event version="2.0" uid="GeoChat.{sender_uid}.{chatroom}.{message_uid}" type="b-t-f" how="h-g-i-g-o"
///        time="{time}" start="{time}" stale="{stale}">
///   <point lat="0" lon="0" hae="9999999" ce="9999999" le="9999999"/>
///   <detail>
///     <__chat parent="RootContactGroup" groupOwner="false" chatroom="{chatroom}"
///             id="{chatroom}" senderCallsign="{sender_callsign}">
///       <chatgrp uid0="{sender_uid}" uid1="{chatroom}" id="{chatroom}"/>
///     </__chat>
///     <link uid="{sender_uid}" type="a-f-G-U-C" relation="p-p"/>
///     <remarks source="BAO.F.ATAK.{sender_uid}" to="{chatroom}" time="{time}">{text}</remarks>
///   </detail>
/// </event>
/// ```
///
/// Clients file a chat by its `uid` (one uid, one line in the chat window),
/// so `message_uid` must be new for every line that should show again; the
/// text is in `remarks`, where every TAK client and pytak read it. The
/// point is unknown (chat has no place).
#[derive(Debug, Clone, PartialEq)]
pub struct CotChat {
    /// The sender's uid and callsign as the client shows them.
    pub sender_uid: String,
    pub sender_callsign: String,
    /// The chat room: the recipient's name, where the line is filed.
    pub chatroom: String,
    /// Unique per line (e.g. `flash-7-r2`).
    pub message_uid: String,
    pub text: String,
    pub time: Timestamp,
    pub stale: Timestamp,
}

impl CotChat {
    /// The CoT type of chat messages.
    pub const EVENT_TYPE: &'static str = "b-t-f";

    /// The event's uid, in GeoChat's `GeoChat.{sender}.{room}.{id}` form.
    pub fn uid(&self) -> String {
        format!(
            "GeoChat.{}.{}.{}",
            self.sender_uid, self.chatroom, self.message_uid
        )
    }

    pub fn to_xml(&self) -> String {
        let mut xml = String::with_capacity(768);
        open_event(
            &mut xml,
            &self.uid(),
            Self::EVENT_TYPE,
            Some("h-g-i-g-o"),
            [self.time, self.time, self.stale],
        );
        write_point(&mut xml, 0.0, 0.0, None, None, None);
        let (sender, room) = (escape(&self.sender_uid), escape(&self.chatroom));
        let _ = write!(
            xml,
            r#"<detail><__chat parent="RootContactGroup" groupOwner="false" chatroom="{room}" id="{room}" senderCallsign="{}"><chatgrp uid0="{sender}" uid1="{room}" id="{room}"/></__chat>"#,
            escape(&self.sender_callsign)
        );
        let _ = write!(
            xml,
            r#"<link uid="{sender}" type="a-f-G-U-C" relation="p-p"/><remarks source="BAO.F.ATAK.{sender}" to="{room}" time="{}">{}</remarks></detail></event>"#,
            format_rfc3339(self.time),
            escape(&self.text)
        );
        xml
    }
}

/// `text` made safe for an attribute value or element text (see the module
/// documentation).
fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    let needs_work =
        |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'' | '\t' | '\n' | '\r') || !is_xml_char(c);
    if !text.contains(needs_work) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if !is_xml_char(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// XML 1.0's `Char` production (tab, line feed and carriage return are
/// handled before this is asked).
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

fn open_event(
    xml: &mut String,
    uid: &str,
    event_type: &str,
    how: Option<&str>,
    [time, start, stale]: [Timestamp; 3],
) {
    let _ = write!(
        xml,
        r#"<event version="2.0" uid="{}" type="{}""#,
        escape(uid),
        escape(event_type)
    );
    if let Some(how) = how {
        let _ = write!(xml, r#" how="{}""#, escape(how));
    }
    let _ = write!(
        xml,
        r#" time="{}" start="{}" stale="{}">"#,
        format_rfc3339(time),
        format_rfc3339(start),
        format_rfc3339(stale)
    );
}

fn write_point(
    xml: &mut String,
    lat_deg: f64,
    lon_deg: f64,
    hae_m: Option<f64>,
    ce_m: Option<f64>,
    le_m: Option<f64>,
) {
    let _ = write!(
        xml,
        r#"<point lat="{lat_deg}" lon="{lon_deg}" hae="{}" ce="{}" le="{}"/>"#,
        hae_m.unwrap_or(UNKNOWN_ERROR_M),
        ce_m.unwrap_or(UNKNOWN_ERROR_M),
        le_m.unwrap_or(UNKNOWN_ERROR_M)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cot::{parse_cot, ControlKind, CotFramer, CotMessage};

    fn parsed(xml: &str) -> CotEvent {
        match parse_cot(xml.as_bytes()) {
            Ok(CotMessage::Event(event)) => event,
            other => panic!("{other:?} from {xml}"),
        }
    }

    fn position() -> CotEvent {
        CotEvent {
            uid: "unit-<1>&\"2\"".to_owned(),
            event_type: "a-f-G-U-C".to_owned(),
            how: Some("m-g".to_owned()),
            time: Timestamp(1_772_359_200_123),
            start: Timestamp(1_772_359_200_123),
            stale: Timestamp(1_772_359_500_000),
            lat_deg: -33.868_820_123_456_79,
            lon_deg: 151.209_296,
            hae_m: Some(-0.1),
            ce_m: Some(4.5),
            le_m: None,
            speed_mps: Some(0.0),
            course_deg: Some(359.9),
            callsign: Some("BRAVO 'two' </event>".to_owned()),
            group: Some("Dark Blue".to_owned()),
            remarks: Some("line\r\nwith\ttab ]]> and </event> and &amp;\r".to_owned()),
        }
    }

    #[test]
    fn a_position_round_trips_exactly_escapes_included() {
        let event = position();
        let xml = write_cot_event(&event);
        assert_eq!(parsed(&xml), event);
        // The escaped text cannot end the frame early.
        let mut framer = CotFramer::new(4096);
        framer.push(xml.as_bytes());
        assert_eq!(framer.next_frame(), Ok(Some(xml.as_bytes())));
    }

    #[test]
    fn alerts_parse_back_as_tak_alarm_events() {
        let alert = CotAlert {
            uid: "deconflict-alert-42".to_owned(),
            kind: CotAlertKind::GeofenceBreach,
            title: "ZONE <Alpha>".to_owned(),
            text: "BRAVO-2 entered exclusion zone \"Alpha\" & stays".to_owned(),
            lat_deg: 10.5,
            lon_deg: -20.25,
            hae_m: None,
            time: Timestamp(1_772_359_200_000),
            stale: Timestamp(1_772_359_260_000),
            subject_uid: Some("ANDROID-1".to_owned()),
        };
        let xml = alert.to_xml();
        assert!(xml.contains(r#"type="b-a-g""#), "{xml}");
        assert!(
            xml.contains(r#"<emergency type="Geo-fence Breached">ZONE &lt;Alpha&gt;</emergency>"#),
            "{xml}"
        );
        let event = parsed(&xml);
        assert_eq!(event.uid, alert.uid);
        assert_eq!(event.event_type, "b-a-g");
        assert_eq!((event.lat_deg, event.lon_deg, event.hae_m), (10.5, -20.25, None));
        assert_eq!((event.time, event.stale), (alert.time, alert.stale));
        assert_eq!(event.callsign.as_deref(), Some("ZONE <Alpha>"));
        assert_eq!(event.remarks.as_deref(), Some(alert.text.as_str()));

        let cancel = CotAlert {
            kind: CotAlertKind::Cancel,
            ..alert.clone()
        };
        let xml = cancel.to_xml();
        assert!(xml.contains(r#"<emergency cancel="true">"#), "{xml}");
        assert_eq!(parsed(&xml).event_type, "b-a-o-can");
        assert_eq!(
            parsed(
                &CotAlert {
                    kind: CotAlertKind::Custom,
                    ..alert
                }
                .to_xml()
            )
            .event_type,
            "b-a-o-c"
        );
    }

    #[test]
    fn characters_xml_cannot_carry_become_replacement_characters() {
        let event = CotEvent {
            callsign: Some("bell\u{7}\u{0}".to_owned()),
            ..position()
        };
        assert_eq!(
            parsed(&write_cot_event(&event)).callsign.as_deref(),
            Some("bell\u{fffd}\u{fffd}")
        );
        let event = CotEvent {
            callsign: Some(" a\tb\nc ".to_owned()),
            ..position()
        };
        assert_eq!(
            parsed(&write_cot_event(&event)).callsign.as_deref(),
            Some(" a\tb\nc ")
        );
    }

    #[test]
    fn a_pong_is_a_control_message() {
        match parse_cot(write_pong(Timestamp(1_772_359_200_000), 10_000).as_bytes()) {
            Ok(CotMessage::Control(control)) => assert_eq!(control.kind, ControlKind::Pong),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_chat_line_parses_back_with_its_text_and_type() {
        let chat = CotChat {
            sender_uid: "deconflict".into(),
            sender_callsign: "deconflict hotline".into(),
            chatroom: "Red <HQ>".into(),
            message_uid: "flash-7-r2".into(),
            text: "FLASH from Blue: stop & hold </event>".into(),
            time: Timestamp(1_772_359_200_000),
            stale: Timestamp(1_772_359_260_000),
        };
        let event = parsed(&chat.to_xml());
        assert_eq!(event.event_type, "b-t-f");
        assert_eq!(event.uid, "GeoChat.deconflict.Red <HQ>.flash-7-r2");
        assert_eq!(
            event.remarks.as_deref(),
            Some("FLASH from Blue: stop & hold </event>")
        );
        assert_eq!((event.time, event.stale), (chat.time, chat.stale));
    }
}
