"""Registers the sign quantizer with qbench. Imports no torch."""

import qbench


@qbench.hookimpl
def qbench_register_quantizers():
    return [
        qbench.QuantizerSpec(
            name="sign",
            factory="qbench_sign.quantizer:SignQuantizer",
            description="lookup-free quantization: one bit per channel",
            paper="Language Model Beats Diffusion, arXiv 2310.05737 (LFQ)",
        )
    ]
