//! `ig image build|list|inspect|tag|remove|push|pull|export|import|keygen|sign|verify`.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Subcommand;

use ig::gadget::build::Toolchain;
use ig::gadget::{GadgetError, GadgetSpec, Metadata};
use ig::oci::image::{created_now, reachable, read_gadget, write_image, ImageParts};
use ig::oci::registry::RegistryOptions;
use ig::oci::sign::{is_signature_tag, signature_reference, PrivateKey};
use ig::oci::transfer::PullPolicy;
use ig::oci::types::ANNOTATION_CREATED;
use ig::oci::{Reference, Store};

use super::print;

/// Flags of commands that talk to registries.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Registries (HOST:PORT) spoken to over plain HTTP instead of HTTPS
    #[arg(
        long = "insecure-registries",
        value_name = "HOST:PORT",
        value_delimiter = ',',
        env = "IG_INSECURE_REGISTRIES"
    )]
    pub insecure_registries: Vec<String>,
}

impl RegistryArgs {
    pub fn options(&self) -> RegistryOptions {
        RegistryOptions {
            insecure_registries: self.insecure_registries.clone(),
            progress: std::io::stderr().is_terminal(),
            ..RegistryOptions::default()
        }
    }
}

/// Runs registry I/O on a runtime owned by this command (the CLI is the top of the stack).
pub(crate) fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(rt.block_on(future))
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Compile a gadget directory (program.bpf.c, gadget.yaml, build.yaml) into an image
    Build {
        /// The gadget's directory
        dir: PathBuf,
        /// Reference to tag the image with (default: the directory's name)
        #[arg(short = 't', long = "tag")]
        tag: Option<String>,
    },
    /// List the images of the local store
    #[command(alias = "ls")]
    List {
        /// Show full digests
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show an image's metadata, parameters, fields, programs and maps
    Inspect {
        image: String,
        /// Output mode: text or json
        #[arg(short = 'o', long = "output", default_value = "text", value_parser = ["text", "json"])]
        output: String,
    },
    /// Give an image another reference
    Tag { source: String, target: String },
    /// Remove images (their blobs go when nothing else references them)
    #[command(alias = "rm")]
    Remove {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Push an image (every architecture, and its signature) to its registry
    Push {
        image: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Pull an image (every architecture, and its signature) from its registry
    Pull {
        image: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Write images (and their signatures) to FILE, a tar of an OCI image layout (`-`: stdout)
    #[command(override_usage = "ig image export IMAGE... FILE")]
    Export {
        /// The images, then the file
        #[arg(required = true, num_args = 2.., value_name = "IMAGE... FILE")]
        args: Vec<String>,
    },
    /// Read the images of an OCI-layout tar (from `ig image export` or skopeo) into the store
    Import {
        /// The tar file (`-`: stdin)
        file: PathBuf,
    },
    /// Generate an ECDSA P-256 key pair for signing: PREFIX.key (PKCS#8) and PREFIX.pub
    Keygen {
        /// Path prefix of the two files
        #[arg(default_value = "ig")]
        prefix: String,
    },
    /// Sign an image of the local store (cosign-compatible); `ig image push` uploads the signature
    Sign {
        image: String,
        /// Private key (PEM, from `ig image keygen`)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Verify an image's signature against public keys (pulled first when not local)
    Verify {
        image: String,
        /// Public key (PEM, as cosign writes it); repeat for several
        #[arg(long = "public-key", value_name = "PUB")]
        public_keys: Vec<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

pub fn main(cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    let store = super::open_store()?;
    match cmd {
        ImageCommand::Build { dir, tag } => build(&store, dir, tag),
        ImageCommand::List { no_trunc } => list(&store, no_trunc),
        ImageCommand::Inspect { image, output } => inspect(&store, &image, &output),
        ImageCommand::Tag { source, target } => tag(&store, &source, &target),
        ImageCommand::Remove { images } => remove(&store, &images),
        ImageCommand::Push { image, registry } => push(&store, &image, &registry),
        ImageCommand::Pull { image, registry } => pull(&store, &image, &registry),
        ImageCommand::Export { mut args } => {
            let file = args.pop().context("missing FILE")?;
            export(&store, &args, Path::new(&file))
        }
        ImageCommand::Import { file } => import(&store, &file),
        ImageCommand::Keygen { prefix } => keygen(&prefix),
        ImageCommand::Sign { image, key } => sign(&store, &image, &key),
        ImageCommand::Verify {
            image,
            public_keys,
            registry,
        } => verify(&store, &image, &public_keys, &registry),
    }
}

fn build(store: &Store, dir: PathBuf, tag: Option<String>) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let name = match tag {
        Some(t) => t,
        None => dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_lowercase()))
            .context("cannot name the image after the directory; give -t REF")?,
    };
    let reference = Reference::parse(&name)?;
    // One directory holds the headers, objects and compiler messages; it is removed when the
    // build ends, also when SIGTERM or SIGINT ends it (the signal cancels the build, and
    // `work` is dropped before ig exits with 128 + the signal).
    let cancel = cancel_on_signals().context("installing the SIGTERM and SIGINT handlers")?;
    let work = tempfile::Builder::new()
        .prefix("ig-build-")
        .tempdir()
        .context("creating the build directory")?;
    let include = work.path().join("include");
    ig::builtin::write_headers(&include).context("writing the gadget headers")?;
    let toolchain =
        Toolchain::from_env(include, work.path().to_path_buf()).with_cancel(cancel.clone());
    let built = match toolchain.build(&dir) {
        Err(GadgetError::Interrupted(sig)) => return Ok(interrupted(work, sig)),
        other => other.with_context(|| format!("building {}", dir.display()))?,
    };
    match cancel.load(Ordering::SeqCst) {
        0 => drop(work),
        sig => return Ok(interrupted(work, sig as i32)),
    }
    for (arch, why) in &built.skipped {
        eprintln!("ig: warning: {} not built: {why}", arch.oci_name());
    }
    let meta = &built.metadata;
    let parts = ImageParts {
        metadata_yaml: &built.metadata_yaml,
        name: if meta.name.is_empty() {
            reference.short_name()
        } else {
            &meta.name
        },
        description: &meta.description,
        url: &meta.homepage_url,
        documentation: &meta.documentation_url,
        source: &meta.source_url,
        created: created_now(),
        objects: built
            .objects
            .iter()
            .map(|(a, o)| (a.oci_name(), o.as_slice()))
            .collect(),
        extra_annotations: Vec::new(),
    };
    let desc = write_image(store, &reference, &parts)?;
    let archs: Vec<&str> = built.objects.iter().map(|(a, _)| a.oci_name()).collect();
    println!(
        "Successfully built {reference} ({}) for {}",
        desc.digest,
        archs.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// From now on SIGTERM and SIGINT set the returned flag to their number instead of ending
/// ig, so a build can stop its compiler and remove its files; a second one ends ig at once.
fn cancel_on_signals() -> std::io::Result<Arc<AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let signal = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        // Registered first, so it sees `armed` as the previous signal left it.
        flag::register_conditional_default(sig, Arc::clone(&armed))?;
        flag::register_usize(sig, Arc::clone(&signal), sig as usize)?;
        flag::register(sig, Arc::clone(&armed))?;
    }
    Ok(signal)
}

/// Removes the build directory and gives the exit code of a process the signal ended.
fn interrupted(work: tempfile::TempDir, sig: i32) -> ExitCode {
    let dir = work.path().display().to_string();
    if let Err(e) = work.close() {
        eprintln!("ig: cannot remove the build directory {dir}: {e}");
    }
    eprintln!("ig: build interrupted by signal {sig}");
    ExitCode::from(128u8.saturating_add(sig as u8))
}

fn list(store: &Store, no_trunc: bool) -> anyhow::Result<ExitCode> {
    let mut table = print::table(&["REPOSITORY", "TAG", "DIGEST", "CREATED"]);
    let mut rows = store.tags()?;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (reference, desc) in rows {
        let (repo, tag) = match reference.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (reference.clone(), String::new()),
        };
        if is_signature_tag(&tag) {
            continue;
        }
        let digest = desc.digest.trim_start_matches("sha256:");
        let digest = if no_trunc {
            digest.to_string()
        } else {
            digest.chars().take(12).collect()
        };
        let created = created_of(store, &desc).unwrap_or_default();
        print::row(&mut table, [repo, tag, digest, created]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}

fn created_of(store: &Store, desc: &ig::oci::types::Descriptor) -> Option<String> {
    let bytes = store.blob(&desc.digest).ok()?;
    let index: ig::oci::types::Index = serde_json::from_slice(&bytes).ok()?;
    index.annotations.get(ANNOTATION_CREATED).cloned()
}

fn host_arch() -> &'static str {
    ig::gadget::build::Arch::host()
        .map(|a| a.oci_name())
        .unwrap_or("amd64")
}

fn inspect(store: &Store, image: &str, output: &str) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(image)?;
    ig::builtin::seed_if_builtin(store, &reference)?;
    let img = read_gadget(store, &reference, host_arch())?;
    let metadata = Metadata::parse(&img.metadata_yaml)?;
    let spec = GadgetSpec::analyze(&img.object, metadata)?;
    let params: Vec<serde_json::Value> = spec
        .params
        .iter()
        .map(|p| {
            serde_json::json!({"key": p.key, "variable": p.var, "default": p.default,
                               "description": p.description, "type": format!("{:?}", p.ty)})
        })
        .collect();
    let fields_json = |schema: &ig::event::Schema| -> Vec<serde_json::Value> {
        schema
            .fields
            .iter()
            .map(|f| serde_json::json!({"name": f.name, "description": f.description, "hidden": f.hidden}))
            .collect()
    };
    let tracers: Vec<serde_json::Value> = spec
        .tracers
        .iter()
        .map(|t| {
            let (schema, _, _) = ig::run::schema_for(t, &spec.metadata);
            serde_json::json!({"name": t.name, "map": t.map, "struct": t.layout.struct_name, "fields": fields_json(&schema)})
        })
        .collect();
    let arrays = array_sources(&spec);
    let arrays_json: Vec<serde_json::Value> = arrays
        .iter()
        .map(|a| {
            serde_json::json!({"name": a.name, "kind": a.kind, "map": a.map,
                               "programs": a.programs, "struct": a.struct_name,
                               "fields": fields_json(&a.schema)})
        })
        .collect();
    let programs: Vec<serde_json::Value> = spec
        .programs
        .iter()
        .map(|p| serde_json::json!({"name": p.name, "section": p.section}))
        .collect();
    let doc = serde_json::json!({
        "reference": img.reference,
        "digest": img.index_digest,
        "manifestDigest": img.manifest_digest,
        "created": img.created,
        "name": spec.metadata.name,
        "description": spec.metadata.description,
        "params": params,
        "tracers": tracers,
        "arrays": arrays_json,
        "programs": programs,
        "maps": spec.maps,
    });
    if output == "json" {
        println!("{}", ig::output::json_string(&doc, true)?);
        return Ok(ExitCode::SUCCESS);
    }
    let esc = print::escape;
    println!("Reference:   {}", esc(&img.reference));
    println!("Digest:      {}", esc(&img.index_digest));
    println!("Name:        {}", esc(&spec.metadata.name));
    println!("Description: {}", esc(&spec.metadata.description));
    if let Some(c) = &img.created {
        println!("Created:     {}", esc(c));
    }
    let mut t = print::table(&["PARAM", "DEFAULT", "DESCRIPTION"]);
    for p in &spec.params {
        print::row(
            &mut t,
            [
                format!("--{}", p.key),
                p.default.clone(),
                p.description.clone(),
            ],
        );
    }
    println!("\n{t}");
    for tracer in &spec.tracers {
        let (schema, _, _) = ig::run::schema_for(tracer, &spec.metadata);
        println!(
            "\nTracer {} (map {}, struct {}):",
            esc(&tracer.name),
            esc(&tracer.map),
            esc(&tracer.layout.struct_name)
        );
        let mut t = print::table(&["FIELD", "SHOWN", "DESCRIPTION"]);
        for f in &schema.fields {
            print::row(
                &mut t,
                [
                    f.name.clone(),
                    (!f.hidden).to_string(),
                    f.description.clone(),
                ],
            );
        }
        println!("{t}");
    }
    for a in &arrays {
        let source = match a.kind {
            "map iterator" => format!("map {}", esc(&a.map)),
            _ => format!("programs {}", esc(&a.programs.join(", "))),
        };
        println!(
            "\n{} {} ({source}, struct {}; one array of rows per read):",
            if a.kind == "map iterator" {
                "Map iterator"
            } else {
                "BPF iterator"
            },
            esc(&a.name),
            esc(&a.struct_name)
        );
        let mut t = print::table(&["FIELD", "SHOWN", "DESCRIPTION"]);
        for f in &a.schema.fields {
            print::row(
                &mut t,
                [
                    f.name.clone(),
                    (!f.hidden).to_string(),
                    f.description.clone(),
                ],
            );
        }
        println!("{t}");
    }
    println!("\nPrograms:");
    for p in &spec.programs {
        println!("  {} ({})", esc(&p.name), esc(&p.section));
    }
    println!("\nMaps:");
    for m in &spec.maps {
        println!("  {}", esc(m));
    }
    Ok(ExitCode::SUCCESS)
}

/// An array data source (map or BPF iterator) as `ig image inspect` shows it.
struct ArraySource {
    name: String,
    /// "map iterator" | "BPF iterator"
    kind: &'static str,
    /// A map iterator's map; empty for a BPF iterator.
    map: String,
    /// A BPF iterator's programs as `NAME (iter/KIND)`; empty for a map iterator.
    programs: Vec<String>,
    struct_name: String,
    /// The fields as a run shows them (enriched ones included).
    schema: ig::event::Schema,
}

fn array_sources(spec: &GadgetSpec) -> Vec<ArraySource> {
    let maps = spec.map_iters.iter().map(|m| ArraySource {
        name: m.name.clone(),
        kind: "map iterator",
        map: m.map.clone(),
        programs: Vec::new(),
        struct_name: m.layout.struct_name.clone(),
        schema: ig::run::array_schema_for(&m.as_tracer(), false, &spec.metadata).0,
    });
    let iters = spec.iters.iter().map(|i| ArraySource {
        name: i.name.clone(),
        kind: "BPF iterator",
        map: String::new(),
        programs: i
            .programs
            .iter()
            .map(|(p, k)| format!("{p} (iter/{})", k.as_str()))
            .collect(),
        struct_name: i.layout.struct_name.clone(),
        schema: ig::run::array_schema_for(&i.as_tracer(), i.per_netns(), &spec.metadata).0,
    });
    maps.chain(iters).collect()
}

fn tag(store: &Store, source: &str, target: &str) -> anyhow::Result<ExitCode> {
    let src = Reference::parse(source)?;
    let dst = Reference::parse(target)?;
    ig::builtin::seed_if_builtin(store, &src)?;
    let _lock = store.lock()?;
    let desc = store
        .resolve(&src.to_string())?
        .ok_or_else(|| ig::oci::OciError::NotFound(src.to_string()))?;
    // The signature lives in the image's repository: give the new one a copy.
    let src_sig = signature_reference(&src, &desc.digest);
    let dst_sig = signature_reference(&dst, &desc.digest);
    if let Some(sig) = store.resolve(&src_sig.to_string())? {
        store.set_tag(&dst_sig.to_string(), sig)?;
    }
    store.set_tag(&dst.to_string(), desc)?;
    println!("Tagged {src} as {dst}");
    Ok(ExitCode::SUCCESS)
}

fn remove(store: &Store, images: &[String]) -> anyhow::Result<ExitCode> {
    let mut missing = Vec::new();
    let _lock = store.lock()?;
    for image in images {
        let r = Reference::parse(image)?;
        if store.remove_tag(&r.to_string())? {
            println!("Removed {r}");
        } else {
            missing.push(r.to_string());
        }
    }
    remove_orphan_signatures(store)?;
    store.gc(|s, d, keep: &mut BTreeSet<String>| reachable(s, d, keep))?;
    if !missing.is_empty() {
        bail!("not in the local store: {}", missing.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Drops signature tags whose image no tag of their repository points at any more. Call with
/// the lock held.
fn remove_orphan_signatures(store: &Store) -> anyhow::Result<()> {
    let tags = store.tags()?;
    let mut live = BTreeSet::new();
    let mut sigs = Vec::new();
    for (name, desc) in &tags {
        let Ok(r) = Reference::parse(name) else {
            continue;
        };
        if is_signature_tag(&r.tag) {
            sigs.push((name.clone(), r));
        } else {
            live.insert(signature_reference(&r, &desc.digest).to_string());
        }
    }
    for (name, _) in sigs {
        if !live.contains(&name) {
            store.remove_tag(&name)?;
        }
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn push(store: &Store, image: &str, registry: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(image)?;
    let opts = registry.options();
    let pushed = block_on(ig::oci::transfer::push(store, &reference, &opts))??;
    let signed = if pushed.signed {
        ", with its signature"
    } else {
        ""
    };
    println!(
        "Pushed {} ({}){signed}: {} uploaded",
        pushed.reference,
        pushed.digest,
        human(pushed.uploaded)
    );
    Ok(ExitCode::SUCCESS)
}

fn pull(store: &Store, image: &str, registry: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(image)?;
    let opts = registry.options();
    let pulled = block_on(ig::oci::transfer::pull(store, &reference, &opts))??;
    let signed = if pulled.signed {
        ", signed"
    } else {
        ", unsigned"
    };
    println!(
        "Pulled {} ({}) for {}{signed}: {} downloaded",
        pulled.reference,
        pulled.descriptor.digest,
        if pulled.platforms.is_empty() {
            "-".to_string()
        } else {
            pulled.platforms.join(", ")
        },
        human(pulled.downloaded)
    );
    Ok(ExitCode::SUCCESS)
}

fn export(store: &Store, images: &[String], file: &Path) -> anyhow::Result<ExitCode> {
    let mut references = Vec::new();
    for image in images {
        let r = Reference::parse(image)?;
        ig::builtin::seed_if_builtin(store, &r)?;
        references.push(r);
    }
    let written = ig::oci::archive::export_to(store, &references, file)?;
    if file != Path::new("-") {
        let images = written.iter().filter(|n| !n.ends_with(".sig")).count();
        eprintln!(
            "Exported {images} image(s) ({} tags with signatures) to {}",
            written.len(),
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn import(store: &Store, file: &Path) -> anyhow::Result<ExitCode> {
    let tags = ig::oci::archive::import_from(store, file)?;
    for t in &tags {
        let is_sig = Reference::parse(t)
            .map(|r| is_signature_tag(&r.tag))
            .unwrap_or(false);
        if !is_sig {
            println!("Imported {t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(prefix: &str) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key_path = PathBuf::from(format!("{prefix}.key"));
    let pub_path = PathBuf::from(format!("{prefix}.pub"));
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!("{} exists; not overwriting it", p.display());
        }
    }
    let key = PrivateKey::generate();
    let public = key.public_key(&pub_path.display().to_string()).to_pem()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("creating {}", key_path.display()))?;
    f.write_all(key.to_pem()?.as_bytes())
        .with_context(|| format!("writing {}", key_path.display()))?;
    std::fs::write(&pub_path, public).with_context(|| format!("writing {}", pub_path.display()))?;
    println!("Private key written to {}", key_path.display());
    println!("Public key written to {}", pub_path.display());
    Ok(ExitCode::SUCCESS)
}

fn sign(store: &Store, image: &str, key: &Path) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(image)?;
    ig::builtin::seed_if_builtin(store, &reference)?;
    let key = PrivateKey::load(key)?;
    let signed = ig::oci::sign::sign(store, &reference, &key)?;
    let note = if signed.added {
        ""
    } else {
        " (already signed with this key)"
    };
    println!(
        "Signed {reference} ({}){note}: signature stored as {}",
        signed.digest, signed.signature_reference
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(
    store: &Store,
    image: &str,
    keys: &[PathBuf],
    registry: &RegistryArgs,
) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(image)?;
    let public_keys = ig::oci::verify::load_public_keys(keys)?;
    ig::builtin::seed_if_builtin(store, &reference)?;
    let opts = registry.options();
    block_on(ig::oci::transfer::ensure_local(
        store,
        &reference,
        PullPolicy::Missing,
        &opts,
    ))??;
    let verified = ig::oci::verify::verify(store, &reference, &public_keys)?;
    println!(
        "Verified {} ({}) with {}",
        verified.reference, verified.digest, verified.key
    );
    Ok(ExitCode::SUCCESS)
}
