use std::path::PathBuf;

/// Errors of the gadget module: reading, validating, building and running a gadget object.
#[derive(Debug, thiserror::Error)]
pub enum GadgetError {
    #[error("invalid BTF: {0}")]
    Btf(String),
    #[error("invalid BPF object: {0}")]
    Elf(String),
    #[error("invalid gadget.yaml: {0}")]
    Metadata(String),
    #[error("invalid build.yaml: {0}")]
    BuildFile(String),
    #[error("the BPF program: {0}")]
    Program(String),
    #[error("gadget.yaml declares parameter `{0}`, but the BPF object has no `const volatile` global of that name marked with GADGET_PARAM")]
    UnknownParam(String),
    #[error("the BPF object declares no tracer (GADGET_TRACER) and no known gadget map")]
    NoTracer,
    #[error("tracer `{tracer}`: {reason}")]
    Tracer { tracer: String, reason: String },
    #[error("recorder `{recorder}`: {reason}")]
    Recorder { recorder: String, reason: String },
    #[error("parameter key {key:?}: {reason}")]
    ParamKey { key: String, reason: String },
    #[error("gadget.yaml: defaultValue {value:?} of parameter `{key}` is not valid: {reason}")]
    ParamDefault {
        key: String,
        value: String,
        reason: String,
    },
    #[error("invalid value {value:?} for --{flag}: {reason}")]
    ParamValue {
        flag: String,
        value: String,
        reason: String,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("compiling {source_file} for {arch} failed:\n{stderr}")]
    Compile {
        source_file: PathBuf,
        arch: String,
        stderr: String,
    },
    #[error("cannot run {tool}: {reason}")]
    Tool { tool: String, reason: String },
    #[error("loading the BPF object into the kernel failed: {0}")]
    Load(String),
    #[error("attaching program `{program}` ({section}) failed: {reason}")]
    Attach {
        program: String,
        section: String,
        reason: String,
    },
    #[error("BPF map `{map}`: {reason}")]
    Map { map: String, reason: String },
    #[error("interrupted by signal {0}")]
    Interrupted(i32),
}
