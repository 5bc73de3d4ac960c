"""Two gloo ranks under torchrun: synced gradients, codebooks and GAN training; only rank 0 writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch

    import qbench
    from qbench.engine import distributed
    from qbench.recipe.identity import resolve
    from qbench.recipe.config import load_recipe
    from qbench.engine.data import build_dataset
    from qbench.engine.model import build_tokenizer
    from qbench.engine.train import fit

    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    recipe = load_recipe("smoke", ["train.steps=4", "train.checkpoint_every=2"])
    regs = qbench.registries()
    distributed.init(torch.device("cpu"))
    rank = distributed.rank()
    torch.manual_seed(100 + rank)  # different initial weights per rank: DDP must start from rank 0's
    adversarial = load_recipe("smoke", ["train.steps=3", "data.image_size=32", "loss.adversarial_weight=0.1"])
    for label, name, run_recipe in (("gsq", "gsq", recipe), ("vq", "vq", recipe), ("gan", "gsq", adversarial)):
        recipe = run_recipe
        options = {"dead_code_threshold": 1.0} if name == "vq" else {}
        if options:
            recipe = load_recipe("smoke", ["train.steps=4", "train.checkpoint_every=2", "quantizers.vq.dead_code_threshold=1.0"])
        identity = resolve(recipe, name, regs)
        tokenizer = build_tokenizer(identity, regs=regs)
        result = fit(tokenizer, recipe, build_dataset(recipe, "train", regs), identity=identity.to_dict(),
                     run_dir=out / label, progress=False)
        torch.save({"model": result.model.state_dict(), "world": result.world_size, "steps": result.steps},
                   out / f"{label}-rank{rank}.pt")
    distributed.shutdown()
    """
)


def test_two_gloo_ranks_end_with_identical_parameters(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    for label in ("gsq", "vq", "gan"):
        (tmp_path / label).mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("gsq", "vq", "gan"):
        a = torch.load(tmp_path / f"{name}-rank0.pt", weights_only=True)
        b = torch.load(tmp_path / f"{name}-rank1.pt", weights_only=True)
        assert a["world"] == b["world"] == 2
        for key in a["model"]:
            assert torch.equal(a["model"][key], b["model"][key]), (name, key)
        # only rank 0 wrote: one checkpoint, at the last step, no stray temporary files
        files = sorted(p.name for p in (tmp_path / name).iterdir())
        assert files == ["checkpoint.pt"]
        state = torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)
        assert state["step"] == a["steps"] == b["steps"]
        assert (state["discriminator"] is not None) == (name == "gan")
