//! Parsers of untrusted text (notes, checkpoints, keys, receipts) never
//! panic, round-trip what we write, and reject every mutation of a signed
//! checkpoint.

use deconflict_audit::{
    open_note, verify_checkpoint, Checkpoint, Hash, Note, NoteSigner, NoteVerifier, Receipt,
};
use proptest::prelude::*;

const ORIGIN: &str = "deconflict.example/log";

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[5; 32]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(s in "(?s).{0,300}", bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let v = signer().verifier();
        let _ = Note::parse(&s);
        let _ = Note::parse(&bytes);
        let _ = open_note(&s, std::slice::from_ref(&v));
        let _ = verify_checkpoint(&bytes, &v);
        let _ = Checkpoint::parse(&s);
        let _ = NoteVerifier::parse(&s);
        let _ = NoteSigner::parse(&s);
        let _ = Hash::from_base64(&s);
        let _ = serde_json::from_slice::<Receipt>(&bytes);
    }

    /// Note-shaped input: a text, a blank line and signature-like lines.
    #[test]
    fn note_shaped_input_never_panics(text in "[a-z0-9\n ]{0,40}", name in "[^\n]{0,12}", sig in "[A-Za-z0-9+/=]{0,100}", lines in 0usize..4) {
        let v = signer().verifier();
        let msg = format!("{text}\n\n{}", format!("\u{2014} {name} {sig}\n").repeat(lines));
        let _ = open_note(&msg, std::slice::from_ref(&v));
    }

    #[test]
    fn checkpoints_round_trip(size in any::<u64>(), root in any::<[u8; 32]>(), ext in prop::collection::vec("[a-z ]{1,10}", 0..3)) {
        let mut cp = Checkpoint::new(ORIGIN, size, Hash(root));
        cp.extensions = ext;
        let note = deconflict_audit::sign_checkpoint(&cp, &signer()).unwrap();
        prop_assert_eq!(verify_checkpoint(&note, &signer().verifier()).unwrap(), cp);
    }

    /// Any one-byte change to a signed checkpoint is refused (or, if it only
    /// touches the signature's base64 padding-free spelling, still yields
    /// exactly the signed head).
    #[test]
    fn mutated_checkpoints_are_refused(size in any::<u64>(), root in any::<[u8; 32]>(), pos in any::<usize>(), byte in any::<u8>()) {
        let cp = Checkpoint::new(ORIGIN, size, Hash(root));
        let note = deconflict_audit::sign_checkpoint(&cp, &signer()).unwrap();
        let mut bytes = note.clone().into_bytes();
        let at = pos % bytes.len();
        prop_assume!(bytes[at] != byte);
        bytes[at] = byte;
        match verify_checkpoint(&bytes, &signer().verifier()) {
            Err(_) => {}
            Ok(got) => prop_assert_eq!(got, cp, "a mutation changed the head and still verified"),
        }
    }
}
