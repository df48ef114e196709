"""Train a minillm language model or sentiment classifier on social posts.

    python train.py                                   # small LM on the bundled data/, ~2 min
    python train.py --task sentiment --out out-sent   # sentiment classifier on data/
    python train.py --task sentiment --init-from out/best.pt --out out-ft   # fine-tune an LM
    torchrun --nproc_per_node=2 train.py ...          # several processes (DDP)

The same program is installed as `minillm-train`. Every flag is listed by
`python train.py --help`; the flags are read in minillm/cli/train.py and the work happens
in minillm/training.py.
"""

import sys

from minillm.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
