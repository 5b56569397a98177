"""What to try next, and whether to go on: search strategies behind one protocol
(``base.SearchStrategy``: random, tpe, rea, bore), early stopping (``asha``), a registry
by name, and config spaces with their checks. Imports only ``common`` and Syne Tune."""
