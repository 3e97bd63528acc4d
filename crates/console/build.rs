//! Builds the console (TypeScript, in `console/`) with npm and embeds the
//! result: `npm ci --ignore-scripts` from the lock file when node_modules
//! is missing or older than the lock, then `npm run build` (type check +
//! Vite) into OUT_DIR, then a table of the files for `include_bytes!`.
//! Nothing built is committed.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let console = manifest
        .join("../../console")
        .canonicalize()
        .expect("console/ beside crates/");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let dist = out.join("console");

    for input in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "vite.config.ts",
    ] {
        println!("cargo:rerun-if-changed={}", console.join(input).display());
    }

    // Two builds (say, debug and release at once) share node_modules: one
    // installs while the other waits.
    let lock = File::create(out.join("npm.lock")).expect("lock file");
    let shared = File::create(console.join("node_modules.lock")).unwrap_or(lock);
    shared.lock().expect("locking node_modules");
    // No package's install script runs: a dependency's code runs only in
    // the build it is part of, never at install (the native builds of the
    // bundler come as per-platform packages, not from scripts).
    if needs_install(&console) {
        npm(
            &console,
            &[
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ],
            &dist,
        );
    }
    npm(&console, &["run", "build", "--silent"], &dist);
    let _ = shared.unlock();

    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    assert!(
        files.iter().any(|(path, _)| path == "/index.html"),
        "the console build wrote no index.html into {}",
        dist.display()
    );
    let mut table = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (path, file) in &files {
        table.push_str(&format!(
            "    Asset {{ path: {path:?}, body: include_bytes!({:?}) }},\n",
            file.display()
        ));
    }
    table.push_str("];\n");
    fs::write(out.join("assets.rs"), table).expect("writing assets.rs");
}

/// node_modules is missing, or older than the lock file it was made from.
fn needs_install(console: &Path) -> bool {
    let modified = |p: PathBuf| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(console.join("node_modules/.package-lock.json")),
        modified(console.join("package-lock.json")),
    ) {
        (Some(installed), Some(locked)) => installed < locked,
        _ => true,
    }
}

fn npm(console: &Path, args: &[&str], dist: &Path) {
    let status = Command::new("npm")
        .args(args)
        .current_dir(console)
        .env("FLOWLENS_CONSOLE_OUT", dist)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "the console is built with npm (Node.js 20.19 or newer), which did not start: {e}. \
                 Install Node.js and npm (Debian: apt-get install nodejs npm)"
            )
        });
    assert!(
        status.success(),
        "`npm {}` in {} failed ({status})",
        args.join(" "),
        console.display()
    );
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in fs::read_dir(dir).expect("reading the console build") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            files.push((format!("/{rel}"), path));
        }
    }
}
