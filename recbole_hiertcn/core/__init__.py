"""HierTCN without RecBole: what the RecBole models, the datasets and protocols, the
session-kNN index and the served stream share, each written once.

* :mod:`~recbole_hiertcn.core.session_rule`: where sessions start (``SessionRule``);
* :mod:`~recbole_hiertcn.core.config_values`: typed reads of config keys;
* :mod:`~recbole_hiertcn.core.settings`: HierTCN's and HRNN's settings and their defaults;
* :mod:`~recbole_hiertcn.core.receptive_field`: how far back one TCN output sees;
* :mod:`~recbole_hiertcn.core.network`: the HierTCN network (``HierTCNCore``), built from
  :mod:`~recbole_hiertcn.core.layers`, :mod:`~recbole_hiertcn.core.item_encoder`,
  :mod:`~recbole_hiertcn.core.session_summary`, :mod:`~recbole_hiertcn.core.gap_decay`,
  :mod:`~recbole_hiertcn.core.output_heads` and :mod:`~recbole_hiertcn.core.seen_items`;
* :mod:`~recbole_hiertcn.core.sampled_softmax`: the sampled-softmax loss.

Modules here import only the standard library, numpy, torch and each other (a test holds it).
Nothing is imported here: import the module you need.
"""
