//! Compiles proto/teleconsult/v1 with protox (no system protoc) and writes a file
//! descriptor set for server reflection; lists the web console's files (console/) for
//! the binary to embed, so that the broker serves its console with no separate step.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/teleconsult/v1/common.proto",
        "proto/teleconsult/v1/directory.proto",
        "proto/teleconsult/v1/scheduling.proto",
        "proto/teleconsult/v1/session.proto",
        "proto/teleconsult/v1/audit.proto",
        "proto/teleconsult/v1/account.proto",
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
    embed_console(&out_dir)?;
    Ok(())
}

/// Writes `console_assets.rs`: `(url path, bytes)` for every file the console serves.
/// Tests and notes for developers (`console/tests`, `*.md`) stay out of the binary.
fn embed_console(out_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=console");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("console");
    let mut files = Vec::new();
    if root.is_dir() {
        collect(&root, &root, &mut files)?;
    }
    files.sort();
    let mut code = String::from("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (url, path) in files {
        code.push_str(&format!(
            "    ({url:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("console_assets.rs"), code)?;
    Ok(())
}

fn collect(
    root: &Path,
    dir: &Path,
    files: &mut Vec<(String, PathBuf)>,
) -> Result<(), Box<dyn std::error::Error>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with('.')
            || name == "tests"
            || name == "node_modules"
            || name.ends_with(".md")
        {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files)?;
        } else {
            let relative = path
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            files.push((format!("/{relative}"), path));
        }
    }
    Ok(())
}
