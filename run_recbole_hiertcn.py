"""Train and test HierTCN - or any RecBole model - on a dataset, RecBole style.

    python run_recbole_hiertcn.py                                    # HierTCN on ml-100k
    python run_recbole_hiertcn.py --model=GRU4Rec                    # a built-in baseline
    python run_recbole_hiertcn.py --config_files="a.yaml b.yaml" --learning_rate=0.002

Every other ``--key=value`` is a RecBole config override; ml-100k is read from the copy inside
the installed recbole package. The words ``train``, ``export``, ``serve`` and ``convert`` work as
for the ``recbole-hiertcn`` command (:mod:`recbole_hiertcn.cli`).
"""

import sys

import recbole_hiertcn  # noqa: F401  (HierTCN is registered with RecBole once RecBole is imported)
from recbole_hiertcn.cli import main

if __name__ == "__main__":
    sys.exit(main())  # as the installed `recbole-hiertcn` command does
