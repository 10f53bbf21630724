//! Writes the signed seeds of `fuzz/corpus/checkpoint_note/` with the
//! corpus's trusted key (`deconflict_fuzzing::note_signer`):
//! `cargo run -p deconflict-fuzzing --example checkpoint_note_seeds`.
//! Signatures are deterministic, so running it again rewrites the same bytes.

use std::path::Path;

use deconflict_audit::{sign_checkpoint, Checkpoint, Hash, NoteSigner};
use deconflict_fuzzing::{note_signer, NOTE_KEY_NAME};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/checkpoint_note");
    std::fs::create_dir_all(&dir).unwrap();
    let signer = note_signer();
    let witness = NoteSigner::from_seed("witness.example/w1", &[9; 32]).unwrap();
    let root = Hash([0x5a; 32]);
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();

    let empty = Checkpoint::new(NOTE_KEY_NAME, 0, deconflict_audit::empty_root());
    write(
        "signed-empty-log.note",
        sign_checkpoint(&empty, &signer).unwrap().as_bytes(),
    );
    let grown = Checkpoint::new(NOTE_KEY_NAME, 1_234_567, root);
    let signed = sign_checkpoint(&grown, &signer).unwrap();
    write("signed-checkpoint.note", signed.as_bytes());
    let mut with_extension = grown.clone();
    with_extension.extensions.push("timestamp 1700000000".to_owned());
    write(
        "signed-with-extension-line.note",
        sign_checkpoint(&with_extension, &signer).unwrap().as_bytes(),
    );
    // A witness's cosignature after the log's: ignored, the log's verifies.
    let cosigned = witness.sign(&grown.to_text().unwrap()).unwrap();
    let witness_line = cosigned.lines().last().unwrap();
    write(
        "signed-and-cosigned.note",
        format!("{signed}{witness_line}\n").as_bytes(),
    );
    // Signed by the witness only: well formed, not trusted.
    write("signed-by-unknown-key.note", cosigned.as_bytes());
    // Another origin under the trusted key: verifies as a note, not as this log's checkpoint.
    let other_origin = signer
        .sign(&Checkpoint::new("other.example/log", 5, root).to_text().unwrap())
        .unwrap();
    write("signed-other-origin.note", other_origin.as_bytes());
    // Signed text that is not a checkpoint.
    write(
        "signed-free-text.note",
        signer.sign("hello\nworld\n").unwrap().as_bytes(),
    );
    // One flipped bit in the signature: the trusted key's signature fails.
    let mut flipped = signed.clone().into_bytes();
    let at = flipped.len() - 10;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    write("signature-bit-flipped.note", &flipped);
    // The size changed after signing.
    write(
        "size-changed-after-signing.note",
        signed.replacen("1234567", "1234568", 1).as_bytes(),
    );
    println!("wrote the signed seeds in {}", dir.display());
}
