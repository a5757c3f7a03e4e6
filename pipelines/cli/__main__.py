"""`python -m pipelines.cli ...`: the `croc` command line."""

from pipelines.cli.commands import main

if __name__ == "__main__":
    main()
