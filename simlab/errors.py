"""The one error type that means "the user gave bad input" (the CLI turns it into exit status 2)."""


class SimlabInputError(Exception):
    """Bad input from the command line, a YAML file or a claim.

    The message is one line that names the option or key, the value given and what is allowed,
    e.g. ``--p: 1.5 is not allowed; the drop probability must lie in [0, 1)``.
    """
