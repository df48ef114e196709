"""Generate text from, classify with, evaluate or look inside a minillm checkpoint.

    python sample.py --prompt "just landed in"                  # text, streamed as it comes
    python sample.py --ckpt out-sent/best.pt --classify "love this!!"
    python sample.py --ckpt out-sent/best.pt --classify-file posts.txt > labels.txt
    python sample.py --ckpt out-sent/best.pt --evaluate data/posts.csv
    python sample.py --ckpt out-sent/best.pt --explain "love this!!"   # which tokens decided

The same program is installed as `minillm-sample`. Every flag is listed by
`python sample.py --help`; the flags are read in minillm/cli/sample.py and the work happens
in minillm/inference.py, minillm/explain.py and minillm/plots.py.
"""

import sys

from minillm.cli.sample import main

if __name__ == "__main__":
    sys.exit(main())
