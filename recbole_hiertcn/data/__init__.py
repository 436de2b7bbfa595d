"""Data side of the plugin, laid out like ``recbole.data``: an O(N) sequential dataset, the
sequence-mode training loader and the evaluation protocols."""
