//! Signed notes: the Go `sumdb/note` test vectors (golang.org/x/mod,
//! note_test.go), interoperability with the `signed_note` crate both ways,
//! and tampering.

use deconflict_audit::note::{key_id, MAX_SIGNATURES};
use deconflict_audit::{open_note, Error, Note, NoteSigner, NoteVerifier};
use signed_note::{
    Note as CfNote, Signer as _, StandardSigner, StandardVerifier, Verifier as _, VerifierList,
};

const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn peter() -> NoteVerifier {
    NoteVerifier::parse(PETER_VKEY).unwrap()
}

fn enoch() -> NoteVerifier {
    NoteVerifier::parse(ENOCH_VKEY).unwrap()
}

#[test]
fn go_keys_parse_and_print_back() {
    let v = peter();
    assert_eq!(v.name(), "PeterNeumann");
    assert_eq!(v.key_id(), 0xc74f20a3);
    assert_eq!(v.to_string(), PETER_VKEY);
    let s = NoteSigner::parse(PETER_SKEY).unwrap();
    assert_eq!(s.to_key_string(), PETER_SKEY);
    assert_eq!(s.verifier(), v);
    assert_eq!(enoch().key_id(), 0xaf0cfe78);
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        .unwrap();
    assert_eq!(key_id("PeterNeumann", &raw), 0xc74f20a3);
}

/// TestNewVerifier / TestNewSigner: every substring and every one-byte
/// increment of the key strings is refused.
#[test]
fn go_key_manglings_are_refused() {
    for (key, parse) in [
        (
            PETER_VKEY,
            (|s: &str| NoteVerifier::parse(s).is_ok()) as fn(&str) -> bool,
        ),
        (PETER_SKEY, |s: &str| NoteSigner::parse(s).is_ok()),
    ] {
        let b = key.as_bytes();
        let mut tried = 0;
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if (i, j) == (0, b.len()) {
                    continue;
                }
                if let Ok(s) = std::str::from_utf8(&b[i..j]) {
                    assert!(!parse(s), "accepted {s:?}");
                    tried += 1;
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1);
            if let Ok(s) = std::str::from_utf8(&m) {
                assert!(!parse(s), "accepted {s:?}");
            }
        }
        assert!(tried > 1000);
    }
    // Wrong key length with adjusted key hash; unknown algorithm with adjusted hash.
    assert!(matches!(
        NoteVerifier::parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="),
        Err(Error::MalformedKey(_))
    ));
    assert!(matches!(
        NoteVerifier::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(Error::UnsupportedAlgorithm(0x65))
    ));
}

/// TestSign: our signature of the Go text is byte for byte Go's
/// (Ed25519 is deterministic).
#[test]
fn go_sign_vector() {
    let s = NoteSigner::parse(PETER_SKEY).unwrap();
    assert_eq!(s.sign(TEXT).unwrap(), format!("{TEXT}\n{PETER_SIG}"));
    assert!(s.sign("abc").is_err());
}

/// TestOpen.
#[test]
fn go_open_vectors() {
    let msg = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");

    // One verified, one ignored.
    let n = open_note(&msg, &[peter()]).unwrap();
    assert_eq!(n.text, TEXT);
    assert_eq!(n.verified_by, vec![("PeterNeumann".into(), 0xc74f20a3)]);
    assert_eq!(n.unverified.len(), 1);
    assert_eq!(n.unverified[0].name, "EnochRoot");

    // Both verified.
    let n = open_note(&msg, &[peter(), enoch()]).unwrap();
    assert_eq!(n.verified_by.len(), 2);
    assert!(n.unverified.is_empty());

    // None trusted.
    assert!(matches!(open_note(&msg, &[]), Err(Error::UnverifiedNote)));

    // Duplicated trusted key.
    assert!(matches!(
        open_note(format!("{TEXT}\n{ENOCH_SIG}"), &[enoch(), peter(), enoch()]),
        Err(Error::AmbiguousKey { .. })
    ));
    // Unused duplicated key is fine.
    open_note(format!("{TEXT}\n{PETER_SIG}"), &[enoch(), peter(), enoch()]).unwrap();

    // Too many signatures.
    let many = format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1));
    assert!(matches!(
        open_note(&many, &[peter()]),
        Err(Error::MalformedNote(_))
    ));
    open_note(
        format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES)),
        &[peter()],
    )
    .unwrap();

    // Invalid signature from a trusted key rejects the note.
    let split = PETER_SIG.char_indices().nth(60).unwrap().0;
    let bad = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..split], &PETER_SIG[split..]);
    assert!(matches!(
        open_note(&bad, &[peter()]),
        Err(Error::InvalidSignature {
            key_id: 0xc74f20a3,
            ..
        })
    ));

    // Duplicated verified and unverified signatures.
    let esplit = ENOCH_SIG.char_indices().nth(60).unwrap().0;
    let enoch_abcd = format!("{}ABCD{}", &ENOCH_SIG[..esplit], &ENOCH_SIG[esplit..]);
    let n = open_note(
        format!("{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{enoch_abcd}"),
        &[peter()],
    )
    .unwrap();
    assert_eq!(n.verified_by.len(), 1);
    assert_eq!(n.unverified.len(), 2);

    // Malformed encodings.
    let bad_msgs: Vec<Vec<u8>> = vec![
        TEXT.into(),
        format!("{TEXT}\n").into(),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]).into(),
        format!("\x01{TEXT}\n{PETER_SIG}").into(),
        [b"\xff".as_slice(), format!("{TEXT}\n{PETER_SIG}").as_bytes()].concat(),
        format!("{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=").into(),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n").into(),
    ];
    for m in bad_msgs {
        assert!(
            matches!(open_note(&m, &[peter()]), Err(Error::MalformedNote(_))),
            "{:?}",
            String::from_utf8_lossy(&m)
        );
    }

    // A signature under another name, or with another key ID, is not
    // Peter's: ignored, so the note has no trusted signature.
    let misnamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego");
    assert!(matches!(
        open_note(format!("{TEXT}\n{misnamed}"), &[peter()]),
        Err(Error::UnverifiedNote)
    ));
    let wrong_id = PETER_SIG.replace("x08g", "xxxx");
    assert!(matches!(
        open_note(format!("{TEXT}\n{wrong_id}"), &[peter()]),
        Err(Error::UnverifiedNote)
    ));
}

#[test]
fn tampering_is_rejected() {
    let s = NoteSigner::from_seed("deconflict.example/log", &[9; 32]).unwrap();
    let v = s.verifier();
    let text = "deconflict.example/log\n3\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
    let msg = s.sign(text).unwrap();
    open_note(&msg, std::slice::from_ref(&v)).unwrap();

    // Body: every single-character change to the text.
    for (i, c) in text.char_indices() {
        if c == '\n' {
            continue;
        }
        let t = format!(
            "{}{}{}",
            &text[..i],
            if c == 'x' { 'y' } else { 'x' },
            &text[i + 1..]
        );
        let m = msg.replacen(text, &t, 1);
        assert!(open_note(&m, std::slice::from_ref(&v)).is_err(), "{m}");
    }
    // Signature: every bit of the decoded blob.
    let note = Note::parse(&msg).unwrap();
    let sig = &note.signatures[0];
    let mut blob = sig.key_id.to_be_bytes().to_vec();
    blob.extend_from_slice(&sig.signature);
    use base64::Engine as _;
    for bit in 0..blob.len() * 8 {
        let mut b = blob.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let m = format!(
            "{text}\n\u{2014} {} {}\n",
            sig.name,
            base64::engine::general_purpose::STANDARD.encode(&b)
        );
        assert!(open_note(&m, std::slice::from_ref(&v)).is_err(), "bit {bit}");
    }
    // Key name: the same signature under another name is not trusted.
    let renamed = msg.replace(
        "\u{2014} deconflict.example/log",
        "\u{2014} deconflict.example/log2",
    );
    assert!(matches!(
        open_note(&renamed, std::slice::from_ref(&v)),
        Err(Error::UnverifiedNote)
    ));
    // Another key with the same name.
    let other = NoteSigner::from_seed("deconflict.example/log", &[10; 32]).unwrap();
    assert!(open_note(&msg, &[other.verifier()]).is_err());
    // Unknown extra signature lines are ignored.
    let witnessed = format!("{msg}{ENOCH_SIG}");
    open_note(&witnessed, std::slice::from_ref(&v)).unwrap();
}

/// Our notes open with Cloudflare's port of Go's package, and its notes
/// open with ours; key strings are exchanged in both directions.
#[test]
fn interoperates_with_signed_note_crate() {
    let ours = NoteSigner::from_seed("deconflict.example/log", &[3; 32]).unwrap();
    let text = "deconflict.example/log\n10\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";

    // Ours → theirs.
    let msg = ours.sign(text).unwrap();
    let their_verifier = StandardVerifier::new(&ours.verifier().to_string()).unwrap();
    let note = CfNote::from_bytes(msg.as_bytes()).unwrap();
    let (verified, _) = note
        .verify(&VerifierList::new(vec![Box::new(their_verifier.clone())]))
        .unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(their_verifier.key_id(), ours.key_id());

    // Theirs → ours, with their signer built from our key string.
    let their_signer = StandardSigner::new(&ours.to_key_string()).unwrap();
    assert_eq!(their_signer.key_id(), ours.key_id());
    let mut n = CfNote::new(text.as_bytes(), &[]).unwrap();
    n.add_sigs(&[&their_signer]).unwrap();
    let bytes = n.to_bytes();
    assert_eq!(bytes, msg.as_bytes(), "Ed25519 is deterministic");
    open_note(&bytes, &[ours.verifier()]).unwrap();

    // A key generated by them parses here.
    let mut rng = rand::rngs::OsRng;
    let (skey, vkey) = signed_note::generate_key(&mut rng, "witness.example/w1");
    let s = NoteSigner::parse(&skey).unwrap();
    assert_eq!(s.verifier().to_string(), vkey);
}
