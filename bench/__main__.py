"""``python -m bench``: the speed benchmark (``bench.speed``), with everything mode's recall."""

import sys

from bench.speed import main

main(sys.argv[1:])
