"""VQ's EMA codebook and dead-code restarts under 2 gloo ranks equal one process on the global batch.

Each rank quantizes its shard of the same global batches (one of them split
unevenly); a single process quantizes the whole batches.  The codebooks and
every statistic must come out identical, bit for bit: the ranks gather the
global batch instead of adding up per-rank partial sums (which round
differently) and draw restart inputs from all of it, not from rank 0's shard.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

SCRIPT = textwrap.dedent(
    """
    import sys

    import torch

    from qbench.engine import distributed
    from qbench_builtins.vq import VectorQuantizer

    CASES = {
        "ema": {"ema_decay": 0.9},
        "ema+restart": {"ema_decay": 0.9, "dead_code_threshold": 1.0},
        "restart": {"dead_code_threshold": 1.0},
    }
    GLOBAL_BATCHES = [8, 8, 7, 8]  # images per step; 7 gives the ranks shards of 4 and 3

    torch.set_num_threads(1)
    distributed.init(torch.device("cpu"))
    rank, world = distributed.rank(), distributed.world_size()
    results = {}
    for label, options in CASES.items():
        torch.manual_seed(0)
        vq = VectorQuantizer(dim=4, codebook_size=16, **options).train()
        for step, size in enumerate(GLOBAL_BATCHES):
            batch = torch.randn(size, 4, 2, 2, generator=torch.Generator().manual_seed(step)) * (1 + step)
            shard = batch.tensor_split(world)[rank]
            torch.manual_seed(1000 + step)  # restart draws: the same stream on rank 0 and in one process
            vq(shard)
        results[label] = {k: v.clone() for k, v in vq.state_dict().items()}
    torch.save(results, f"{sys.argv[1]}/world{world}-rank{rank}.pt")
    distributed.shutdown()
    """
)


def test_vq_statistics_under_two_ranks_equal_one_process(tmp_path):
    script = tmp_path / "vq_ranks.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    one = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120,
                         env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    reference = torch.load(tmp_path / "world1-rank0.pt", weights_only=True)
    for rank in (0, 1):
        ranked = torch.load(tmp_path / f"world2-rank{rank}.pt", weights_only=True)
        for case, state in reference.items():
            assert state.keys() == ranked[case].keys()
            for name, tensor in state.items():
                assert torch.equal(tensor, ranked[case][name]), (case, name, rank)
    # restarts did happen (rows left the initial range U(-1/16, 1/16)), so the comparison covers them
    assert reference["restart"]["codebook"].abs().max() > 1 / 16
    assert reference["ema+restart"]["codebook"].abs().max() > 1 / 16
