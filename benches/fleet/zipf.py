#!/usr/bin/env python3
"""Query file for dnsperf and client.py: COUNT questions drawn from NAMES names under the lab's
wild.net (its `*` A record answers every one of them), popularity Zipf with exponent S (rank r
is asked with weight 1/r^S: the usual shape of DNS popularity), from a fixed SEED so every run
asks the same questions in the same order.

    zipf.py NAMES COUNT [S] [SEED] > queries.txt     # lines "z17.wild.net A"
"""
import random
import sys
from itertools import accumulate


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: zipf.py NAMES COUNT [S=1.0] [SEED=19] > queries.txt")
    names, count = int(sys.argv[1]), int(sys.argv[2])
    s = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 19
    if names < 1 or count < 1 or s <= 0:
        sys.exit("zipf.py: NAMES and COUNT must be at least 1 and S above 0")
    rng = random.Random(seed)
    cum = list(accumulate(1.0 / r**s for r in range(1, names + 1)))
    ranks = rng.choices(range(1, names + 1), cum_weights=cum, k=count)
    sys.stdout.write("".join(f"z{r}.wild.net A\n" for r in ranks))


if __name__ == "__main__":
    main()
