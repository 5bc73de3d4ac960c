"""The engine floor: building, training and scoring a tokenizer (torch).

  model           encoder -> quantizer -> decoder, assembled from the registries
  data            a deterministic, resumable, sharded stream of batches
  shards          an image folder written as WebDataset tar shards (qbench data shards)
  train           the one training loop every quantizer goes through
  losses          reconstruction, LPIPS perceptual, adversarial
  discriminators  PatchGAN and a frozen-DINOv2 discriminator
  diffaug         DiffAugment for data-efficient GAN training
  distributed     DDP under ``torchrun``: NCCL on GPU, gloo on CPU
  preemption      a checkpoint (and a stop) when the cluster signals; loader workers ignore the signals
  evaluate        the pinned metric protocol over an evaluation set
  code_counts     the evaluation-set code histogram for the loggers

Reports progress through callbacks: it never imports ``qbench.comparison.tracking``
nor ``qbench.report``.
"""
