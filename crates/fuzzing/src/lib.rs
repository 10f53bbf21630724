//! The bodies of the `cargo fuzz` targets in `fuzz/fuzz_targets/`, as plain
//! functions of the input bytes.
//!
//! libFuzzer calls them on a nightly toolchain (`cargo +nightly fuzz run
//! <target>`); on stable, `tests/corpus.rs` replays every file of
//! `fuzz/corpus/<target>/` (and its prefixes) through the same function in
//! `cargo test --workspace`. Each function panics when its property fails,
//! which is how both the fuzzer and the test see a failure; on any other
//! input it returns.
//!
//! One function per target, named as the target, listed in [`TARGETS`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use deconflict_audit::{open_note, verify_checkpoint, Checkpoint, Note, NoteSigner, NoteVerifier};
use deconflict_engine::{Engine, EngineConfig, PartyId};
use deconflict_formats::{
    activities_from_geojson, parse_cot, write_cot_event, CotFramer, CotMessage, FormatErrors,
};

/// A fuzz target's body: any bytes in, a panic on a broken property.
pub type TargetBody = fn(&[u8]);

/// Every target: its name (the directory of its corpus) and its body.
pub const TARGETS: &[(&str, TargetBody)] = &[
    ("geojson_activity", geojson_activity),
    ("cot_event", cot_event),
    ("tak_stream", tak_stream),
    ("checkpoint_note", checkpoint_note),
];

/// Any bytes through GeoJSON parsing and engine validation: no panic, and a
/// rejection always names at least one field.
pub fn geojson_activity(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let engine = Engine::new(EngineConfig::default());
    match activities_from_geojson(text, PartyId(1)) {
        Ok(parsed) => {
            for activity in parsed {
                if let Err(FormatErrors(errors)) = activity.validate(&engine) {
                    assert!(!errors.is_empty(), "a rejected activity names no field");
                }
            }
        }
        Err(FormatErrors(errors)) => assert!(!errors.is_empty(), "a rejected document names no field"),
    }
}

/// Any bytes through the CoT parser: no panic, and every accepted event
/// survives writing: what is written parses, and writing that again gives
/// the same bytes (the writer's sanitising is applied once, then stable).
pub fn cot_event(data: &[u8]) {
    if let Ok(CotMessage::Event(event)) = parse_cot(data) {
        let written = write_cot_event(&event);
        match parse_cot(written.as_bytes()) {
            Ok(CotMessage::Event(again)) => assert_eq!(write_cot_event(&again), written),
            other => panic!("written event does not parse back: {other:?}\n{written}"),
        }
    }
}

/// The framer's event size limit in [`tak_stream`]: small, so that inputs
/// reach the oversize path.
const TAK_MAX_EVENT_BYTES: usize = 1024;

fn frames(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut framer = CotFramer::new(TAK_MAX_EVENT_BYTES);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    let _ = parse_cot(frame);
                    out.push(frame.to_vec());
                }
                Ok(None) => break,
                Err(_) => {}
            }
        }
        assert!(
            framer.buffered_bytes() <= TAK_MAX_EVENT_BYTES + chunk.len() + 8,
            "the framer holds {} bytes",
            framer.buffered_bytes()
        );
    }
    out
}

/// Any bytes as a TAK stream, cut into reads at places the input chooses
/// (its first byte seeds the chunk sizes, 1 to 64 bytes, varying): no
/// panic, buffered bytes stay bounded, and the frames are the same as for
/// one read.
pub fn tak_stream(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut chunks = Vec::new();
    let (mut at, mut size) = (0, usize::from(seed % 64) + 1);
    while at < stream.len() {
        let end = (at + size).min(stream.len());
        chunks.push(&stream[at..end]);
        at = end;
        size = (size * 7 + 3) % 64 + 1;
    }
    assert_eq!(
        frames(&chunks),
        frames(&[stream]),
        "framing depends on how reads are cut"
    );
}

/// The log name and key seed of the key the `checkpoint_note` corpus is
/// signed with (`cargo run -p deconflict-fuzzing --example
/// checkpoint_note_seeds` writes the signed seeds): with a trusted key, the
/// fuzzer's mutations of a signed note reach signature verification, not
/// only the syntax.
pub const NOTE_KEY_NAME: &str = "deconflict.fuzz/log";
pub const NOTE_KEY_SEED: [u8; 32] = [7; 32];

/// The signer of the corpus's trusted key.
pub fn note_signer() -> NoteSigner {
    NoteSigner::from_seed(NOTE_KEY_NAME, &NOTE_KEY_SEED).expect("a valid key name")
}

/// Any bytes as a signed checkpoint note (c2sp.org/signed-note,
/// c2sp.org/tlog-checkpoint), as a client checks the service's: no panic,
/// and
/// - a note that parses is exactly its text and signature lines written
///   back (the syntax is strict: one way to write each note);
/// - a note opened with the trusted key was signed by it, and when that is
///   its only signature, signing its text again gives the same bytes
///   (Ed25519 is deterministic), so no other bytes verify as that note;
/// - a verified checkpoint has the key's name as its origin, and its text
///   is exactly the checkpoint written back.
pub fn checkpoint_note(data: &[u8]) {
    let Ok(note) = Note::parse(data) else { return };
    let mut written = note.text.clone();
    written.push('\n');
    for signature in &note.signatures {
        let mut blob = signature.key_id.to_be_bytes().to_vec();
        blob.extend_from_slice(&signature.signature);
        written.push_str(&format!(
            "\u{2014} {} {}\n",
            signature.name,
            STANDARD.encode(blob)
        ));
    }
    assert_eq!(
        written.as_bytes(),
        data,
        "a parsed note is not its parts written back"
    );

    let signer = note_signer();
    let verifier: NoteVerifier = signer.verifier();
    if let Ok(opened) = open_note(data, std::slice::from_ref(&verifier)) {
        assert_eq!(
            opened.verified_by,
            vec![(verifier.name().to_owned(), verifier.key_id())],
            "verified by a key that is not trusted"
        );
        if note.signatures.len() == 1 {
            let again = signer.sign(&opened.text).expect("verified text can be signed");
            assert_eq!(again.as_bytes(), data, "two notes verify for one text");
        }
    }
    if let Ok(checkpoint) = verify_checkpoint(data, &verifier) {
        assert_eq!(checkpoint.origin, verifier.name());
        assert_eq!(
            checkpoint
                .to_text()
                .expect("a verified checkpoint can be written"),
            note.text,
            "a checkpoint is not its text written back"
        );
    }
    if let Ok(checkpoint) = Checkpoint::parse(&note.text) {
        let text = checkpoint.to_text().expect("a parsed checkpoint can be written");
        assert_eq!(text, note.text, "a checkpoint is not its text written back");
        assert_eq!(Checkpoint::parse(&text).ok(), Some(checkpoint));
    }
}
