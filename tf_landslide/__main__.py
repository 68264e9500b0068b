"""``python -m tf_landslide COMMAND [flags]``: the ``tf-landslide`` command, from any interpreter
that has the package (the study runs its steps this way)."""

from tf_landslide import cli

if __name__ == "__main__":
    cli.main()
