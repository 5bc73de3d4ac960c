"""Pretrained files that metrics and losses need, and how to get them offline.

rFID (torch-fidelity's ``inception-v3-compat``, as used for the GSQ paper's
numbers, arXiv 2412.02632) and LPIPS (Zhang et al. 2018, arXiv 1801.03924)
rest on pretrained networks that the libraries download on first use into
``$TORCH_HOME/hub/checkpoints``.  qbench never lets them download implicitly:
a metric checks the cache first and, if the file is missing, says which file
and how to get it.  ``qbench weights fetch`` downloads through the libraries'
own downloaders; ``qbench weights install FILE`` copies a file brought from
another machine after checking its checksum.

Checksums: torch hub names files ``NAME-<first 8 hex digits of sha256>.pth``
and checks that prefix when it downloads (``check_hash``); torchvision's and
torch-fidelity's files follow that convention.  Their full sha256 values are
not published in the libraries' metadata, so qbench verifies the 8-digit
prefix, and reports which kind of check it made.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from qbench.errors import ConfigError, MetricUnavailable, suggest
from qbench.platform import plugins
from qbench.platform.registry import load_factory
from qbench.specs import WeightsSpec

# LPIPS backbone (the ``net`` of lpips.LPIPS) -> the weights file it needs; the
# one table for the LPIPS metric and the LPIPS loss
LPIPS_NETWORKS = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet"}
# the smallest square image each LPIPS backbone takes: below it a pooling layer's output is empty and
# torch fails with "Output size is too small" (measured with lpips 0.1.4, every size from 8 to 40 pixels)
LPIPS_MIN_IMAGE_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}


def lpips_size_problem(net: str, height: int, width: int, option: str = "metrics.lpips.net") -> str:
    """Why LPIPS with backbone ``net`` cannot score ``height`` x ``width`` images, or "".

    ``option`` is the setting that chooses the backbone (``loss.lpips_net`` for the loss).
    """
    smallest = LPIPS_MIN_IMAGE_SIZE.get(net, 0)
    if min(height, width) >= smallest:
        return ""
    other = [f"{option}={n} (>= {s})" for n, s in LPIPS_MIN_IMAGE_SIZE.items() if s <= min(height, width)]
    what = "the LPIPS loss" if option.startswith("loss.") else "lpips"
    return (f"{what} ({option}={net}) needs images of at least {smallest}x{smallest}: its backbone's feature maps "
            f"vanish below that; got {height}x{width}: use data.image_size >= {smallest}"
            + (f", or {' or '.join(other)}" if other else ""))


def catalogue() -> dict[str, WeightsSpec]:
    """Every pretrained file the installed plugins declare (``qbench_register_weights``), by name."""

    return {spec.name: spec for spec in plugins.registries(strict=False).weights.list()}


def path_of(spec: WeightsSpec) -> Path:
    return checkpoints_dir() / spec.filename


def fetch_url(spec: WeightsSpec) -> None:
    """Download ``spec.url`` into the hub cache, as torch-fidelity and torchvision themselves do."""
    # deferred: loads torch only when this runs
    import torch.hub

    torch.hub.load_state_dict_from_url(spec.url, map_location="cpu", check_hash=bool(spec.sha256_prefix),
                                       file_name=spec.filename)


# The DINOv2 feature discriminator of the paper recipes loads timm's
# ``vit_small_patch14_reg4_dinov2.lvd142m``, whose weights come from the
# Hugging Face hub (repo below, file model.safetensors) into
# ``$HF_HOME/hub/models--timm--.../snapshots/<revision>/``.  The hub stores
# LFS files under their own sha256 (blobs/<sha256>), so the cached copy's
# integrity can be checked against its blob name, but no revision is pinned.
DINOV2_MODEL = "vit_small_patch14_reg4_dinov2.lvd142m"
DINOV2_REPO = "timm/vit_small_patch14_reg4_dinov2.lvd142m"
DINOV2_FILE = "model.safetensors"


def torch_home() -> Path:
    """``$TORCH_HOME`` as torch resolves it (``~/.cache/torch`` by default)."""
    if "torch" in sys.modules:  # honours torch.hub.set_dir when someone called it
        # deferred: loads torch only when this runs
        import torch.hub

        return Path(torch.hub.get_dir()).parent
    default = os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", default)))


def checkpoints_dir() -> Path:
    if "torch" in sys.modules:
        # deferred: loads torch only when this runs
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    return torch_home() / "hub" / "checkpoints"


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered per (path, size, mtime) within the process."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def _check(entry: WeightsSpec, sha256: str) -> str:
    if not entry.sha256_prefix:
        return "unverified"
    return "ok (sha256 prefix)" if sha256.startswith(entry.sha256_prefix) else "mismatch"


def get(name: str) -> WeightsSpec:
    known = catalogue()
    try:
        return known[name]
    except KeyError:
        raise ConfigError(f"unknown weights {name!r}{suggest(name, known)}; known: {', '.join(sorted(known))}") from None


def describe(name: str) -> dict[str, Any]:
    """Where weights ``name`` live, whether present, and the checksum verdict."""
    entry = get(name)
    path = path_of(entry)
    row: dict[str, Any] = {
        "name": name,
        "file": entry.filename,
        "path": str(path),
        "used_by": entry.used_by,
        "url": entry.url,
        "present": path.is_file(),
        "sha256": "",
        "check": "missing",
    }
    if row["present"]:
        row["sha256"] = file_sha256(path)
        row["check"] = _check(entry, row["sha256"])
    return row


def _dinov2_status() -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": "dinov2",
        "file": f"{DINOV2_REPO}/{DINOV2_FILE}",
        "path": "",
        "used_by": "DINOv2 feature discriminator (paper GAN recipe)",
        "url": f"https://huggingface.co/{DINOV2_REPO}",
        "present": False,
        "sha256": "",
        "check": "missing",
    }
    try:
        # deferred: loads huggingface_hub only when this runs
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        row["check"] = "unknown (huggingface_hub not installed)"
        return row
    found = try_to_load_from_cache(DINOV2_REPO, DINOV2_FILE)
    if isinstance(found, str) and os.path.isfile(found):
        row.update(path=found, present=True, sha256=file_sha256(found))
        blob = Path(os.path.realpath(found)).name  # the hub names LFS blobs by their sha256
        row["check"] = "ok (hub blob sha256)" if blob == row["sha256"] else "mismatch"
    return row


def status() -> list[dict[str, Any]]:
    """One row per pretrained file: name, path, present, sha256 and the check made."""
    return [describe(name) for name in catalogue()] + [_dinov2_status()]


def shown_path(path: Path) -> str:
    """``path`` with the home directory written as ``~``, for messages that get published."""
    try:
        return "~/" + str(Path(path).relative_to(Path.home()))
    except ValueError:
        return str(path)


def require(name: str, metric: str) -> Path:
    """The cached file for ``name``, or ``MetricUnavailable`` saying how to get it.

    Never touches the network.  A file whose checksum does not match is still
    used (the libraries would load it too) but the verdict is in ``status``
    and in each result's protocol.
    """
    entry = get(name)
    path = path_of(entry)
    if not path.is_file():  # the reason lands in published records: no user's home directory in it
        raise MetricUnavailable(
            f"{metric}: pretrained weights {entry.filename} not found in {shown_path(path.parent)}; "
            f"run `qbench weights fetch {name}` with internet access, or copy the file from "
            f"{entry.url} and run `qbench weights install FILE`"
        )
    return path


def fetch(names: list[str] | None = None) -> list[dict[str, Any]]:
    """Download missing weights through each spec's fetcher (needs internet).

    A file that cannot be downloaded (no network, a proxy, a server error) is
    one line of the ``ConfigError`` raised after trying every target; the
    files that did download stay installed.
    """
    known = catalogue()
    targets = list(dict.fromkeys(names)) if names else [*known, "dinov2"]
    for name in targets:
        if name != "dinov2":
            get(name)  # unknown names before any download
    failures = []
    for name in targets:
        try:
            _download(name)
        except Exception as exc:  # urllib, requests and hub errors alike: the reason in one line
            lines = str(exc).strip().splitlines()
            reason = f"{type(exc).__name__}: {lines[-1] if lines else ''}".strip()
            where = f"https://huggingface.co/{DINOV2_REPO}" if name == "dinov2" else get(name).url
            failures.append(f"cannot download {name} from {where} ({reason}); without internet, copy the file "
                            "from a machine that has it and run `qbench weights install FILE`")
    if failures:
        raise ConfigError("\n".join(failures))
    return [row for row in status() if row["name"] in targets]


def _download(name: str) -> None:
    if name == "dinov2":
        # deferred: loads timm only when this runs
        import timm

        timm.create_model(DINOV2_MODEL, pretrained=True)
        return
    entry = get(name)
    if not path_of(entry).is_file():
        load_factory(entry)(entry)


def identify(file_path: str | os.PathLike) -> WeightsSpec:
    """Which known weights file ``file_path`` is: by name, else by checksum."""
    path = Path(file_path)
    if path.is_dir():
        example = next(iter(catalogue().values()), None)
        raise ConfigError(f"{path} is a folder; give the weights file itself"
                          + (f", e.g. qbench weights install {path / example.filename}" if example else ""))
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist")
    known = catalogue()
    by_name = [w for w in known.values() if w.filename == path.name]
    if by_name:
        return by_name[0]
    sha = file_sha256(path)
    by_hash = [w for w in known.values() if w.sha256_prefix and sha.startswith(w.sha256_prefix)]
    if by_hash:
        return by_hash[0]
    raise ConfigError(
        f"{path.name} is not a known weights file (sha256 {sha[:12]}...); expected one of: "
        + ", ".join(w.filename for w in known.values())
    )


def install(file_path: str | os.PathLike) -> Path:
    """Copy a user-supplied weights file into the torch cache after checking it."""
    entry = identify(file_path)
    sha = file_sha256(file_path)
    if _check(entry, sha) == "mismatch":
        raise ConfigError(
            f"{Path(file_path).name} has sha256 {sha[:12]}..., but {entry.filename} must start with "
            f"{entry.sha256_prefix}: the file is corrupt or a different file; download it again from {entry.url}"
        )
    target = path_of(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    shutil.copyfile(file_path, tmp)
    os.replace(tmp, target)  # atomic: a half-copied file never has the real name
    return target
