"""The built-in plugin: registers qbench's own quantizers, backbones, metrics, datasets, loggers.

This module is the only one registered with the plugin manager and imports
no torch: every factory is a ``"module:attr"`` string imported on use.
"""

from __future__ import annotations

from qbench import BackboneSpec, DatasetSpec, LoggerSpec, MetricSpec, QuantizerSpec, RecipeSpec, WeightsSpec, hookimpl

GSQ_PAPER = "Grouped Spherical Quantization, arXiv 2412.02632"


@hookimpl
def qbench_register_quantizers():
    return [
        QuantizerSpec(
            name="gsq",
            factory="qbench_builtins.gsq:GroupedSphericalQuantizer",
            search_space="qbench_builtins.spaces:gsq",
            description="Grouped Spherical Quantization: G groups share one spherical codebook",
            defaults={"groups": 1, "codebook_size": 1024},
            paper=GSQ_PAPER,
        ),
        QuantizerSpec(
            name="vq",
            factory="qbench_builtins.vq:VectorQuantizer",
            search_space="qbench_builtins.spaces:vq",
            description="VQ-VAE baseline: uniform init, Euclidean lookup, beta 0.25",
            defaults={"codebook_size": 1024},
            paper="Neural Discrete Representation Learning, arXiv 1711.00937",
        ),
        QuantizerSpec(
            name="rvq",
            factory="qbench_builtins.rvq:ResidualVectorQuantizer",
            search_space="qbench_builtins.spaces:rvq",
            description="Residual VQ: S stages, each quantising the previous residual",
            defaults={"stages": 2, "codebook_size": 32},
            paper="SoundStream, arXiv 2107.03312",
        ),
        QuantizerSpec(
            name="fsq",
            factory="qbench_builtins.fsq:FiniteScalarQuantizer",
            search_space="qbench_builtins.spaces:fsq",
            description="Finite Scalar Quantization: bounded, rounded channels, implicit codebook",
            defaults={"levels": [8, 5, 5, 5]},
            paper="Finite Scalar Quantization, arXiv 2309.15505",
        ),
        QuantizerSpec(
            name="identity",
            factory="qbench_builtins.identity:IdentityQuantizer",
            description="The unquantized ceiling: the latent passes through, no codes, continuous rate",
            paper="the continuous-bottleneck upper bound of learned-compression ablations",
        ),
        QuantizerSpec(
            name="lfq",
            factory="qbench_builtins.lfq:LookupFreeQuantizer",
            search_space="qbench_builtins.spaces:lfq",
            description="Lookup-free quantization: one sign bit per channel, entropy penalty",
            defaults={"entropy_weight": 0.1, "commitment_weight": 0.25, "inv_temperature": 100.0},
            paper="MAGVIT-v2, Language Model Beats Diffusion, arXiv 2310.05737",
        ),
        QuantizerSpec(
            name="bsq",
            factory="qbench_builtins.bsq:BinarySphericalQuantizer",
            search_space="qbench_builtins.spaces:bsq",
            description="Binary spherical quantization: sign bits of the l2-normalised latent",
            defaults={"entropy_weight": 0.1, "commitment_weight": 0.0, "inv_temperature": 1.0},
            paper="Binary Spherical Quantization, arXiv 2406.07548",
        ),
        QuantizerSpec(
            name="simvq",
            factory="qbench_builtins.simvq:SimVQ",
            search_space="qbench_builtins.spaces:simvq",
            description="SimVQ: frozen random codebook reparameterised by one learned linear layer",
            defaults={"codebook_size": 1024},
            paper="SimVQ, arXiv 2411.02038",
        ),
        QuantizerSpec(
            name="ibq",
            factory="qbench_builtins.ibq:IndexBackpropQuantizer",
            search_space="qbench_builtins.spaces:ibq",
            description="Index backpropagation: straight-through over the code softmax, whole codebook trains",
            defaults={"codebook_size": 1024},
            paper="IBQ, Taming Scalable Visual Tokenizer, arXiv 2412.02692",
        ),
    ]


@hookimpl
def qbench_register_backbones():
    return [
        BackboneSpec(
            name="conv",
            factory="qbench_builtins.backbones:ConvBackbone",
            description="VQGAN/MagViT2-style convolutional encoder and decoder",
            defaults={},
            paper=GSQ_PAPER,
        ),
        BackboneSpec(
            name="vit",
            factory="qbench_builtins.vit_backbone:ViTBackbone",
            description="ViT encoder and decoder from timm transformer blocks (patch size = downsample)",
            defaults={},
            paper="ViT-VQGAN, arXiv 2110.04627",
        ),
    ]


def _metric(name, attr, description, higher_is_better, unit="", heading=""):
    return MetricSpec(
        name=name,
        factory=f"qbench_builtins.metrics:{attr}",
        description=description,
        higher_is_better=higher_is_better,
        unit=unit,
        heading=heading,
    )


@hookimpl
def qbench_register_metrics():
    return [
        _metric("rfid", "ReconstructionFID", "rFID: torch-fidelity inception-v3-compat, originals vs reconstructions", False, heading="rFID"),
        _metric("lpips", "LPIPSMetric", "LPIPS (lpips package, AlexNet by default)", False, heading="LPIPS"),
        _metric("psnr", "PSNR", "peak signal-to-noise ratio on [0, 1] RGB", True, "dB", heading="PSNR (dB)"),
        _metric("ssim", "SSIM", "structural similarity, Gaussian window 11, sigma 1.5", True, heading="SSIM"),
        _metric("usage", "CodebookUsage", "percentage of codebook entries used on the evaluation set (pooled; per group/stage in extras)", True, "%", heading="usage (%)"),
        _metric("perplexity", "Perplexity", "exp(entropy) of the evaluation-set code histogram (pooled; per group/stage in extras)", True, heading="perplexity"),
        _metric("bits", "Bits", "bits per position, per image, compression ratio vs 24-bit RGB", None, "bits", heading="bits/pos"),
        _metric("throughput", "Throughput", "encode and decode images per second", True, "img/s", heading="throughput (img/s)"),
    ]


@hookimpl
def qbench_register_datasets():
    return [
        DatasetSpec(
            name="photos",
            factory="qbench_builtins.datasets:Photos",
            description="offline default: the CC0/public-domain photos shipped in scikit-image, cut train | val | test",
        ),
        DatasetSpec(
            name="imagefolder",
            factory="qbench_builtins.datasets:ImageFolderDataset",
            description="any ImageFolder-style root (ImageNet, FFHQ, ...), resize + centre crop",
        ),
        DatasetSpec(
            name="webdataset",
            factory="qbench_builtins.shards:webdataset_shards",
            description="WebDataset tar shards (qbench data shards), streamed per rank and worker; same crop as imagefolder",
        ),
        DatasetSpec(
            name="cifar10",
            factory="qbench_builtins.datasets:CIFAR10Dataset",
            description="CIFAR-10 from a local root: test = its test set, val = 5,000 held-out training images",
        ),
    ]


RECIPES = ("smoke", "cpu-default", "cpu-converged", "cpu-tuned", "imagenet128-vae", "imagenet256-gan")


@hookimpl
def qbench_register_recipes():
    # descriptions live in the TOML files themselves (``qbench list recipes`` reads them)
    return [RecipeSpec(name=name, factory=f"qbench_builtins.recipes:{name}.toml") for name in RECIPES]


TORCHVISION = "https://download.pytorch.org/models/"


@hookimpl
def qbench_register_weights():
    return [
        WeightsSpec(
            name="inception",
            filename="weights-inception-2015-12-05-6726825d.pth",
            url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
            sha256_prefix="6726825d",
            used_by="rfid (torch-fidelity inception-v3-compat)",
            description="torch-fidelity's Inception-v3 (the TF-compatible FID network)",
        ),
        WeightsSpec(name="alexnet", filename="alexnet-owt-7be5be79.pth", url=TORCHVISION + "alexnet-owt-7be5be79.pth",
                    sha256_prefix="7be5be79", used_by="lpips net=alex (metric)",
                    description="torchvision AlexNet: the LPIPS metric's backbone"),
        WeightsSpec(name="vgg16", filename="vgg16-397923af.pth", url=TORCHVISION + "vgg16-397923af.pth",
                    sha256_prefix="397923af", used_by="lpips net=vgg (metric option, perceptual loss of the paper recipes)",
                    description="torchvision VGG16: the LPIPS loss backbone"),
        WeightsSpec(name="squeezenet", filename="squeezenet1_1-b8a52dc0.pth",
                    url=TORCHVISION + "squeezenet1_1-b8a52dc0.pth", sha256_prefix="b8a52dc0",
                    used_by="lpips net=squeeze (metric and loss option)",
                    description="torchvision SqueezeNet 1.1: LPIPS' smallest backbone"),
    ]


@hookimpl
def qbench_register_loggers():
    return [
        LoggerSpec(
            name="csv",
            factory="qbench_builtins.loggers.csv_log:CSVLogger",
            description="RUN_DIR/log.csv, one row per logged step (the default; qbench report reads it)",
        ),
        LoggerSpec(
            name="tensorboard",
            factory="qbench_builtins.loggers.tensorboard_log:TensorBoardLogger",
            description="TensorBoard event files in RUN_DIR/tensorboard (tensorboard --logdir results/runs)",
            requires=("tensorboard",),
            install="pip install 'qbench[tensorboard]'",
        ),
        LoggerSpec(
            name="wandb",
            factory="qbench_builtins.loggers.wandb_log:WandbLogger",
            description="Weights & Biases, offline unless WANDB_MODE says otherwise; one run per quantizer",
            requires=("wandb",),
            install="pip install 'qbench[wandb]'",
        ),
        LoggerSpec(
            name="mlflow",
            factory="qbench_builtins.loggers.mlflow_log:MLflowLogger",
            description="MLflow, local store OUT/mlflow.db unless MLFLOW_TRACKING_URI says otherwise",
            requires=("mlflow", "sqlalchemy", "alembic"),
            install="pip install 'qbench[mlflow]'",
        ),
    ]
