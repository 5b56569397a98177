"""A module that, like many libraries, gives its logger a handler when it is imported
(writing to the stderr of the process at that moment). The Ray logging test's trials
import it; a Ray worker that imports it during the warm-up holds a handler that writes
to the worker's own stderr."""
import logging

logger = logging.getLogger("d2l_hpo_tests.chatty")
logger.addHandler(logging.StreamHandler())
logger.setLevel(logging.INFO)
logger.propagate = False
