//! AFL++ harness: `tandem-fuzz-afl <target>` runs one target in AFL's persistent mode;
//! `tandem-fuzz-afl --list` names the targets. Built
//! and driven by `scripts/fuzz.sh` (`cargo afl build`), which also feeds it the corpus.

use tandem_fuzz::{Target, alloc::PeakAlloc, run};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    if name == "--list" {
        for target in Target::ALL {
            println!("{target}");
        }
        return;
    }
    let Some(target) = Target::from_name(&name) else {
        let names: Vec<_> = Target::ALL.iter().map(|target| target.name()).collect();
        eprintln!(
            "usage: tandem-fuzz-afl <target>; targets: {}",
            names.join(", ")
        );
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        run(target, data);
    });
}
