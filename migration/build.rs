//! Fingerprints the migration sources so test harnesses can key a migrated template
//! database on exactly this schema.
use sha2::{Digest, Sha256};
use std::{fs, path::Path};

fn main() {
    let mut files: Vec<_> = fs::read_dir("src").expect("migration/src").map(|e| e.expect("dir entry").path()).collect();
    files.sort();
    let mut hasher = Sha256::new();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        hasher.update(f.file_name().unwrap().to_string_lossy().as_bytes());
        hasher.update(fs::read(f).expect("read migration"));
    }
    println!("cargo:rerun-if-changed=src");
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("fingerprint.rs");
    fs::write(out, format!("\"{hex}\"")).unwrap();
}
