//! Writes the seed corpus: `tandem-fuzz-seeds [DIR]` (default `fuzz/corpus`) replaces every
//! `seed-*` file under `DIR/<target>/` with the seeds of [`tandem_fuzz::seeds::all`].

use std::{fs, io, path::PathBuf};

use tandem_fuzz::{Target, seeds};

fn main() -> io::Result<()> {
    let root = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("fuzz/corpus"), PathBuf::from);
    for target in Target::ALL {
        let dir = root.join(target.name());
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("seed-"))
            {
                fs::remove_file(path)?;
            }
        }
    }
    let all = seeds::all();
    for seed in &all {
        let path = root
            .join(seed.target.name())
            .join(format!("seed-{}", seed.name));
        fs::write(path, &seed.bytes)?;
    }
    println!("wrote {} seeds under {}", all.len(), root.display());
    Ok(())
}
