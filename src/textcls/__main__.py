"""`python -m textcls` is the `textcls` command."""

from textcls.entry import main

if __name__ == "__main__":
    main()
