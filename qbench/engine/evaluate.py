"""Score a tokenizer on an evaluation set with the pinned metric protocol.

One pass over the data: each batch of uint8 originals is scaled to [-1, 1],
encoded and decoded (timed separately, float32, no autocast, no gradients),
the reconstruction is rounded back to uint8 (the pixels a saved PNG would
hold) and every metric is updated.  Under DDP each rank takes every
world-size-th image and the metric states are summed across ranks at the
end, so the numbers equal a single-process evaluation.  The protocol is
described in docs/metrics.md (rFID and LPIPS as in GSQ, arXiv 2412.02632).

A metric whose weights are missing is "unavailable" with the reason; a
metric raising during update or compute is "failed" with the reason; the
others go on.  Neither is ever reported as a number.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from qbench.engine import distributed
from qbench.errors import ConfigError, MetricUnavailable
from qbench.metric import EvalBatch, EvalContext, Metric, reduce_states
from qbench.platform.plugins import Registries, given_or_built
from qbench.platform.progress import progress_bar
from qbench.platform.strict_json import is_finite_number
from qbench.rundir import directory as run_results


def _result(status: str, spec=None, **fields: Any) -> dict[str, Any]:
    return {
        "status": status,
        "value": fields.get("value"),
        "extras": fields.get("extras", {}),
        "reason": fields.get("reason", ""),
        "protocol": fields.get("protocol", {}),
        "higher_is_better": getattr(spec, "higher_is_better", None),
        "unit": getattr(spec, "unit", ""),
        "heading": getattr(spec, "heading", ""),
        "format": getattr(spec, "format", ""),
    }


def _build(regs: Registries, names, options) -> tuple[dict[str, Metric], dict[str, dict]]:
    """Metric instances by name, and results for those that could not be built."""
    metrics, results = {}, {}
    for name in names:
        spec = regs.metrics.get(name)  # unknown names are user errors, raised here
        given = options.get(name) or {}
        try:
            metrics[name] = regs.metrics.create(name, **given)
        except MetricUnavailable as exc:
            results[name] = _result("unavailable", spec, reason=str(exc), protocol=_given(given))
        except ConfigError:
            raise
        except Exception as exc:
            results[name] = _result("failed", spec, reason=f"construction: {type(exc).__name__}: {exc}",
                                    protocol=_given(given))
    return metrics, results


def check_metrics(metric_names, regs: Registries | None = None, metric_options=None) -> dict[str, str]:
    """``{name: reason}`` for every metric that cannot run here; empty when all can.

    Builds each metric once (cheap next to training); ``qbench run
    --strict-metrics`` calls this before any training starts.
    """
    regs = given_or_built(regs)
    _, results = _build(regs, list(metric_names), metric_options or {})
    return {name: result["reason"] for name, result in results.items()}



def _image(item) -> torch.Tensor:
    image = item[0] if isinstance(item, (tuple, list)) else item
    if not (torch.is_tensor(image) and image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == 3):
        got = f"{image.dtype} {tuple(image.shape)}" if torch.is_tensor(image) else type(image).__name__
        raise ConfigError(f"evaluation items must be uint8 (3, H, W) tensors, got {got}")
    return image


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images to uint8, rounding to nearest (as a saved PNG holds them)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)



def evaluate(
    tokenizer,
    dataset,
    metric_names,
    *,
    regs: Registries | None = None,
    batch_size: int = 64,
    max_images: int = 0,
    device: str = "cpu",
    dataset_key: str = "",
    progress: bool = True,
    metric_options: dict[str, dict] | None = None,
    observers: dict[str, Metric] | None = None,
) -> dict[str, dict]:
    """Run ``tokenizer`` over ``dataset`` once and score it with ``metric_names``.

    Returns ``{name: {"status", "value", "extras", "reason", "protocol",
    "higher_is_better", "unit"}}``.  ``dataset_key`` names the evaluation set
    (dataset, split, crop size, e.g. ``"photos/val/32"``) for caching rFID's
    real statistics; ``max_images`` keeps the first N images (0: all).
    ``observers`` (name -> ``Metric``) see every batch and have their states
    summed across ranks like the metrics, but are neither computed nor
    returned: the caller reads them (the code counts sent to the loggers).
    An observer that raises is removed from ``observers``.
    """
    if batch_size < 1:
        raise ConfigError(f"eval batch_size must be >= 1, got {batch_size}")
    if max_images < 0:
        raise ConfigError(f"eval max_images must be >= 0 (0: all), got {max_images}")
    names = list(dict.fromkeys(metric_names))
    regs = given_or_built(regs)
    total = len(dataset) if not max_images else min(max_images, len(dataset))
    rank, world = distributed.rank_and_world()
    if total < world:
        raise ConfigError(f"evaluation set has {total} images, fewer than the {world} ranks")
    if total == 0:
        raise ConfigError("evaluation set is empty")
    metrics, results = _build(regs, names, metric_options or {})
    observers = observers if observers is not None else {}
    # tuple keys: an observer never shadows a metric of the same name
    watched = {**metrics, **{("observer", k): v for k, v in observers.items()}}
    device = torch.device(device)
    context = EvalContext(dataset_key=dataset_key, num_images=total, device=str(device), tokenizer=tokenizer)
    failures: dict[str, str] = {}
    continuous = bool(getattr(tokenizer, "continuous", False))
    absent: dict[str, str] = {}  # unavailable for this tokenizer (usage of a quantizer without codes)
    for name, metric in watched.items():
        try:
            metric.begin(context)
        except MetricUnavailable as exc:
            failures[name] = absent[name] = str(exc)
        except Exception as exc:
            failures[name] = f"begin: {type(exc).__name__}: {exc}"

    indices = list(range(rank, total, world))  # no padding: every image is scored exactly once
    was_training = getattr(tokenizer, "training", False)
    if hasattr(tokenizer, "eval"):
        tokenizer.eval()
    bar = _progress(len(indices), progress and rank == 0)
    try:
        with torch.no_grad(), torch.autocast(device.type, enabled=False) if device.type in ("cpu", "cuda") else nullcontext():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                originals = torch.stack([_image(dataset[i]) for i in chunk]).to(device)
                x = originals.to(torch.float32) / 127.5 - 1.0
                _sync(device)
                t0 = time.perf_counter()
                if continuous:  # a ceiling: no codes to decode, the latent goes to the decoder
                    latent, codes = tokenizer.encode_latent(x)
                else:
                    codes = tokenizer.encode(x)
                _sync(device)
                t1 = time.perf_counter()
                x_hat = tokenizer.decode_latent(latent) if continuous else tokenizer.decode(codes)
                _sync(device)
                t2 = time.perf_counter()
                batch = EvalBatch(
                    originals=originals,
                    reconstructions=to_uint8(x_hat.float()),
                    codes=codes,
                    tokenizer=tokenizer,
                    encode_seconds=t1 - t0,
                    decode_seconds=t2 - t1,
                )
                for name, metric in watched.items():
                    if name in failures:
                        continue
                    try:
                        metric.update(batch)
                    except Exception as exc:
                        failures[name] = f"update: {type(exc).__name__}: {exc}"
                bar(len(chunk))
    finally:
        bar(None)
        if was_training:
            tokenizer.train()

    # a metric that failed on any rank is skipped on all of them, so collectives stay matched
    flags = distributed.any_rank_each(torch.tensor([1 if n in failures else 0 for n in watched], dtype=torch.int64))
    for (name, metric), failed in zip(watched.items(), flags.tolist()):
        if name not in metrics:
            _reduce_observer(observers, name[1], metric, failed)
            continue
        spec = regs.metrics.get(name)
        if name in absent:
            # the protocol is recorded all the same, so a ceiling run shares its quantizers' table
            results[name] = _result("unavailable", spec, reason=absent[name], protocol=_protocol(metric, context))
            continue
        if failed:
            reason = failures.get(name, "failed on another rank")
            results[name] = _result("failed", spec, reason=reason, protocol={**_safe_protocol(metric), **_given(
                (metric_options or {}).get(name))})
            continue
        try:
            reduce_states(metric)
            out = dict(metric.compute())
            value = float(out.pop("value"))
            protocol = _protocol(metric, context, (metric_options or {}).get(name))
            if not math.isfinite(value):  # an "ok" without a number would read as a result that is not there
                results[name] = _result("failed", spec, reason=f"compute: the value is not finite ({value})",
                                        protocol=protocol)
                continue
            results[name] = _result("ok", spec, value=value, extras=out, protocol=protocol)
        except Exception as exc:
            results[name] = _result(
                "failed", spec, reason=f"compute: {type(exc).__name__}: {exc}", protocol=_safe_protocol(metric)
            )
    return {name: results[name] for name in names}


def _reduce_observer(observers: dict[str, Metric], name: str, observer: Metric, failed: bool) -> None:
    """Sum an observer's state across ranks; drop it when it failed on any rank."""
    if not failed:
        try:
            reduce_states(observer)
            return
        except Exception:
            pass
    observers.pop(name, None)


def _given(options: dict[str, Any] | None) -> dict[str, Any]:
    return {"options": dict(sorted(options.items()))} if options else {}


def _protocol(metric: Metric, context: EvalContext, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What was measured; the recipe's ``[metrics.NAME]`` options too, when it set any (so they split tables)."""
    return {"eval_set": context.dataset_key, "num_images": context.num_images, **metric.protocol(), **_given(options)}


def _safe_protocol(metric: Metric) -> dict[str, Any]:
    try:
        return metric.protocol()
    except Exception:
        return {}


def _progress(total: int, enabled: bool):
    """A callable advancing a progress bar by n images; ``None`` closes it."""
    if not enabled:
        return lambda n: None

    bar = progress_bar(total=total, unit="img", desc="evaluate")

    def advance(n):
        bar.close() if n is None else bar.update(n)

    return advance


def rescore(run_dir, metric_names=None, *, device: str = "cpu", regs: Registries | None = None, progress: bool = True) -> dict:
    """Re-score a finished run from its checkpoint (``qbench eval RUN_DIR``).

    Loads the model with the weights the run was scored with (its recipe's
    ``eval.use_ema``), the recipe and its validation split through
    ``qbench.engine.model.load_tokenizer(run_dir)``, evaluates ``metric_names``
    (default: the recipe's), and merges the new results into the run's
    metrics.json atomically.  A good result is never replaced by a worse
    status: when a metric that was ``ok`` is now unavailable or failed here
    (weights missing on this machine), the old result is kept and the
    returned one says so.  A checkpoint that does not fit its config is a
    ``ConfigError`` and nothing is written.  Returns the new results.
    """
    # deferred: loads torch only when this runs
    from qbench.engine.model import load_tokenizer

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    directory = run_results.RunDirectory(run_dir)
    tokenizer, identity, dataset = load_tokenizer(run_dir, regs=regs)
    recipe = identity.recipe
    names = list(metric_names) if metric_names else list(recipe.eval.metrics)
    tokenizer.to(device)
    scored = evaluate(
        tokenizer,
        dataset,
        names,
        regs=regs,
        batch_size=recipe.eval.batch_size,
        max_images=recipe.eval.max_images,
        device=device,
        dataset_key=dataset_key_for(recipe),
        progress=progress,
        metric_options=recipe.metrics,
    )
    try:
        record = run_results.read_metrics(run_dir)
    except ValueError:
        record = {}  # missing or broken: the new results are all there is
    old = record.setdefault("metrics", {})
    for name, result in scored.items():
        previous = old.get(name) or {}
        previous_ok = previous.get("status") == "ok" and is_finite_number(previous.get("value"))
        if result.get("status") != "ok" and previous_ok:
            result["kept"] = f"{result.get('status')} here ({result.get('reason', '')}); the earlier result is kept"
            continue
        old[name] = result
    note = getattr(dataset, "report", lambda: "")()
    if note:
        record.setdefault("train", {})["eval_data_note"] = note
    total = len(dataset) if not recipe.eval.max_images else min(recipe.eval.max_images, len(dataset))
    record["eval"] = {**(record.get("eval") or {}), "split": recipe.eval.split, "images": int(total)}
    directory.remove_stale_temporaries()
    directory.write_metrics(record)
    return scored


def dataset_key_for(recipe, split: str | None = None) -> str:
    """The evaluation-set key of a recipe: dataset, options, split (``eval.split`` unless given) and crop size."""
    data = recipe.data
    parts = [str(getattr(data, "dataset", "?"))]
    for attr in ("root", "image_size"):
        if getattr(data, attr, None) not in (None, ""):
            parts.append(f"{attr}={getattr(data, attr)}")
    options = getattr(data, "options", None)
    if options:
        parts.append(",".join(f"{k}={options[k]}" for k in sorted(options)))
    parts.append(f"split={recipe.eval.split if split is None else split}")
    return "/".join(parts)
