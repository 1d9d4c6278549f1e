//! Writes the generated seeds (`sacbench_fuzz_bodies::seeds::all`) into
//! `fuzz/corpus/<target>/gen-<name>`: `cargo run -p sacbench-fuzz-bodies
//! --example seeds`. The other seeds there are copied files (see
//! `fuzz/corpus/README.md`).

use std::path::Path;

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, name, bytes) in sacbench_fuzz_bodies::seeds::all() {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("gen-{name}"));
        std::fs::write(&path, &bytes)?;
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
    Ok(())
}
