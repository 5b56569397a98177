"""The lowest layer: trial statuses, atomic files, what the machine offers. It imports
nothing else from d2l_hpo."""
