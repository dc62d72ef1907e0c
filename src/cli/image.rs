//! `ig image build|list|inspect|tag|remove`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use comfy_table::{presets::NOTHING, Table};

use ig::gadget::build::Toolchain;
use ig::gadget::{GadgetSpec, Metadata};
use ig::oci::image::{created_now, reachable, read_gadget, write_image, ImageParts};
use ig::oci::types::ANNOTATION_CREATED;
use ig::oci::{Reference, Store};

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
}

pub fn main(cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    let store = super::open_store()?;
    match cmd {
        ImageCommand::Build { dir, tag } => build(&store, dir, tag),
        ImageCommand::List { no_trunc } => list(&store, no_trunc),
        ImageCommand::Inspect { image, output } => inspect(&store, &image, &output),
        ImageCommand::Tag { source, target } => tag(&store, &source, &target),
        ImageCommand::Remove { images } => remove(&store, &images),
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
    let headers = tempfile::tempdir().context("creating a directory for the gadget headers")?;
    ig::builtin::write_headers(headers.path()).context("writing the gadget headers")?;
    let toolchain = Toolchain::from_env(headers.path().to_path_buf());
    let built = toolchain.build(&dir).with_context(|| format!("building {}", dir.display()))?;
    for (arch, why) in &built.skipped {
        eprintln!("ig: warning: {} not built: {why}", arch.oci_name());
    }
    let meta = &built.metadata;
    let parts = ImageParts {
        metadata_yaml: &built.metadata_yaml,
        name: if meta.name.is_empty() { reference.short_name() } else { &meta.name },
        description: &meta.description,
        url: &meta.homepage_url,
        documentation: &meta.documentation_url,
        source: &meta.source_url,
        created: created_now(),
        objects: built.objects.iter().map(|(a, o)| (a.oci_name(), o.as_slice())).collect(),
    };
    let desc = write_image(store, &reference, &parts)?;
    let archs: Vec<&str> = built.objects.iter().map(|(a, _)| a.oci_name()).collect();
    println!("Successfully built {reference} ({}) for {}", desc.digest, archs.join(", "));
    Ok(ExitCode::SUCCESS)
}

fn list(store: &Store, no_trunc: bool) -> anyhow::Result<ExitCode> {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header(["REPOSITORY", "TAG", "DIGEST", "CREATED"]);
    let mut rows = store.tags()?;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (reference, desc) in rows {
        let (repo, tag) = match reference.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (reference.clone(), String::new()),
        };
        let digest = desc.digest.trim_start_matches("sha256:");
        let digest = if no_trunc { digest.to_string() } else { digest.chars().take(12).collect() };
        let created = created_of(store, &desc).unwrap_or_default();
        table.add_row([repo, tag, digest, created]);
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
    ig::gadget::build::Arch::host().map(|a| a.oci_name()).unwrap_or("amd64")
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
    let tracers: Vec<serde_json::Value> = spec
        .tracers
        .iter()
        .map(|t| {
            let (schema, _, _) = ig::run::schema_for(t, &spec.metadata);
            let fields: Vec<serde_json::Value> = schema
                .fields
                .iter()
                .map(|f| serde_json::json!({"name": f.name, "description": f.description, "hidden": f.hidden}))
                .collect();
            serde_json::json!({"name": t.name, "map": t.map, "struct": t.layout.struct_name, "fields": fields})
        })
        .collect();
    let programs: Vec<serde_json::Value> =
        spec.programs.iter().map(|p| serde_json::json!({"name": p.name, "section": p.section})).collect();
    let doc = serde_json::json!({
        "reference": img.reference,
        "digest": img.index_digest,
        "manifestDigest": img.manifest_digest,
        "created": img.created,
        "name": spec.metadata.name,
        "description": spec.metadata.description,
        "params": params,
        "tracers": tracers,
        "programs": programs,
        "maps": spec.maps,
    });
    if output == "json" {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Reference:   {}", img.reference);
    println!("Digest:      {}", img.index_digest);
    println!("Name:        {}", spec.metadata.name);
    println!("Description: {}", spec.metadata.description);
    if let Some(c) = &img.created {
        println!("Created:     {c}");
    }
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(["PARAM", "DEFAULT", "DESCRIPTION"]);
    for p in &spec.params {
        t.add_row([format!("--{}", p.key), p.default.clone(), p.description.clone()]);
    }
    println!("\n{t}");
    for tracer in &spec.tracers {
        let (schema, _, _) = ig::run::schema_for(tracer, &spec.metadata);
        println!("\nTracer {} (map {}, struct {}):", tracer.name, tracer.map, tracer.layout.struct_name);
        let mut t = Table::new();
        t.load_preset(NOTHING).set_header(["FIELD", "SHOWN", "DESCRIPTION"]);
        for f in &schema.fields {
            t.add_row([f.name.clone(), (!f.hidden).to_string(), f.description.clone()]);
        }
        println!("{t}");
    }
    println!("\nPrograms:");
    for p in &spec.programs {
        println!("  {} ({})", p.name, p.section);
    }
    println!("\nMaps:");
    for m in &spec.maps {
        println!("  {m}");
    }
    Ok(ExitCode::SUCCESS)
}

fn tag(store: &Store, source: &str, target: &str) -> anyhow::Result<ExitCode> {
    let src = Reference::parse(source)?;
    let dst = Reference::parse(target)?;
    ig::builtin::seed_if_builtin(store, &src)?;
    let _lock = store.lock()?;
    let desc = store.resolve(&src.to_string())?.ok_or_else(|| ig::oci::OciError::NotFound(src.to_string()))?;
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
    store.gc(|s, d, keep: &mut BTreeSet<String>| reachable(s, d, keep))?;
    if !missing.is_empty() {
        bail!("not in the local store: {}", missing.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
