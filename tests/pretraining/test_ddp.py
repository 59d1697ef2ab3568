import os
import pathlib
import sys
import textwrap

import pytest
import torch

from tests import hang_guard

REPOSITORY_ROOT = pathlib.Path(__file__).resolve().parents[2]

# Lightning's DDP launcher starts rank 1 by re-running this script, so it must be a file.
_SCRIPT = textwrap.dedent(
    """
    import sys

    import lightning as L
    import torch

    from eva_coralbay.pretraining.config import load_config
    from eva_coralbay.pretraining.train import run_pretraining


    class RecordRanks(L.Callback):
        def __init__(self, folder):
            self.folder = folder
            self.first_batch = None

        def on_train_start(self, trainer, module):
            self.initial = {k: v.clone() for k, v in module.teacher.state_dict().items()}

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if self.first_batch is None:
                self.first_batch = batch["global_crops"].double().sum().item()

        def on_train_end(self, trainer, module):
            torch.save(
                {
                    "world_size": trainer.world_size,
                    "global_step": trainer.global_step,
                    "first_batch": self.first_batch,
                    "teacher": {k: v.clone() for k, v in module.teacher.state_dict().items()},
                    "center": module.center.center.clone(),
                    "token_center": module.token_center.center.clone(),
                    "moved": sorted(
                        k
                        for k, v in module.teacher.state_dict().items()
                        if not torch.equal(v, self.initial[k])
                    ),
                },
                f"{self.folder}/rank{trainer.global_rank}.pt",
            )


    if __name__ == "__main__":
        config_path, scan, output = sys.argv[1:4]
        config = load_config(
            config_path,
            [
                f"output={output}",
                f"data.paths=[{scan}]",
                "data.batch_size=1",
                "data.samples_per_epoch=4",
                "crops.num_local=1",
                "trainer.max_steps=2",
                "optim.warmup_steps=0",
                "trainer.accelerator=cpu",
                "trainer.devices=2",
                "trainer.strategy=ddp",
                "trainer.progress_bar=none",
                # iBOT too: its token center is all-reduced like DINO's.
                "loss.ibot_weight=1.0",
                "loss.ibot_mask_probability=1.0",
            ],
        )
        run_pretraining(config, extra_callbacks=[RecordRanks(output)])
    """
)


@pytest.mark.slow
def test_two_process_ddp_keeps_the_teachers_identical(
    tmp_path: pathlib.Path, totalsegmentator_dir: pathlib.Path
) -> None:
    script = tmp_path / "ddp_pretrain.py"
    script.write_text(_SCRIPT)
    output = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPOSITORY_ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    result = hang_guard.run_watched(
        [
            sys.executable,
            str(script),
            str(REPOSITORY_ROOT / "configs" / "pretrain" / "smoke.yaml"),
            str(totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz"),
            str(output),
        ],
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(output / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert [record["world_size"] for record in ranks] == [2, 2]
    assert [record["global_step"] for record in ranks] == [2, 2]
    # The ranks trained on different crops, yet their teachers (and centers) agree exactly.
    assert ranks[0]["first_batch"] != ranks[1]["first_batch"]
    torch.testing.assert_close(ranks[0]["center"], ranks[1]["center"], rtol=0, atol=0)
    tokens0, tokens1 = ranks[0]["token_center"], ranks[1]["token_center"]
    torch.testing.assert_close(tokens0, tokens1, rtol=0, atol=0)
    assert tokens0.abs().sum() > 0  # the iBOT center moved, identically on both ranks
    teacher0, teacher1 = ranks[0]["teacher"], ranks[1]["teacher"]
    assert teacher0.keys() == teacher1.keys()
    for key in teacher0:
        torch.testing.assert_close(teacher0[key], teacher1[key], rtol=0, atol=0, msg=key)
    # And training moved them away from the initialisation.
    assert any(key.startswith("backbone.swinViT.") for key in ranks[0]["moved"])
    assert any(key.startswith("head.") for key in ranks[0]["moved"])
    assert "mask_token" in ranks[0]["moved"]
    final = torch.load(output / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == 2
