"""How long each metric's update takes per image (a speed benchmark, not a test).

    python benchmarks/perf/bench_metrics.py [--size 32] [--batch 64] [--batches 4]

rFID and LPIPS are timed with random-valued networks of the real
architectures (Inception v3 of torch-fidelity, lpips AlexNet), which cost the
same as the pretrained ones; their *values* are meaningless and not printed.
"""

from __future__ import annotations

import argparse
import time

import torch

from qbench.metric import EvalBatch
from qbench_builtins.metrics import PSNR, SSIM, Bits, CodebookUsage, LPIPSMetric, Perplexity, ReconstructionFID


class _Quantizer:
    codebook_size, tokens_per_position, bits_per_position, codebook_shared = 1024, 1, 10.0, True


class _Tokenizer:
    quantizer = _Quantizer()


def random_weight_fid() -> ReconstructionFID:
    from torch_fidelity import feature_extractor_inceptionv3 as inc

    metric = ReconstructionFID.__new__(ReconstructionFID)
    original = (inc.load_state_dict_from_url, inc.FeatureExtractorInceptionV3.load_state_dict)
    inc.load_state_dict_from_url = lambda *a, **k: {}
    inc.FeatureExtractorInceptionV3.load_state_dict = lambda self, sd: None
    try:
        extractor = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).eval()
    finally:
        inc.load_state_dict_from_url, inc.FeatureExtractorInceptionV3.load_state_dict = original
    from qbench_builtins.metrics.fid import FeatureStats

    metric.extractor, metric.layer, metric.cached_real = extractor, "2048", None
    metric.real, metric.fake = FeatureStats(), FeatureStats()
    return metric


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    import lpips

    metrics = {
        "psnr": PSNR(),
        "ssim": SSIM(),
        "usage": CodebookUsage(),
        "perplexity": Perplexity(),
        "bits": Bits(),
        "lpips (random AlexNet)": LPIPSMetric.from_network(lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)),
        "rfid (random Inception, both sides)": random_weight_fid(),
    }
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.size, args.size)
    batches = [
        EvalBatch(
            torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8),
            torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8),
            torch.randint(0, 1024, (args.batch, args.size // 4, args.size // 4, 1), generator=gen),
            _Tokenizer(),
        )
        for _ in range(args.batches)
    ]
    print(f"{args.batches} batches of {args.batch} images {args.size}x{args.size}, {torch.get_num_threads()} threads")
    for name, metric in metrics.items():
        metric.update(batches[0])  # warm-up
        start = time.perf_counter()
        for batch in batches:
            metric.update(batch)
        seconds = time.perf_counter() - start
        images = args.batch * args.batches
        print(f"{name:40s} {images / seconds:10.1f} images/s")


if __name__ == "__main__":
    main()
