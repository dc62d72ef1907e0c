"""A second OCI client for tests/oras_interop.rs: the ORAS Python SDK (PyPI `oras`).

  oras-client.py pull HOST REPO TAG ARCH OUTDIR
      Resolves TAG (an image index: the manifest for linux/ARCH; or a lone manifest), pulls its
      layers with the SDK's `pull` and its config with `download_blob` into OUTDIR, and prints a
      JSON summary: media types, artifactType, each blob's declared digest and the sha256 of the
      bytes received.
  oras-client.py push HOST REPO TAG CONFIG LAYER [KEY=VALUE...]
      Pushes a gadget image as the SDK lays it out (one manifest, no index): CONFIG as the
      gadget config (application/vnd.gadget.config.v1+yaml), LAYER as the eBPF program
      (application/vnd.gadget.ebpf.program.v1+binary), KEY=VALUE as manifest annotations.
      Prints the pushed manifest's digest.
  oras-client.py push-artifact HOST REPO TAG FILE MEDIA_TYPE
      Pushes FILE as a plain ORAS artifact (the SDK's default config), not a gadget.

Plain HTTP (the test registries listen on 127.0.0.1 without TLS).
"""

import hashlib
import json
import os
import sys

import oras.client

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.gadget.config.v1+yaml"
EBPF = "application/vnd.gadget.ebpf.program.v1+binary"


def sha256_of(path):
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def pull(host, repo, tag, arch, outdir):
    client = oras.client.OrasClient(hostname=host, insecure=True)
    top = client.get_manifest(f"{host}/{repo}:{tag}", allowed_media_type=[INDEX, MANIFEST])
    summary = {"top_media_type": top.get("mediaType")}
    target = f"{host}/{repo}:{tag}"
    if top.get("mediaType") == INDEX:
        chosen = [
            m
            for m in top.get("manifests", [])
            if (m.get("platform") or {}).get("architecture") == arch
            and (m.get("platform") or {}).get("os") == "linux"
        ]
        if not chosen:
            sys.exit(f"no linux/{arch} manifest in the index: {json.dumps(top)}")
        summary["platforms"] = [
            (m.get("platform") or {}).get("architecture") for m in top["manifests"]
        ]
        target = f"{host}/{repo}@{chosen[0]['digest']}"
        summary["manifest_digest"] = chosen[0]["digest"]
    manifest = client.get_manifest(target)
    summary["manifest_media_type"] = manifest.get("mediaType")
    summary["artifact_type"] = manifest.get("artifactType")
    summary["annotations"] = manifest.get("annotations") or {}
    files = client.pull(target=target, outdir=outdir)
    layers = []
    for layer, path in zip(manifest.get("layers", []), files):
        layers.append(
            {
                "media_type": layer["mediaType"],
                "digest": layer["digest"],
                "size": layer["size"],
                "path": path,
                "received": sha256_of(path),
            }
        )
    summary["layers"] = layers
    config = manifest["config"]
    config_path = os.path.join(outdir, "config.blob")
    client.download_blob(target, config["digest"], config_path)
    summary["config"] = {
        "media_type": config["mediaType"],
        "digest": config["digest"],
        "path": config_path,
        "received": sha256_of(config_path),
    }
    print(json.dumps(summary))


def push(host, repo, tag, config, layer, annotations):
    client = oras.client.OrasClient(hostname=host, insecure=True)
    response = client.push(
        target=f"{host}/{repo}:{tag}",
        files=[f"{layer}:{EBPF}"],
        manifest_config=f"{config}:{CONFIG}",
        manifest_annotations=dict(a.split("=", 1) for a in annotations),
        disable_path_validation=True,
        quiet=True,
    )
    print(response.headers.get("Docker-Content-Digest", ""))


def push_artifact(host, repo, tag, path, media_type):
    client = oras.client.OrasClient(hostname=host, insecure=True)
    response = client.push(
        target=f"{host}/{repo}:{tag}",
        files=[f"{path}:{media_type}"],
        disable_path_validation=True,
        quiet=True,
    )
    print(response.headers.get("Docker-Content-Digest", ""))


def main():
    if len(sys.argv) >= 7 and sys.argv[1] == "pull":
        pull(*sys.argv[2:7])
    elif len(sys.argv) >= 7 and sys.argv[1] == "push":
        push(*sys.argv[2:7], sys.argv[7:])
    elif len(sys.argv) == 7 and sys.argv[1] == "push-artifact":
        push_artifact(*sys.argv[2:7])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
