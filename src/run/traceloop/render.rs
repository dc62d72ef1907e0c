//! One container's history as text: the seed's strace-like lines under a `# <recorder> of …`
//! header (`# traceloop of …`), or one JSON/YAML object per syscall with the container's fields.

use std::io::Write;

use crate::containers::Container;
use crate::output::OutputMode;
use crate::traceloop::{format_line, to_json, SyscallEvent, Timebase};

fn container_json(c: Option<&Container>) -> serde_json::Map<String, serde_json::Value> {
    let mut extra = serde_json::Map::new();
    let Some(c) = c else {
        return extra;
    };
    extra.insert(
        "runtime".into(),
        serde_json::json!({
            "containerName": c.name,
            "containerId": c.id,
            "containerImageName": c.image_name,
            "runtimeName": c.runtime.as_str(),
            "containerPid": c.pid,
        }),
    );
    extra.insert(
        "k8s".into(),
        serde_json::json!({
            "namespace": c.k8s.namespace,
            "podName": c.k8s.pod_name,
            "containerName": c.k8s.container_name,
        }),
    );
    extra
}

/// How a trace's owner reads in a header: its container, or its mount namespace.
pub fn trace_owner(container: Option<&Container>, mntns: u64) -> String {
    match container {
        Some(c) => format!(
            "container {} ({} {})",
            c.name,
            c.runtime,
            &c.id[..c.id.len().min(12)]
        ),
        None => format!("mount namespace {mntns} (not a known container)"),
    }
}

/// Writes one trace of recorder `recorder` (the gadget's name for it: `traceloop`); returns the
/// number of syscalls written.
pub fn write_trace(
    out: &mut dyn Write,
    mode: OutputMode,
    recorder: &str,
    container: Option<&Container>,
    mntns: u64,
    events: &[SyscallEvent],
) -> std::io::Result<u64> {
    let base = Timebase::of(events);
    let mut written = 0;
    if mode == OutputMode::Columns {
        let who = trace_owner(container, mntns);
        writeln!(
            out,
            "# {} of {}: {} syscalls",
            crate::output::escape_control(recorder),
            crate::output::escape_control(&who),
            events.len()
        )?;
        for e in events {
            writeln!(out, "{}", format_line(e, base))?;
            written += 1;
        }
        return Ok(written);
    }
    let extra = container_json(container);
    for e in events {
        let v = to_json(e, base, &extra);
        match mode {
            OutputMode::JsonPretty => crate::output::write_json(&mut *out, &v, true)?,
            OutputMode::Yaml => {
                let text = crate::output::yaml_string(&v).map_err(std::io::Error::other)?;
                write!(out, "---\n{text}")?;
                written += 1;
                continue;
            }
            _ => crate::output::write_json(&mut *out, &v, false)?,
        }
        writeln!(out)?;
        written += 1;
    }
    Ok(written)
}
