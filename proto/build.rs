//! Compiles `proto/*.proto` with protox (pure Rust), so no system `protoc` is needed.

use std::{io::Result, path::PathBuf};

fn main() -> Result<()> {
    let files = ["proto/tandem.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"]).map_err(std::io::Error::other)?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?);
    prost_build::Config::new()
        .out_dir(out_dir)
        .compile_fds(descriptors)
}
