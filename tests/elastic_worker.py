"""Run under torchrun by tests/test_elastic.py; not a test module itself.

``torchrun ... tests/elastic_worker.py TRAIN-ARGS`` runs ``bdb-ext train TRAIN-ARGS``. On torchrun's first attempt
(TORCHELASTIC_RESTART_COUNT=0), the rank named by BDB_TEST_KILL_RANK SIGKILLs itself just before global step
BDB_TEST_KILL_AT_STEP: a worker lost in the middle of an epoch, with no chance to clean up or save. It first waits
until rank 0's checkpoint of the step before is on disk, so the test knows which step the restart resumes from
(otherwise torchrun's SIGTERM may catch rank 0 in the middle of that save, and the restart resumes one step
earlier). Later attempts run untouched.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from bdb_ext.cli import main
from bdb_ext.engine import Trainer, load_checkpoint


def wait_for_checkpoint(trainer: Trainer, step: int, timeout_s: float = 120.0) -> None:
    path, deadline = trainer.output_dir / "last.pt", time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if load_checkpoint(path)["progress"]["global_step"] >= step:
                return
        except (FileNotFoundError, ValueError):
            pass  # not written yet
        time.sleep(0.05)
    raise TimeoutError(f"rank 0 did not save step {step} to {path} within {timeout_s} s")


def arm_the_kill() -> None:
    if os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return
    if os.environ.get("RANK") != os.environ.get("BDB_TEST_KILL_RANK"):
        return
    kill_at = int(os.environ["BDB_TEST_KILL_AT_STEP"])
    train_step = Trainer.train_step

    def dying_train_step(self, images, labels):
        if self.global_step + 1 == kill_at:
            wait_for_checkpoint(self, kill_at - 1)
            print(f"rank {os.environ['RANK']}: SIGKILL before step {kill_at}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return train_step(self, images, labels)

    Trainer.train_step = dying_train_step


if __name__ == "__main__":
    arm_the_kill()
    sys.exit(main(sys.argv[1:]))
