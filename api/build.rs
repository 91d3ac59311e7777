//! Compiles every `policies/*.datalog` into the binary, so a policy file added to the
//! folder is loaded without a code change and the server needs no files beside it.
use std::{fs, path::Path};

fn main() {
    // Read when the script runs, not when it was compiled: one compiled script serves
    // every checkout that shares a target dir (CI's clone, the main tree), and a path
    // baked in at compile time named whichever checkout built it first.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../policies");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("policies/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "datalog"))
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().unwrap().to_string_lossy();
        let path = fs::canonicalize(f).unwrap();
        out.push_str(&format!("    ({name:?}, include_str!({:?})),\n", path.display().to_string()));
    }
    out.push(']');
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("policies.rs");
    fs::write(dest, out).unwrap();
}
