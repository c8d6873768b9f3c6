//! Compiles proto/teleconsult/v1 with protox (no system protoc) and writes a file
//! descriptor set for server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/teleconsult/v1/common.proto",
        "proto/teleconsult/v1/directory.proto",
        "proto/teleconsult/v1/scheduling.proto",
        "proto/teleconsult/v1/session.proto",
        "proto/teleconsult/v1/audit.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("teleconsult_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
